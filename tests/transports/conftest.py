"""Shared fixtures for tests that start real plugin processes (see tests/support/procguard.py).

Every test here runs twice, with the accelerators on (`fast`) and off (`plain`): see
tests/support/fast_paths.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from fast_paths import MARKER, fast_paths, parametrize_fast_paths
from procguard import no_leaks

__all__ = ["fast_paths", "no_leaks"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_fast_paths(metafunc)
