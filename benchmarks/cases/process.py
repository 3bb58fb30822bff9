"""Processes: start-up time and peak memory of a Python process that imports plugwire."""

from __future__ import annotations

from functools import partial

from .._model import Case, Kind, Side, Versus, register
from ..baselines.processes import PYTHON_MEMORY, PYTHON_PASS, python_code_memory, python_code_startup

register(
    Case(
        "process.startup.import_plugwire",
        Side("python -c 'import plugwire'", partial(python_code_startup, code="import plugwire")),
        (Versus(PYTHON_PASS),),
        pin="none",
        also_unpinned=False,
        note="info: spawn to exit of an interpreter that imports plugwire, against `python -c pass`.",
    )
)

register(
    Case(
        "process.memory.import_plugwire",
        Side("python + import plugwire", partial(python_code_memory, code="import plugwire")),
        (Versus(PYTHON_MEMORY),),
        kind=Kind.MEMORY,
        pin="none",
        also_unpinned=False,
        rounds=5,
        note="info: peak resident memory (VmHWM) of an interpreter that imported plugwire, against a bare one.",
    )
)
