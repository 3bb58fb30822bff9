"""`python -m plugwire`: the same as the `plugwire` command."""

from __future__ import annotations

from ._cli import main

main()
