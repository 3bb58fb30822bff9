"""Fixtures for the discovery tests: a plugin folder of the right mode, and the host's data
folder kept out of $HOME (the audit log's default place)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.discovered import plugin_folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return plugin_folder(tmp_path)


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", os.fspath(tmp_path / "data-home"))
