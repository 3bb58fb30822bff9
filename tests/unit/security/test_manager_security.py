"""The manager with security on: the strict gate at registration, audit rows for the plugin
lifecycle, hot reload that stops refused plugins, and no secret in any row or log line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

import plugwire
from plugwire import (
    AsyncPluginManager,
    AuthConfig,
    AuthMethod,
    ManagerConfig,
    PluginConfig,
    SecurityAuditConfig,
    SecurityConfig,
    SecurityPolicy,
    Transport,
)
from plugwire._transports.base import BaseTransport, Call
from plugwire.errors import AuthenticationError, ErrorCode, SecurityError
from plugwire.testing import MockTransport

from ._helpers import entry_for, write_plugin, write_whitelist

SECRET = "sk-live-7f3a9c2e-never-log-me"


class FileSource:
    """An executable plugin as the manager sees it; the transport is a mock that counts
    how often it was created (the subprocess transport is built elsewhere)."""

    def __init__(
        self, executable: Path | None = None, *, endpoint: str = "", handler: Any = None, auth: AuthConfig | None = None
    ) -> None:
        self.executable = executable
        self.endpoint = endpoint
        self.handler = handler or (lambda call: call.payload)
        self.auth = auth or AuthConfig()
        self.created = 0
        self.transports: list[MockTransport] = []

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        if self.endpoint:
            return msgspec.structs.replace(base, name=name, transport=Transport.GRPC, endpoint=self.endpoint)
        return msgspec.structs.replace(
            base, name=name, transport=Transport.EXECUTABLE, executable=str(self.executable), auth=self.auth
        )

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        self.created += 1
        self.transports.append(MockTransport(self.handler))
        return self.transports[-1]


def security(
    tmp_path: Path, whitelist: Path, policy: SecurityPolicy = SecurityPolicy.STRICT, **kw: Any
) -> SecurityConfig:
    return SecurityConfig(
        enabled=True,
        policy=policy,
        whitelist_file=str(whitelist),
        audit_config=SecurityAuditConfig(
            enabled=True, audit_file=str(tmp_path / "host" / "audit.db"), log_authorized=True
        ),
        **kw,
    )


async def test_strict_refuses_a_mismatched_plugin_before_any_transport_is_created(
    tmp_path: Path, plugin_dir: Path
) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.yaml", [entry_for("calc", plugin, hash="sha256:" + "9" * 64)])
    source = FileSource(plugin)
    async with AsyncPluginManager[str, str](str, str, ManagerConfig(security=security(tmp_path, whitelist))) as manager:
        with pytest.raises(SecurityError) as caught:
            await manager.register(source, name="calc")
        assert caught.value.code == ErrorCode.HASH_MISMATCH
        assert source.created == 0
        assert "calc" not in manager
        assert manager.audit is not None
        manager.audit.flush()
        assert [r.event for r in manager.audit.query(plugin="calc")] == ["plugin.hash_mismatch"]


async def test_an_admitted_plugin_leaves_authorized_started_and_stopped_rows(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.yaml", [entry_for("calc", plugin, metadata={"owner": "team-a"})])
    manager = AsyncPluginManager[str, str](str, str)
    async with manager:
        await manager.enable_plugin_security(security(tmp_path, whitelist))
        await manager.register(FileSource(plugin), name="calc")
        assert await manager.execute("calc", "ping") == "ping"
        await manager.unregister("calc")
        assert manager.audit is not None
        manager.audit.flush()
        rows = manager.audit.query(plugin="calc")
        assert [r.event for r in rows] == ["plugin.authorized", "plugin.started", "plugin.stopped"]
        assert rows[0].fields["metadata"] == {"owner": "team-a"}
        assert manager.audit.verify().ok


async def test_security_enabled_in_config_works_and_the_builder_turns_it_on(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.yaml", [entry_for("calc", plugin)])
    other = write_plugin(plugin_dir / "other", "y")
    manager: AsyncPluginManager[str, str] = (
        plugwire.simple(str, str)
        .with_plugin("calc", FileSource(plugin))
        .with_security(str(whitelist), audit_file=str(tmp_path / "host" / "audit.db"))
        .build()
    )
    async with manager:
        assert "calc" in manager
        assert manager.security is not None
        assert manager.security.policy is SecurityPolicy.STRICT
        with pytest.raises(SecurityError) as caught:
            await manager.register(FileSource(other), name="other")
        assert caught.value.code == ErrorCode.NOT_WHITELISTED


def test_the_blocking_manager_enables_security_and_exposes_the_audit_log(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.yaml", [entry_for("calc", plugin)])
    with plugwire.PluginManager[str, str](str, str) as manager:
        manager.enable_plugin_security(security(tmp_path, whitelist))
        manager.register(FileSource(plugin), name="calc")
        assert manager.audit is not None
        manager.audit.flush()
        assert [r.event for r in manager.audit.query()][-1] == "plugin.started"


async def test_grpc_plugins_are_checked_by_endpoint(tmp_path: Path) -> None:
    whitelist = write_whitelist(tmp_path / "w.yaml", [{"name": "pricing", "endpoint": "127.0.0.1:9090"}])
    async with AsyncPluginManager[str, str](str, str, ManagerConfig(security=security(tmp_path, whitelist))) as manager:
        await manager.register(FileSource(endpoint="127.0.0.1:9090"), name="pricing")
        moved = FileSource(endpoint="10.9.9.9:9090")
        with pytest.raises(SecurityError) as caught:
            await manager.register(moved, name="pricing-2")
        assert caught.value.code == ErrorCode.ENDPOINT_NOT_WHITELISTED
        assert moved.created == 0


async def test_enabling_strict_security_stops_running_plugins_it_refuses(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.yaml", [])
    async with AsyncPluginManager[str, str](str, str) as manager:
        await manager.register(FileSource(plugin), name="calc")
        await manager.enable_plugin_security(security(tmp_path, whitelist))
        assert "calc" not in manager
        assert manager.audit is not None
        manager.audit.flush()
        assert [r.event for r in manager.audit.query(plugin="calc")] == ["plugin.unauthorized", "plugin.stopped"]


@pytest.mark.parametrize("swap", ["rename", "configmap"])
async def test_a_whitelist_swapped_while_calls_run_stops_only_the_removed_plugin(
    tmp_path: Path, plugin_dir: Path, swap: str
) -> None:
    keep = write_plugin(plugin_dir / "keep", "k")
    drop = write_plugin(plugin_dir / "drop", "d")
    mount = tmp_path / "config"
    (mount / "..v1").mkdir(parents=True)
    write_whitelist(mount / "..v1" / "plugins.yaml", [entry_for("keep", keep), entry_for("drop", drop)])
    if swap == "configmap":
        (mount / "..data").symlink_to("..v1")
        (mount / "plugins.yaml").symlink_to("..data/plugins.yaml")
    else:
        os.replace(mount / "..v1" / "plugins.yaml", mount / "plugins.yaml")
    config = security(tmp_path, mount / "plugins.yaml", watch_config=True)
    async with AsyncPluginManager[str, str](str, str, ManagerConfig(security=config)) as manager:
        assert manager.security is not None
        changed = asyncio.Event()
        manager.security.add_listener(lambda _whitelist: changed.set())  # runs after the manager's own listener
        await manager.register(FileSource(keep), name="keep")
        await manager.register(FileSource(drop), name="drop")
        stop = asyncio.Event()
        results: list[str] = []

        async def call_forever() -> None:
            while not stop.is_set():
                results.append(await manager.execute("keep", "ping"))
                await asyncio.sleep(0)

        caller = asyncio.create_task(call_forever())
        (mount / "..v2").mkdir()
        write_whitelist(mount / "..v2" / "plugins.yaml", [entry_for("keep", keep)])
        if swap == "configmap":
            (mount / "..data_tmp").symlink_to("..v2")
            os.replace(mount / "..data_tmp", mount / "..data")
        else:
            os.replace(mount / "..v2" / "plugins.yaml", mount / "plugins.yaml")
        async with asyncio.timeout(5):
            await changed.wait()
        stop.set()
        await caller  # raises if any call failed during the swap
        assert "drop" not in manager
        assert "keep" in manager
        assert results
        assert set(results) == {"ping"}


async def test_authentication_failures_are_audited_and_no_secret_reaches_a_row_or_a_log_line(
    tmp_path: Path, plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.yaml", [entry_for("calc", plugin)])

    def refuse(call: Call) -> bytes:
        # a careless transport that quotes the credential back: the row must still not hold it
        raise AuthenticationError(f"plugin refused api key {SECRET}", code=ErrorCode.AUTH_INVALID_CREDENTIALS)

    auth = AuthConfig(method=AuthMethod.API_KEY, api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    config = security(tmp_path, whitelist, policy=SecurityPolicy.AUDIT)
    async with AsyncPluginManager[str, str](str, str, ManagerConfig(security=config)) as manager:
        await manager.register(FileSource(plugin, handler=refuse, auth=auth), name="calc")
        with pytest.raises(AuthenticationError):
            await manager.execute("calc", "ping")
        assert manager.audit is not None
        manager.audit.flush()
        (row,) = manager.audit.query(event="auth.failure")
        assert row.plugin == "calc"
        assert row.fields["code"] == ErrorCode.AUTH_INVALID_CREDENTIALS
        everything = json.dumps([msgspec.to_builtins(r) for r in manager.audit.query()])
    stored = b"".join(p.read_bytes() for p in (tmp_path / "host").iterdir())
    assert SECRET not in everything
    assert SECRET.encode() not in stored
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert "[redacted]" in everything


async def test_a_new_hash_for_a_running_plugin_drains_its_in_flight_call_then_stops_it(
    tmp_path: Path, plugin_dir: Path
) -> None:
    plugin = write_plugin(plugin_dir / "slow", "s")
    whitelist = tmp_path / "w.json"
    write_whitelist(whitelist, [entry_for("slow", plugin)])
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(call: Call) -> bytes:
        entered.set()
        await release.wait()
        return bytes(call.payload)

    source = FileSource(plugin, handler=slow)
    async with AsyncPluginManager[str, str](str, str, ManagerConfig(security=security(tmp_path, whitelist))) as manager:
        await manager.register(source, name="slow")
        call = asyncio.create_task(manager.execute("slow", "in flight"))
        await entered.wait()
        assert manager.security is not None
        write_whitelist(whitelist, [entry_for("slow", plugin, hash="sha256:" + "e" * 64)])
        reload = asyncio.create_task(manager.security._on_file_event())
        async with asyncio.timeout(5):
            while "slow" in manager:  # noqa: ASYNC110 - no event marks "removed from routing"
                await asyncio.sleep(0.01)
        with pytest.raises(plugwire.PluginNotFoundError):
            await manager.execute("slow", "new call")

        def closed() -> bool:
            return source.transports[-1].closed

        assert not closed(), "the stop waits for the in-flight call"
        assert not reload.done()
        release.set()
        assert await call == "in flight"
        await reload
        assert closed()
        assert manager.audit is not None
        manager.audit.flush()
        events = [r.event for r in manager.audit.query(plugin="slow")]
        assert events[-2:] == ["plugin.hash_mismatch", "plugin.stopped"]


async def test_security_from_a_config_file_is_enabled_on_start(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.json", [entry_for("calc", plugin)])
    config_file = tmp_path / "manager.yaml"
    config_file.write_text(
        "security:\n"
        "  enabled: true\n"
        "  policy: strict\n"
        f"  whitelist_file: {json.dumps(str(whitelist))}\n"
        "  audit_config:\n"
        "    enabled: true\n"
        f"    audit_file: {json.dumps(str(tmp_path / 'host' / 'audit.jsonl'))}\n"
    )
    async with AsyncPluginManager[str, str](str, str, ManagerConfig.load(config_file)) as manager:
        assert manager.audit is not None
        assert manager.audit.path.suffix == ".jsonl"
        with pytest.raises(SecurityError):
            await manager.register(FileSource(plugin_dir / "calc-copy"), name="calc")
        await manager.register(FileSource(plugin), name="calc")
    rows = plugwire._security.query_log(tmp_path / "host" / "audit.jsonl")
    assert [r.event for r in rows] == [
        "whitelist.loaded",
        "plugin.unauthorized",
        "plugin.started",
        "plugin.stopped",
    ]


def test_the_blocking_builder_refuses_a_mismatched_plugin(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.json", [entry_for("calc", plugin, hash="sha256:" + "5" * 64)])
    source = FileSource(plugin)
    builder: plugwire.ManagerBuilder[str, str] = (
        plugwire.production(str, str)
        .with_plugin("calc", source)
        .with_security(str(whitelist), audit_file=str(tmp_path / "host" / "audit.db"))
    )
    with pytest.raises(SecurityError) as caught:
        builder.build_blocking()
    assert caught.value.code == ErrorCode.HASH_MISMATCH
    assert source.created == 0


async def test_enabling_with_a_disabled_config_turns_security_off_again(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "calc", "x")
    whitelist = write_whitelist(tmp_path / "w.json", [])
    config = ManagerConfig(security=security(tmp_path, whitelist))
    async with AsyncPluginManager[str, str](str, str, config) as manager:
        with pytest.raises(SecurityError):
            await manager.register(FileSource(plugin), name="calc")
        await manager.enable_plugin_security(SecurityConfig(enabled=False))
        assert manager.security is None
        assert manager.audit is None
        await manager.register(FileSource(plugin), name="calc")
    rows = plugwire._security.query_log(tmp_path / "host" / "audit.db")
    assert rows[-1].event == "policy.changed"
    assert rows[-1].fields == {"from": "strict", "to": "disabled"}
