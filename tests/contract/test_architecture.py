"""Imports only go down the layers of DESIGN.md; a plugin process loads no host code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "plugwire"

# Top-level module (or package) of plugwire -> its layer (DESIGN.md, "Layers").
LAYERS: dict[str, int] = {
    "_codes": 0,
    "_errors": 0,
    "_types": 0,
    "_tasks": 0,
    "_models": 1,
    "_call": 1,
    "_config": 1,
    "_codec": 1,
    "_clock": 1,
    "_seam": 1,
    "_auth": 1,
    "_tls": 1,
    "_protocol": 2,
    "_proto": 2,
    "_sdk": 2,
    "_goplugin": 2,  # go-plugin's handshake: shared by the host transport and the plugin side
    "sdk": 2,  # the public face of the plugin side: like `_sdk`, it may load no host code
    "_transports": 3,
    "_policies": 4,
    "_security": 5,
    "_health": 5,
    "_observe": 5,
    "_manager": 6,
    "_reload": 6,
    "_lifecycle": 6,
    "_discovery": 6,
    "_sources": 6,
    "_guard": 6,
    "_handle": 6,
    "_entry": 6,
    "_registry": 6,
    "__init__": 7,
    "__main__": 7,
    "_sync": 7,
    "_run": 7,
    "_builder": 7,
    "_cli": 7,
    "testing": 7,
    # The public namespaces: faces that only re-export (tests/contract/test_exports.py checks it).
    "config": 7,
    "errors": 7,
    "lifecycle": 7,
    "observe": 7,
    "policies": 7,
    "security": 7,
    # Callable face: `plugwire.goplugin(...)` (host, imported in the call) and the lazy plugin side.
    "goplugin": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names if alias.name.startswith("plugwire"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("plugwire"):
                found.append((node.lineno, target))
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "_proto" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    here = top_of(module_name(path))
    assert here in LAYERS, f"{here} is not in the layer table; add it to DESIGN.md's table and LAYERS"
    for line, target in imported_modules(path):
        there = top_of(target)
        if there == here:
            continue
        assert there in LAYERS, f"{path.name}:{line} imports {target}, which has no layer"
        assert LAYERS[there] <= LAYERS[here], f"{path.name}:{line}: layer {LAYERS[here]} imports {target}"


def test_policies_use_only_the_transport_interface() -> None:
    for path in (PACKAGE / "_policies").rglob("*.py"):
        for line, target in imported_modules(path):
            if target.startswith("plugwire._transports"):
                assert target == "plugwire._transports.base", f"{path.name}:{line} imports {target}"


def test_the_plugin_sdk_imports_no_host_code() -> None:
    for path in (PACKAGE / "_sdk").rglob("*.py"):
        for line, target in imported_modules(path):
            assert LAYERS[top_of(target)] <= 2, f"{path.name}:{line} imports host module {target}"


def test_importing_the_sdk_adapter_loads_no_host_modules() -> None:
    code = (
        "import sys, plugwire, plugwire._sdk.adapter; "
        "bad = [m for m in sys.modules if m.startswith(('plugwire._manager', 'plugwire._transports', "
        "'plugwire._policies', 'yaml'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"


def test_importing_the_go_plugin_server_loads_no_host_modules() -> None:
    # A Python plugin for a Go host imports it to serve (and loads grpc only when it serves).
    code = (
        "import sys, plugwire._goplugin.serve; "
        "bad = [m for m in sys.modules if m.startswith(('plugwire._manager', 'plugwire._transports', "
        "'plugwire._policies', 'plugwire._security', 'plugwire._health', 'plugwire._observe', 'yaml', 'grpc'))]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"
