"""Discovery with security on: only whitelisted plugins register, and every refusal is in the
audit log (the engine's rows for whitelist refusals, `discovery.refused` for the others)."""

from __future__ import annotations

import json
from pathlib import Path

import plugwire
from plugwire.errors import ErrorCode
from tests.support.discovered import Req, Resp, sha256_of, write_plugin


def whitelist(path: Path, plugins: list[Path]) -> Path:
    entries = [{"name": p.name, "path": str(p), "hash": f"sha256:{sha256_of(p)}"} for p in plugins]
    path.write_text(json.dumps({"version": "1.0", "plugins": entries}))
    return path


async def test_a_tampered_binary_in_a_whitelisted_folder_is_refused_and_audited_the_others_run(
    tmp_path: Path, folder: Path
) -> None:
    good = [write_plugin(folder / name) for name in ("auth", "billing", "search")]
    host = tmp_path / "host"
    host.mkdir()
    listed = whitelist(host / "plugins.whitelist", good)
    with (folder / "billing").open("a") as tampered:
        tampered.write("# one byte too many\n")
    write_plugin(folder / "stranger")  # not in the whitelist at all
    write_plugin(folder / "loose", mode=0o777)  # refused by discovery before the whitelist is asked
    builder = (
        plugwire.auto(Req, Resp).from_directory(folder).with_security(str(listed), audit_file=str(host / "audit.db"))
    )
    async with builder.build() as manager:
        assert manager.discovery is not None
        report = manager.discovery.report
        assert sorted(report.registered) == ["auth", "search"]
        codes = {Path(r.path).name: r.code for r in report.refused}
        assert codes == {
            "billing": ErrorCode.HASH_MISMATCH,
            "stranger": ErrorCode.NOT_WHITELISTED,
            "loose": ErrorCode.UNSAFE_FILE,
        }
        assert (await manager.execute("search", Req(text="q"))).text == "1.0.0:q"
        assert manager.audit is not None
        await manager.audit.aflush()
        assert [r.event for r in manager.audit.query(plugin="billing")] == ["plugin.hash_mismatch"]
        assert [r.event for r in manager.audit.query(plugin="stranger")] == ["plugin.unauthorized"]
        (loose,) = manager.audit.query(event="discovery.refused")
        assert loose.fields["code"] == ErrorCode.UNSAFE_FILE
        assert loose.fields["path"] == str(folder / "loose")
        assert {r.plugin for r in manager.audit.query(event="plugin.started")} == {"auth", "search"}


async def test_a_refusal_is_audited_once_however_often_the_folder_is_scanned(tmp_path: Path, folder: Path) -> None:
    write_plugin(folder / "my plugin")  # no valid name
    host = tmp_path / "host"
    host.mkdir()
    listed = whitelist(host / "plugins.whitelist", [])
    builder = plugwire.auto(Req, Resp).from_directory(folder).with_security(str(listed), audit_file=str(host / "a.db"))
    async with builder.build() as manager:
        assert manager.discovery is not None
        await manager.discovery.rescan()
        await manager.discovery.rescan()
        assert manager.audit is not None
        await manager.audit.aflush()
        (row,) = manager.audit.query(event="discovery.refused")
        assert row.fields["code"] == ErrorCode.CONFIG_INVALID_NAME
