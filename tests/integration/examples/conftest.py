"""Shared fixtures for tests that start real plugin processes (see tests/support/procguard.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from procguard import no_leaks

__all__ = ["no_leaks"]
