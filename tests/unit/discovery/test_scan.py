"""One look at the plugin folders: what is found, and what is refused with which code."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugwire._discovery import Candidate, Refusal, scan
from plugwire._sources import Grpc, Subprocess
from plugwire.errors import ErrorCode, SecurityError
from tests.support.discovered import plugin_folder, sha256_of, write_manifest, write_plugin


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return plugin_folder(tmp_path)


def names(found: list[Candidate | Refusal]) -> list[str]:
    return [item.name for item in found if isinstance(item, Candidate)]


def refusals(found: list[Candidate | Refusal]) -> dict[str, int]:
    return {Path(item.path).name: item.code for item in found if isinstance(item, Refusal)}


def test_the_pattern_picks_the_executables_whose_name_matches(folder: Path) -> None:
    for name in ("auth-plugin", "pay-plugin", "helper", "notes-plugin.txt"):
        write_plugin(folder / name)
    (folder / "readme-plugin").write_text("not executable\n")
    assert names(scan([folder], "*-plugin")) == ["auth-plugin", "pay-plugin"]


def test_without_a_pattern_every_executable_file_is_taken(folder: Path) -> None:
    write_plugin(folder / "auth")
    write_plugin(folder / "pay.py")
    (folder / "data.csv").write_text("a,b\n")
    write_plugin(folder / ".hidden")  # an editor's or copier's temporary file
    assert names(scan([folder], "")) == ["auth", "pay.py"]


def test_a_plugin_without_manifest_is_named_after_its_file_and_runs_in_its_folder(folder: Path) -> None:
    write_plugin(folder / "auth-plugin")
    (candidate,) = scan([folder], "")
    assert isinstance(candidate, Candidate)
    assert candidate.name == "auth-plugin"
    assert candidate.manifest is None
    assert candidate.source == Subprocess(str(folder / "auth-plugin"), cwd=str(folder))


def test_a_file_whose_name_is_no_plugin_name_is_refused(folder: Path) -> None:
    write_plugin(folder / "my plugin")
    (refusal,) = scan([folder], "")
    assert isinstance(refusal, Refusal)
    assert refusal.code == ErrorCode.CONFIG_INVALID_NAME
    assert "my plugin" in refusal.reason


def test_a_symlink_leaving_the_folder_is_refused(tmp_path: Path, folder: Path) -> None:
    outside = write_plugin(tmp_path / "elsewhere")
    (folder / "escape").symlink_to(outside)
    write_plugin(folder / "real")
    (folder / "alias").symlink_to(folder / "real")  # inside the folder: fine
    found = scan([folder], "")
    assert names(found) == ["alias", "real"]
    assert refusals(found) == {"escape": ErrorCode.SYMLINK_ESCAPE}


def test_a_world_writable_file_is_refused(folder: Path) -> None:
    write_plugin(folder / "open", mode=0o777)
    write_plugin(folder / "safe")
    found = scan([folder], "")
    assert names(found) == ["safe"]
    assert refusals(found) == {"open": ErrorCode.UNSAFE_FILE}
    assert "world-writable" in next(i.reason for i in found if isinstance(i, Refusal))


def test_a_world_writable_folder_is_refused_whole(folder: Path) -> None:
    write_plugin(folder / "safe")
    folder.chmod(0o777)
    (refusal,) = scan([folder], "")
    assert isinstance(refusal, Refusal)
    assert refusal.code == ErrorCode.UNSAFE_FILE
    assert refusal.path == str(folder)


def test_a_missing_folder_is_reported_and_the_others_still_scanned(tmp_path: Path, folder: Path) -> None:
    write_plugin(folder / "safe")
    found = scan([tmp_path / "nowhere", folder], "")
    assert names(found) == ["safe"]
    assert refusals(found) == {"nowhere": ErrorCode.CONFIG_FILE_NOT_FOUND}


def test_a_folder_with_a_manifest_is_a_plugin_named_by_it(folder: Path) -> None:
    write_plugin(folder / "echo" / "run")
    write_manifest(folder / "echo", "name: shouter\ncommand: run\nargs: [--loud]\nenv: {MODE: x}\n")
    (folder / "empty").mkdir()  # no manifest: not a plugin
    (candidate,) = scan([folder], "*-plugin")  # the pattern is for files; folders need a manifest
    assert isinstance(candidate, Candidate)
    assert candidate.name == "shouter"
    assert candidate.path == folder / "echo"
    assert isinstance(candidate.source, Subprocess)
    assert candidate.source.executable == str(folder / "echo" / "run")
    assert candidate.source.args == ("--loud",)
    assert candidate.source.env == {"MODE": "x"}
    assert candidate.source.cwd == str(folder / "echo")
    assert candidate.metadata["manifest"] == str(folder / "echo" / "plugin.yaml")


def test_a_grpc_manifest_becomes_a_grpc_source(folder: Path) -> None:
    write_manifest(folder / "pricing", "name: pricing\ntransport: grpc\nendpoint: 127.0.0.1:9\n")
    (candidate,) = scan([folder], "")
    assert isinstance(candidate, Candidate)
    assert candidate.source == Grpc("127.0.0.1:9")


def test_an_invalid_manifest_is_refused_with_its_code_naming_the_file(folder: Path) -> None:
    write_manifest(folder / "broken", "name: broken\ncommand: run\nversoin: 2\n")
    (refusal,) = scan([folder], "")
    assert isinstance(refusal, Refusal)
    assert refusal.code == ErrorCode.CONFIG_UNKNOWN_KEY
    assert refusal.reason.startswith(f"{folder / 'broken' / 'plugin.yaml'}: versoin")


def test_a_manifest_command_that_is_missing_is_refused(folder: Path) -> None:
    write_manifest(folder / "echo", "name: echo\ncommand: run\n")
    (refusal,) = scan([folder], "")
    assert isinstance(refusal, Refusal)
    assert refusal.code == ErrorCode.UNSAFE_FILE
    assert "run" in refusal.reason


def test_a_manifest_command_symlinked_out_of_its_folder_is_refused(tmp_path: Path, folder: Path) -> None:
    outside = write_plugin(tmp_path / "elsewhere")
    write_manifest(folder / "echo", "name: echo\ncommand: run\n")
    (folder / "echo" / "run").symlink_to(outside)
    (refusal,) = scan([folder], "")
    assert isinstance(refusal, Refusal)
    assert refusal.code == ErrorCode.SYMLINK_ESCAPE


def test_a_world_writable_plugin_folder_or_manifest_is_refused(folder: Path) -> None:
    write_manifest(folder / "a", "name: a\ncommand: run\n")
    write_plugin(folder / "a" / "run")
    (folder / "a").chmod(0o777)
    write_manifest(folder / "b", "name: b\ncommand: run\n").chmod(0o666)
    write_plugin(folder / "b" / "run")
    assert refusals(scan([folder], "")) == {"a": ErrorCode.UNSAFE_FILE, "b": ErrorCode.UNSAFE_FILE}


def test_the_manifest_hash_is_checked_at_discovery(folder: Path) -> None:
    run = write_plugin(folder / "good" / "run")
    write_manifest(folder / "good", f"name: good\ncommand: run\nhash: {sha256_of(run)}\n")
    write_plugin(folder / "bad" / "run", version="9.9.9")
    write_manifest(folder / "bad", f"name: bad\ncommand: run\nhash: {sha256_of(run)}\n")
    found = scan([folder], "")
    assert names(found) == ["good"]
    assert refusals(found) == {"bad": ErrorCode.HASH_MISMATCH}


def test_the_fingerprint_changes_when_the_file_is_replaced(folder: Path) -> None:
    write_plugin(folder / "echo")
    (first,) = scan([folder], "")
    (again,) = scan([folder], "")
    write_plugin(folder / "echo", version="2.0.0")
    (changed,) = scan([folder], "")
    assert isinstance(first, Candidate)
    assert isinstance(again, Candidate)
    assert isinstance(changed, Candidate)
    assert first.fingerprint == again.fingerprint
    assert changed.fingerprint != first.fingerprint


async def test_the_manifest_hash_is_checked_again_before_every_start(folder: Path) -> None:
    run = write_plugin(folder / "pinned" / "run")
    write_manifest(folder / "pinned", f"name: pinned\ncommand: run\nhash: {sha256_of(run)}\n")
    (candidate,) = scan([folder], "")
    assert isinstance(candidate, Candidate)
    assert isinstance(candidate.source, Subprocess)
    assert candidate.source.options is not None
    hook = candidate.source.options.prepare_launch
    assert hook is not None
    assert await hook([str(run)]) == [str(run)]
    write_plugin(run, version="6.6.6")  # swapped after discovery: the next spawn refuses it
    with pytest.raises(SecurityError) as caught:
        await hook([str(run)])
    assert caught.value.code == ErrorCode.HASH_MISMATCH
    assert caught.value.details["by"] == "discovery"


def test_a_manifest_without_hash_has_no_launch_hook(folder: Path) -> None:
    write_plugin(folder / "free" / "run")
    write_manifest(folder / "free", "name: free\ncommand: run\n")
    (candidate,) = scan([folder], "")
    assert isinstance(candidate, Candidate)
    assert isinstance(candidate.source, Subprocess)
    assert candidate.source.options is not None
    assert candidate.source.options.prepare_launch is None
