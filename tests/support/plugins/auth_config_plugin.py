"""A test plugin whose credentials check is an AuthConfig (serve(auth=AuthConfig(...))).

The method comes from argv[1]; the expected secrets from the environment (never inline).
"""

from __future__ import annotations

import sys

from echo_plugin import EchoPlugin

import plugwire
from plugwire import AuthConfig, AuthMethod

if __name__ == "__main__":
    method = AuthMethod(sys.argv[1])
    expected = AuthConfig(
        method=method,
        api_key_env="PLUGIN_API_KEY",
        token_env="PLUGIN_TOKEN",
        username="ops",
        password_env="PLUGIN_PASSWORD",
    )
    plugwire.serve(EchoPlugin(), auth=expected)
