"""`redacted`: a config as `plugwire config show` prints it, every declared secret hidden."""

from __future__ import annotations

from plugwire._cli._config import REDACTED, redacted
from plugwire._config import AuthConfig, ManagerConfig, PluginConfig


def test_repr_and_redaction_hide_exactly_the_declared_secrets() -> None:
    auth = AuthConfig(api_key="k-123", token="t-456", password="p-789", username="bob", token_file="/run/token")
    shown = repr(auth)
    for secret in ("k-123", "t-456", "p-789"):
        assert secret not in shown
    for plain in ("bob", "/run/token"):
        assert plain in shown
    config = ManagerConfig(
        plugins=(
            PluginConfig(name="a", executable="x", auth=auth, env={"GH_TOKEN": "g", "HOME": "/h", "EMPTY_KEY": ""}),
        )
    )
    data = redacted(config)["plugins"][0]
    assert data["auth"]["api_key"] == data["auth"]["token"] == data["auth"]["password"] == REDACTED
    assert data["auth"]["token_file"] == "/run/token"
    assert data["env"] == {"GH_TOKEN": REDACTED, "HOME": "/h", "EMPTY_KEY": ""}
