"""A host stand-in for the many-writers audit test.

Usage: audit_host_child.py NAME ROWS [AUDIT_FILE]. Prints "ready", waits for "go" on stdin
(the parent's barrier, so that every host opens the log at once), then opens the audit log
as a host does (a security engine under the audit policy; without AUDIT_FILE the log is the
default one in $XDG_DATA_HOME), records ROWS `plugin.started` rows about NAME in small
committed batches, and closes. Any failure exits non-zero with its traceback on stderr.
"""

from __future__ import annotations

import asyncio
import sys

from plugwire import SecurityAuditConfig, SecurityConfig, SecurityPolicy
from plugwire._security import AuditEvent, SecurityEngine

BATCH = 5


async def main() -> int:
    name, rows = sys.argv[1], int(sys.argv[2])
    audit_file = sys.argv[3] if len(sys.argv) > 3 else None
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline() != "go\n":
        return 2
    settings = SecurityAuditConfig(enabled=True, audit_file=audit_file)
    engine = SecurityEngine.from_config(
        SecurityConfig(enabled=True, policy=SecurityPolicy.AUDIT, audit_config=settings)
    )
    try:
        audit = engine.audit
        assert audit is not None
        for count in range(rows):
            audit.record(AuditEvent.STARTED, name, count=count)
            if count % BATCH == BATCH - 1:
                await audit.aflush()  # many small commits, interleaved with the other hosts'
        await audit.aflush()
    finally:
        await engine.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
