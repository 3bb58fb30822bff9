"""Shared fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from procguard import no_leaks

from sample_plugins import AuthPlugin

__all__ = ["no_leaks"]  # the leak check of tests/support/procguard.py, for every test folder


@pytest.fixture
def auth_plugin() -> AuthPlugin:
    return AuthPlugin()


@pytest.fixture(autouse=True)
def _plugwire_log_levels() -> Iterator[None]:
    """A manager built from a config or a builder sets the `plugwire` loggers' level (its
    `log_level`): give every test the levels it started with."""
    loggers = [logging.getLogger(name) for name in ("plugwire", "plugwire.manager")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
