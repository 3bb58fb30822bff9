"""`python -m plugwire._cli`: the same as the `plugwire` command."""

from __future__ import annotations

from . import main

main()
