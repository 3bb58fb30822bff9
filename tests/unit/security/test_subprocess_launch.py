"""The security system on the real subprocess transport: verified bytes at every spawn, and
crashes, restarts and refusals in the audit log."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import plugwire
from plugwire import SecurityAuditConfig, SecurityConfig, SecurityPolicy
from plugwire._transports._pool import PoolState, RestartPolicy
from plugwire._transports.subprocess import SubprocessOptions, SubprocessTransport
from tests.support.procguard import no_leaks, plugin_env

from ._helpers import entry_for, write_whitelist

__all__ = ["no_leaks"]

PLUGIN = """
import os, sys
import msgspec
import plugwire

with open(os.environ["RUN_LOG"], "a") as log:
    log.write("{label}\\n")


class Req(msgspec.Struct):
    text: str = ""


class Resp(msgspec.Struct):
    text: str
    path: str = ""


class Verified(plugwire.Plugin[Req, Resp]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="verified", version="1")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        if request.text == "exit":
            os._exit(3)
        return Resp(text=request.text, path=os.path.abspath(sys.argv[0]))


plugwire.serve(Verified())
"""


class Req(msgspec.Struct):
    text: str = ""


class Resp(msgspec.Struct):
    text: str
    path: str = ""


FAST = SubprocessOptions(grace=0.5, kill_after=0.5, restart=RestartPolicy(initial_backoff=0.01, max_backoff=0.02))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_script(path: Path, label: str) -> Path:
    path.write_text(PLUGIN.replace("{label}", label))
    path.chmod(0o644)
    return path


def security(tmp_path: Path, whitelist: Path) -> SecurityConfig:
    audit = SecurityAuditConfig(enabled=True, audit_file=str(tmp_path / "audit.db"), log_authorized=True)
    return SecurityConfig(enabled=True, policy=SecurityPolicy.STRICT, whitelist_file=str(whitelist), audit_config=audit)


async def start(tmp_path: Path, script: Path, options: SubprocessOptions = FAST) -> Any:
    manager: plugwire.AsyncPluginManager[Req, Resp] = plugwire.AsyncPluginManager(Req, Resp)
    whitelist = write_whitelist(tmp_path / "plugins.whitelist", [entry_for("verified", script)])
    await manager.enable_plugin_security(security(tmp_path, whitelist))
    source = plugwire.subprocess(
        sys.executable, str(script), env=plugin_env(RUN_LOG=str(tmp_path / "runs.log")), options=options
    )
    config = plugwire.PluginConfig(
        name="verified",
        circuit_breaker=plugwire.CircuitBreakerConfig(enabled=False),
        retry=plugwire.RetryConfig(max_retries=0),
    )
    await manager.register(source, config=config)
    return manager


def events(manager: plugwire.AsyncPluginManager[Req, Resp]) -> list[str]:
    audit = manager.audit
    assert audit is not None
    audit.flush()
    return [row.event for row in audit.query(plugin="verified")]


async def test_the_process_runs_a_private_copy_of_exactly_the_pinned_bytes(
    tmp_path: Path, plugin_dir: Path, no_leaks: None
) -> None:
    script = write_script(plugin_dir / "verified.py", "pinned")
    manager = await start(tmp_path, script)
    async with manager:
        answer = await manager.execute("verified", Req(text="hi"))
        assert answer.text == "hi"
        assert Path(answer.path) != script.resolve()
        assert sha256_file(Path(answer.path)) == sha256_file(script)
        assert "plugin.authorized" in events(manager)
        assert "plugin.started" in events(manager)


async def test_a_crash_and_its_restart_are_audited(tmp_path: Path, plugin_dir: Path, no_leaks: None) -> None:
    script = write_script(plugin_dir / "verified.py", "pinned")
    manager = await start(tmp_path, script)
    async with manager:
        transport = manager._entries["verified"].transport
        assert isinstance(transport, SubprocessTransport)
        pool = transport.pool
        assert pool is not None
        with pytest.raises(plugwire.OutcomeUnknownError):
            await manager.execute("verified", Req(text="exit"))
        await pool.wait_for(lambda: pool.restarts == 1)
        assert (await manager.execute("verified", Req(text="again"))).text == "again"
        seen = events(manager)
    assert seen.index("plugin.crashed") < seen.index("plugin.restarted")
    assert (tmp_path / "runs.log").read_text() == "pinned\npinned\n"


async def test_a_binary_replaced_before_a_restart_never_runs(tmp_path: Path, plugin_dir: Path, no_leaks: None) -> None:
    script = write_script(plugin_dir / "verified.py", "pinned")
    options = SubprocessOptions(
        grace=0.5, kill_after=0.5, restart=RestartPolicy(initial_backoff=0.01, max_backoff=0.02, max_restarts=2)
    )
    manager = await start(tmp_path, script, options)
    async with manager:
        transport = manager._entries["verified"].transport
        assert isinstance(transport, SubprocessTransport)
        pool = transport.pool
        assert pool is not None
        replacement = plugin_dir / "replacement.py"
        write_script(replacement, "replaced")
        os.replace(replacement, script)
        with pytest.raises(plugwire.OutcomeUnknownError):
            await manager.execute("verified", Req(text="exit"))
        await pool.wait_for(lambda: pool.state is PoolState.OFFLINE)
        with pytest.raises(plugwire.PluginUnavailableError):
            await manager.execute("verified", Req(text="x"))
        seen = events(manager)
    assert (tmp_path / "runs.log").read_text() == "pinned\n"
    assert "plugin.crashed" in seen
    assert "plugin.hash_mismatch" in seen
    assert "plugin.restarted" not in seen
