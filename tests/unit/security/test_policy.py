"""The policy engine on its own: policy changes, endpoint decisions, the private launch folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from plugwire import PluginConfig, SecurityAuditConfig, SecurityConfig, SecurityPolicy, Transport
from plugwire._security import AuditEvent, ExecCache, SecurityEngine
from plugwire.errors import ErrorCode, SecurityError

from ._helpers import entry_for, write_plugin, write_whitelist


def make_engine(tmp_path: Path, entries: list[dict[str, object]], policy: SecurityPolicy) -> SecurityEngine:
    whitelist = write_whitelist(tmp_path / "w.json", entries)
    audit = SecurityAuditConfig(enabled=True, audit_file=str(tmp_path / "host" / "a.db"), log_authorized=True)
    return SecurityEngine.from_config(
        SecurityConfig(enabled=True, policy=policy, whitelist_file=str(whitelist), audit_config=audit)
    )


async def test_changing_the_policy_is_recorded_and_changes_what_a_refusal_does(
    tmp_path: Path, plugin_dir: Path
) -> None:
    plugin = write_plugin(plugin_dir / "p", "p")
    engine = make_engine(tmp_path, [], SecurityPolicy.STRICT)
    config = PluginConfig(name="p", executable=str(plugin))
    try:
        with pytest.raises(SecurityError):
            engine.check_plugin(config)
        engine.set_policy(SecurityPolicy.PERMISSIVE)
        decision = engine.check_plugin(config)
        assert decision is not None
        assert not decision.allowed
        assert engine.audit is not None
        engine.audit.flush()
        (row,) = engine.audit.query(event=AuditEvent.POLICY_CHANGED)
        assert row.fields == {"from": "strict", "to": "permissive"}
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    ("entries", "name", "endpoint", "allowed", "code"),
    [
        ([{"name": "svc", "endpoint": "a:1"}], "svc", "a:1", True, None),
        ([{"name": "svc", "endpoint": "a:1"}], "svc", "b:2", False, ErrorCode.ENDPOINT_NOT_WHITELISTED),
        (
            [{"name": "svc", "endpoint": "a:1", "enabled": False}],
            "svc",
            "a:1",
            False,
            ErrorCode.WHITELIST_ENTRY_DISABLED,
        ),
        ([{"name": "svc", "endpoint": "a:1"}], "alias", "a:1", True, None),
        ([{"name": "svc", "endpoint": "a:1"}], "other", "c:3", False, ErrorCode.ENDPOINT_NOT_WHITELISTED),
        (
            [{"name": "svc", "path": "/bin/true", "hash": "0" * 64}],
            "svc",
            "a:1",
            False,
            ErrorCode.ENDPOINT_NOT_WHITELISTED,
        ),
        ([], "anything", "d:4", True, None),
    ],
)
async def test_endpoint_decisions(
    tmp_path: Path,
    entries: list[dict[str, object]],
    name: str,
    endpoint: str,
    allowed: bool,
    code: int | None,
) -> None:
    engine = make_engine(tmp_path, entries, SecurityPolicy.AUDIT)
    try:
        decision = engine.check_endpoint(name, endpoint)
        assert decision is not None
        assert (decision.allowed, decision.code) == (allowed, code)
    finally:
        await engine.aclose()


def test_a_copy_whose_bytes_changed_is_discarded(tmp_path: Path) -> None:
    source = tmp_path / "bin"
    source.write_bytes(b"#!/bin/sh\necho one\n")
    cache = ExecCache(tmp_path / "exec")
    fd = os.open(source, os.O_RDONLY)
    try:
        with pytest.raises(SecurityError) as caught:
            cache.materialize("p", fd, "sha256", "0" * 64)
        assert caught.value.code == ErrorCode.HASH_MISMATCH
        assert os.listdir(cache.folder) == []
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        copy = cache.materialize("p", fd, "sha256", digest)
        assert copy.read_bytes() == source.read_bytes()
        assert copy.stat().st_mode & 0o777 == 0o500
        assert cache.materialize("p", fd, "sha256", digest) == copy
    finally:
        os.close(fd)
        cache.close()
    assert (tmp_path / "exec").exists(), "a folder the caller chose is left in place"
    assert (tmp_path / "exec").stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_launch_folder_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "exec"
    folder.mkdir()
    os.chown(folder, 4242, 4242)
    with pytest.raises(SecurityError) as caught:
        ExecCache(folder)
    assert caught.value.code == ErrorCode.UNSAFE_FILE


async def test_in_process_plugins_are_not_checked(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, [], SecurityPolicy.STRICT)
    try:
        assert engine.check_plugin(PluginConfig(name="obj", transport=Transport.IN_PROCESS)) is None
    finally:
        await engine.aclose()


async def test_a_plugin_whitelisted_as_an_endpoint_cannot_run_as_a_file(tmp_path: Path, plugin_dir: Path) -> None:
    plugin = write_plugin(plugin_dir / "p", "p")
    engine = make_engine(tmp_path, [{"name": "p", "endpoint": "a:1"}, entry_for("q", plugin)], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("p")([str(plugin)])
        assert caught.value.code == ErrorCode.NOT_WHITELISTED
        assert "endpoint" in caught.value.message
    finally:
        await engine.aclose()
