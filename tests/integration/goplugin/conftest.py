"""The Go programs of tests/support/go/, built once per session (and cached across sessions by
tests/support/golang.py); the tests that use them skip, saying what to install, without Go."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.golang import build_go_program


@pytest.fixture(scope="session")
def kvplugin_program() -> Path:
    """go-plugin's KV example as a real Go plugin (tests/support/go/kvplugin)."""
    return build_go_program("kvplugin")


@pytest.fixture(scope="session")
def kvhost_program() -> Path:
    """A real go-plugin host for the KV plugin (tests/support/go/kvhost)."""
    return build_go_program("kvhost")
