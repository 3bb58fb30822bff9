"""`_seam.py`: the only module that reads asyncio's private names, each with a public fallback,
and the one switch (`PLUGWIRE_FAST_PATHS`) that turns every accelerator off."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from plugwire import _seam

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PLUGINS = ROOT / "tests" / "support" / "plugins"

# What reaching into asyncio's or a loop's insides looks like in code (strings and comments
# aside): a private attribute of a loop, a future or an asyncio module; the private names
# passed to getattr; the selector loop's base class; the `eager_start` keyword.
PRIVATE_NAMES = ("_ready", "_scheduled", "_stopping", "_callbacks", "_selector", "_current_tasks")


def private_uses(path: Path) -> list[str]:
    found = []
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    for index, token in enumerate(tokens):
        text = token.string
        before = tokens[index - 1].string if index else ""
        if token.type == tokenize.NAME:
            owner = tokens[index - 2].string if index >= 2 else ""
            if before == "." and text in PRIVATE_NAMES and owner != "self":
                found.append(f"{path.name}:{token.start[0]}: .{text}")
            elif before == "." and owner in {"tasks", "events", "futures", "base_events"} and text.startswith("_"):
                found.append(f"{path.name}:{token.start[0]}: {owner}.{text}")
            elif text in {"BaseSelectorEventLoop", "eager_start", "selector_events"}:
                found.append(f"{path.name}:{token.start[0]}: {text}")
        elif token.type == tokenize.STRING and text.strip("\"'") in PRIVATE_NAMES:
            found.append(f"{path.name}:{token.start[0]}: {text}")
    return found


def test_no_module_but_the_seam_reaches_into_asyncio() -> None:
    paths = sorted(path for path in (SRC / "plugwire").rglob("*.py") if path.name != "_seam.py")
    found = [use for path in paths for use in private_uses(path)]
    assert found == []
    assert private_uses(SRC / "plugwire" / "_seam.py")  # (the check sees them where they are)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("1", True), ("0", False), ("off", False), ("no", False)]
)
def test_the_switch_is_read_from_the_environment_at_import(value: str | None, expected: bool) -> None:
    # (Not in development mode, as the suite runs: its debug loop turns the idle wait off by itself.)
    env = {k: v for k, v in os.environ.items() if k not in (_seam.ENV_SWITCH, "PYTHONDEVMODE")}
    if value is not None:
        env[_seam.ENV_SWITCH] = value
    code = (
        "import asyncio; from plugwire import _seam\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    return [_seam.fast_paths(), _seam.waiters_getter() is not None, _seam.ready_queue(loop) is not None,\n"
        "            _seam.loop_internals(loop) is not None, _seam.cheap_clock(loop) != loop.time]\n"
        "print(asyncio.run(main()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([expected] * 5)


async def test_switched_off_every_function_answers_the_public_way(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(_seam._switch, "on", frozenset())
    assert not _seam.fast_paths()
    assert _seam.cheap_clock(loop) == loop.time
    assert _seam.cheap_future_factory(loop) == loop.create_future
    assert _seam.waiters_getter() is None
    assert _seam.ready_queue(loop) is None
    assert _seam.loop_internals(loop) is None
    assert _seam.eager_task_factory(loop) is None
    assert _seam.task_switching() is None
    _seam.use_fast_paths(True)  # (the monkeypatch puts back what it was)
    assert _seam.fast_paths()
    assert _seam.waiters_getter() is not None
    assert _seam.ready_queue(loop) is not None


async def test_a_list_keeps_only_the_named_accelerators_on(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(_seam._switch, "on", _seam._switch.on)  # (put back afterwards)
    _seam.use_fast_paths("wakeups, readahead")
    assert _seam.fast_paths()
    assert [name for name in _seam.ACCELERATORS if _seam.fast_paths(name)] == ["readahead", "wakeups"]
    assert _seam.waiters_getter() is not None
    assert _seam.ready_queue(loop) is not None
    assert _seam.cheap_clock(loop) == loop.time
    assert _seam.loop_internals(loop) is None
    assert _seam.eager_task_factory(loop) is None
    _seam.use_fast_paths("off")
    assert not _seam.fast_paths()
    assert not any(_seam.fast_paths(name) for name in _seam.ACCELERATORS)


def test_an_unknown_accelerator_is_refused_by_name_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_seam._switch, "on", _seam._switch.on)  # (put back afterwards)
    with pytest.raises(ValueError, match=r"unknown accelerator 'wakeup' \(did you mean 'wakeups'\?\)"):
        _seam.use_fast_paths("readahead,wakeup")
    assert _seam._switch.on == frozenset(_seam.ACCELERATORS)  # unchanged


def test_an_unknown_accelerator_in_the_environment_is_said_and_ignored_not_fatal() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    out = subprocess.run(
        [sys.executable, "-c", "import plugwire; from plugwire import _seam; print(sorted(_seam._switch.on))"],
        env={**env, _seam.ENV_SWITCH: "batching,eagr", "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['batching']"
    assert "RuntimeWarning" in out.stderr
    assert "unknown accelerator 'eagr' (did you mean 'eager'?)" in out.stderr


def test_the_waiters_probe_refuses_futures_that_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Changed(asyncio.Future):  # type: ignore[type-arg]
        @property
        def _callbacks(self) -> object:  # as if the attribute were renamed
            raise AttributeError("_callbacks")

    assert _seam._probe_waiters() is not None
    monkeypatch.setattr(asyncio, "Future", Changed)
    assert _seam._probe_waiters() is None


# A process whose asyncio lost the private names the seam reads (as a future Python might),
# before plugwire is imported: the import works, each accelerator falls back, and a call
# through a real plugin (which removed the same names before serving) is answered.
REMOVE_PRIVATE_NAMES = """
import asyncio, asyncio.futures, asyncio.selector_events, asyncio.tasks, selectors
for module, name in ((asyncio.tasks, "_enter_task"), (asyncio.tasks, "_leave_task"),
                     (asyncio.selector_events, "BaseSelectorEventLoop"), (selectors, "EpollSelector")):
    delattr(module, name)
class Future(asyncio.Future):
    @property
    def _callbacks(self):
        raise AttributeError("_callbacks")
class PyFuture(asyncio.futures._PyFuture):
    @property
    def _callbacks(self):
        raise AttributeError("_callbacks")
asyncio.Future = asyncio.futures.Future = Future
asyncio.futures._PyFuture = PyFuture
"""

PLUGIN = (
    REMOVE_PRIVATE_NAMES
    + """
import runpy, sys
sys.argv = [{echo!r}]
runpy.run_path({echo!r}, run_name="__main__")
"""
)

HOST = (
    REMOVE_PRIVATE_NAMES
    + """
import sys
import msgspec
import plugwire
from plugwire import _seam
from plugwire._sdk._eager import new_starter

class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0

class Resp(msgspec.Struct):
    text: str
    pid: int = 0

async def main():
    loop = asyncio.get_running_loop()
    assert _seam.fast_paths()
    assert _seam.waiters_getter() is None and _seam.task_switching() is None
    assert _seam.ready_queue(loop) is None and _seam.loop_internals(loop) is None
    starter = new_starter(loop)
    assert starter.kind in ({{"Task", "create_task"}} if sys.version_info >= (3, 12) else {{"plain"}}), starter.kind
    config = plugwire.PluginConfig(name="echo", retry=plugwire.RetryConfig(max_retries=0))
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        source = plugwire.subprocess(sys.executable, {plugin!r}, env={{"PYTHONPATH": {src!r}}})
        await manager.register(source, config=config)
        answers = await asyncio.gather(*(manager.execute("echo", Req(text=str(i))) for i in range(20)))
        print(sorted(int(a.text) for a in answers) == list(range(20)))

asyncio.run(main())
"""
)


def test_without_the_private_names_plugwire_imports_and_calls_are_answered(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN.format(echo=str(PLUGINS / "echo_plugin.py")))
    host = tmp_path / "host.py"
    host.write_text(HOST.format(plugin=str(plugin), src=str(SRC)))
    # Not in development mode: asyncio's own debug reports (a slow callback on a loaded
    # machine) read private names this test deletes, which is asyncio's business, not ours.
    dropped = {_seam.ENV_SWITCH, "PYTHONDEVMODE", "PYTHONASYNCIODEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    out = subprocess.run(
        [sys.executable, str(host)],
        env={**env, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True", out.stderr
