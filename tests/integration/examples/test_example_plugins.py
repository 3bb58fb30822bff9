"""The example plugins run as real subprocesses and do their job."""

from __future__ import annotations

import shutil
import sys

import pytest

import plugwire
from tests.support.procguard import EXAMPLES, manager_for, plugin_env
from tests.support.scripts import load_script

AuthRequest = load_script(EXAMPLES / "auth_plugin.py").AuthRequest
AuthResponse = load_script(EXAMPLES / "auth_plugin.py").AuthResponse
StatsRequest = load_script(EXAMPLES / "text_stats.py").StatsRequest
StatsResponse = load_script(EXAMPLES / "text_stats.py").StatsResponse

pytestmark = pytest.mark.usefixtures("no_leaks")
ENV = plugin_env()


async def test_the_auth_plugin_accepts_the_right_token_and_refuses_a_wrong_one() -> None:
    source = plugwire.subprocess(sys.executable, str(EXAMPLES / "auth_plugin.py"), env=ENV)
    async with manager_for(AuthRequest, AuthResponse) as manager:
        await manager.register(source, name="auth")
        assert await manager.execute("auth", AuthRequest("user123", "jwt-token-here")) == AuthResponse(
            valid=True, user_id="user123"
        )
        refused = await manager.execute("auth", AuthRequest("user123", "forged"))
        assert refused == AuthResponse(valid=False, error="invalid credentials")
        assert (await manager.health())["auth"].message == "All systems operational"
        assert manager.get_plugin("auth").info().capabilities == ("authenticate", "authorize")


async def test_the_text_stats_plugin_counts_words_sentences_and_top_words() -> None:
    source = plugwire.subprocess(sys.executable, str(EXAMPLES / "text_stats.py"), env=ENV)
    async with manager_for(StatsRequest, StatsResponse) as manager:
        await manager.register(source, name="stats")
        stats = await manager.execute("stats", StatsRequest("The cat sat. The cat ran! Did the dog run?", top=1))
        assert (stats.words, stats.sentences) == (10, 3)
        assert stats.top_words == [("cat", 2)]
        with pytest.raises(plugwire.errors.RequestValidationError):
            await manager.execute("stats", StatsRequest("x", words_per_minute=0))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the Node.js example cannot run")
async def test_the_node_plugin_transforms_text_for_a_python_host() -> None:
    source = plugwire.subprocess("node", str(EXAMPLES / "node" / "echo_plugin.js"))
    async with manager_for(dict, dict) as manager:
        await manager.register(source, name="node")
        assert await manager.execute("node", {"op": "upper", "text": "hi there"}) == {
            "op": "upper",
            "text": "HI THERE",
            "words": 2,
        }
        with pytest.raises(plugwire.errors.RequestValidationError):
            await manager.execute("node", {"op": "explode"})
