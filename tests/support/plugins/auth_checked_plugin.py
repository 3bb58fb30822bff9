"""A test plugin that refuses hosts without the right bearer token (serve(auth=...))."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from echo_plugin import EchoPlugin

import plugwire


def verify(credentials: Mapping[str, str]) -> None:
    given = credentials.get("authorization")
    if given is None:
        raise plugwire.errors.AuthenticationError(
            "no credentials", code=plugwire.errors.ErrorCode.AUTH_MISSING_CREDENTIALS
        )
    if not hmac.compare_digest(given, "Bearer let-me-in"):
        raise plugwire.errors.AuthenticationError(
            "wrong token", code=plugwire.errors.ErrorCode.AUTH_INVALID_CREDENTIALS
        )


if __name__ == "__main__":
    plugwire.serve(EchoPlugin(), auth=verify)
