"""Fixtures for the security tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ._helpers import write_plugin


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    return folder


@pytest.fixture
def make_plugin(plugin_dir: Path) -> Callable[..., Path]:
    def make(name: str = "echo", output: str = "hello", marker: Path | None = None) -> Path:
        return write_plugin(plugin_dir / name, output, marker)

    return make


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default audit database lives in the host's data folder; keep tests out of $HOME.
    monkeypatch.setenv("XDG_DATA_HOME", os.fspath(tmp_path / "data-home"))
