"""The documentation site (mkdocs.yml, `make docs`): every page and every public namespace is
in it, its home page's Quick start is the README's, and links from docs/ to the rest of the
repository are checked and rewritten for it (scripts/docs_links.py). The strict build itself
runs in `make docs`; these checks need no mkdocs."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import plugwire
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def links() -> ModuleType:
    return load_script(ROOT / "scripts" / "docs_links.py")


def nav_pages(nav: list[Any]) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_of_docs_is_in_the_site_nav_once() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert len(pages) == len(set(pages))
    assert sorted(pages) == sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def test_every_public_namespace_has_a_reference_page() -> None:
    namespaces = {"plugwire", *(f"plugwire.{name}" for name in plugwire._NAMESPACES)}
    documented = {}
    for page in (DOCS / "reference").glob("*.md"):
        for name in re.findall(r"^::: (\S+)$", page.read_text(), re.MULTILINE):
            documented[name] = page.name
    assert set(documented) == namespaces
    index = (DOCS / "reference" / "index.md").read_text()
    assert all(f"]({page})" in index for page in documented.values())


def code_blocks(path: Path, heading: str) -> list[str]:
    text = path.read_text()
    section = text[text.index(f"\n## {heading}\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"^```\w*\n.*?^```$", section, re.DOTALL | re.MULTILINE)


def test_the_site_home_shows_the_readme_quick_start_verbatim() -> None:
    # The README's is the one tests/integration/test_readme.py runs from a fresh venv.
    home = [b for b in code_blocks(DOCS / "index.md", "Quick start") if not b.startswith("```sh")]
    readme = code_blocks(ROOT / "README.md", "Quick start")
    assert len(home) == 3
    assert home == readme[1 : 1 + len(home)]


def test_a_link_out_of_docs_becomes_the_files_path_or_its_address_on_the_repository_site(
    links: ModuleType,
) -> None:
    text = "See [the demo](../examples/demo.py) and [`examples/host.py`](../examples/host.py).\n"
    assert links.rewrite(text, "guide.md", None, ROOT) == (
        "See the demo (`examples/demo.py`) and `examples/host.py`.\n",
        [],
    )
    assert links.rewrite("[Quick start](../README.md#quick-start)", "guide.md", None, ROOT) == (
        "Quick start (`README.md`)",
        [],
    )
    assert links.rewrite(
        "[Quick start](../../README.md#quick-start)", "reference/index.md", "https://x.test/r/", ROOT
    ) == (
        "[Quick start](https://x.test/r/blob/HEAD/README.md#quick-start)",
        [],
    )


def test_links_inside_docs_code_and_other_sites_are_left_alone_and_missing_files_are_reported(
    links: ModuleType,
) -> None:
    text = (
        "[errors](errors.md#codes) [site](https://example.com/x) ![img](../logo.png) `[c](../x.py)`\n"
        "```\n[in a fence](../examples/demo.py)\n```\n"
        "[gone](../examples/gone.py) [out](../../etc/passwd)\n"
    )
    rewritten, missing = links.rewrite(text, "guide.md", None, ROOT)
    assert rewritten == text
    assert missing == ["../examples/gone.py"]
    # From a page in a folder of docs/, `..` is still docs/: a page of the site.
    assert links.rewrite("[codes](../errors.md)", "reference/index.md", None, ROOT) == ("[codes](../errors.md)", [])
