"""Config files naming real test plugins, for the CLI commands that start a host."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.procguard import EXAMPLES, PLUGINS, plugin_env

TEXT_STATS = EXAMPLES / "text_stats.py"
FLAKY = PLUGINS / "flaky_plugin.py"


def plugin_entry(name: str, script: Path, **settings: Any) -> dict[str, Any]:
    """One executable plugin running `script` with this interpreter (this worktree's sources)."""
    return {"name": name, "executable": sys.executable, "args": [str(script)], "env": plugin_env(), **settings}


def write_config(folder: Path, *plugins: dict[str, Any], **manager: Any) -> Path:
    """A YAML config file in `folder` with `plugins` (entries from `plugin_entry`)."""
    path = folder / "plugwire.yaml"
    path.write_text(yaml.safe_dump({**manager, "plugins": list(plugins)}))
    return path


def exact_settings(processes: int = 1) -> dict[str, Any]:
    """Settings that make every call reach the plugin once: no retry, no breaker, a fixed pool."""
    return {
        "retry": {"max_retries": 0},
        "circuit_breaker": {"enabled": False},
        "connection": {"max_connections": processes},
    }
