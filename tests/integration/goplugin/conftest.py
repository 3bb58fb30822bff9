"""The Go programs of tests/support/go/, built once per session (and cached across sessions by
tests/support/golang.py); the tests that use them skip, saying what to install, without Go.

A cold build compiles grpc and go-plugin from Debian's sources: ~7 s on an idle machine, up to
~30 s on a loaded one. It runs at collection, when tests of this folder were collected, so that
no test's timeout pays for it; the fixtures then only look the programs up.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.support.golang import GoBuildError, build_go_program, go_missing_reason

HERE = Path(__file__).resolve().parent
PROGRAMS = ("kvplugin", "kvhost", "pwhost", "pwplugin")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Build the Go programs before any test runs, if a test of this folder is collected."""
    if go_missing_reason() is not None or not any(HERE in item.path.parents for item in items):
        return
    for name in PROGRAMS:
        # A failed build is reported by the fixture, in the tests that need it.
        with contextlib.suppress(GoBuildError):
            build_go_program(name)


@pytest.fixture(scope="session")
def kvplugin_program() -> Path:
    """go-plugin's KV example as a real Go plugin (tests/support/go/kvplugin)."""
    return build_go_program("kvplugin")


@pytest.fixture(scope="session")
def kvhost_program() -> Path:
    """A real go-plugin host for the KV plugin (tests/support/go/kvhost)."""
    return build_go_program("kvhost")


@pytest.fixture(scope="session")
def pwhost_program() -> Path:
    """A real go-plugin host of the plugwire.v1.Plugin service (tests/support/go/pwhost)."""
    return build_go_program("pwhost")


@pytest.fixture(scope="session")
def pwplugin_program() -> Path:
    """A Go go-plugin plugin serving plugwire.v1.Plugin (tests/support/go/pwplugin): an echo."""
    return build_go_program("pwplugin")
