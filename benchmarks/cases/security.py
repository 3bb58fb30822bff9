"""Security (issue 7): whitelist hash verification of a big executable, and the audit log's cost.

Hash verification goes through plugwire's verified launch, `SecurityEngine.prepare_launch`,
on a 50 MB file pinned in a whitelist (strict policy): the whitelist lookup, the location
and file checks on one descriptor, the SHA-256 of every byte (in a worker thread) and the
private copy (made on the first launch, found by digest afterwards). The audit case puts
the same subprocess call with the security system on (audit policy, SQLite audit log that
records every decision) beside it with security off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import plugwire

from .._model import Case, Env, Op, Side, Versus, at_most, case, register
from ..baselines.files import HASHLIB_FILE, SHA256SUM, big_file
from ._plugin import PLUGIN_SCRIPT, echo_request, plugin_config, running_manager

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


def _whitelist(env: Env, name: str, pinned: dict[str, Path]) -> Path:
    """A JSON whitelist in the run's scratch folder pinning each file by its SHA-256."""
    entries = []
    for plugin, path in pinned.items():
        with path.open("rb") as source:
            digest = hashlib.file_digest(source, "sha256").hexdigest()
        entries.append({"name": plugin, "path": str(path), "hash": f"sha256:{digest}"})
    target = env.workdir / f"{name}.whitelist.json"
    target.write_text(json.dumps({"version": "1.0", "plugins": entries}))
    return target


@case(
    "security.whitelist_hash",
    label="SecurityEngine.prepare_launch (strict, pinned file)",
    baseline=SHA256SUM,
    target=at_most(1.3),
    pin="none",
    also_unpinned=False,
    note="issue 7: verified launch of a 50 MB plugin file pinned in a whitelist (checks, SHA-256 "
    "through one descriptor in a worker thread, private copy found by digest) against "
    "`sha256sum` on the same file.",
)
@asynccontextmanager
async def whitelist_hash(env: Env) -> AsyncIterator[Op]:
    path = big_file(env)
    config = plugwire.SecurityConfig(
        enabled=True,
        policy=plugwire.SecurityPolicy.STRICT,
        whitelist_file=str(_whitelist(env, "hash", {"big": path})),
    )
    engine = plugwire.security.SecurityEngine.from_config(config, exec_dir=env.workdir / "exec")
    try:
        argv = await engine.prepare_launch("big", [str(path)])
        if argv == [str(path)]:
            raise RuntimeError("prepare_launch did not put a verified copy in the command")
        yield partial(engine.prepare_launch, "big", [str(path)])
    finally:
        await engine.aclose()


@asynccontextmanager
async def _audited_call(env: Env, audited: bool) -> AsyncIterator[Op]:
    """The small subprocess call, the manager's security on (audit policy, SQLite log) or off."""
    manager_config = None
    if audited:
        security = plugwire.SecurityConfig(
            enabled=True,
            policy=plugwire.SecurityPolicy.AUDIT,
            whitelist_file=str(_whitelist(env, "audit", {"echo": PLUGIN_SCRIPT})),
            audit_config=plugwire.SecurityAuditConfig(
                enabled=True, audit_file=str(env.workdir / "audit.db"), log_authorized=True
            ),
        )
        manager_config = plugwire.ManagerConfig(security=security)
    async with running_manager(env, plugin_config("echo"), manager_config=manager_config) as manager:
        if audited:
            audit = manager.audit
            if audit is None:
                raise RuntimeError("the manager opened no audit log")
            await audit.aflush()
            if not audit.query(plugin="echo", event=plugwire.security.AuditEvent.AUTHORIZED):
                raise RuntimeError("the audit log holds no plugin.authorized row for the echo plugin")
        yield partial(manager.execute, "echo", echo_request())


@case(
    "security.audit_overhead",
    label="subprocess call, security on (audit policy, SQLite audit log)",
    baseline=Side("subprocess call, security off", partial(_audited_call, audited=False)),
    target=at_most(1.05),
    note="issue 7: the small subprocess round trip with the security system on (audit policy, audit "
    "log enabled with `log_authorized`, SQLite file in the run's folder; the plugin runs from its "
    "verified copy) against the same call with security off.",
)
@asynccontextmanager
async def audit_overhead(env: Env) -> AsyncIterator[Op]:
    async with _audited_call(env, audited=True) as op:
        yield op
