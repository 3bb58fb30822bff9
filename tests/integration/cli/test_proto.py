"""`plugwire proto`: the packaged contracts, their agreement with the sources, and the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from plugwire._cli._app import cli

ROOT = Path(__file__).resolve().parents[3]
SOURCES = {
    "plugwire/v1/plugin.proto": ROOT / "proto" / "plugwire" / "v1" / "plugin.proto",
    "protocol.md": ROOT / "docs" / "protocol.md",
}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["proto", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(("name", "source"), SOURCES.items())
def test_the_packaged_copies_equal_their_sources(name: str, source: Path) -> None:
    copy = ROOT / "src" / "plugwire" / "_contracts" / name
    assert copy.read_bytes() == source.read_bytes(), f"run `python scripts/check_proto.py --write` ({name})"


def test_the_default_is_the_path_of_the_packaged_proto() -> None:
    status, output = invoke()
    assert status == 0
    path = Path(output.strip())
    assert path.is_file()
    assert path.parts[-4:] == ("_contracts", "plugwire", "v1", "plugin.proto")
    assert path.read_bytes() == SOURCES["plugwire/v1/plugin.proto"].read_bytes()


def test_text_prints_the_proto_and_protocol_its_document() -> None:
    assert invoke("--text") == (0, SOURCES["plugwire/v1/plugin.proto"].read_text())
    assert invoke("--protocol", "--text") == (0, SOURCES["protocol.md"].read_text())
    status, output = invoke("--protocol")
    assert status == 0
    assert Path(output.strip()).read_bytes() == SOURCES["protocol.md"].read_bytes()


def test_the_include_dir_is_what_protoc_takes_as_its_import_root(tmp_path: Path) -> None:
    status, output = invoke("--include-dir")
    assert status == 0
    from grpc_tools import protoc

    root = output.strip()
    made = protoc.main(["protoc", f"-I{root}", f"--python_out={tmp_path}", "plugwire/v1/plugin.proto"])
    assert made == 0
    assert (tmp_path / "plugwire" / "v1" / "plugin_pb2.py").is_file()


def test_json_gives_every_path_for_scripts() -> None:
    status, output = invoke("--json")
    assert status == 0
    data = json.loads(output)
    assert data["service"] == "plugwire.v1.Plugin"
    assert Path(data["include_dir"], data["proto_import"]) == Path(data["proto"])
    assert Path(data["protocol"]).name == "protocol.md"


@pytest.mark.parametrize(
    "args",
    [["--include-dir", "--text"], ["--include-dir", "--protocol"], ["--json", "--text"], ["--nope"]],
)
def test_options_that_do_not_go_together_are_usage_errors(args: list[str]) -> None:
    status, output = invoke(*args)
    assert status == 2
    assert "Traceback" not in output


def test_the_installed_command_prints_the_path() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "plugwire", "proto"], capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()).is_file()


@pytest.mark.once  # builds the wheel: the same on every interpreter
def test_the_built_wheel_ships_both_contracts(tmp_path: Path) -> None:
    # Built offline with the dev extra's hatchling (about 2 s): the files a pip user gets.
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("plugwire-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name, source in SOURCES.items():
            assert archive.read(f"plugwire/_contracts/{name}") == source.read_bytes()
        names = set(archive.namelist())
    # `plugwire new` reads its templates from the installed package too.
    assert {f"plugwire/_cli/templates/{lang}/README.md.tmpl" for lang in ("python", "node")} <= names
