"""What a benchmark case is: its sides, its kind, its target, and the registry that holds them.

A *side* is something measured: a factory that sets it up (start a child process, open a
connection) and yields an *op*, one unit of work. A *case* puts a candidate side next to
one or more baseline sides; the runner measures them interleaved and reports one row per
baseline. Cases register themselves with the `case` decorator (or `register`) when their
module in `benchmarks/cases/` is imported.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "REGISTRY",
    "Case",
    "Env",
    "Kind",
    "Op",
    "PinMode",
    "Side",
    "SideFactory",
    "SkipCase",
    "Target",
    "Verdict",
    "Versus",
    "at_least",
    "at_most",
    "case",
    "register",
]

PinMode = Literal["same", "split", "none"]
PIN_MODES: tuple[PinMode, ...] = ("same", "split", "none")

Op = Callable[[], Any]
"""One unit of work, sync or async (the runner awaits what it returns when awaitable).

For latency and throughput the return value is ignored; a side whose op does several
operations at once (64 calls in flight) says so with `Side.per_call`. For memory the op
returns the measured number of bytes.
"""


@dataclass(frozen=True, slots=True)
class Env:
    """What every side factory gets: run mode and a private scratch folder.

    Attributes:
        quick: True in quick mode; factories shrink big inputs (files, payloads) to keep it fast.
        workdir: A temporary folder for this run, removed at the end.
        child_env: Environment for child processes (the host's own, so PYTHONPATH carries over).
    """

    quick: bool
    workdir: Path
    child_env: dict[str, str]


SideFactory = Callable[[Env], AbstractAsyncContextManager[Op]]


@dataclass(frozen=True, slots=True)
class Side:
    """A measured thing: a label for the table and a factory that yields its op.

    Attributes:
        label: Short human name shown in the table ("blocking pipes (floor)").
        factory: `async with factory(env) as op:` sets it up and tears it down.
        requires: Importable module names it needs; missing ones make the case skip with a reason.
        per_call: Operations one op call performs (64 for "64 calls in flight"): latency is
            reported per operation and throughput in operations per second.
    """

    label: str
    factory: SideFactory
    requires: tuple[str, ...] = ()
    per_call: int = 1

    def __post_init__(self) -> None:
        if self.per_call < 1:
            raise ValueError(f"side {self.label!r}: per_call must be at least 1")


class Kind(enum.Enum):
    """What a case measures, its unit, and which direction is better."""

    LATENCY = ("latency", "s", False)
    THROUGHPUT = ("throughput", "ops/s", True)
    MEMORY = ("memory", "B", False)

    def __init__(self, label: str, unit: str, higher_is_better: bool) -> None:
        self.label = label
        self.unit = unit
        self.higher_is_better = higher_is_better


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on candidate ÷ baseline (medians): `ratio <= value` or `ratio >= value`."""

    op: Literal["<=", ">="]
    value: float

    def met(self, ratio: float) -> bool:
        """Whether `ratio` satisfies the bound."""
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    @property
    def text(self) -> str:
        """The bound as printed in tables: `≤ 1.5x`."""
        return f"{'≤' if self.op == '<=' else '≥'} {self.value:g}x"


def at_most(value: float) -> Target:
    """Target for lower-is-better cases: candidate at most `value` times the baseline."""
    return Target("<=", value)


def at_least(value: float) -> Target:
    """Target for higher-is-better cases: candidate at least `value` times the baseline."""
    return Target(">=", value)


class SkipCase(Exception):
    """Raised by a side factory whose case cannot run here (e.g. no Go toolchain): the case's
    rows are `skipped`, with the message as the reason."""


class Verdict(enum.StrEnum):
    """How one row came out."""

    MET = "met"
    NOT_MET = "NOT MET"
    INFO = "info"
    ERROR = "error"
    SKIPPED = "skipped"
    UNJUDGED = "unjudged"
    """Quick mode: the row has a target, but quick numbers judge nothing."""


@dataclass(frozen=True, slots=True)
class Versus:
    """One baseline of a case, with the target the candidate must meet against it (None: info row)."""

    baseline: Side
    target: Target | None = None


@dataclass(frozen=True, slots=True)
class Case:
    """A candidate measured beside its baselines.

    Attributes:
        name: Unique dotted name, area first (`subprocess.small`); used by `--only`.
        candidate: The side being judged.
        versus: Its baselines, each with a target or None for an info row.
        kind: Latency, throughput or memory.
        pin: CPU placement used by default (`same`: host and children on one CPU).
        also_unpinned: Also run unpinned (`none`) when running with default placement.
        rounds: Override the number of measured rounds (memory cases need few).
        note: One line shown under the table in the docs.
    """

    name: str
    candidate: Side
    versus: tuple[Versus, ...]
    kind: Kind = Kind.LATENCY
    pin: PinMode = "same"
    also_unpinned: bool = True
    rounds: int | None = None
    note: str = ""
    sides: tuple[Side, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.versus:
            raise ValueError(f"case {self.name!r} needs at least one baseline")
        object.__setattr__(self, "sides", (self.candidate, *(v.baseline for v in self.versus)))

    def pin_modes(self, forced: Sequence[PinMode] | None) -> tuple[PinMode, ...]:
        """The placements to run: `forced` if given, else the default (plus `none` when asked)."""
        if forced:
            return tuple(forced)
        if self.also_unpinned and self.pin != "none":
            return (self.pin, "none")
        return (self.pin,)


REGISTRY: dict[str, Case] = {}


def register(new: Case) -> Case:
    """Add a case to the registry.

    Raises:
        ValueError: A case of that name is already registered.
    """
    if new.name in REGISTRY:
        raise ValueError(f"benchmark case {new.name!r} is registered twice")
    REGISTRY[new.name] = new
    return new


def case(
    name: str,
    *,
    label: str,
    baseline: Side,
    target: Target | None,
    kind: Kind = Kind.LATENCY,
    pin: PinMode = "same",
    also_unpinned: bool = True,
    also: Sequence[Versus] = (),
    requires: Sequence[str] = (),
    per_call: int = 1,
    rounds: int | None = None,
    note: str = "",
) -> Callable[[SideFactory], SideFactory]:
    """Register the decorated side factory as the candidate of a new case.

    Args:
        name: Unique dotted case name.
        label: The candidate's label in the table.
        baseline: The main baseline side.
        target: What the candidate must meet against `baseline`; None makes it an info row.
        kind: Latency (default), throughput or memory.
        pin: Default CPU placement.
        also_unpinned: Also report the case unpinned.
        also: More baselines, each with its own target; measured in the same interleaving.
        requires: Modules the candidate needs.
        per_call: Operations one call of the candidate's op performs.
        rounds: Override the number of measured rounds.
        note: One explanatory line for the docs.
    """

    def decorate(factory: SideFactory) -> SideFactory:
        register(
            Case(
                name=name,
                candidate=Side(label, factory, tuple(requires), per_call),
                versus=(Versus(baseline, target), *also),
                kind=kind,
                pin=pin,
                also_unpinned=also_unpinned,
                rounds=rounds,
                note=note,
            )
        )
        return factory

    return decorate
