"""Shared fixtures for tests that start real plugin processes (see tests/support/procguard.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from procguard import HandDriver, no_leaks

__all__ = ["driver_factory", "no_leaks"]


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
