"""Find the file a plugin's command runs, as exec would, and say plainly why it cannot run.

The launcher that arms the parent-death signal (`setpriv`) execs the plugin itself, so a
failed exec would surface as the launcher's exit status and stderr line, naming a program the
user never asked for. The checks here run before the spawn; the failures they cannot
foresee (an interpreter that is itself a script whose interpreter is missing, a file changed
in between) are recognised from the launcher's first stderr line and reported the same way
(`launch_failed`). Every message names the plugin's own file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from typing import Final

from .._errors import ErrorCode, ProcessError

__all__ = ["EXEC_FAILED_STATUSES", "find_program", "launch_failed"]

#: The exit statuses of a launcher whose exec failed (util-linux: 126 failed, 127 not found).
EXEC_FAILED_STATUSES: Final = frozenset({126, 127})
_SHEBANG_LIMIT: Final = 256  # what the kernel reads of a #! line
_PYTHON: Final = re.compile(r"python(\d+(\.\d+)?)?t?")  # python, python3, python3.12, python3.13t


def find_program(argv0: str, *, name: str, env: Mapping[str, str], cwd: str | None, args: Sequence[str] = ()) -> str:
    """The file `argv0` runs in `cwd` with `env`'s PATH, found as `execvp` finds it.

    Checked: it exists, is a regular file, may be executed, and a script's `#!` interpreter
    (and the program an `env` interpreter looks up) exists and may be executed; and when
    `argv0` is a Python interpreter given a script (`args[0]`, not an option), that the
    script exists.

    Returns:
        Its absolute path (for messages: the command itself is run unchanged).

    Raises:
        ProcessError: 1901 naming the file and what is wrong with it.
    """
    base = cwd or os.getcwd()
    if not argv0:
        raise _cannot_start(name, "the command is empty")
    if cwd and not os.path.isdir(cwd):
        raise _cannot_start(name, f"its work_dir {os.path.abspath(cwd)} is not a folder")
    if os.sep in argv0:
        path = os.path.join(base, argv0)
        problem = _unusable(path)
        if problem is not None:
            raise _cannot_start(name, f"{_shown(argv0, path)} {problem}")
    else:
        path = _search(argv0, name=name, env=env, base=base)
    problem = _interpreter_problem(path, env, base)
    if problem is not None:
        raise _cannot_start(name, f"{_shown(argv0, path)} {problem}")
    if args and not args[0].startswith("-") and _PYTHON.fullmatch(os.path.basename(path)):
        problem = _script_problem(os.path.join(base, args[0]))
        if problem is not None:  # else Python starts, says so on stderr and exits 2 (a 1902)
            raise _cannot_start(name, f"the Python script {_shown(args[0], os.path.join(base, args[0]))} {problem}")
    return os.path.abspath(path)


def _script_problem(path: str) -> str | None:
    """Why Python could not run `path` as its script, or None."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "__main__.py")):
            return None
        return "is a folder without a __main__.py"
    if os.path.isfile(path):
        return None
    if os.path.islink(path):
        return f"is a broken symlink (to {os.readlink(path)})"
    return "does not exist"


def launch_failed(name: str, program: str, reason: str, exec_failed: bool) -> ProcessError:
    """The error for a launcher that failed after `find_program` passed: its exec of
    `program` (`exec_failed`), or the set-up before it. `reason` is the launcher's stderr
    line without its name; its last part is the system's reason. Names the plugin's file,
    never the launcher."""
    cause = reason.rsplit(": ", 1)[-1].strip() or reason
    if not exec_failed:
        return _cannot_start(name, f"the launch failed before {program} ran: {cause}")
    hint = ""
    if _is_script(program):
        hint = " (it is a script: its #! interpreter, or that interpreter's own, may be missing or unusable)"
    return _cannot_start(name, f"{program} could not be executed: {cause}{hint}")


def _cannot_start(name: str, what: str) -> ProcessError:
    return ProcessError(
        f"cannot start plugin {name!r}: {what}", code=ErrorCode.PROCESS_SPAWN_FAILED, plugin=name, retryable=False
    )


def _shown(argv0: str, path: str) -> str:
    absolute = os.path.abspath(path)
    return argv0 if argv0 == absolute else f"{argv0} ({absolute})"


def _search(program: str, *, name: str, env: Mapping[str, str], base: str) -> str:
    search = env.get("PATH", os.defpath)
    refused: tuple[str, str] | None = None
    for folder in search.split(os.pathsep):
        candidate = os.path.join(base, folder or os.curdir, program)
        problem = _unusable(candidate)
        if problem is None:
            return candidate
        if refused is None and os.path.lexists(candidate):
            refused = (candidate, problem)
    if refused is not None:
        raise _cannot_start(name, f"{program!r} was found on PATH as {refused[0]}, which {refused[1]}")
    raise _cannot_start(
        name,
        f"{program!r} was not found on the plugin's PATH ({search}); give its path (./{program} or an absolute"
        " one), or add its folder to PATH",
    )


def _unusable(path: str) -> str | None:
    """Why exec would refuse `path`, or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a broken symlink (to {os.readlink(path)})"
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of its path is not a folder)"
    except OSError as exc:
        return f"cannot be reached: {exc.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not an executable file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if not os.access(path, os.X_OK):
        if info.st_mode & 0o111:
            return "cannot be executed here (its file system may be mounted noexec)"
        return (
            f"is not executable (mode {stat.filemode(info.st_mode)}): run `chmod +x` on it, or start it through"
            f" its interpreter (a Python script: plugwire.subprocess(sys.executable, {os.path.abspath(path)!r}))"
        )
    return None


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(_SHEBANG_LIMIT)
    except OSError:  # execute-only binaries cannot be read, and need no interpreter
        return b""


def _is_script(path: str) -> bool:
    return _head(path).startswith(b"#!")


def _interpreter_problem(path: str, env: Mapping[str, str], base: str) -> str | None:
    """What is wrong with a script's `#!` line, or None (also for files that are not scripts)."""
    head = _head(path)
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip(" \t")
    crlf = " (the file has Windows line endings: the interpreter's name ends in \\r)" if "\r" in line else ""
    parts = line.replace("\t", " ").split(" ", 1)
    interpreter = parts[0]
    argument = parts[1].strip(" ") if len(parts) > 1 else ""
    if not interpreter:  # the kernel refuses it, and execvp then runs the file with /bin/sh
        return None
    problem = _unusable(os.path.join(base, interpreter))
    if problem is not None:
        return f"names the interpreter {interpreter!r} in its #! line, which {problem}{crlf}"
    if os.path.basename(interpreter) != "env" or not argument or argument.startswith("-"):
        return None
    search = env.get("PATH", os.defpath)
    for folder in search.split(os.pathsep):
        if _unusable(os.path.join(base, folder or os.curdir, argument)) is None:
            return None
    return f"runs {argument!r} through {interpreter} (its #! line), which is not on the plugin's PATH ({search}){crlf}"
