"""`plugwire audit tail --follow`: a real follower process prints the rows a real writer
process commits, as they come, and ends with exit 0 on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner

from plugwire._cli._app import cli
from plugwire._security import AuditEvent, AuditFollower, AuditLog

WAIT = 20.0  # seconds to wait for a line; a line normally comes within one poll interval

# A writer the test drives: each line on stdin ("event plugin") becomes one committed row
# (written through the audit logger, as a host writes), acknowledged with its seq.
WRITER = """
import sys
from plugwire._security import AuditLog
with AuditLog(sys.argv[1]) as audit:
    for line in sys.stdin:
        event, plugin = line.split()
        audit.record(event, plugin, note="from the writer")
        print(audit.flush(), flush=True)
"""

# Starts the follower with Ctrl-C's default meaning, even when this test runs with SIGINT
# ignored (a background job of a non-interactive shell): exec keeps a default disposition.
LAUNCH = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


class Lines:
    """The lines of a process's stream, as they come, each waited for with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), name="test-lines")
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def next(self) -> str:
        return self._queue.get(timeout=WAIT)

    def join(self) -> None:
        self._thread.join(WAIT)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture
def writer(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    path = tmp_path / request.param
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "alpha", pid=1)
        audit.record(AuditEvent.STARTED, "beta", pid=2)
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    yield path, process
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=WAIT) == 0
    assert process.stdout is not None
    process.stdout.close()


def write(process: subprocess.Popen[str], event: str, plugin: str) -> int:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(f"{event} {plugin}\n")
    process.stdin.flush()
    return int(process.stdout.readline())


@pytest.mark.parametrize(
    ("writer", "as_json"), [("audit.db", True), ("audit.jsonl", False)], indirect=["writer"], ids=["sqlite", "jsonl"]
)
def test_the_follower_prints_rows_a_running_writer_appends_then_exits_0_on_ctrl_c(
    writer: tuple[Path, subprocess.Popen[str]], as_json: bool
) -> None:
    path, writer_process = writer
    command = [str(Path(sys.executable).with_name("plugwire")), "audit", "tail", "-n", "1", "-f", "--interval", "0.05"]
    if not Path(command[0]).exists():  # not installed as a script: the module is the same command
        command[:1] = [sys.executable, "-m", "plugwire"]
    follower = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *command, *(["--json"] if as_json else []), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    assert follower.stdout is not None
    assert follower.stderr is not None
    lines = Lines(follower.stdout)
    try:

        def seen() -> tuple[int, str, str | None]:
            line = lines.next()
            if as_json:
                row = json.loads(line)
                assert row["fields"] == ({"pid": 2} if row["seq"] == 2 else {"note": "from the writer"})
                return row["seq"], row["event"], row["plugin"]
            seq, _day, _time, event, plugin, *_ = line.split()
            return int(seq), event, plugin

        assert seen() == (2, "plugin.started", "beta")  # the newest row (-n 1) first
        assert write(writer_process, "plugin.stopped", "beta") == 3
        assert seen() == (3, "plugin.stopped", "beta")
        assert write(writer_process, "plugin.crashed", "alpha") == 4
        assert write(writer_process, "plugin.restarted", "alpha") == 5
        assert [seen(), seen()] == [(4, "plugin.crashed", "alpha"), (5, "plugin.restarted", "alpha")]
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=WAIT) == 0
        assert follower.stderr.read() == ""  # no traceback, no "Aborted!"
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        lines.join()
        follower.stdout.close()
        follower.stderr.close()


@pytest.mark.parametrize("name", ["audit.db", "audit.jsonl"])
def test_the_follower_reads_each_row_once_in_order_across_batches(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "alpha")
        audit.flush()
        with AuditFollower(path, after=0) as follower:
            assert [row.seq for row in follower.poll()] == [1]
            assert follower.poll() == []
            for index in range(5):
                audit.record(AuditEvent.AUTHORIZED, "alpha", index=index)
            audit.flush()
            assert [row.seq for row in follower.poll(limit=2)] == [2, 3]
            assert [row.fields["index"] for row in follower.poll()] == [2, 3, 4]
            assert follower.last_seq == 6
            assert follower.poll() == []


def test_a_jsonl_follower_waits_for_a_torn_line_and_starts_over_on_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "alpha")
    whole = path.read_bytes()
    with AuditFollower(path) as follower:
        assert [row.seq for row in follower.poll()] == [1]
        with AuditLog(path) as audit:
            audit.record(AuditEvent.STOPPED, "alpha")
        second = path.read_bytes()[len(whole) :]
        path.write_bytes(whole + second[:10])  # a batch half written
        assert follower.poll() == []
        path.write_bytes(whole + second)
        assert [row.event for row in follower.poll()] == ["plugin.stopped"]
        replacement = tmp_path / "new.jsonl"
        with AuditLog(replacement) as audit:
            for _ in range(3):
                audit.record(AuditEvent.AUTHORIZED, "beta")
        replacement.replace(path)  # rotated: a new file at the same path
        assert [row.seq for row in follower.poll()] == [3]  # read from its start; rows after seq 2 only


def test_follow_options_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "alpha")
    cases = [
        (["-n", "0", "-f"], "0 is not in the range x>=1"),
        (["-n", "-3"], "-3 is not in the range x>=1"),
        (["-f", "--interval", "0"], "0.0 is not in the range x>0"),
        (["-f", "--interval", "-1"], "-1.0 is not in the range x>0"),
        (["--interval", "1"], "--interval applies to --follow only"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["audit", "tail", *args, str(path)])
        assert (result.exit_code, message in result.output) == (2, True), (args, result.output)
    for limit in ("0", "-1"):
        result = CliRunner().invoke(cli, ["audit", "query", "--limit", limit, str(path)])
        assert result.exit_code == 2
        assert f"{limit} is not in the range x>=1" in result.output
    result = CliRunner().invoke(cli, ["audit", "tail", "-f", str(tmp_path / "absent.jsonl")])
    assert result.exit_code == 2
    assert "[1811 AUDIT_FAILED]" in result.output
