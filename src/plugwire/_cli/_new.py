"""`plugwire new NAME --lang python|node`: a new plugin project from the packaged templates.

The templates (`_cli/templates/<lang>/*.tmpl`) hold `{{placeholders}}`: the plugin's names,
and the protocol's constants and error codes filled from plugwire's own definitions, so a
scaffolded Node.js plugin speaks the protocol this plugwire speaks.
"""

from __future__ import annotations

import keyword
import re
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from .._errors import ErrorCode
from .._protocol import DEFAULT_MAX_FRAME, MAGIC_COOKIE
from ._common import JSON_OPTION, console, fail, print_json

__all__ = ["LANGUAGES", "new_command", "render", "scaffold", "valid_name"]

LANGUAGES = ("python", "node")
_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_]+)\}\}")
_MAX_NAME = 64
# Module names a scaffolded project must not shadow: its own test imports them.
_TAKEN = frozenset({"plugwire", "msgspec", "pytest", "conftest", "setup"})


def valid_name(name: str) -> str | None:
    """Why `name` cannot name a plugin, or None when it can: lower-case letters and digits,
    words joined by '-' or '_', a letter first, at most 64 characters, and (as a Python module
    name) no keyword, standard-library module or test-module name."""
    if len(name) > _MAX_NAME or not _NAME.fullmatch(name):
        return (
            f"{name[:80]!r} is not a plugin name: use lower-case letters and digits, words joined by "
            f"'-' or '_', starting with a letter (at most {_MAX_NAME} characters), e.g. 'text-stats'"
        )
    module = name.replace("-", "_")
    if keyword.iskeyword(module) or module in sys.stdlib_module_names or module in _TAKEN:
        return f"{name!r} would shadow the Python module {module!r}; choose another name"
    if module.startswith("test"):
        return f"{name!r} starts with 'test': pytest would take the plugin for a test module"
    return None


def _values(name: str) -> dict[str, str]:
    module = name.replace("-", "_")
    values = {code.name: str(int(code)) for code in ErrorCode}
    values.update(
        name=name,
        module=module,
        cls="".join(part.capitalize() for part in module.split("_")) + "Plugin",
        MAGIC_COOKIE=MAGIC_COOKIE,
        DEFAULT_MAX_FRAME=str(DEFAULT_MAX_FRAME),
    )
    return values


def render(template: str, values: dict[str, str]) -> str:
    """`template` with every `{{key}}` replaced by `values[key]`.

    Raises:
        KeyError: A placeholder without a value (a template's mistake, caught by the tests).
    """
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def scaffold(name: str, lang: str, target: Path) -> list[Path]:
    """Write the project of plugin `name` in `lang` into `target` (created if missing).

    Returns:
        The files written, in order.
    """
    values = _values(name)
    templates = resources.files("plugwire").joinpath("_cli", "templates", lang)
    sources: list[Traversable] = sorted(
        (t for t in templates.iterdir() if t.name.endswith(".tmpl")), key=lambda t: t.name
    )
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for template in sources:
        filename = template.name.removesuffix(".tmpl")
        filename = filename.replace("__module__", values["module"]).replace("__name__", name)
        path = target / filename
        path.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        if path.suffix == ".js":
            path.chmod(0o755)  # runnable as ./name.js (its first line names node)
        written.append(path)
    return written


@click.command("new")
@click.argument("name")
@click.option(
    "--lang", type=click.Choice(LANGUAGES), default="python", show_default=True, help="The plugin's language."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the project (default: ./NAME); must not exist or be empty.",
)
@JSON_OPTION
def new_command(*, name: str, lang: str, directory: Path | None, as_json: bool) -> None:
    """Write a new plugin project NAME: the plugin, a README, and a pytest test that runs the
    plugin through `plugwire check` and calls it through a host.

    Python: a module with msgspec request and response types served by `plugwire.serve`.
    Node.js: a plugin speaking the wire protocol with the JSON codec, no npm packages.

    Exit status: 0 written, 2 a bad NAME or a target folder that is not empty.
    """
    problem = valid_name(name)
    if problem:
        fail(problem)
    target = directory if directory is not None else Path(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        fail(f"{target} exists and is not an empty folder: choose another --dir")
    try:
        written = scaffold(name, lang, target)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    runner = "python" if lang == "python" else "node"
    entry = next(p for p in written if p.suffix in (".py", ".js") and not p.name.startswith("test_"))
    steps = [f"cd {target}", "pytest", f'plugwire check --data \'{{"text": "hi"}}\' -- {runner} {entry.name}']
    if as_json:
        print_json({"name": name, "lang": lang, "dir": str(target), "files": [str(p) for p in written], "next": steps})
        return
    out = console()
    out.print(f"created plugin [bold]{name}[/] ({lang}) in {target}:", soft_wrap=True)
    for path in written:
        out.print(f"  {path.name}", soft_wrap=True)
    out.print("next:", soft_wrap=True)
    for step in steps:
        out.print(f"  {step}", soft_wrap=True, markup=False)
