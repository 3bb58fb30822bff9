"""Shared fixtures."""

from __future__ import annotations

import pytest

from sample_plugins import AuthPlugin


@pytest.fixture
def auth_plugin() -> AuthPlugin:
    return AuthPlugin()
