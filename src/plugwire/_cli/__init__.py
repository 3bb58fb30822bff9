"""The `plugwire` command line (behind the `cli` extra: click and rich)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the `plugwire` command; says which extra to install when click or rich is missing."""
    try:
        from ._app import cli
    except ImportError as exc:  # the cli extra is not installed
        sys.stderr.write(f"plugwire: the command line needs: pip install 'plugwire[cli]' ({exc})\n")
        raise SystemExit(1) from None
    cli()
