"""Plugin files for the discovery tests: real executable scripts (a `#!` line naming this
interpreter, chmod +x) that serve a small echo plugin reporting its version."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from tests.support.scripts import load_script

# The host's message types: the echo plugin's, whose shapes the scripts below answer in.
_ECHO = load_script(Path(__file__).resolve().parent / "plugins" / "echo_plugin.py")
Req = _ECHO.Req
Resp = _ECHO.Resp

_BODY = """
import asyncio
import os
import sys

import msgspec

import plugwire


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class Resp(msgspec.Struct):
    text: str
    pid: int = 0


class Versioned(plugwire.Plugin[Req, Resp]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(
            name=NAME, version=VERSION, description="a discovered plugin", capabilities=("echo",)
        )

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        if request.op == "sleep":
            await asyncio.sleep(request.seconds)
        elif request.op == "env":
            return Resp(text=os.environ.get(request.text, "<unset>"), pid=os.getpid())
        elif request.op == "argv":
            return Resp(text=" ".join(sys.argv[1:]), pid=os.getpid())
        elif request.op == "cwd":
            return Resp(text=os.getcwd(), pid=os.getpid())
        return Resp(text=f"{VERSION}:{request.text}", pid=os.getpid())

    async def health(self) -> plugwire.HealthStatus:
        return plugwire.HealthStatus(status=plugwire.Status.HEALTHY, message="ok")


plugwire.serve(Versioned())
"""


def plugin_source(version: str = "1.0.0", name: str = "versioned", *, prelude: str = "") -> str:
    """The text of a plugin script; `prelude` runs first (a line of Python)."""
    head = f"#!{sys.executable}\n{prelude}\nNAME = {name!r}\nVERSION = {version!r}\n"
    return head + _BODY


def write_plugin(path: Path, version: str = "1.0.0", *, name: str = "versioned", mode: int = 0o755) -> Path:
    """Write an executable plugin script at `path` (replacing any file there at once; its
    folder is made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(plugin_source(version, name))
    temp.chmod(mode)
    os.replace(temp, path)  # atomic: a watcher never sees it half-written
    return path


def write_manifest(folder: Path, text: str) -> Path:
    """Write `folder/plugin.yaml` (making the folder)."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    manifest = folder / "plugin.yaml"
    manifest.write_text(text)
    manifest.chmod(0o644)
    return manifest


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plugin_folder(tmp_path: Path) -> Path:
    """A fresh plugin folder, 0755 (not group- or world-writable, as discovery requires)."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    folder.chmod(0o755)
    return folder
