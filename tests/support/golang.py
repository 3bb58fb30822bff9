"""The Go side of the go-plugin interop tests: find the toolchain, build the Go programs of
tests/support/go/ offline, and make Python stubs for its kv.proto.

Everything comes from Debian's packages (`apt-get install golang-go
golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev golang-goprotobuf-dev
protobuf-compiler`): the build runs in GOPATH mode (GO111MODULE=off) with Debian's sources
in /usr/share/gocode on the GOPATH, so it needs no network and no module download. The
packages of tests/support/go/ (every folder holding .go files) are copied under a temporary
GOPATH's src/, kv.proto is compiled there into the package `kvproto` (protoc with Debian's
protoc-gen-go 1.3, `plugins=grpc`) and plugwire's own proto/plugwire/v1/plugin.proto into the
package `pwproto` (for Go plugins serving plugwire.v1.Plugin), and `go build` writes the program.

Built programs are cached in one folder (`build/go-fixtures/` at the project root, or
$PLUGWIRE_GO_FIXTURES), named by a hash of the Go sources, kv.proto, the Go version and the
go-plugin and grpc sources: pytest-xdist's workers and the interpreter matrix's runs build
each program once. A lock file makes a second builder wait for the first; the build itself
happens in a temporary folder renamed into place, so a half-built program is never seen.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

GO_SOURCES = Path(__file__).resolve().parent / "go"
KV_PROTO = GO_SOURCES / "kv.proto"
PROJECT = GO_SOURCES.parents[2]
PLUGWIRE_PROTO = PROJECT / "proto" / "plugwire" / "v1" / "plugin.proto"  # compiled into package pwproto
GOCODE = Path("/usr/share/gocode")
GO_PLUGIN_SOURCES = GOCODE / "src/github.com/hashicorp/go-plugin"
GRPC_SOURCES = GOCODE / "src/google.golang.org/grpc"
INSTALL_HINT = (
    "apt-get install golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev "
    "golang-goprotobuf-dev protobuf-compiler"
)
BUILD_TIMEOUT = 600.0  # seconds; a cold build takes ~7 s on an idle 2-vCPU machine


@dataclass(frozen=True)
class GoToolchain:
    """The programs a build runs, and the Go version they report."""

    go: Path
    protoc: Path
    protoc_gen_go: Path
    version: str  # `go version` output, e.g. "go version go1.19.8 linux/amd64"


class GoBuildError(RuntimeError):
    """A Go program or its generated code failed to build (the tool's output is included)."""


def _which(name: str, *extra: Path) -> Path | None:
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for folder in extra:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@functools.cache
def _toolchain() -> GoToolchain | str:
    """The toolchain, or why there is none (a sentence naming what is missing)."""
    go = _which("go", Path("/usr/lib/go/bin"))
    protoc = _which("protoc")
    protoc_gen_go = _which("protoc-gen-go", Path("/usr/bin"))
    missing = [
        name for name, path in (("go", go), ("protoc", protoc), ("protoc-gen-go", protoc_gen_go)) if path is None
    ]
    missing += [str(folder) for folder in (GO_PLUGIN_SOURCES, GRPC_SOURCES) if not folder.is_dir()]
    if missing:
        return f"Go toolchain or go-plugin sources not installed ({', '.join(missing)} missing): {INSTALL_HINT}"
    assert go is not None
    assert protoc is not None
    assert protoc_gen_go is not None
    try:
        version = subprocess.run(
            [go, "version"], capture_output=True, text=True, check=True, timeout=60, env=_go_env(None)
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Go toolchain not usable (`go version` failed: {exc}): {INSTALL_HINT}"
    return GoToolchain(go=go, protoc=protoc, protoc_gen_go=protoc_gen_go, version=version)


def go_missing_reason() -> str | None:
    """Why the Go interop tests cannot run here, or None when they can."""
    found = _toolchain()
    return found if isinstance(found, str) else None


def require_go() -> GoToolchain:
    """The Go toolchain; skips the calling test (with the install command) when it is absent."""
    found = _toolchain()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def fixtures_cache() -> Path:
    """The folder built programs and generated stubs are kept in (created on first use)."""
    folder = Path(os.environ.get("PLUGWIRE_GO_FIXTURES") or PROJECT / "build" / "go-fixtures")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _go_env(gopath: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",  # GOPATH mode: Debian's /usr/share/gocode is the only source
        GOPROXY="off",
        GOFLAGS="",
        CGO_ENABLED="0",  # pure-Go net and os/user: no C compiler needed
    )
    if gopath is not None:
        env["GOPATH"] = f"{gopath}{os.pathsep}{GOCODE}"
        env["GOCACHE"] = str(fixtures_cache() / "gocache")  # safe for concurrent builds
    return env


def _go_packages() -> list[Path]:
    return sorted(p for p in GO_SOURCES.iterdir() if p.is_dir() and any(p.glob("*.go")))


def _sources_key(toolchain: GoToolchain) -> str:
    digest = hashlib.sha256()
    digest.update(toolchain.version.encode())
    for stamp in (GO_PLUGIN_SOURCES / "client.go", GO_PLUGIN_SOURCES / "server.go", GRPC_SOURCES / "version.go"):
        digest.update(stamp.read_bytes())
    for path in [KV_PROTO, PLUGWIRE_PROTO, *(f for package in _go_packages() for f in sorted(package.glob("*.go")))]:
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GoBuildError(f"{argv[0]} timed out after {BUILD_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        command = " ".join(str(a) for a in argv)
        raise GoBuildError(f"`{command}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _publish(built: Path, target: Path) -> None:
    """Rename the finished folder into place; a concurrent build that got there first wins."""
    try:
        built.rename(target)
    except OSError:
        if not target.is_dir():
            raise


def build_go_program(name: str) -> Path:
    """Build the Go program in tests/support/go/<name>/ (once per source version) and return
    the path of its executable. Skips the calling test when Go is not installed.

    Raises:
        GoBuildError: protoc or `go build` failed (their output is in the message).
    """
    toolchain = require_go()
    if not (GO_SOURCES / name / "main.go").is_file():
        raise ValueError(f"no Go program tests/support/go/{name}/main.go")
    cache = fixtures_cache()
    target = cache / f"{name}-{_sources_key(toolchain)}"
    program = target / name
    if program.is_file():
        return program
    with _exclusive(cache / f".{target.name}.lock"):
        if program.is_file():  # built by another process while this one waited
            return program
        _build(toolchain, name, target)
    return program


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """One build of a program at a time across processes (a second builder waits, then finds
    it built), so the workers of a loaded 2-CPU machine do not compile the same sources twice.
    The build itself still publishes by rename, so a lock that is not honoured costs only time."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(toolchain: GoToolchain, name: str, target: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        src = work / "gopath" / "src"
        (src / "kvproto").mkdir(parents=True)
        for package in _go_packages():
            shutil.copytree(package, src / package.name)
        env = _go_env(work / "gopath")
        _run(
            [
                toolchain.protoc,
                f"--plugin=protoc-gen-go={toolchain.protoc_gen_go}",
                f"-I{GO_SOURCES}",
                f"--go_out=plugins=grpc:{src / 'kvproto'}",
                KV_PROTO,
            ],
            cwd=work,
            env=env,
        )
        # plugwire's own service (for Go plugins that implement plugwire.v1.Plugin), as pwproto.
        generated = work / "pwgen"
        generated.mkdir()
        _run(
            [
                toolchain.protoc,
                f"--plugin=protoc-gen-go={toolchain.protoc_gen_go}",
                f"-I{PLUGWIRE_PROTO.parents[2]}",
                f"--go_out=plugins=grpc,Mplugwire/v1/plugin.proto=pwproto:{generated}",
                PLUGWIRE_PROTO,
            ],
            cwd=work,
            env=env,
        )
        (src / "pwproto").mkdir()
        (generated / "plugwire" / "v1" / "plugin.pb.go").rename(src / "pwproto" / "plugin.pb.go")
        out = work / "out"
        out.mkdir()
        _run([toolchain.go, "build", "-o", out / name, name], cwd=src, env=env)
        _publish(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kv_stubs_dir() -> Path:
    """A folder holding `kv_pb2.py` and `kv_pb2_grpc.py` generated from kv.proto by
    grpcio-tools (once per kv.proto and grpcio-tools version): put it on a plugin
    subprocess's PYTHONPATH to import them there."""
    return _python_stubs(KV_PROTO, "kv")


def _python_stubs(proto: Path, stem: str) -> Path:
    from grpc_tools import protoc  # the dev extra's grpcio-tools

    digest = hashlib.sha256(proto.read_bytes())
    digest.update(_grpc_tools_version().encode())
    cache = fixtures_cache()
    target = cache / f"{stem}-python-{digest.hexdigest()[:20]}"
    if (target / f"{stem}_pb2_grpc.py").is_file():
        return target
    work = Path(tempfile.mkdtemp(prefix=f".{stem}-python-", dir=cache))
    try:
        out = work / "out"
        out.mkdir()
        argv = [
            "grpc_tools.protoc",
            f"-I{proto.parent}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(proto),
        ]
        if protoc.main(argv) != 0:
            raise GoBuildError(f"grpc_tools.protoc failed on {proto}")
        _publish(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _grpc_tools_version() -> str:
    from importlib.metadata import version

    return version("grpcio-tools")


@functools.cache
def kv_stubs() -> tuple[ModuleType, ModuleType]:
    """The modules `kv_pb2` and `kv_pb2_grpc` for kv.proto (service `proto.KV`), loaded once
    per process under those names (the generated `kv_pb2_grpc` imports `kv_pb2` by name)."""
    return _load_stubs(kv_stubs_dir(), "kv")


@functools.cache
def goplugin_stubs() -> tuple[ModuleType, ModuleType]:
    """`goplugin_internal_pb2` and `..._pb2_grpc`: go-plugin's own services (GRPCController,
    GRPCBroker, GRPCStdio; go/goplugin_internal.proto), for a Python peer of a plugin's."""
    folder = _python_stubs(GO_SOURCES / "goplugin_internal.proto", "goplugin_internal")
    return _load_stubs(folder, "goplugin_internal")


def _load_stubs(folder: Path, stem: str) -> tuple[ModuleType, ModuleType]:
    modules = []
    for name in (f"{stem}_pb2", f"{stem}_pb2_grpc"):
        if name in sys.modules:
            modules.append(sys.modules[name])
            continue
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        assert spec is not None, folder
        assert spec.loader is not None, folder
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        modules.append(module)
    return modules[0], modules[1]
