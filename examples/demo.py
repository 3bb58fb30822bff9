"""plugwire's demo: plugins in subprocesses (Python and Node.js) and in-process, typed calls,
bad input refused with coded errors, a crashed plugin restarted, and health.

Run it with `make demo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

import plugwire
from plugwire import ExecutionContext, HealthStatus, Plugin, PluginInfo, Status

PLUGINS = Path(__file__).resolve().parent / "plugins"
README = Path(__file__).resolve().parent.parent / "README.md"
sys.path.insert(0, str(PLUGINS))

from auth_plugin import AuthRequest, AuthResponse  # noqa: E402 - the plugin's own types
from text_stats import StatsRequest, StatsResponse  # noqa: E402


class NodeRequest(msgspec.Struct):
    op: str
    text: str


class NodeResponse(msgspec.Struct):
    op: str
    text: str
    words: int


class SloppyAuth(Plugin[AuthRequest, AuthResponse]):
    """A buggy in-process plugin: it answers with the wrong shape, which plugwire refuses."""

    def info(self) -> PluginInfo:
        return PluginInfo(name="sloppy", version="0.1.0")

    async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
        return {"valid": "probably"}  # type: ignore[return-value]

    async def health(self) -> HealthStatus:
        return HealthStatus(status=Status.DEGRADED, message="answers are unreliable")


def python_plugin(script: str) -> plugwire.PluginSource:
    return plugwire.subprocess(sys.executable, str(PLUGINS / script))


def heading(text: str) -> None:
    print(f"\n== {text}")


def show(title: str, value: object) -> None:
    print(f"  {title:<36} {value}")


async def refused(title: str, call: asyncio.Future[object] | object) -> None:
    try:
        await call  # type: ignore[misc]
    except plugwire.PluginError as exc:
        show(title, f"{type(exc).__name__} {exc}")
    else:
        raise SystemExit(f"demo: {title} was not refused")


@contextlib.asynccontextmanager
async def grpc_server(folder: Path, api_key: str) -> AsyncIterator[str]:
    """Start examples/plugins/backup_auth_grpc.py on a unix socket; yield its gRPC target."""
    target = f"unix:{folder / 'backup-auth.sock'}"
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PLUGINS / "backup_auth_grpc.py"),
        "--address",
        target,
        "--api-key-env",
        "BACKUP_AUTH_KEY",
        env={**os.environ, "BACKUP_AUTH_KEY": api_key},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        await server.stderr.readline()  # "plugwire: serving 'backup-auth' over gRPC on ..."
        yield target
    finally:
        server.terminate()  # SIGTERM: the server finishes in-flight calls, then exits
        await server.wait()


async def auth_demo() -> None:
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as folder:
        async with grpc_server(Path(folder), key) as target:
            backup = plugwire.grpc(target, auth=plugwire.AuthConfig(method=plugwire.AuthMethod.API_KEY, api_key=key))
            manager = (
                plugwire.development(AuthRequest, AuthResponse)
                .with_plugin("auth", python_plugin("auth_plugin.py"))
                .with_plugin("backup-auth", backup)
                .with_plugin("sloppy", SloppyAuth())
                .with_timeout(5)
                .with_metrics()
                .build()
            )
            async with manager:
                await auth_calls(manager, target)


async def auth_calls(manager: plugwire.AsyncPluginManager[AuthRequest, AuthResponse], target: str) -> None:
    info = manager.get_plugin("auth").info()
    heading(f"subprocess plugin 'auth' ({info.description}, v{info.version}, examples/plugins/auth_plugin.py)")
    show("auth(user123, right token) ->", await manager.execute("auth", AuthRequest("user123", "jwt-token-here")))
    show("auth(user123, wrong token) ->", await manager.execute("auth", AuthRequest("user123", "nope")))
    heading(f"gRPC plugin 'backup-auth' on {target} (api-key auth), same manager")
    show("backup-auth(alice, tok-alice) ->", await manager.execute("backup-auth", AuthRequest("alice", "tok-alice")))
    unauthenticated = plugwire.grpc(target)  # no api key: the plugin refuses the host
    await refused("a host without the api key", manager.register(unauthenticated, name="no-key"))
    heading("refused with coded errors")
    bad_request = AuthRequest(user_id=123, token="jwt-token-here")  # type: ignore[arg-type]
    await refused("bad request (user_id is an int)", manager.execute("auth", bad_request))
    await refused("bad response (valid is a str)", manager.execute("sloppy", AuthRequest("user123", "x")))
    await refused("unknown plugin", manager.execute("billing", AuthRequest("user123", "x")))

    heading("a crash, and the supervisor's restart")
    before = (await manager.health())["auth"].metadata.get("pids", "?")
    os.kill(int(before.split(",")[0]), signal.SIGKILL)
    show("killed the auth process", f"pid {before}")
    # The call may reach the dying process; as it is marked idempotent, the retry policy
    # repeats it once the supervisor has started a new process.
    retried = ExecutionContext(idempotent=True)
    answer = await manager.execute("auth", AuthRequest("alice", "s3cret-alice"), retried)
    after = (await manager.health())["auth"].metadata.get("pids", "?")
    show(f"auth(alice) on the new process {after} ->", answer)

    heading("health")
    for name, status in (await manager.health()).items():
        show(name, f"{status.status.value}: {status.message} ({status.response_time * 1e3:.2f} ms)")

    heading("metrics (manager.get_metrics(), a frozen snapshot)")
    metrics = manager.get_metrics()
    show(
        "requests total / success / failure",
        f"{metrics.requests_total} / {metrics.requests_success} / {metrics.requests_failure}",
    )
    latency = metrics.request_duration
    show(
        "latency p50 / p99 (from the histogram)",
        f"{latency.quantile(0.5) * 1e3:.2f} ms / {latency.quantile(0.99) * 1e3:.2f} ms",
    )
    for name, plugin in metrics.plugins.items():
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(plugin.failures_by_code.items())) or "none"
        show(
            f"{name} ({plugin.transport})",
            f"{plugin.requests_success} ok, failures {codes}, restarts {plugin.restarts}, "
            f"{plugin.response_time * 1e3:.2f} ms mean",
        )


async def text_stats_demo() -> None:
    async with plugwire.AsyncPluginManager(StatsRequest, StatsResponse) as manager:
        await manager.register(python_plugin("text_stats.py"), name="text-stats")
        heading("subprocess plugin 'text-stats' (plain def execute, run in the plugin's thread pool)")
        text = README.read_text()
        stats = await manager.execute("text-stats", StatsRequest(text=text, top=3))
        show("README.md words / sentences", f"{stats.words} / {stats.sentences}")
        show("top words", ", ".join(f"{word} ({count})" for word, count in stats.top_words))
        show("reading time / Flesch ease", f"{stats.reading_seconds:.0f} s / {stats.flesch_reading_ease:.1f}")


async def node_demo() -> None:
    node = shutil.which("node")
    heading("subprocess plugin in Node.js (examples/plugins/node/echo_plugin.js, no plugwire code)")
    if node is None:
        show("skipped", "node is not on PATH")
        return
    manager: plugwire.AsyncPluginManager[NodeRequest, NodeResponse] = plugwire.AsyncPluginManager(
        NodeRequest, NodeResponse, codec="json"
    )
    async with manager:
        await manager.register(plugwire.subprocess(node, str(PLUGINS / "node" / "echo_plugin.js")), name="node")
        for op in ("upper", "reverse", "words"):
            show(f"node {op}('typed plugins') ->", await manager.execute("node", NodeRequest(op, "typed plugins")))
        await refused("node: an unknown op", manager.execute("node", NodeRequest("explode", "x")))


async def main() -> None:
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)  # the development profile logs at debug; show warnings only
    handler.setFormatter(logging.Formatter("  [log] %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    await auth_demo()
    await text_stats_demo()
    await node_demo()


if __name__ == "__main__":
    plugwire.run(main)  # SIGTERM or Ctrl-C stops it gracefully: every plugin's close() runs
