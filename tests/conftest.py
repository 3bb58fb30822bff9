"""Shared fixtures."""

from __future__ import annotations

import pytest
from procguard import no_leaks

from sample_plugins import AuthPlugin

__all__ = ["no_leaks"]  # the leak check of tests/support/procguard.py, for every test folder


@pytest.fixture
def auth_plugin() -> AuthPlugin:
    return AuthPlugin()
