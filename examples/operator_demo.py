"""The operator's path through plugwire, with the `plugwire` command only (`make demo`).

A host runs from a config file (`plugwire run`), and the other commands work beside it:
validate the config, call a plugin, measure one, probe the running host's health and read a
metrics snapshot from its Prometheus endpoint. Every step is a real command, printed as it
would be typed, with its real output; the host is stopped with SIGTERM at the end and exits 0.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "operator" / "plugwire.yaml"
PLUGWIRE = [sys.executable, "-m", "plugwire"]
READY_WITHIN = 20.0  # seconds: the host's plugins start in well under one


def show(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `plugwire ARGS...`, print the command line and its output, and return the result."""
    shown = ["plugwire", *(os.path.relpath(a) if a.startswith(str(HERE)) else a for a in args)]
    print(f"\n$ {shlex.join(shown)}", flush=True)
    result = subprocess.run([*PLUGWIRE, *args], capture_output=True, text=True, timeout=60, check=False)
    print((result.stdout + result.stderr).rstrip())
    if result.returncode:
        print(f"(exit {result.returncode})")
    return result


def main() -> int:
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "100")}
    os.environ.update(env)
    show("config", "validate", str(CONFIG))
    print(f"\n$ plugwire run {os.path.relpath(CONFIG)} --json &", flush=True)
    host = subprocess.Popen(
        [*PLUGWIRE, "run", str(CONFIG), "--json", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert host.stdout is not None
        started = time.monotonic()
        line = host.stdout.readline()  # the ready line; an empty one if the host ended
        if not line:
            print(f"the host did not start (exit {host.wait()})")
            return 1
        print(line.rstrip())
        ready = json.loads(line)
        url = ready["metrics_url"]
        print(f"(ready in {time.monotonic() - started:.1f}s)")

        print("\n# call and bench start the one plugin they need in a host of their own, beside the")
        print("# running one; health and top read the running host through its metrics endpoint.")
        text = "Plugins fail. Hosts should not. plugwire keeps them apart."
        show("call", str(CONFIG), "stats", "--data", json.dumps({"text": text}))
        show("call", str(CONFIG), "auth", "--data", json.dumps({"user_id": "u1", "token": "wrong"}))
        show("call", str(CONFIG), "payments", "--data", "{}")
        show("bench", str(CONFIG), "stats", "--data", json.dumps({"text": text}), "-n", "500", "-c", "4")
        show("health", "--metrics", url)
        show("top", "--metrics", url, "--once")
    finally:
        print(f"\n$ kill -TERM {host.pid}", flush=True)
        host.send_signal(signal.SIGTERM)
        rest, log = host.communicate(timeout=30)
        print(log.rstrip())
        print(rest.rstrip())
        print(f"(the host exited {host.returncode})")
    return 0 if host.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
