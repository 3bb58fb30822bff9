"""The host side's view of `tests/support/plugins/echo_plugin.py`: its request and response.

`Resp.text` has a default here (the plugin's has none), so a host decodes every answer the
plugin gives, including the empty ones of `sick` and `sleep`.
"""

from __future__ import annotations

import msgspec

__all__ = ["Req", "Resp"]


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class Resp(msgspec.Struct):
    text: str = ""
    pid: int = 0
