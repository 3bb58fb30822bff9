"""The crash storm: hundreds of kill -9s in the middle of calls, and a ledger of what ran.

A real plugin process pool (tests/faults/ledger_plugin.py, run with this interpreter) writes
one ledger line per execution that begins. Drivers issue calls with unique ids, some of them
idempotent; a killer waits for executions to begin (the plugin reports each one through a
FIFO as it writes its ledger line) and kills the process running one with SIGKILL, again and
again. Afterwards every call is checked against the ledger:

- no call is lost or hangs: each one ended, within its bound, with an answer or an error;
- no call ran twice unless it was idempotent (and then at most once per attempt);
- an answer is that call's own, from a process that ran it, and that ran it once;
- every error is a coded `PluginError` with a code the storm can explain; a call refused
  before it was sent (breaker open, plugin offline) never ran;
- a call its caller cancelled (one in ten, at a random moment) ran no more often than any other.

The cycle count is `PLUGWIRE_CHAOS_CYCLES` (default 200, what `make test` runs; `make chaos`
runs many more). See docs/faults.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import plugwire
from plugwire import ExecutionContext, PluginError
from plugwire.errors import ErrorCode

from .ledger_plugin import Done, Job

PLUGIN = Path(__file__).with_name("ledger_plugin.py")
SRC = Path(__file__).resolve().parents[2] / "src"
CYCLES = int(os.environ.get("PLUGWIRE_CHAOS_CYCLES", "200"))
SEED = int(os.environ.get("PLUGWIRE_CHAOS_SEED", str(random.randrange(1 << 30))))
DRIVERS = 8
CALL_BOUND = 30.0
"""Seconds after which a call counts as hung (far above any answer or restart the storm needs)."""
MAX_RETRIES = 3

# Settings chosen for the storm (see docs/faults.md, "What the storm does not test yet"):
# the breaker opens after a burst of lost calls but recovers quickly, and the restart limit
# is out of reach, so the plugin always comes back and the storm keeps finding calls to cut.
BREAKER = {"failure_threshold": 20, "recovery_timeout": 0.2, "success_threshold": 1}
RESTARTS = plugwire.config.RestartPolicy(initial_backoff=0.01, max_backoff=0.05, max_restarts=1_000_000)
REQUEST_TIMEOUT = 20.0  # no attempt times out: a storm call is work of at most 20 ms

# The errors a storm call may end with. 1207: the process died with the request sent (it may
# have run). The others mean the last attempt was not sent: the connection broke before the
# request left the host (1302), the plugin is offline (1602), the breaker refused the call
# before any attempt (1401). So a non-idempotent call ending with one of them never ran
# (an idempotent one may have, in an earlier attempt), and one refused by the breaker never did.
EXPECTED_CODES = frozenset(
    {ErrorCode.OUTCOME_UNKNOWN, ErrorCode.CONNECTION_LOST, ErrorCode.PLUGIN_OFFLINE, ErrorCode.CIRCUIT_OPEN}
)
NOT_SENT = frozenset({ErrorCode.CONNECTION_LOST, ErrorCode.PLUGIN_OFFLINE, ErrorCode.CIRCUIT_OPEN})

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90 + CYCLES * 0.6)]


@dataclass
class Outcome:
    """What one call of the storm ended with."""

    job: Job
    idempotent: bool
    answer: Done | None = None
    error: BaseException | None = None
    hung: bool = False
    cancelled: bool = False  # by its caller, on purpose


@dataclass
class Storm:
    """The calls made, the kills done, and the ledger's path."""

    ledger: Path
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    killed: list[int] = field(default_factory=list)
    killed_elsewhere: list[int] = field(default_factory=list)


def ledger_counts(path: Path) -> tuple[collections.Counter[str], dict[str, set[int]]]:
    """How many executions of each job id began, and in which processes."""
    counts: collections.Counter[str] = collections.Counter()
    pids: dict[str, set[int]] = collections.defaultdict(set)
    for line in path.read_text().splitlines():
        job_id, pid = line.split()
        counts[job_id] += 1
        pids[job_id].add(int(pid))
    return counts, pids


def our_children() -> set[int]:
    """The live processes this one started (the plugin's pool)."""
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit() and is_our_child(int(entry))}


def is_our_child(pid: int) -> bool:
    """Whether `pid` is a live process started by this one (never kill a reused pid)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return fields.get("PPid", "").strip() == str(os.getpid()) and not fields.get("State", "").startswith("Z")


@contextlib.asynccontextmanager
async def execution_signals(fifo: Path) -> AsyncIterator[asyncio.StreamReader]:
    """Read the plugin's "an execution began" lines from `fifo` as they are written."""
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    # Keep a writer open ourselves, so the reader never sees end-of-file between two plugin
    # processes (the plugin's writers come and go with the kills).
    keep = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        yield reader
    finally:
        os.close(keep)
        transport.close()


async def killer(storm: Storm, signals: asyncio.StreamReader, rng: random.Random) -> None:
    """Kill a process in the middle of a call, `CYCLES` times.

    Each cycle waits for 1-4 executions to begin, then kills the process that began the last
    of them: it has that call in flight (or, if its work was very short, the next one).
    """
    dead: set[int] = set()
    while len(storm.killed) < CYCLES:
        pid = 0
        for _ in range(rng.randint(1, 4)):
            try:
                async with asyncio.timeout(CALL_BOUND):
                    line = await signals.readline()
            except TimeoutError:
                stalled = f"after {len(storm.killed)} kills, no execution began for {CALL_BOUND:g}s"
                raise AssertionError(f"{stalled}: the plugin did not come back") from None
            assert line, "the plugin's signal FIFO closed"
            pid = int(line.split()[1])
        if pid in dead or not is_our_child(pid):
            continue  # a line from a process killed a moment ago
        os.kill(pid, signal.SIGKILL)
        dead.add(pid)
        storm.killed.append(pid)
        if rng.random() < 0.2:
            # Now and then one more: any plugin process, perhaps one still starting (its
            # handshake cut short) or idle. These do not count as cycles.
            others = sorted(our_children() - dead)
            if others:
                victim = rng.choice(others)
                os.kill(victim, signal.SIGKILL)
                dead.add(victim)
                storm.killed_elsewhere.append(victim)


async def driver(
    storm: Storm,
    manager: plugwire.AsyncPluginManager[Job, Done],
    number: int,
    rng: random.Random,
    stop: asyncio.Event,
) -> None:
    """Call the plugin again and again, each call with a new id, until told to stop."""
    sequence = 0
    while not stop.is_set():
        sequence += 1
        job = Job(id=f"{number}-{sequence}", work=rng.choice((0.0, 0.001, 0.005, 0.02)))
        outcome = Outcome(job=job, idempotent=rng.random() < 0.3)
        storm.outcomes[job.id] = outcome
        context = ExecutionContext(idempotent=outcome.idempotent)
        call = asyncio.ensure_future(manager.execute("storm", job, context))
        if rng.random() < 0.1:  # the caller gives up on this one: cancelled at a random moment
            outcome.cancelled = True
            asyncio.get_running_loop().call_later(rng.choice((0.0, 0.001, 0.01)), call.cancel)
        try:
            async with asyncio.timeout(CALL_BOUND):
                outcome.answer = await call
        except TimeoutError:
            outcome.hung = True
        except asyncio.CancelledError as exc:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise  # the driver itself is cancelled
            if not outcome.cancelled:
                outcome.error = exc  # cancelled by no one: reported as a problem
        except Exception as exc:
            outcome.error = exc
            if isinstance(exc, PluginError) and exc.code == ErrorCode.CIRCUIT_OPEN:
                await asyncio.sleep(0.01)  # what a user does while the breaker is open: back off a little


def build_manager(tmp_path: Path, ledger: Path, fifo: Path) -> plugwire.AsyncPluginManager[Job, Done]:
    source = plugwire.subprocess(
        sys.executable,
        str(PLUGIN),
        env={"PYTHONPATH": str(SRC), "PLUGWIRE_LEDGER": str(ledger), "PLUGWIRE_LEDGER_SIGNAL": str(fifo)},
        options=plugwire.config.SubprocessOptions(grace=1.0, kill_after=1.0, restart=RESTARTS),
    )
    return (
        plugwire.simple(Job, Done)
        .with_plugin("storm", source)
        .with_timeout(REQUEST_TIMEOUT)
        .with_retry(max_retries=MAX_RETRIES, initial_interval=0.005, max_interval=0.05)
        .with_circuit_breaker(**BREAKER)
        .build()
    )


async def run_storm(tmp_path: Path) -> Storm:
    rng = random.Random(SEED)
    storm = Storm(ledger=tmp_path / "ledger")
    fifo = tmp_path / "signals"
    async with execution_signals(fifo) as signals, build_manager(tmp_path, storm.ledger, fifo) as manager:
        stop = asyncio.Event()
        drivers = [
            asyncio.create_task(driver(storm, manager, n, random.Random(rng.random()), stop)) for n in range(DRIVERS)
        ]
        try:
            await killer(storm, signals, rng)
        finally:
            stop.set()
            await asyncio.gather(*drivers)
        # The plugin came back: a call after the storm is answered.
        after = await manager.execute("storm", Job(id="after-the-storm"))
        assert after.id == "after-the-storm"
    return storm


def problems(storm: Storm) -> Iterator[str]:
    """Every way the storm's calls broke a promise, described."""
    counts, pids = ledger_counts(storm.ledger)
    issued = set(storm.outcomes) | {"after-the-storm"}
    for job_id in counts.keys() - issued:
        yield f"{job_id}: in the ledger but never called"
    for job_id, outcome in storm.outcomes.items():
        ran = counts[job_id]
        limit = 1 + MAX_RETRIES if outcome.idempotent else 1
        kind = "idempotent" if outcome.idempotent else "non-idempotent"
        if outcome.hung:
            yield f"{job_id}: no outcome within {CALL_BOUND:g}s (ran {ran}x)"
        elif ran > limit:
            yield f"{job_id}: {kind} call ran {ran} times"
        elif outcome.cancelled and outcome.answer is None and outcome.error is None:
            continue  # its caller cancelled it; it ran at most as often as allowed (above)
        elif outcome.answer is not None:
            if outcome.answer.id != job_id:
                yield f"{job_id}: answered with job {outcome.answer.id}'s answer"
            elif ran == 0 or outcome.answer.pid not in pids[job_id]:
                yield f"{job_id}: answered by process {outcome.answer.pid}, which did not run it (ran {ran}x)"
        elif not isinstance(outcome.error, PluginError):
            yield f"{job_id}: failed with an uncoded {type(outcome.error).__name__}: {outcome.error}"
        elif outcome.error.code not in EXPECTED_CODES:
            yield f"{job_id}: failed with unexpected code {outcome.error.code}: {outcome.error}"
        elif (
            ran
            and outcome.error.code in NOT_SENT
            and (outcome.error.code == ErrorCode.CIRCUIT_OPEN or not outcome.idempotent)
        ):
            yield f"{job_id}: {kind} call ran {ran}x although it failed with {outcome.error.code} (not sent)"


async def test_a_crash_storm_loses_no_call_runs_none_twice_and_codes_every_error(tmp_path: Path) -> None:
    storm = await run_storm(tmp_path)
    found = list(problems(storm))
    errors = collections.Counter(
        o.error.code if isinstance(o.error, PluginError) else type(o.error).__name__
        for o in storm.outcomes.values()
        if o.error is not None
    )
    summary = (
        f"seed {SEED}: {len(storm.killed)} kills mid-call and {len(storm.killed_elsewhere)} of any plugin process, "
        f"{len(storm.outcomes)} calls, "
        f"{sum(o.answer is not None for o in storm.outcomes.values())} answered, "
        f"{sum(o.cancelled for o in storm.outcomes.values())} cancelled by their caller, errors {dict(errors)}"
    )
    print(summary)
    assert not found, f"{summary}\n" + "\n".join(found[:40])
    # The storm did what it says: every cycle killed a process that had begun a call.
    assert len(storm.killed) >= CYCLES
    assert errors[ErrorCode.OUTCOME_UNKNOWN] > 0, summary
