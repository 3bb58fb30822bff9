"""Run the test suite on every Python 3.11, 3.12 and 3.13 found on this machine (`make test`).

Each version runs in its own virtual environment: the default interpreter's version in the
project's `.venv` (which `make install` has just built), every other one in `.venvs/py3.X`,
built from scratch the first time and again whenever `pyproject.toml` or the interpreter
changes. An interpreter is looked for on PATH (`python3.X`), then under pyenv
(`$(pyenv root)/versions/3.X.*/bin/python3.X`, `~/.pyenv` when pyenv is not on PATH). Every
version is reported as run or skipped, with the reason. A free-threaded 3.13
(`python3.13t`) gets a short smoke run (`scripts/ft_smoke.py`) where present, or a skip line.

    python scripts/run_matrix.py [--only 3.12] [--require 3.13] [--no-ft] [--coverage] -- PYTEST_ARGS...

Exit status: 0 when every version found passed (a skip is not a failure, unless that version
is `--require`d: CI requires all three), 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ("3.11", "3.12", "3.13")
EXTRAS = "dev,grpc,cli,watch,uvloop,prometheus,otel"
FT_EXTRAS = ""  # the smoke needs the core only: extension extras may have no free-threaded wheel yet


@dataclass
class Outcome:
    name: str
    interpreter: str
    status: str  # "passed", "failed", "skipped"
    detail: str
    seconds: float = 0.0


def probe(candidate: str) -> tuple[str, bool] | None:
    """`(X.Y, free_threaded)` of a runnable interpreter, or None (a pyenv shim for a version
    that is not installed answers with an error)."""
    code = (
        "import sys, sysconfig; "
        "print('%d.%d' % sys.version_info[:2], bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"
    )
    try:
        out = subprocess.run([candidate, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    version, free = out.stdout.split()
    return version, free == "True"


def pyenv_roots() -> list[Path]:
    roots = []
    if "PYENV_ROOT" in os.environ:
        roots.append(Path(os.environ["PYENV_ROOT"]))
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    return list(dict.fromkeys(roots))


def _patch(path: Path) -> tuple[int, ...]:
    """Sort key for pyenv's version folders: 3.13.10 after 3.13.9."""
    digits = path.parts[-3].rstrip("t").split(".")
    return tuple(int(part) if part.isdigit() else -1 for part in digits)


def candidates(name: str) -> list[str]:
    """Where `name` (python3.12, python3.13t) may be: PATH first, then pyenv's versions,
    newest patch release first."""
    found = [path] if (path := shutil.which(name)) else []
    for root in pyenv_roots():
        found += [str(p) for p in sorted((root / "versions").glob(f"*/bin/{name}"), key=_patch, reverse=True)]
    return list(dict.fromkeys(found))


def find(version: str, free_threaded: bool = False) -> tuple[str | None, str]:
    """An interpreter of `version`, or None and why none was taken."""
    name = f"python{version}{'t' if free_threaded else ''}"
    tried = candidates(name)
    for candidate in tried:
        probed = probe(candidate)
        if probed == (version, free_threaded):
            return candidate, ""
    if not tried:
        return None, f"no {name} on PATH or under pyenv"
    return None, f"none of {', '.join(tried)} runs as {name}"


def stamp_for(interpreter: str, extras: str) -> str:
    resolved = os.path.realpath(interpreter)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{resolved}\0{extras}".encode())
    return digest.hexdigest()


def ensure_venv(interpreter: str, venv: Path, extras: str) -> Path:
    """A virtual environment for `interpreter` with this project installed (editable):
    reused when its stamp matches, else built from scratch."""
    python = venv / "bin" / "python"
    stamp = venv / ".plugwire-stamp"
    wanted = stamp_for(interpreter, extras)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        print(f"  reusing {venv} (pyproject.toml and interpreter unchanged)", flush=True)
        return python
    log = venv.with_name(venv.name + ".log")
    print(f"  building {venv.relative_to(ROOT)} from scratch (log: {log.relative_to(ROOT)})", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    target = f".[{extras}]" if extras else "."
    with log.open("w") as out:
        for step in (
            [interpreter, "-m", "venv", "--clear", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
            [str(python), "-m", "pip", "install", "--quiet", "-e", target],
        ):
            out.write(f"$ {' '.join(step)}\n")
            out.flush()
            subprocess.run(step, check=True, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    stamp.write_text(wanted)
    return python


def run_suite(python: Path, pytest_args: list[str]) -> tuple[int, float]:
    """Exit status and CPU seconds (user and system, its workers and plugin processes
    included: what the run costs whatever else the machine is doing). Development mode
    through the environment, so pytest-xdist's workers have it too."""
    argv = [str(python), "-m", "pytest", *pytest_args]
    print("  PYTHONDEVMODE=1 " + " ".join(argv), flush=True)
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONDEVMODE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def version_of(python: Path) -> str | None:
    probed = probe(str(python))
    return probed[0] if probed else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=VERSIONS, help="run these versions only")
    parser.add_argument("--default-venv", default=".venv", help="the venv `make install` built")
    parser.add_argument("--no-ft", action="store_true", help="skip the free-threaded smoke")
    parser.add_argument("--coverage", action="store_true", help="measure coverage on the default interpreter's run")
    parser.add_argument("--require", action="append", default=[], choices=VERSIONS, help="fail if this one is skipped")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")
    args = parser.parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"] or ["-q"]
    default_venv = ROOT / args.default_venv
    default_python = default_venv / "bin" / "python"
    default_version = version_of(default_python) if default_python.exists() else None

    # The default interpreter's version first (its venv is ready); the other versions' venvs
    # are built meanwhile, one after the other, beside its run.
    versions = sorted(args.only or VERSIONS, key=lambda v: v != default_version)
    found = {v: find(v) for v in versions if v != default_version}
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=1) as builder:
        venvs = {
            v: builder.submit(ensure_venv, interpreter, ROOT / ".venvs" / f"py{v}", EXTRAS)
            for v, (interpreter, _) in found.items()
            if interpreter is not None
        }
        for version in versions:
            outcomes.append(
                run_version(
                    version,
                    default_version=default_version,
                    default_python=default_python,
                    args=args,
                    pytest_args=pytest_args,
                    found=found,
                    venvs=venvs,
                )
            )

    if not args.no_ft:
        outcomes.append(free_threaded_smoke())

    print("\n=== test matrix ===")
    for outcome in outcomes:
        took = f"{outcome.seconds:6.0f}s" if outcome.status != "skipped" else "       "
        print(f"  {outcome.name:<12} {outcome.status.upper():<8} {took}  {outcome.interpreter}  ({outcome.detail})")
    ran = [o for o in outcomes if o.status != "skipped"]
    missing = [f"python{v}" for v in args.require if f"python{v}" not in {o.name for o in ran}]
    if missing:
        print(f"required but skipped: {', '.join(missing)}")
        return 1
    if not ran:
        print("no interpreter ran the suite")
        return 1
    return 0 if all(o.status == "passed" for o in ran) else 1


def without_load_tests(pytest_args: list[str]) -> list[str]:
    """A `-m` option that adds `not load and not once` to the selection of `pytest_args`
    (pytest keeps the last `-m` given)."""
    selection = ""
    for index, arg in enumerate(pytest_args):
        if arg == "-m" and index + 1 < len(pytest_args):
            selection = pytest_args[index + 1]
        elif arg.startswith("-m") and len(arg) > 2:
            selection = arg[2:]
    excluded = "not load and not once"
    return ["-m", f"({selection}) and {excluded}" if selection else excluded]


def run_version(
    version: str,
    *,
    default_version: str | None,
    default_python: Path,
    args: argparse.Namespace,
    pytest_args: list[str],
    found: dict[str, tuple[str | None, str]],
    venvs: dict[str, Future[Path]],
) -> Outcome:
    name = f"python{version}"
    print(f"\n=== {name} ===", flush=True)
    started = time.monotonic()
    extra: list[str] = []
    if version == default_version:
        python, where = default_python, f"{args.default_venv} (the default interpreter's venv)"
        if args.coverage:  # on one version only: it slows every process the suite starts
            extra = ["--cov", "--cov-branch", "--cov-report=term"]
    else:
        # The long load tests (marker `load`) run on the default interpreter only: they test
        # plugwire's logic under load, which the rest of the suite covers on every version,
        # and they are a large share of the matrix's time. So do the `once` tests: the
        # README's Quick start from the wheel in a fresh venv is the same on every version.
        extra = without_load_tests(pytest_args)
        interpreter, why = found[version]
        if interpreter is None:
            print(f"  SKIPPED: {why}", flush=True)
            return Outcome(name, "-", "skipped", why)
        try:
            python = venvs[version].result()
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"  FAILED to build its venv: {exc}", flush=True)
            return Outcome(name, interpreter, "failed", f"venv build failed: {exc}", time.monotonic() - started)
        where = f"{interpreter} in {python.parents[1].relative_to(ROOT)}"
    code, cpu = run_suite(python, [*pytest_args, *extra])
    status = "passed" if code == 0 else "failed"
    return Outcome(name, where, status, f"pytest exit {code}, {cpu:.0f} CPU-s", time.monotonic() - started)


def free_threaded_smoke() -> Outcome:
    name = "python3.13t"
    print(f"\n=== {name} (free-threaded smoke) ===", flush=True)
    interpreter, why = find("3.13", free_threaded=True)
    if interpreter is None:
        print(f"  SKIPPED: {why}", flush=True)
        return Outcome(name, "-", "skipped", why)
    started = time.monotonic()
    python = ensure_venv(interpreter, ROOT / ".venvs" / "py3.13t", FT_EXTRAS)
    code = subprocess.run([str(python), "scripts/ft_smoke.py"], cwd=ROOT, check=False).returncode
    status = "passed" if code == 0 else "failed"
    return Outcome(name, interpreter, status, f"smoke exit {code}", time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
