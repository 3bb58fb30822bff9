"""Verified launch: the bytes that run are the bytes whose hash was checked.

Each test spawns the argv the launch hook returns, as the subprocess transport does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from plugwire import PluginConfig, SecurityAuditConfig, SecurityConfig, SecurityPolicy
from plugwire._security import AuditEvent, SecurityEngine
from plugwire.errors import ErrorCode, SecurityError

from ._helpers import entry_for, sha256_of, write_plugin, write_whitelist


def engine_for(tmp_path: Path, entries: list[dict[str, object]], policy: SecurityPolicy) -> SecurityEngine:
    whitelist = write_whitelist(tmp_path / "plugins.whitelist", entries)
    config = SecurityConfig(
        enabled=True,
        policy=policy,
        whitelist_file=str(whitelist),
        audit_config=SecurityAuditConfig(enabled=True, audit_file=str(tmp_path / "audit.db"), log_authorized=True),
    )
    return SecurityEngine.from_config(config)


async def run(argv: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


async def test_hash_mismatch_under_strict_is_refused_and_never_executed(
    tmp_path: Path, make_plugin: Callable[..., Path]
) -> None:
    marker = tmp_path / "ran"
    plugin = make_plugin("echo", "hello", marker)
    entry = entry_for("echo", plugin, hash="sha256:" + "0" * 64)
    engine = engine_for(tmp_path, [entry], SecurityPolicy.STRICT)
    hook = engine.launch_hook("echo")
    try:
        with pytest.raises(SecurityError) as caught:
            await run(await hook([str(plugin)]))
        assert caught.value.code == ErrorCode.HASH_MISMATCH
        assert caught.value.plugin == "echo"
        assert not marker.exists()
        assert engine.audit is not None
        engine.audit.flush()
        rows = engine.audit.query(event=AuditEvent.HASH_MISMATCH)
        assert [row.plugin for row in rows] == ["echo"]
        assert rows[0].fields["hash"] == f"sha256:{sha256_of(plugin)}"
        assert rows[0].fields["policy"] == "strict"
    finally:
        await engine.aclose()


async def test_hash_mismatch_under_permissive_runs_warns_and_is_audited(
    tmp_path: Path, make_plugin: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran"
    plugin = make_plugin("echo", "hello", marker)
    engine = engine_for(tmp_path, [entry_for("echo", plugin, hash="sha256:" + "0" * 64)], SecurityPolicy.PERMISSIVE)
    try:
        with caplog.at_level(logging.WARNING, logger="plugwire.security"):
            argv = await engine.launch_hook("echo")([str(plugin)])
        assert await run(argv) == "hello\n"
        assert marker.exists()
        assert any("running it anyway" in r.message and r.levelno == logging.WARNING for r in caplog.records)
        assert engine.audit is not None
        engine.audit.flush()
        (row,) = engine.audit.query(event=AuditEvent.HASH_MISMATCH)
        assert row.fields["policy"] == "permissive"
        # the recorded hash is the hash of what actually ran: the private copy of those bytes
        assert row.fields["hash"] == f"sha256:{sha256_of(Path(argv[0]))}"
    finally:
        await engine.aclose()


async def test_a_verified_launch_runs_a_private_copy_of_the_pinned_bytes(
    tmp_path: Path, make_plugin: Callable[..., Path]
) -> None:
    plugin = make_plugin("echo", "original")
    engine = engine_for(tmp_path, [entry_for("echo", plugin)], SecurityPolicy.STRICT)
    try:
        argv = await engine.launch_hook("echo")([str(plugin), "--flag"])
        copy = Path(argv[0])
        assert argv[1:] == ["--flag"]
        assert copy != plugin
        assert sha256_of(copy) == sha256_of(plugin)
        assert oct(copy.parent.stat().st_mode & 0o777) == "0o700"
        # rewriting the original in place after the check changes nothing about what runs
        write_plugin(plugin, "tampered")
        assert await run(argv) == "original\n"
        assert engine.audit is not None
        engine.audit.flush()
        (row,) = engine.audit.query(event=AuditEvent.AUTHORIZED)
        assert row.fields["interpreter"] == "/bin/sh"
        assert row.fields["launched"] == str(copy)
    finally:
        await engine.aclose()
    assert not os.path.exists(copy)  # noqa: ASYNC240 - one stat after the engine closed


async def test_binary_replaced_between_registration_and_start_is_refused_under_strict(
    tmp_path: Path, make_plugin: Callable[..., Path]
) -> None:
    marker = tmp_path / "ran"
    plugin = make_plugin("echo", "good")
    engine = engine_for(tmp_path, [entry_for("echo", plugin)], SecurityPolicy.STRICT)
    try:
        decision = engine.check_plugin(PluginConfig(name="echo", executable=str(plugin)))
        assert decision is not None
        assert decision.allowed
        replacement = write_plugin(plugin.with_name("new"), "evil", marker)
        os.replace(replacement, plugin)
        with pytest.raises(SecurityError) as caught:
            await run(await engine.launch_hook("echo")([str(plugin)]))
        assert caught.value.code == ErrorCode.HASH_MISMATCH
        assert not marker.exists()
    finally:
        await engine.aclose()


async def test_binary_replaced_in_a_loop_while_restarted_200_times_only_ever_runs_verified_bytes(
    tmp_path: Path, make_plugin: Callable[..., Path]
) -> None:
    marker = tmp_path / "evil-ran"
    plugin = make_plugin("flip", "AAAA")
    good = plugin.read_bytes()
    evil = write_plugin(tmp_path / "evil-source", "BBBB", marker).read_bytes()
    engine = engine_for(tmp_path, [entry_for("flip", plugin)], SecurityPolicy.STRICT)
    stop = threading.Event()

    def replace_forever() -> None:
        temp = plugin.with_name(".flip.tmp")
        turn = 0
        while not stop.is_set():
            content = evil if turn % 2 else good
            if turn % 4 < 2:  # replace by rename
                temp.write_bytes(content)
                temp.chmod(0o755)
                os.replace(temp, plugin)
            else:  # rewrite in place
                with plugin.open("r+b") as handle:
                    handle.write(content)
                    handle.truncate()
            turn += 1

    replacer = threading.Thread(target=replace_forever)
    replacer.start()
    hook = engine.launch_hook("flip")
    outputs: list[str] = []
    refused = 0
    refusals: set[int] = set()
    try:
        for _ in range(200):
            try:
                argv = await hook([str(plugin)])
            except SecurityError as exc:
                refusals.add(exc.code)
                refused += 1
                continue
            outputs.append(await run(argv))
    finally:
        stop.set()
        replacer.join()
        await engine.aclose()
    assert refusals <= {ErrorCode.HASH_MISMATCH, ErrorCode.UNSAFE_FILE}
    assert len(outputs) + refused == 200
    assert set(outputs) <= {"AAAA\n"}
    assert not marker.exists()


async def test_a_symlink_leaving_the_plugin_folders_is_refused(tmp_path: Path, plugin_dir: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = write_plugin(outside / "real", "outside")
    link = plugin_dir / "escape"
    link.symlink_to(target)
    engine = engine_for(tmp_path, [entry_for("escape", link)], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("escape")([str(link)])
        assert caught.value.code == ErrorCode.SYMLINK_ESCAPE
    finally:
        await engine.aclose()


async def test_a_symlink_inside_the_plugin_folder_is_followed(tmp_path: Path, plugin_dir: Path) -> None:
    target = write_plugin(plugin_dir / "echo-v2", "v2")
    link = plugin_dir / "echo"
    link.symlink_to(target.name)
    engine = engine_for(tmp_path, [entry_for("echo", link)], SecurityPolicy.STRICT)
    try:
        assert await run(await engine.launch_hook("echo")([str(link)])) == "v2\n"
    finally:
        await engine.aclose()


async def test_a_dotdot_segment_in_the_launched_path_is_refused(
    tmp_path: Path, plugin_dir: Path, make_plugin: Callable[..., Path]
) -> None:
    plugin = make_plugin("echo", "hi")
    (plugin_dir / "sub").mkdir()
    engine = engine_for(tmp_path, [entry_for("echo", plugin)], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("echo")([str(plugin_dir / "sub" / ".." / "echo")])
        assert caught.value.code == ErrorCode.PATH_TRAVERSAL
    finally:
        await engine.aclose()


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
async def test_a_group_or_world_writable_file_is_refused(
    tmp_path: Path, make_plugin: Callable[..., Path], mode: int
) -> None:
    marker = tmp_path / "ran"
    plugin = make_plugin("echo", "hi", marker)
    plugin.chmod(mode)
    engine = engine_for(tmp_path, [entry_for("echo", plugin)], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("echo")([str(plugin)])
        assert caught.value.code == ErrorCode.UNSAFE_FILE
        assert "writable" in caught.value.message
        assert not marker.exists()
    finally:
        await engine.aclose()


async def test_a_fifo_is_refused_without_blocking(tmp_path: Path, plugin_dir: Path) -> None:
    fifo = plugin_dir / "pipe"
    os.mkfifo(fifo, 0o700)
    entry: dict[str, object] = {"name": "pipe", "path": str(fifo), "hash": "sha256:" + "0" * 64}
    engine = engine_for(tmp_path, [entry], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("pipe")([str(fifo)])
        assert caught.value.code == ErrorCode.UNSAFE_FILE
        assert "FIFO" in caught.value.message
    finally:
        await engine.aclose()


async def test_a_device_is_refused(tmp_path: Path) -> None:
    entry: dict[str, object] = {"name": "dev", "path": "/dev/null", "hash": "sha256:" + "0" * 64}
    engine = engine_for(tmp_path, [entry], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("dev")(["/dev/null"])
        assert caught.value.code == ErrorCode.UNSAFE_FILE
        assert "device" in caught.value.message
    finally:
        await engine.aclose()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
async def test_a_file_owned_by_another_user_is_refused(tmp_path: Path, make_plugin: Callable[..., Path]) -> None:
    plugin = make_plugin("echo", "hi")
    os.chown(plugin, 4242, 4242)
    engine = engine_for(tmp_path, [entry_for("echo", plugin)], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("echo")([str(plugin)])
        assert caught.value.code == ErrorCode.UNSAFE_FILE
        assert "4242" in caught.value.message
    finally:
        await engine.aclose()


async def test_a_script_run_by_an_interpreter_is_pinned_by_its_own_bytes(tmp_path: Path, plugin_dir: Path) -> None:
    script = plugin_dir / "plugin.py"
    script.write_text("print('from the script')\n")
    engine = engine_for(tmp_path, [entry_for("py", script)], SecurityPolicy.STRICT)
    try:
        argv = await engine.launch_hook("py")([sys.executable, "-I", str(script), "arg"])
        assert argv[0] == sys.executable
        assert argv[1] == "-I"
        assert argv[2] != str(script)
        assert argv[3] == "arg"
        assert await run(argv) == "from the script\n"
        assert engine.audit is not None
        engine.audit.flush()
        (row,) = engine.audit.query(event=AuditEvent.AUTHORIZED)
        assert row.fields["interpreter"] == sys.executable
        script.write_text("print('changed')\n")
        with pytest.raises(SecurityError):
            await engine.launch_hook("py")([sys.executable, "-I", str(script)])
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    ("entries", "argv_name", "code"),
    [
        ([], "echo", ErrorCode.NOT_WHITELISTED),
        ([{"enabled": False}], "echo", ErrorCode.WHITELIST_ENTRY_DISABLED),
        ([{}], "other", ErrorCode.EXECUTABLE_NOT_IN_ARGV),
    ],
)
async def test_strict_refuses_unlisted_disabled_and_mismatched_commands(
    tmp_path: Path,
    make_plugin: Callable[..., Path],
    entries: list[dict[str, object]],
    argv_name: str,
    code: int,
) -> None:
    plugin = make_plugin("echo", "hi")
    make_plugin("other", "other")
    engine = engine_for(tmp_path, [entry_for("echo", plugin, **extra) for extra in entries], SecurityPolicy.STRICT)
    try:
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("echo")([str(plugin.with_name(argv_name))])
        assert caught.value.code == code
        assert engine.audit is not None
        engine.audit.flush()
        (row,) = engine.audit.query(event=AuditEvent.UNAUTHORIZED)
        assert row.fields["code"] == code
    finally:
        await engine.aclose()


async def test_audit_policy_runs_everything_and_records_every_decision(
    tmp_path: Path, make_plugin: Callable[..., Path]
) -> None:
    good = make_plugin("good", "good")
    bad = make_plugin("bad", "bad")
    entries = [entry_for("good", good), entry_for("bad", bad, hash="sha256:" + "1" * 64)]
    whitelist = write_whitelist(tmp_path / "w.yaml", entries)
    config = SecurityConfig(
        enabled=True,
        policy=SecurityPolicy.AUDIT,
        whitelist_file=str(whitelist),
        audit_config=SecurityAuditConfig(enabled=False, audit_file=str(tmp_path / "a.db")),
    )
    engine = SecurityEngine.from_config(config)
    try:
        assert await run(await engine.launch_hook("good")([str(good)])) == "good\n"
        assert await run(await engine.launch_hook("bad")([str(bad)])) == "bad\n"
        assert await run(await engine.launch_hook("unlisted")([str(good)])) == "good\n"
        assert engine.audit is not None
        engine.audit.flush()
        events = [(row.event, row.plugin) for row in engine.audit.query(since=0)]
        assert events == [
            ("whitelist.loaded", None),
            ("plugin.authorized", "good"),
            ("plugin.hash_mismatch", "bad"),
            ("plugin.unauthorized", "unlisted"),
        ]
    finally:
        await engine.aclose()


async def test_disabled_policy_checks_nothing_and_returns_the_argv_unchanged(
    tmp_path: Path, make_plugin: Callable[..., Path]
) -> None:
    plugin = make_plugin("echo", "hi")
    engine = engine_for(tmp_path, [], SecurityPolicy.DISABLED)
    try:
        assert await engine.launch_hook("echo")([str(plugin), "x"]) == [str(plugin), "x"]
        assert engine.check_plugin(PluginConfig(name="echo", executable=str(plugin))) is None
    finally:
        await engine.aclose()


async def test_a_relative_command_resolves_against_the_plugins_working_folder(
    tmp_path: Path, plugin_dir: Path, make_plugin: Callable[..., Path]
) -> None:
    plugin = make_plugin("echo", "relative")
    engine = engine_for(tmp_path, [entry_for("echo", plugin)], SecurityPolicy.STRICT)
    try:
        argv = await engine.launch_hook("echo", cwd=plugin_dir)(["./echo"])
        assert await run(argv) == "relative\n"
        with pytest.raises(SecurityError) as caught:
            await engine.launch_hook("echo", cwd=tmp_path)(["./echo"])
        assert caught.value.code == ErrorCode.EXECUTABLE_NOT_IN_ARGV
    finally:
        await engine.aclose()
