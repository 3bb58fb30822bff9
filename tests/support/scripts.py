"""Import a script by its path, for tests that use the message types of an example plugin
(examples/plugins/ is not a package): no `sys.path` edit, and each script is loaded once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_script(path: Path) -> ModuleType:
    """The module of the script at `path`, under the name `script_<stem>` (registered in
    `sys.modules` before it runs, as dataclasses and msgspec look their module up there)."""
    name = f"script_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
