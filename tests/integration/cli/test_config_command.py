"""`plugwire config validate` and `plugwire config show`, through click's runner and as a real
`python -m plugwire` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from plugwire._cli._app import cli
from plugwire._config import ManagerConfig


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


GOOD = """\
plugins:
  - name: echo
    executable: sys.executable
    args: [plugin.py]
    env: {API_KEY: abc123, LANG: C, DB_PASSWORD: hunter2, Session_Cookie: c00kie}
    auth: {method: api-key, api_key: inline-secret, api_key_file: "", token_env: MY_TOKEN}
    metadata: {owner: ops, deploy_token: t0k}
  - name: remote
    transport: grpc
    endpoint: localhost:50051
    auth: {method: basic, username: alice, password: pa55}
"""


def test_validate_says_ok_with_the_plugin_count(tmp_path: Path) -> None:
    file = write(tmp_path, "host.yaml", GOOD)
    code, out, err = run("config", "validate", str(file))
    assert (code, out, err) == (0, f"ok: {file} (2 plugins)\n", "")
    code, out, _ = run("config", "validate", "--json", str(file))
    assert code == 0
    assert json.loads(out) == {"file": str(file), "ok": True, "plugins": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plugns: []\n", "plugns: unknown key; did you mean 'plugins'?"),
        (
            "plugins: [{name: a, executable: x, executabel: y}]\n",
            "plugins[0] ('a').executabel: unknown key; did you mean 'executable'?",
        ),
        (
            "plugins: [{name: a, executable: x, retry: {max_retires: 1}}]\n",
            "plugins[0] ('a').retry.max_retires: unknown key; did you mean 'max_retries'?",
        ),
        (
            "plugins: [{name: a, executable: x, auth: {methd: none}}]\n",
            "plugins[0] ('a').auth.methd: unknown key; did you mean 'method'?",
        ),
        (
            "plugins: [{name: a, executable: x, transport: grcp}]\n",
            "did you mean 'grpc'?",
        ),
        ("metrics: {enabeld: true}\n", "metrics.enabeld: unknown key; did you mean 'enabled'?"),
        (
            "security: {audit_config: {audit_fle: x}}\n",
            "security.audit_config.audit_fle: unknown key; did you mean 'audit_file'?",
        ),
        ("hot_reload: {debounse: 1s}\n", "hot_reload.debounse: unknown key; did you mean 'debounce'?"),
        ("discovery: {directoris: [x]}\n", "discovery.directoris: unknown key; did you mean 'directories'?"),
        ("log_level: warn\n", "did you mean 'warning'?"),
    ],
)
def test_validate_suggests_the_key_or_value_meant_at_every_level(tmp_path: Path, text: str, expected: str) -> None:
    file = write(tmp_path, "host.yaml", text)
    code, out, err = run("config", "validate", str(file))
    assert code == 1
    assert out == ""
    assert err.startswith("plugwire: [10")
    assert expected in err
    assert err.count("\n") == 1  # one line, no traceback


def test_validate_reports_an_unknown_transport_with_its_code(tmp_path: Path) -> None:
    file = write(tmp_path, "host.yaml", "plugins: [{name: a, transport: carrier-pigeon, endpoint: x}]\n")
    code, out, _ = run("config", "validate", "--json", str(file))
    assert code == 1
    error = json.loads(out)["error"]
    assert (error["code"], error["name"]) == (1007, "CONFIG_UNKNOWN_TRANSPORT")
    assert "'carrier-pigeon' is not a transport" in error["message"]


def test_validate_fails_on_a_yaml_syntax_error_with_its_code(tmp_path: Path) -> None:
    file = write(tmp_path, "host.yaml", "plugins: [\n  - name: x")
    code, out, err = run("config", "validate", str(file))
    assert code == 1
    assert out == ""
    assert err.startswith(f"plugwire: [1702 CONFIG_FILE_UNREADABLE] {file}: malformed:")


def test_validate_fails_on_what_the_host_refuses_at_start_when_security_is_on(tmp_path: Path) -> None:
    file = write(tmp_path, "host.yaml", "security: {enabled: true, policy: strict, hash_algorithm: sha265}\n")
    code, _, err = run("config", "validate", str(file))
    assert code == 1
    assert "[1805 UNKNOWN_HASH_ALGORITHM]" in err
    file.write_text("security: {enabled: true, policy: strict, whitelist_file: missing.whitelist}\n")
    code, _, err = run("config", "validate", str(file))
    assert code == 1
    assert "[1804 WHITELIST_MALFORMED]" in err


@pytest.mark.parametrize("command", ["validate", "show"])
def test_a_file_that_cannot_be_read_is_a_usage_error(tmp_path: Path, command: str) -> None:
    code, _, err = run("config", command, str(tmp_path / "missing.yaml"))
    assert code == 2
    assert err == f"plugwire: [1701 CONFIG_FILE_NOT_FOUND] {tmp_path / 'missing.yaml'}: no such file\n"
    code, _, err = run("config", command, str(write(tmp_path, "host.ini", "[x]\n")))
    assert code == 2
    assert "[1703 CONFIG_FILE_FORMAT]" in err


def test_an_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    not_a_folder = write(tmp_path, "host.yaml", GOOD)
    code, out, _ = run("config", "validate", "--json", str(not_a_folder / "inner.yaml"))
    assert code == 2
    error = json.loads(out)["error"]
    assert (error["code"], error["name"]) == (1702, "CONFIG_FILE_UNREADABLE")
    assert "cannot read: Not a directory" in error["message"]


def test_show_prints_every_default_and_redacts_every_secret(tmp_path: Path) -> None:
    file = write(tmp_path, "host.yaml", GOOD)
    code, out, _ = run("config", "show", str(file))
    assert code == 0
    assert out.startswith(f"# {file}: the effective config")
    shown = yaml.safe_load(out)
    echo, remote = shown["plugins"]
    assert echo["retry"]["max_retries"] == 3  # a default filled in
    assert echo["executable"] == sys.executable
    assert echo["env"] == {"API_KEY": "***", "LANG": "C", "DB_PASSWORD": "***", "Session_Cookie": "***"}
    assert echo["metadata"] == {"owner": "ops", "deploy_token": "***"}
    assert echo["auth"]["api_key"] == "***"
    assert echo["auth"]["token_env"] == "MY_TOKEN"  # where the secret is, not the secret
    assert echo["auth"]["token"] == ""  # unset stays visibly unset
    assert remote["auth"]["password"] == "***"
    assert remote["auth"]["username"] == "alice"
    for secret in ("abc123", "hunter2", "c00kie", "t0k", "inline-secret", "pa55"):
        assert secret not in out
    code, json_out, _ = run("config", "show", "--json", str(file))
    assert code == 0
    assert json.loads(json_out) == shown


def test_show_output_without_secrets_loads_back_as_the_same_config(tmp_path: Path) -> None:
    file = write(tmp_path, "host.yaml", "plugins: [{name: a, executable: ./a.sh, retry: {initial_interval: 250ms}}]\n")
    code, out, _ = run("config", "show", str(file))
    assert code == 0
    again = write(tmp_path, "again.yaml", out)
    assert ManagerConfig.load(again) == ManagerConfig.load(file)


def test_show_refuses_an_invalid_config_with_its_coded_error(tmp_path: Path) -> None:
    file = write(tmp_path, "host.yaml", "plugins: [{name: a, executable: x, retry: {max_retires: 1}}]\n")
    code, out, err = run("config", "show", str(file))
    assert (code, out) == (2, "")
    assert err.startswith("plugwire: [1001 CONFIG_UNKNOWN_KEY]")


def test_the_installed_entry_point_validates_and_shows(tmp_path: Path) -> None:
    good = write(tmp_path, "host.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", "plugins: [{name: a, executable: x, retry: {max_retires: 1}}]\n")
    command = [sys.executable, "-m", "plugwire", "config"]
    done = subprocess.run([*command, "validate", str(bad)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "did you mean 'max_retries'?" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [*command, "show", "--json", str(good)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "COLUMNS": "60"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plugins"][0]["auth"]["api_key"] == "***"
