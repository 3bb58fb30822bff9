"""Running a test directory's tests with the accelerators on and off (`_seam.py`).

A conftest imports `fast_paths` (an autouse fixture) and calls `parametrize_fast_paths` from
its `pytest_generate_tests`: each test then runs twice, ids `fast` and `plain`, with
`PLUGWIRE_FAST_PATHS` set for this process (the connections and servers made during the test
pick their strategies from it) and for the plugin processes it starts (the host passes the
variable on). A test of one accelerator itself is marked `fast_paths_only` and runs once, fast.
"""

from __future__ import annotations

import pytest

from plugwire import _seam

__all__ = ["fast_paths", "parametrize_fast_paths"]


def parametrize_fast_paths(metafunc: pytest.Metafunc) -> None:
    if "fast_paths" in metafunc.fixturenames:
        only_fast = metafunc.definition.get_closest_marker("fast_paths_only") is not None
        metafunc.parametrize("fast_paths", ["fast"] if only_fast else ["fast", "plain"], indirect=True)


@pytest.fixture(autouse=True)
def fast_paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    enabled = getattr(request, "param", "fast") == "fast"
    monkeypatch.setenv(_seam.ENV_SWITCH, "1" if enabled else "0")
    monkeypatch.setattr(_seam._switch, "on", _seam._switch.on)  # put back after the test
    _seam.use_fast_paths(enabled)
    return enabled
