"""A host stand-in for the audit crash test: 8 threads record 10,000 events in total.

Usage: audit_writer_child.py DB. After each committed batch it prints "committed N" (the
highest sequence number on disk), then the parent kills it with SIGKILL mid-way.
"""

from __future__ import annotations

import sys
import threading
import time

from plugwire._security import AuditLog

THREADS = 8
PER_THREAD = 1250


def main() -> None:
    def report(seq: int) -> None:
        sys.stdout.write(f"committed {seq}\n")
        sys.stdout.flush()

    audit = AuditLog(sys.argv[1], on_commit=report)

    def plugin(index: int) -> None:
        for count in range(PER_THREAD):
            audit.record("plugin.started", plugin=f"plugin-{index}", count=count, password="hunter2")
            if count % 2 == 0:
                time.sleep(0.001)  # spread the events over time, like real plugins

    threads = [threading.Thread(target=plugin, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.flush()
    sys.stdout.write("done\n")
    sys.stdout.flush()
    time.sleep(60)  # wait to be killed


if __name__ == "__main__":
    main()
