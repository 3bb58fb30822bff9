"""Security: hashing a plugin executable. The whitelist's own case lands with the security feature."""

from __future__ import annotations

from .._model import Case, Versus, register
from ..baselines.files import HASHLIB_FILE, SHA256SUM

register(
    Case(
        "floors.file_hash",
        HASHLIB_FILE,
        (Versus(SHA256SUM),),
        pin="none",
        also_unpinned=False,
        note="info: SHA-256 of a 50 MB file, hashlib in the host against `sha256sum` in a child; "
        "the floor for whitelist hash verification (target ≤ 1.3x sha256sum).",
    )
)
