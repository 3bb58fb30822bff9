"""What a config registers, plugin by plugin, for `plugwire list` and `plugwire health`: its
plugins and what discovery finds, each started on its own (one that fails is a row with its
coded error, not the end of the command), hashed, and judged by the whitelist."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .._codes import ErrorCode
from .._config import DiscoveryConfig, HotReloadConfig, ManagerConfig, PluginConfig
from .._discovery import Candidate, Discovery, PluginManifest, Refusal, scan
from .._errors import ConfigFileError, PluginError
from .._models import HealthStatus, PluginInfo, Transport
from .._security import Decision, SecurityEngine, digest_file, load_whitelist
from .._sources import Grpc, Subprocess, source_for_config

__all__ = ["PluginRow", "Survey", "Verdict"]

#: Readable names of the whitelist's refusals; any other refusal is shown by its code's name.
_VERDICTS = {
    ErrorCode.NOT_WHITELISTED: "not listed",
    ErrorCode.ENDPOINT_NOT_WHITELISTED: "not listed",
    ErrorCode.HASH_MISMATCH: "hash mismatch",
    ErrorCode.WHITELIST_ENTRY_DISABLED: "disabled",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the whitelist says about one plugin (the security engine's own decision).

    Attributes:
        label: "allowed", "not listed", "hash mismatch", "disabled", or the refusal code's
            name in lower case ("executable not in argv", "unsafe file", ...).
        allowed: Whether the whitelist admits it.
        code: The 1800-range code of a refusal.
        reason: The engine's explanation.
    """

    label: str
    allowed: bool
    code: int | None
    reason: str

    @classmethod
    def of(cls, decision: Decision) -> Verdict:
        if decision.allowed:
            return cls("allowed", True, None, decision.reason)
        code = decision.code or ErrorCode.SECURITY
        label = _VERDICTS.get(ErrorCode(code)) or ErrorCode(code).name.lower().replace("_", " ")
        return cls(label, False, int(code), decision.reason)


@dataclass(slots=True)
class PluginRow:
    """One plugin as `list` and `health` show it.

    Attributes:
        name: Its name (for a folder discovery refused without reading a name: the folder's
            or file's name).
        origin: "config", or "discovered" (found in a discovery folder).
        plan: The config it is started with (for a discovered plugin: what discovery runs).
        state: "running", "failed" (it did not start: see `error`), "disabled" (in config,
            never started) or "not started" (`list --no-start`).
        info: What the plugin said about itself in its handshake, once running.
        file: The file `hash` is of: the script an interpreter runs (`python plugin.py`), else
            the program; the whitelisted file when the whitelist has an entry that is checked.
        hash: `algorithm:hex` of `file`, "" when there is no file to hash (a gRPC plugin).
        verdict: The whitelist's verdict, None without a whitelist or for a refusal.
        error: Why it did not start, or why it could not be hashed.
        health: Its health after one round (`health` only).
    """

    name: str
    origin: str
    plan: PluginConfig | None
    state: str = "not started"
    info: PluginInfo | None = None
    file: str = ""
    hash: str = ""
    verdict: Verdict | None = None
    error: PluginError | None = None
    health: HealthStatus | None = field(default=None)

    @property
    def transport(self) -> str:
        return self.plan.transport.value if self.plan is not None else ""

    @property
    def target(self) -> str:
        """The file run, or the endpoint reached."""
        if self.plan is None:
            return self.file
        if self.plan.transport in (Transport.GRPC, Transport.GRPC_TLS):
            return self.plan.endpoint
        return self.file or self.plan.executable


class Survey:
    """The plugins `config` registers, as rows; `start()` starts them in a host, one by one.

    Args:
        config: The loaded config.
        health_timeout: Replaces each configured plugin's `health_check.timeout` (seconds).
        connect_now: Report a gRPC plugin that cannot be reached as failed, instead of
            registering it as connecting (the host's default for gRPC).
    """

    def __init__(
        self, config: ManagerConfig, *, health_timeout: float | None = None, connect_now: bool = False
    ) -> None:
        self.config = config
        self.rows: list[PluginRow] = []
        for configured in config.plugins:
            plan = configured
            if health_timeout is not None:
                plan = _replace(plan, health_check=_replace(plan.health_check, timeout=health_timeout))
            if connect_now:
                plan = _replace(plan, connection=_replace(plan.connection, connect_in_background=False))
            self.rows.append(PluginRow(plan.name, "config", plan, "not started" if plan.enabled else "disabled"))

    @property
    def host_config(self) -> ManagerConfig:
        """The config's global settings without its plugins, reloads or discovery: the survey
        registers those itself, each on its own."""
        host: ManagerConfig = _replace(
            self.config, plugins=(), hot_reload=HotReloadConfig(), discovery=DiscoveryConfig()
        )
        return host

    @property
    def failed(self) -> list[PluginRow]:
        """The rows with an error: a plugin that did not start, or whose file is missing."""
        return [row for row in self.rows if row.error is not None]

    def look(self) -> None:
        """Add what discovery would find now, without starting anything (`list --no-start`)."""
        discovery = self.config.discovery
        if not discovery.enabled:
            return
        folders = [Path(os.path.abspath(folder)) for folder in discovery.directories]
        found = [
            _discovered(item.name, item.path, item.manifest, item) if isinstance(item, Candidate) else _refused(item)
            for item in scan(folders, discovery.pattern)
        ]
        self.rows.extend(sorted(found, key=lambda row: row.name))

    async def start(self, manager: Any) -> None:
        """Register every enabled plugin of the config in `manager` (concurrently, each on its
        own), then run discovery once, as the host does after its configured plugins."""
        pending = [row for row in self.rows if row.state == "not started"]
        outcomes = await asyncio.gather(*(self._register(manager, row) for row in pending))
        for row, error in zip(pending, outcomes, strict=True):
            if error is None:
                row.state, row.info = "running", manager.get_plugin(row.name).info()
            else:
                row.state, row.error = "failed", error
        if not self.config.discovery.enabled:
            return
        discovery = Discovery(manager, _replace(self.config.discovery, watch=False))
        try:
            report = await discovery.start()
        finally:
            await discovery.aclose()
        found_rows = []
        for name, found in report.registered.items():
            row = _discovered(name, Path(found.path), found.manifest, None)
            row.state, row.info = "running", found.info
            found_rows.append(row)
        found_rows.extend(_refused(refusal) for refusal in report.refused)
        self.rows.extend(sorted(found_rows, key=lambda row: row.name))

    @staticmethod
    async def _register(manager: Any, row: PluginRow) -> PluginError | None:
        assert row.plan is not None
        try:
            await manager.register(source_for_config(row.plan), config=row.plan)
        except PluginError as exc:
            return exc
        return None

    async def judge(self) -> None:
        """Hash every plugin's file and, when the config names a whitelist, record its verdict.

        Raises:
            SecurityError: The whitelist does not load (1804-1808), or the hash algorithm is
                unknown (1805).
        """
        security = self.config.security
        engine: SecurityEngine | None = None
        if security.whitelist_file:
            whitelist = load_whitelist(security.whitelist_file, default_algorithm=security.hash_algorithm)
            # Built without an audit log: judging is not a decision the host made.
            engine = SecurityEngine(security, whitelist)
        try:
            for row in self.rows:
                _judge(row, engine, security.hash_algorithm)
        finally:
            if engine is not None:
                await engine.aclose()


def _judge(row: PluginRow, engine: SecurityEngine | None, algorithm: str) -> None:
    plan = row.plan
    if plan is None:
        return
    facts: dict[str, Any] = {}
    if engine is not None:
        decision = engine.evaluate(plan)
        if decision is not None:
            row.verdict = Verdict.of(decision)
            facts = decision.facts
    if plan.transport is not Transport.EXECUTABLE:
        return
    if facts.get("hash"):  # the whitelisted file, hashed by the engine as a launch would
        row.file, row.hash = str(facts["path"]), str(facts["hash"])
        return
    file = plugin_file([plan.executable, *plan.args], plan.work_dir or None)
    if file is None:
        return
    row.file = str(file)
    try:
        row.hash = f"{algorithm}:{digest_file(file, algorithm)}"
    except (OSError, ValueError) as exc:
        if row.error is None:  # a start that failed said it first
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            missing = isinstance(exc, FileNotFoundError)
            code = ErrorCode.CONFIG_FILE_NOT_FOUND if missing else ErrorCode.CONFIG_FILE_UNREADABLE
            row.error = ConfigFileError(f"{file}: cannot hash it: {reason}", code=code, plugin=row.name)


def plugin_file(argv: Sequence[str], cwd: str | None) -> Path | None:
    """The file a command runs: the first argument that is not an option, when it is a file
    (the script of `python -u plugin.py`), else the program (looked up on PATH when bare)."""
    base = cwd or os.getcwd()
    for arg in argv[1:]:
        if arg.startswith("-"):
            continue
        script = Path(base, arg)
        if script.is_file():
            return script
        break
    program = argv[0] if argv else ""
    if not program:
        return None
    found = shutil.which(program) if os.sep not in program else None
    return Path(base, found or program)


def _discovered(name: str, path: Path, manifest: PluginManifest | None, candidate: Candidate | None) -> PluginRow:
    """A row for a plugin discovery found, with the config discovery runs it with."""
    source = candidate.source if candidate is not None else None
    if isinstance(source, Grpc) or (manifest is not None and manifest.transport is Transport.GRPC):
        endpoint = source.target if isinstance(source, Grpc) else manifest.endpoint.strip() if manifest else ""
        plan = PluginConfig(name=name, transport=Transport.GRPC, endpoint=endpoint)
    elif isinstance(source, Subprocess):
        plan = source.configure(name, PluginConfig(name=name))
    elif manifest is not None:
        plan = PluginConfig(name=name, executable=str(path / manifest.command), args=manifest.args, work_dir=str(path))
    else:
        plan = PluginConfig(name=name, executable=str(path), work_dir=str(path.parent))
    return PluginRow(name, "discovered", plan)


def _refused(refusal: Refusal) -> PluginRow:
    """A row for what discovery refused; a file it refused is still hashed and judged."""
    error = PluginError(refusal.reason, code=refusal.code, plugin=refusal.name)
    path = Path(refusal.path)
    name = refusal.name or path.name
    plan = PluginConfig(name=name, executable=str(path), work_dir=str(path.parent)) if path.is_file() else None
    return PluginRow(name, "discovered", plan, "failed", file=refusal.path, error=error)


def _replace(struct: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(struct, **changes)
