"""The crash storm: hundreds of kill -9s in the middle of calls, and a ledger of what ran.

A real plugin process pool (tests/support/plugins/ledger_plugin.py, run with this interpreter) writes
one ledger line per execution that begins. Drivers issue calls with unique ids, some of them
idempotent, some with a per-call timeout shorter than their work; a killer waits for
executions to begin (the plugin reports each one through a FIFO as it writes its ledger line)
and kills the process running one with SIGKILL, again and again. The manager is `simple()` as
it comes, but for the restart policy and the breaker's recovery timeout (see RESTARTS).
Afterwards every call is checked against the ledger:

- no call is lost or hangs: each one ended, within its bound, with an answer or an error;
- an answer is that call's own, from a process that ran it; a non-idempotent call ran once;
- every error is a coded `PluginError` with a code the storm can explain, and what it says
  about its request (`request_sent`) is true: NO, and a non-idempotent call never ran; MAYBE,
  at most once; YES, exactly once (an idempotent call: at most once per attempt sent);
- a call its caller cancelled (one in ten, at a random moment) ran no more often than any other;
- one crash is one breaker failure: the breaker opened at most once per `failure_threshold`
  failure events the storm caused (one per killed process, one per call that timed out).

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
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import plugwire
from plugwire import ExecutionContext, PluginError
from plugwire.errors import ErrorCode, RequestSent
from plugwire.policies import BreakerState, BreakerStateChange
from tests.support.plugins.ledger_plugin import Done, Job

PLUGIN = Path(__file__).resolve().parents[2] / "support" / "plugins" / "ledger_plugin.py"
SRC = Path(__file__).resolve().parents[3] / "src"
CYCLES = int(os.environ.get("PLUGWIRE_CHAOS_CYCLES", "200"))
SEED = int(os.environ.get("PLUGWIRE_CHAOS_SEED", str(random.randrange(1 << 30))))
DRIVERS = 8
CALL_BOUND = 60.0
"""Seconds after which a call counts as hung (far above any answer, retry or restart of the storm)."""
MAX_RETRIES = 3  # simple()'s default

# The storm runs `simple()` as it comes (retries, timeouts, breaker thresholds), but for two
# settings, each needed for 200 kills to fit in about a minute:
# - the restart limit is out of reach, and the backoff before restarting an emptied pool short.
#   Two hundred kills a minute are, by the limit's definition, a crash loop: the default (5
#   incidents in 60 s) takes the plugin offline after the sixth and tries again after 60 s;
#   and the default backoff grows with the incidents in the window, to 5 s per restart.
# - the breaker's `recovery_timeout` is short. The breaker opens legitimately in a storm (five
#   kills and timeouts with no success between them: see test's end), and when a half-open
#   trial then times out (a short per-call timeout) while the pool still has live processes,
#   no restart follows to end the wait: only the recovery timeout does, 30 s by default.
RESTARTS = plugwire.config.RestartPolicy(initial_backoff=0.01, max_backoff=0.05, max_restarts=1_000_000)
RECOVERY_TIMEOUT = 0.5
FAILURE_THRESHOLD = 5  # simple()'s
SLACK = 0.1
SHORT_TIMEOUTS = (0.002, 0.01)
"""Per-call timeouts given to one call in ten: shorter than some of the work, so 1204s happen,
both after the request was sent and (while the pool restarts) before it was."""

# The errors a storm call may end with: 1207 (the process died with the request sent), 1204
# (no answer in time, sent or not), 1302 (the connection broke before the request left the
# host), 1401 (the breaker refused the call before any attempt).
EXPECTED_CODES = frozenset(
    {ErrorCode.OUTCOME_UNKNOWN, ErrorCode.TIMEOUT, ErrorCode.CONNECTION_LOST, ErrorCode.CIRCUIT_OPEN}
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120 + CYCLES * 0.6)]


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
    """The calls made, the kills done, the breaker's changes, and the ledger's path."""

    ledger: Path
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    killed: list[int] = field(default_factory=list)
    killed_elsewhere: list[int] = field(default_factory=list)
    breaker: list[BreakerStateChange] = field(default_factory=list)
    #: When (`time.monotonic()`, the breaker's clock) each event the breaker may count as a
    #: failure happened: a process killed, a call that ended timed out.
    failures: list[float] = field(default_factory=list)


def ledger_counts(path: Path) -> tuple[collections.Counter[str], dict[str, set[int]]]:
    """How many executions of each job id began, and in which processes."""
    counts: collections.Counter[str] = collections.Counter()
    pids: dict[str, set[int]] = collections.defaultdict(set)
    for line in path.read_text().splitlines():
        job_id, pid, _ = line.split()
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
        storm.failures.append(time.monotonic())
        dead.add(pid)
        storm.killed.append(pid)
        if rng.random() < 0.2:
            # Now and then one more: any plugin process, perhaps one still starting (its
            # handshake cut short) or idle. These do not count as cycles.
            others = sorted(our_children() - dead)
            if others:
                victim = rng.choice(others)
                os.kill(victim, signal.SIGKILL)
                storm.failures.append(time.monotonic())
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
        job = Job(id=f"{number}-{sequence}", seconds=rng.choice((0.0, 0.001, 0.005, 0.02)))
        outcome = Outcome(job=job, idempotent=rng.random() < 0.3)
        storm.outcomes[job.id] = outcome
        timeout = rng.choice(SHORT_TIMEOUTS) if rng.random() < 0.1 else None
        context = ExecutionContext(idempotent=outcome.idempotent, timeout=timeout)
        call = asyncio.ensure_future(manager.execute("storm", job, context))
        if rng.random() < 0.1:  # the caller gives up on this one: cancelled at a random moment
            outcome.cancelled = True
            asyncio.get_running_loop().call_later(rng.choice((0.0, 0.001, 0.01)), call.cancel)
        try:
            async with asyncio.timeout(CALL_BOUND):
                outcome.answer = await call
        except PluginError as exc:  # first: a PluginTimeoutError (1204) is a TimeoutError too
            outcome.error = exc
            if exc.code == ErrorCode.TIMEOUT:
                storm.failures.append(time.monotonic())
            if exc.code == ErrorCode.CIRCUIT_OPEN:
                await asyncio.sleep(0.01)  # what a user does while the breaker is open: back off a little
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


def build_manager(ledger: Path, fifo: Path) -> plugwire.AsyncPluginManager[Job, Done]:
    source = plugwire.subprocess(
        sys.executable,
        str(PLUGIN),
        env={"PYTHONPATH": str(SRC), "LEDGER": str(ledger), "LEDGER_SIGNAL": str(fifo)},
        options=plugwire.config.SubprocessOptions(grace=1.0, kill_after=1.0, restart=RESTARTS),
    )
    builder = plugwire.simple(Job, Done).with_circuit_breaker(recovery_timeout=RECOVERY_TIMEOUT)
    return builder.with_plugin("storm", source).build()


async def run_storm(tmp_path: Path) -> Storm:
    rng = random.Random(SEED)
    storm = Storm(ledger=tmp_path / "ledger")
    fifo = tmp_path / "signals"
    async with execution_signals(fifo) as signals, build_manager(storm.ledger, fifo) as manager:
        breaker = manager.circuit_breaker("storm")
        assert breaker is not None
        assert breaker.config.failure_threshold == FAILURE_THRESHOLD
        breaker.listeners.append(storm.breaker.append)
        stop = asyncio.Event()
        drivers = [
            asyncio.create_task(driver(storm, manager, n, random.Random(rng.random()), stop)) for n in range(DRIVERS)
        ]
        try:
            await killer(storm, signals, rng)
        finally:
            stop.set()
            await asyncio.gather(*drivers)
        # The plugin came back: a call after the storm is answered (once the breaker, which
        # the last kills may have opened, lets it through: as a user would, wait as it says).
        async with asyncio.timeout(CALL_BOUND):
            while True:
                try:
                    after = await manager.execute("storm", Job(id="after-the-storm"))
                    break
                except plugwire.CircuitOpenError as exc:
                    await asyncio.sleep(max(float(exc.details["retry_after"]), 0.01))
        assert after.id == "after-the-storm"
    return storm


def sent_attempts(error: PluginError) -> tuple[int, int]:
    """The fewest and the most executions a failed call may have had, from what its error
    says: its attempts (`details["attempts"]`, set when it was retried) and whether the
    last one's request reached the plugin. Every attempt but the last may have run (a retry
    follows only an attempt that was not sent, or may have run and was idempotent)."""
    attempts = int(error.details.get("attempts", 1))
    if error.request_sent is RequestSent.NO:
        return 0, attempts - 1
    if error.request_sent is RequestSent.YES:
        return 1, attempts
    return 0, attempts


def breaker_problems(storm: Storm) -> Iterator[str]:
    """Every opening of the breaker that more than one failure per crash would explain.

    The breaker counts from zero again at each of its transitions, and ignores results of calls
    admitted before it, so each time it opened from closed, `failure_threshold` failures came
    between its previous transition and that one. One crash being one failure, each was a
    different event: a process killed, or a call timed out. (A call may be admitted a moment
    before its process's death is seen, and the storm sees a timed-out call a moment after the
    breaker counted it: events up to `SLACK` s either side count too.)
    """
    previous = -float("inf")
    for change in storm.breaker:
        if change.old is BreakerState.CLOSED and change.new is BreakerState.OPEN:
            events = sum(previous - SLACK < at <= change.at + SLACK for at in storm.failures)
            if events < FAILURE_THRESHOLD:
                yield f"breaker opened at {change.at:.3f} ({change.reason}) after only {events} failure events"
        previous = change.at


def problems(storm: Storm) -> Iterator[str]:
    """Every way the storm's calls broke a promise, described."""
    counts, pids = ledger_counts(storm.ledger)
    issued = set(storm.outcomes) | {"after-the-storm"}
    for job_id in counts.keys() - issued:
        yield f"{job_id}: in the ledger but never called"
    for job_id, outcome in storm.outcomes.items():
        ran = counts[job_id]
        kind = "idempotent" if outcome.idempotent else "non-idempotent"
        error = outcome.error
        if outcome.hung:
            yield f"{job_id}: no outcome within {CALL_BOUND:g}s (ran {ran}x)"
        elif ran > (1 + MAX_RETRIES if outcome.idempotent else 1):
            yield f"{job_id}: {kind} call ran {ran} times"
        elif outcome.cancelled and outcome.answer is None and error is None:
            continue  # its caller cancelled it; it ran at most as often as allowed (above)
        elif outcome.answer is not None:
            if outcome.answer.id != job_id:
                yield f"{job_id}: answered with job {outcome.answer.id}'s answer"
            elif ran == 0 or outcome.answer.pid not in pids[job_id]:
                yield f"{job_id}: answered by process {outcome.answer.pid}, which did not run it (ran {ran}x)"
        elif not isinstance(error, PluginError):
            yield f"{job_id}: failed with an uncoded {type(error).__name__}: {error}"
        elif error.code not in EXPECTED_CODES:
            yield f"{job_id}: failed with unexpected code {error.code}: {error}"
        elif error.request_sent is RequestSent.NOT_APPLICABLE:
            yield f"{job_id}: its error does not say whether the request was sent: {error}"
        else:
            fewest, most = sent_attempts(error)
            if not outcome.idempotent:
                fewest, most = min(fewest, 1), min(most, 1)  # a second attempt follows only one not sent
            if not fewest <= ran <= most:
                said = f"request_sent {error.request_sent.name}"
                yield f"{job_id}: {kind} call ran {ran}x, but its error ({said}) allows {fewest}-{most}: {error}"


@pytest.mark.load
async def test_a_crash_storm_loses_no_call_runs_none_twice_and_codes_every_error(tmp_path: Path) -> None:
    storm = await run_storm(tmp_path)
    found = list(problems(storm))
    errors = collections.Counter(
        o.error.code if isinstance(o.error, PluginError) else type(o.error).__name__
        for o in storm.outcomes.values()
        if o.error is not None
    )
    sent = collections.Counter(
        o.error.request_sent.name for o in storm.outcomes.values() if isinstance(o.error, PluginError)
    )
    summary = (
        f"seed {SEED}: {len(storm.killed)} kills mid-call and {len(storm.killed_elsewhere)} of any plugin process, "
        f"{len(storm.outcomes)} calls, "
        f"{sum(o.answer is not None for o in storm.outcomes.values())} answered, "
        f"{sum(o.cancelled for o in storm.outcomes.values())} cancelled by their caller, errors {dict(errors)}, "
        f"request_sent {dict(sent)}, "
        f"breaker opened {sum(c.new is BreakerState.OPEN for c in storm.breaker)}x "
        f"({sum(c.old is BreakerState.CLOSED and c.new is BreakerState.OPEN for c in storm.breaker)}x from closed)"
    )
    print(summary)
    for change in storm.breaker:
        print(f"  breaker {change.old.value} -> {change.new.value} at {change.at:.3f}: {change.reason}")
    assert not found, f"{summary}\n" + "\n".join(found[:40])
    # The storm did what it says: every cycle killed a process that had begun a call.
    assert len(storm.killed) >= CYCLES
    assert errors[ErrorCode.OUTCOME_UNKNOWN] > 0, summary
    assert errors[ErrorCode.TIMEOUT] > 0, summary
    # One crash is one breaker failure: each opening had that many kills and timeouts before it.
    wrong = list(breaker_problems(storm))
    assert not wrong, f"{summary}\n" + "\n".join(wrong)
