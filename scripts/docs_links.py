"""An mkdocs hook (mkdocs.yml `hooks:`): links from docs/ to files outside it, for the site.

The pages in docs/ are read on GitHub as well as in the site, so a page may link to a file of the
repository outside docs/ with a relative link (`[the demo](../examples/demo.py)`), which works
on GitHub. The site holds docs/ only, and mkdocs's strict build refuses such a link. This hook
checks that the file exists (a link to a missing file is a warning, so the strict build fails)
and rewrites the link: to the file on the repository's web site when mkdocs.yml names one
(`repo_url`), else to its path in code, as the site cannot serve it. Links inside docs/ are
left to mkdocs, which checks them and their anchors; code blocks and code spans are left alone.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.docs_links")  # under "mkdocs": a warning fails --strict

# A link (its text may hold code spans), or a code span, which holds no link: scanned left to
# right, so that a link's text and a code span are each taken whole.
TOKEN = re.compile(
    r"(?<!!)\[(?P<text>(?:`[^`\n]*`|[^\]`\n])+)\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)"
    r"|(?P<code>`+).+?(?<!`)(?P=code)(?!`)"
)
FENCE = re.compile(r"^\s*(```|~~~)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def rewrite(markdown: str, page: str, repo_url: str | None, root: Path, docs: str = "docs") -> tuple[str, list[str]]:
    """`markdown` of the page at `page` (a path under `docs`, relative to the repository
    `root`) with its links out of `docs` rewritten; and the targets of those that name no file."""
    missing: list[str] = []
    page_dir = posixpath.dirname(posixpath.join(docs, page))

    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        if target is None or SCHEME.match(target) or target.startswith("/"):
            return match[0]
        path = posixpath.normpath(posixpath.join(page_dir, target))
        if path == docs or path.startswith((f"{docs}/", "../")):
            return match[0]  # a page of the site (mkdocs checks it), or outside the repository
        if not (root / path).exists():
            missing.append(target)
            return match[0]
        if repo_url:
            return f"[{match['text']}]({repo_url.rstrip('/')}/blob/HEAD/{path}{match['anchor'] or ''})"
        text = match["text"]
        return f"`{path}`" if text.strip("`") == path else f"{text} (`{path}`)"

    out: list[str] = []
    fenced = False
    for line in markdown.splitlines(keepends=True):
        if FENCE.match(line):
            fenced = not fenced
        if fenced or FENCE.match(line):
            out.append(line)
            continue
        out.append(TOKEN.sub(replace, line))
    return "".join(out), missing


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """mkdocs's hook: each page's Markdown before it is rendered."""
    root = Path(config["config_file_path"]).resolve().parent
    docs = Path(config["docs_dir"]).resolve().relative_to(root).as_posix()
    text, missing = rewrite(markdown, page.file.src_uri, config.get("repo_url"), root, docs)
    for target in missing:
        log.warning("Doc file '%s' links to '%s', which is no file of the repository.", page.file.src_uri, target)
    return text
