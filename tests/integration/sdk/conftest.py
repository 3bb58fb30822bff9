"""Fixtures for the SDK tests that drive plugin processes by hand (see tests/support/procguard.py).

Every test here runs twice, with the accelerators on (`fast`) and off (`plain`): see
tests/support/fast_paths.py."""

from __future__ import annotations

import pytest

from tests.support.fast_paths import fast_paths, parametrize_fast_paths
from tests.support.procguard import HandDriver

__all__ = ["driver_factory", "fast_paths"]


@pytest.fixture
def driver_factory():  # type: ignore[no-untyped-def]
    """Starts plugins driven by hand (`HandDriver`) and closes every one after the test."""
    drivers: list[HandDriver] = []

    def make(argv: list[str], **kwargs: object) -> HandDriver:
        driver = HandDriver(argv, **kwargs)  # type: ignore[arg-type]
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_fast_paths(metafunc)
