"""Shell completion through click's protocol, asked of the installed `plugwire` script the way
a shell asks it: `_PLUGWIRE_COMPLETE=<shell>_source` prints the script to source, and
`_PLUGWIRE_COMPLETE=bash_complete` with `COMP_WORDS`/`COMP_CWORD` answers one completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from plugwire._cli._app import cli

# pip puts the entry point beside the interpreter; completion needs the command's own name
# (`python -m plugwire` would be asked for under another variable).
SCRIPT = Path(sys.executable).with_name("plugwire")


def complete(env: dict[str, str]) -> str:
    assert SCRIPT.exists(), f"the plugwire command is not installed beside {sys.executable}"
    result = subprocess.run(
        [str(SCRIPT)], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def bash_complete(*words: str, real: bool = False) -> list[str]:
    """The completions of the last of `words` (an empty string: a new word after a space),
    from the installed script (`real`) or through click's runner."""
    env = {"_PLUGWIRE_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    if real:
        out = complete(env)
    else:
        result = CliRunner().invoke(cli, [], prog_name="plugwire", env=env)
        assert result.exit_code == 0, result.output
        out = result.output
    return [line for line in out.splitlines() if line]


def test_each_shell_gets_a_script_to_source() -> None:
    for shell, marker in [
        ("bash", "complete -o nosort -F _plugwire_completion plugwire"),
        ("zsh", "#compdef plugwire"),
        ("fish", "complete --no-files --command plugwire"),
    ]:
        script = complete({"_PLUGWIRE_COMPLETE": f"{shell}_source"})
        assert marker in script, shell
        assert "_PLUGWIRE_COMPLETE=" in script


def test_the_installed_command_completes_command_names_and_options() -> None:
    assert bash_complete("plugwire", "wh", real=True) == ["plain,whitelist"]
    assert bash_complete("plugwire", "whitelist", "add", "--al", real=True) == ["plain,--algorithm"]


def test_subcommands_options_files_and_whitelist_names_complete(tmp_path: Path) -> None:
    assert bash_complete("plugwire", "whitelist", "re") == ["plain,remove"]
    assert bash_complete("plugwire", "audit", "tail", "--fo") == ["plain,--follow"]
    assert bash_complete("plugwire", "audit", "tail", "") == ["file,"]  # DB: the shell lists files
    whitelist = tmp_path / "w.yaml"
    whitelist.write_text("plugins: [{name: auth, endpoint: 'a:1'}, {name: audit-sink, endpoint: 'b:2'}, "
                         "{name: pricing, endpoint: 'c:3'}]")  # fmt: skip
    assert bash_complete("plugwire", "whitelist", "remove", str(whitelist), "au") == ["plain,auth", "plain,audit-sink"]
    assert bash_complete("plugwire", "whitelist", "update", str(whitelist), "") == [
        "plain,auth", "plain,audit-sink", "plain,pricing",
    ]  # fmt: skip
    assert bash_complete("plugwire", "whitelist", "update", str(tmp_path / "absent.yaml"), "au") == []
