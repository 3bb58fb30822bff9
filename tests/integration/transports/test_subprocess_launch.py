"""A plugin file that cannot run is a 1901 naming that file, found before the spawn where it
can be, and never a message from the launcher that arms the parent-death signal."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

import plugwire
from tests.support.procguard import PLUGINS, manager_for, plugin_env

pytestmark = [pytest.mark.usefixtures("no_leaks"), pytest.mark.fast_paths_only]  # process lifecycle: once, fast


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""


class Resp(msgspec.Struct):
    text: str = ""
    pid: int = 0


def script(path: Path, first_line: str, *, mode: int = 0o755) -> Path:
    """A shell script that runs the echo plugin, behind the given #! line."""
    path.write_text(f"{first_line}\nexec {sys.executable} {PLUGINS / 'echo_plugin.py'}\n")
    path.chmod(mode)
    return path


def missing(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    return [str(tmp / "auth-plugin")], {}, f"{tmp / 'auth-plugin'} does not exist"


def directory(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    (tmp / "plugins").mkdir()
    return [str(tmp / "plugins")], {}, "is a directory"


def not_executable(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    path = script(tmp / "plugin.sh", "#!/bin/sh", mode=0o644)
    return [str(path)], {}, f"{path} is not executable (mode -rw-r--r--)"


def not_on_path(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    return (
        ["auth-plugin-nowhere"],
        {"PATH": str(tmp)},
        f"'auth-plugin-nowhere' was not found on the plugin's PATH ({tmp})",
    )


def found_on_path_but_not_executable(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    script(tmp / "auth-plugin", "#!/bin/sh", mode=0o600)
    return ["auth-plugin"], {"PATH": str(tmp)}, f"found on PATH as {tmp / 'auth-plugin'}, which is not executable"


def bad_interpreter(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    path = script(tmp / "plugin.sh", "#!/nonexistent/bin/sh")
    return [str(path)], {}, f"{path} names the interpreter '/nonexistent/bin/sh' in its #! line, which does not exist"


def env_program_missing(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    path = script(tmp / "plugin.sh", "#!/usr/bin/env no-such-interpreter")
    return [str(path)], {"PATH": "/usr/bin:/bin"}, "runs 'no-such-interpreter' through /usr/bin/env (its #! line)"


def windows_line_endings(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    path = script(tmp / "plugin.sh", "#!/bin/sh\r")
    return [str(path)], {}, "Windows line endings"


def broken_symlink(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    (tmp / "auth-plugin").symlink_to(tmp / "gone")
    return [str(tmp / "auth-plugin")], {}, f"is a broken symlink (to {tmp / 'gone'})"


def below_a_file(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    (tmp / "plugins").write_text("")
    return [str(tmp / "plugins" / "auth")], {}, "does not exist (a part of its path is not a folder)"


def bad_work_dir(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    return [sys.executable, str(PLUGINS / "echo_plugin.py")], {}, f"its work_dir {tmp / 'gone'} is not a folder"


def python_script_missing(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    return [sys.executable, str(tmp / "plugin.py")], {}, f"the Python script {tmp / 'plugin.py'} does not exist"


def python_script_a_folder(tmp: Path) -> tuple[list[str], dict[str, str], str]:
    (tmp / "plugin").mkdir()
    return [sys.executable, str(tmp / "plugin")], {}, f"{tmp / 'plugin'} is a folder without a __main__.py"


CASES: list[Callable[[Path], tuple[list[str], dict[str, str], str]]] = [
    missing,
    directory,
    not_executable,
    not_on_path,
    found_on_path_but_not_executable,
    bad_interpreter,
    env_program_missing,
    windows_line_endings,
    broken_symlink,
    below_a_file,
    bad_work_dir,
    python_script_missing,
    python_script_a_folder,
]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
async def test_a_file_that_cannot_run_is_1901_naming_it_before_any_spawn(
    case: Callable[[Path], tuple[list[str], dict[str, str], str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv, env, expected = case(tmp_path)
    work_dir = str(tmp_path / "gone") if case is bad_work_dir else None
    source = plugwire.subprocess(*argv, env=plugin_env(**env), cwd=work_dir)
    caplog.set_level(logging.DEBUG)
    async with manager_for(Req, Resp) as manager:
        with pytest.raises(plugwire.errors.ProcessError) as caught:
            await manager.register(source, name="auth")
    error = caught.value
    assert (error.code, error.plugin, error.retryable) == (
        plugwire.errors.ErrorCode.PROCESS_SPAWN_FAILED,
        "auth",
        False,
    )
    assert expected in error.message
    assert "setpriv" not in str(error)
    assert not [r for r in caplog.records if r.name == "plugwire.plugin.auth"]  # no process wrote anything


async def test_an_exec_failure_only_the_kernel_sees_is_still_1901_naming_the_plugins_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The interpreter exists and is executable, but is itself a script whose interpreter is
    # missing: only exec finds out, inside the launcher.
    inner = script(tmp_path / "inner.sh", "#!/nonexistent/bin/sh")
    outer = script(tmp_path / "plugin.sh", f"#!{inner}")
    caplog.set_level(logging.DEBUG)
    async with manager_for(Req, Resp) as manager:
        with pytest.raises(plugwire.errors.ProcessError) as caught:
            await manager.register(plugwire.subprocess(str(outer), env=plugin_env()), name="auth")
    error = caught.value
    assert (error.code, error.retryable) == (plugwire.errors.ErrorCode.PROCESS_SPAWN_FAILED, False)
    assert f"{outer} could not be executed: No such file or directory" in error.message
    assert "setpriv" not in str(error)
    assert not [r for r in caplog.records if "setpriv" in r.getMessage()]


async def test_a_script_run_by_the_hosts_python_needs_no_execute_bit(tmp_path: Path) -> None:
    plugin = tmp_path / "echo_plugin.py"
    plugin.write_bytes((PLUGINS / "echo_plugin.py").read_bytes())
    plugin.chmod(0o644)
    async with manager_for(Req, Resp) as manager:
        await manager.register(plugwire.subprocess(sys.executable, str(plugin), env=plugin_env()), name="echo")
        assert (await manager.execute("echo", Req(text="hi"))).text == "hi"


async def test_pythons_own_options_and_a_package_folder_are_left_to_python(tmp_path: Path) -> None:
    package = tmp_path / "echo"
    package.mkdir()
    (package / "__main__.py").write_bytes((PLUGINS / "echo_plugin.py").read_bytes())
    async with manager_for(Req, Resp) as manager:
        await manager.register(plugwire.subprocess(sys.executable, str(package), env=plugin_env()), name="folder")
        # An option first: the script is not looked for (Python's own options are many).
        await manager.register(
            plugwire.subprocess(sys.executable, "-u", str(PLUGINS / "echo_plugin.py"), env=plugin_env()), name="opt"
        )
        assert (await manager.execute("folder", Req(text="a"))).text == "a"
        assert (await manager.execute("opt", Req(text="b"))).text == "b"


async def test_relative_commands_resolve_in_the_work_dir_and_on_the_plugins_path(tmp_path: Path) -> None:
    script(tmp_path / "plugin.sh", "#!/bin/sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "echo-plugin", "#!/usr/bin/env sh")
    elsewhere = os.getcwd()
    assert Path(elsewhere) != tmp_path
    async with manager_for(Req, Resp) as manager:
        await manager.register(plugwire.subprocess("./plugin.sh", env=plugin_env(), cwd=str(tmp_path)), name="rel")
        path_env = plugin_env(PATH=f"{bin_dir}:/usr/bin:/bin")
        await manager.register(plugwire.subprocess("echo-plugin", env=path_env), name="onpath")
        assert (await manager.execute("rel", Req(text="a"))).text == "a"
        assert (await manager.execute("onpath", Req(text="b"))).text == "b"
