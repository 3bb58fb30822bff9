"""`plugwire whitelist add|update|remove`: every file they write loads and verifies, keeps what
it can of the old file, is replaced atomically, and no concurrent edit is lost."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from plugwire._cli._app import cli
from plugwire._security import load_whitelist


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    return result.exit_code, result.output


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def read(path: Path) -> Any:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix == ".toml":
        return tomllib.loads(text)
    return yaml.safe_load(text)


def assert_loads_and_verifies(whitelist: Path) -> None:
    load_whitelist(whitelist)  # raises on anything the host would refuse
    code, output = run("whitelist", "verify", whitelist)
    assert code == 0, output


def make_plugin(folder: Path, name: str, body: str = "echo hi") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    make_plugin(folder, "auth")
    make_plugin(folder, "pricing", "echo 42")
    return folder


def test_add_creates_a_whitelist_that_loads_and_verifies(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "plugins.whitelist"
    code, output = run("whitelist", "add", whitelist, "--name", "auth", plugins / "auth")
    assert code == 0, output
    assert "added 'auth' (new file)" in output
    data = yaml.safe_load(whitelist.read_text())
    assert data["version"] == "1.0"
    assert data["plugins"] == [
        {"name": "auth", "path": "./plugins/auth", "hash": sha256(plugins / "auth"), "algorithm": "sha256",
         "enabled": True},
    ]  # fmt: skip
    assert load_whitelist(whitelist).get("auth").path == plugins / "auth"  # type: ignore[union-attr]
    assert_loads_and_verifies(whitelist)
    umask = os.umask(0)
    os.umask(umask)
    assert whitelist.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["plugins", "plugins.whitelist"]  # no temporary file left


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".toml"])
def test_each_edit_keeps_the_rest_of_the_file_in_its_own_format(tmp_path: Path, plugins: Path, suffix: str) -> None:
    whitelist = tmp_path / f"w{suffix}"
    kept = {"name": "legacy", "hash": "ab" * 32, "path": "/opt/legacy", "metadata": {"owner": "ops", "tier": "2"}}
    start = {"version": "2.1", "plugins": [kept]}
    if suffix == ".toml":
        whitelist.write_text(
            'version = "2.1"\n\n[[plugins]]\nname = "legacy"\nhash = "' + "ab" * 32 + '"\npath = "/opt/legacy"\n'
            'metadata = { owner = "ops", tier = "2" }\n'
        )
    else:
        whitelist.write_text(json.dumps(start) if suffix == ".json" else yaml.safe_dump(start))
    whitelist.chmod(0o640)
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    assert run("whitelist", "add", whitelist, "-n", "grpc-one", "--endpoint", "pricing.internal:9090")[0] == 0
    code, output = run("whitelist", "update", whitelist, "auth", "--path", plugins / "pricing", "-a", "sha512")
    assert code == 0, output
    data = read(whitelist)
    assert data["version"] == "2.1"
    assert data["plugins"][0] == kept
    assert data["plugins"][1]["hash"] == "sha512:" + hashlib.sha512((plugins / "pricing").read_bytes()).hexdigest()
    assert data["plugins"][2] == {"name": "grpc-one", "endpoint": "pricing.internal:9090", "enabled": True}
    load_whitelist(whitelist)
    assert run("whitelist", "remove", whitelist, "legacy")[0] == 0
    assert [entry["name"] for entry in read(whitelist)["plugins"]] == ["auth", "grpc-one"]
    assert_loads_and_verifies(whitelist)
    assert whitelist.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["plugins", f"w{suffix}"]


def test_add_refuses_a_name_already_listed_and_says_to_update(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    before = whitelist.read_bytes()
    code, output = run("whitelist", "add", whitelist, "-n", "auth", plugins / "pricing")
    assert code == 2
    assert "[1807 WHITELIST_DUPLICATE_NAME]" in output
    assert f"plugwire whitelist update {whitelist} auth" in output
    assert whitelist.read_bytes() == before
    assert run("whitelist", "add", whitelist, "-n", "one", "--endpoint", "h:1")[0] == 0
    code, output = run("whitelist", "add", whitelist, "-n", "two", "--endpoint", "h:1")
    assert code == 2
    assert "duplicate endpoint 'h:1'" in output
    assert "update" not in output  # the hint is for a duplicate name only
    assert len(load_whitelist(whitelist)) == 2


def test_add_refuses_bad_input_and_leaves_the_file_alone(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    cases = [
        (["--name", "auth"], "give the plugin's file (PLUGIN_PATH) or its --endpoint"),
        (["--name", "auth", plugins / "auth", "--endpoint", "h:1"], "not both or neither"),
        (["--name", "auth", tmp_path / "absent"], "does not exist"),
        (["--name", "-bad name", plugins / "auth"], "expected 1-128 letters"),
        (["--name", "auth", "-a", "md5", plugins / "auth"], "'md5' is not one of"),
        ([plugins / "auth"], "Missing option '--name'"),
    ]
    for args, message in cases:
        code, output = run("whitelist", "add", whitelist, *args)
        assert (code, message in output) == (2, True), (args, output)
    assert not whitelist.exists()
    writable = make_plugin(tmp_path / "shared", "open")
    writable.chmod(0o775)
    code, output = run("whitelist", "add", whitelist, "--name", "open", writable)
    assert code == 2
    assert "[1809 UNSAFE_FILE]" in output
    assert "group- or world-writable" in output
    assert not whitelist.exists()


def test_a_file_the_host_would_refuse_is_never_edited(tmp_path: Path, plugins: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("plugins: [name: {\n")
    duplicate = tmp_path / "dup.json"
    entry = {"name": "a", "path": str(plugins / "auth"), "hash": sha256(plugins / "auth")}
    duplicate.write_text(json.dumps({"plugins": [entry, entry]}))
    for whitelist, code_name in [(bad_yaml, "1804 WHITELIST_MALFORMED"), (duplicate, "1807 WHITELIST_DUPLICATE_NAME")]:
        before = whitelist.read_bytes()
        for args in (["add", whitelist, "-n", "x", plugins / "auth"], ["update", whitelist, "a"],
                     ["remove", whitelist, "a"]):  # fmt: skip
            code, output = run("whitelist", *args)
            assert code == 2, output
            assert f"[{code_name}]" in output
            assert "Traceback" not in output
        assert whitelist.read_bytes() == before
    code, output = run("whitelist", "add", tmp_path, "-n", "x", plugins / "auth")
    assert code == 2
    assert "is a directory" in output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_whitelist_is_a_coded_error(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    whitelist.chmod(0)
    code, output = run("whitelist", "update", whitelist, "auth")
    assert code == 2
    assert "[1804 WHITELIST_MALFORMED]" in output
    assert "cannot read" in output


def test_update_pins_a_changed_file_again_and_verify_passes_again(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    inode = whitelist.stat().st_ino
    code, output = run("whitelist", "update", whitelist, "auth")
    assert code == 0
    assert "unchanged 'auth'" in output
    assert whitelist.stat().st_ino == inode  # nothing changed, nothing written
    old = sha256(plugins / "auth")
    (plugins / "auth").write_text("#!/bin/sh\necho new release\n")
    assert run("whitelist", "verify", whitelist)[0] == 1
    code, output = run("whitelist", "update", whitelist, "auth", "--disabled")
    assert code == 0, output
    assert f"hash: {sha256(plugins / 'auth')}  (was {old})" in output
    assert "enabled: false  (was true)" in output
    assert whitelist.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert load_whitelist(whitelist).get("auth").enabled is False  # type: ignore[union-attr]
    assert_loads_and_verifies(whitelist)
    code, output = run("whitelist", "update", whitelist, "auth", "--enabled", "--json")
    assert json.loads(output)["entry"]["enabled"] is True
    assert json.loads(output)["previous"]["enabled"] is False


def test_update_points_an_endpoint_entry_elsewhere_and_refuses_to_mix_kinds(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.json"
    assert run("whitelist", "add", whitelist, "-n", "grpc", "--endpoint", "a.internal:1")[0] == 0
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    code, output = run("whitelist", "update", whitelist, "grpc", "--endpoint", "b.internal:2", "--json")
    assert code == 0
    assert json.loads(output)["entry"] == {"name": "grpc", "endpoint": "b.internal:2", "enabled": True}
    assert load_whitelist(whitelist).by_endpoint("b.internal:2") is not None
    code, output = run("whitelist", "update", whitelist, "grpc", "--path", plugins / "auth")
    assert code == 2
    assert "pins an endpoint, not a file" in output
    code, output = run("whitelist", "update", whitelist, "auth", "--endpoint", "c:3")
    assert code == 2
    assert "pins a file, not an endpoint" in output
    assert_loads_and_verifies(whitelist)


def test_update_and_remove_name_the_closest_entry_for_an_unknown_name(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    assert run("whitelist", "add", whitelist, "-n", "auth-service", plugins / "auth")[0] == 0
    for command in ("update", "remove"):
        code, output = run("whitelist", command, whitelist, "auth-servce")
        assert code == 2
        assert "[1801 NOT_WHITELISTED]" in output
        assert "no entry named 'auth-servce'; did you mean 'auth-service'?" in output
    code, output = run("whitelist", "remove", tmp_path / "absent.yaml", "auth")
    assert code == 2
    assert "[1804 WHITELIST_MALFORMED]" in output
    assert "no such file" in output


def test_update_of_an_entry_whose_file_is_gone_fails_with_a_code(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    (plugins / "auth").unlink()
    code, output = run("whitelist", "update", whitelist, "auth")
    assert code == 2
    assert "[1809 UNSAFE_FILE]" in output
    assert "no such file" in output
    code, output = run("whitelist", "update", whitelist, "auth", "--path", plugins / "auth")
    assert code == 2
    assert "does not exist" in output


def test_remove_of_the_last_entry_leaves_a_loadable_empty_whitelist(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    code, output = run("whitelist", "remove", whitelist, "auth")
    assert code == 0
    assert "removed 'auth'" in output
    assert len(load_whitelist(whitelist)) == 0
    code, output = run("whitelist", "remove", whitelist, "auth")
    assert code == 2
    assert "the whitelist has no entries" in output


def test_an_edit_through_a_symlink_replaces_the_file_it_leads_to(tmp_path: Path, plugins: Path) -> None:
    real = tmp_path / "config" / "w.yaml"
    real.parent.mkdir()
    assert run("whitelist", "add", real, "-n", "auth", (plugins / "auth").resolve())[0] == 0
    link = tmp_path / "w.yaml"
    link.symlink_to(real)
    assert run("whitelist", "add", link, "-n", "pricing", plugins / "pricing")[0] == 0
    assert link.is_symlink()
    assert [entry.name for entry in load_whitelist(real)] == ["auth", "pricing"]
    # a path below the link's folder is written relative to it, as the host resolves it
    assert read(real)["plugins"][1]["path"] == "./plugins/pricing"
    assert_loads_and_verifies(link)


def test_entries_outside_the_whitelists_folder_keep_absolute_paths(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "etc" / "w.yaml"
    whitelist.parent.mkdir()
    assert run("whitelist", "add", whitelist, "-n", "auth", plugins / "auth")[0] == 0
    assert read(whitelist)["plugins"][0]["path"] == str(plugins / "auth")
    assert_loads_and_verifies(whitelist)


ADDER = """
import sys
from plugwire._cli._app import cli
whitelist, prefix, plugin = sys.argv[1:4]
for index in range(int(sys.argv[4])):
    cli.main(["whitelist", "add", whitelist, "--name", f"{prefix}-{index}", plugin], standalone_mode=False)
"""


def test_two_processes_adding_at_once_lose_no_entry(tmp_path: Path, plugins: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    count = 12
    command = [sys.executable, "-c", ADDER, str(whitelist)]
    adders = [
        subprocess.Popen(
            [*command, side, str(plugins / "auth"), str(count)], env=env, stderr=subprocess.PIPE, text=True
        )
        for side in ("left", "right")
    ]
    for adder in adders:
        _, errors = adder.communicate(timeout=60)
        assert adder.returncode == 0, errors
    names = {entry.name for entry in load_whitelist(whitelist)}
    assert names == {f"{prefix}-{index}" for prefix in ("left", "right") for index in range(count)}
    assert_loads_and_verifies(whitelist)
    assert sorted(os.listdir(tmp_path)) == ["plugins", "w.yaml"]


def test_the_installed_command_edits_a_whitelist(tmp_path: Path, plugins: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "60"}
    whitelist = tmp_path / "w.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "plugwire", "whitelist", "add", str(whitelist), "--name", "auth", str(plugins / "auth")],
        capture_output=True, text=True, env=env, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "added 'auth' (new file)" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "plugwire", "whitelist", "remove", str(whitelist), "nope"],
        capture_output=True, text=True, env=env, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("plugwire: [1801 NOT_WHITELISTED]")
    assert "Traceback" not in result.stderr
