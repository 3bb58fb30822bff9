"""Durations in config: numbers of seconds, or strings such as "250ms", "30s", "5m", "1h30m"."""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Return `value` as seconds.

    Args:
        value: An int or float of seconds, or a string of number-unit parts
            (`ns`, `us`, `ms`, `s`, `m`, `h`), such as ``"1m30s"``. A bare number string is seconds.

    Raises:
        ValueError: The value is not a duration, or is negative or not finite.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration (seconds or a string like '30s'), got {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int past float's range
            raise ValueError(f"duration must be finite, got an integer of {len(str(abs(value)))} digits") from None
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"expected a duration (seconds or a string like '30s'), got {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, got {value!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


def _parse_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    if text.startswith("-"):
        raise ValueError(f"duration must not be negative, got {text!r}")
    position = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use seconds or a string like '250ms', '30s', '5m')")
    return total
