"""Every test here runs twice, with the accelerators on (`fast`) and off (`plain`): see
tests/support/fast_paths.py."""

from __future__ import annotations

import pytest

from tests.support.fast_paths import fast_paths, parametrize_fast_paths

__all__ = ["fast_paths"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_fast_paths(metafunc)
