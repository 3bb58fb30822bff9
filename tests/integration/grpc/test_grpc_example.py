"""The shipped example, examples/plugins/backup_auth_grpc.py, works as its docstring says."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

import plugwire
from tests.support.procguard import EXAMPLES
from tests.support.scripts import load_script

AuthRequest = load_script(EXAMPLES / "backup_auth_grpc.py").AuthRequest
AuthResponse = load_script(EXAMPLES / "backup_auth_grpc.py").AuthResponse


async def test_the_backup_auth_example_serves_the_readme_plugin_over_grpc_with_an_api_key() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "backup_auth_grpc.py"),
        "--address",
        "127.0.0.1:0",
        "--api-key-env",
        "BACKUP_AUTH_KEY",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "BACKUP_AUTH_KEY": "s3cret"},
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        address = line.rsplit(" on ", 1)[1].strip()
        key = plugwire.AuthConfig(method=plugwire.AuthMethod.API_KEY, api_key="s3cret")
        manager = plugwire.development(AuthRequest, AuthResponse).with_plugin(
            "backup-auth", plugwire.grpc(address, auth=key)
        )
        async with manager.build() as mgr:
            good = await mgr.execute("backup-auth", AuthRequest(user_id="alice", token="tok-alice"))
            bad = await mgr.execute("backup-auth", AuthRequest(user_id="bob", token="wrong"))
            assert mgr.get_plugin("backup-auth").info().capabilities == ("authenticate", "authorize")
        async with plugwire.AsyncPluginManager(AuthRequest, AuthResponse) as keyless:
            with pytest.raises(plugwire.errors.AuthenticationError):
                await keyless.register(plugwire.grpc(address), name="no-key")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert good == AuthResponse(valid=True, user_id="alice")
    assert bad == AuthResponse(valid=False)
