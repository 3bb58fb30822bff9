"""The shipped benchmark cases: each issue's target is registered, and the cases that start
plugin processes produce numbers and leave no process behind (no timing is judged here)."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from benchmarks._model import REGISTRY, Env, Kind, Verdict
from benchmarks._pinning import descendants, restore
from benchmarks._runner import Settings, run_case
from benchmarks.cases import _plugin

SRC = Path(__file__).resolve().parents[2] / "src"

# (case, baseline label, target text or None for an info row, kind): the speed targets of issues 3, 5 and 7.
TARGETS = [
    ("subprocess.small", "bare asyncio echo (asyncio floor)", "≤ 1.5x", Kind.LATENCY),
    ("subprocess.small", "rpyc", "≤ 0.5x", Kind.LATENCY),
    ("subprocess.small", "Pyro5 (marshal)", "≤ 0.5x", Kind.LATENCY),
    ("subprocess.small", "asyncio host, blocking echo child", None, Kind.LATENCY),
    ("subprocess.small.uvloop", "bare asyncio echo (asyncio floor)", "≤ 1.5x", Kind.LATENCY),
    ("subprocess.x64", "bare asyncio echo, 64 in flight", "≥ 0.5x", Kind.THROUGHPUT),
    ("subprocess.x64", "rpyc, 64 in flight", "≥ 3x", Kind.THROUGHPUT),
    ("subprocess.x64", "asyncio host, blocking echo child, 64 in flight", None, Kind.THROUGHPUT),
    ("subprocess.64k", "bare asyncio echo, 64 KiB", "≤ 1.5x", Kind.LATENCY),
    ("subprocess.pool2", "pool of 1 process, CPU-bound plugin", "≥ 1.6x", Kind.THROUGHPUT),
    ("policies.subprocess", "subprocess call, every policy off", "≤ 1.1x", Kind.LATENCY),
    ("security.whitelist_hash", "sha256sum", "≤ 1.3x", Kind.LATENCY),
    ("security.audit_overhead", "subprocess call, security off", "≤ 1.05x", Kind.LATENCY),
    ("tracing.subprocess.sampled_out", "subprocess call, tracing off", "≤ 1.05x", Kind.LATENCY),
    ("tracing.subprocess.sampled", "subprocess call, tracing off", None, Kind.LATENCY),
]


@pytest.mark.parametrize(("name", "baseline", "target", "kind"), TARGETS)
def test_each_issue_target_is_a_registered_case_against_its_baseline(
    name: str, baseline: str, target: str | None, kind: Kind
) -> None:
    subject = REGISTRY[name]
    bounds = {v.baseline.label: v.target.text if v.target else None for v in subject.versus}
    assert bounds[baseline] == target
    assert subject.kind is kind


def test_scaling_startup_and_memory_cases_run_unpinned_only() -> None:
    for name in ("subprocess.pool2", "subprocess.startup", "subprocess.memory.plugin", "subprocess.memory.host"):
        assert REGISTRY[name].pin_modes(None) == ("none",)


def test_the_64_kib_request_encodes_to_64_kib_within_a_few_bytes() -> None:
    size = len(msgspec.msgpack.encode(_plugin.echo_request(64 * 1024)))
    assert abs(size - 64 * 1024) <= 8
    assert len(msgspec.msgpack.encode(_plugin.echo_request())) < 128


def test_the_plugin_gets_the_hosts_import_path_through_its_configured_env(tmp_path: Path) -> None:
    with_path = Env(quick=True, workdir=tmp_path, child_env={"PYTHONPATH": "/x/src", "SECRET": "s"})
    assert _plugin.plugin_env(with_path) == {"PYTHONPATH": "/x/src"}
    assert _plugin.plugin_env(Env(quick=True, workdir=tmp_path, child_env={})) == {}
    assert _plugin.plugin_env(with_path, PLUGWIRE_LOOP="uvloop") == {"PYTHONPATH": "/x/src", "PLUGWIRE_LOOP": "uvloop"}


@pytest.mark.parametrize(
    "name",
    [
        "policies.subprocess",
        "security.audit_overhead",
        "subprocess.startup",
        "subprocess.memory.host",
        "subprocess.small.uvloop",
        "tracing.subprocess.sampled_out",
    ],
)
async def test_a_plugin_case_produces_numbers_and_leaves_no_process_behind(name: str, tmp_path: Path) -> None:
    env = Env(quick=True, workdir=tmp_path, child_env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        rows = await run_case(REGISTRY[name], "none", Settings.quick_mode(), env)
    finally:
        restore()
    assert all(row.verdict in (Verdict.UNJUDGED, Verdict.INFO) for row in rows), rows[0].detail
    assert all(row.candidate is not None and row.baseline is not None for row in rows)
    assert descendants(os.getpid()) == []
