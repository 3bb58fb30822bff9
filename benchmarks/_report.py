"""Results as JSON, and the printed table (both read the same JSON rows)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._runner import Row

__all__ = ["cell", "format_value", "load_results", "render_table", "row_to_json", "table_lines", "write_results"]

SCHEMA = 1


def row_to_json(row: Row) -> dict[str, Any]:
    """One row as plain JSON data."""
    return {
        "case": row.case,
        "pin": row.pin,
        "kind": row.kind.label,
        "unit": row.kind.unit,
        "candidate": {"label": row.candidate_label, **(row.candidate.to_json() if row.candidate else {})},
        "baseline": {"label": row.baseline_label, **(row.baseline.to_json() if row.baseline else {})},
        "ratio": row.ratio,
        "tail_ratio": row.tail_ratio,
        "target": None
        if row.target is None
        else {"op": row.target.op, "value": row.target.value, "text": row.target.text},
        "verdict": row.verdict.value,
        "placement": row.placement,
        "rounds": row.rounds,
        "batches": list(row.batches),
        "detail": row.detail,
        "note": row.note,
    }


def write_results(path: Path, document: dict[str, Any]) -> None:
    """Write the results document (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.json")
    partial.write_text(json.dumps({"schema": SCHEMA, **document}, indent=2, sort_keys=False) + "\n")
    partial.replace(path)


def load_results(path: Path) -> dict[str, Any]:
    """Read a results document written by `write_results`.

    Raises:
        ValueError: The file is not a results document of this schema.
    """
    document = json.loads(path.read_text())
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a benchmark results file of schema {SCHEMA}")
    return document


def format_value(kind: str, value: float | None) -> str:
    """A number in the unit people read: µs/ms/s, ops/s with k/M, MiB."""
    if value is None or not math.isfinite(value):
        return "—"
    if kind == "latency":
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.2f} s"
    if kind == "throughput":
        if value >= 1e6:
            return f"{value / 1e6:.2f}M ops/s"
        if value >= 1e3:
            return f"{value / 1e3:.1f}k ops/s"
        return f"{value:.0f} ops/s"
    if kind == "memory":
        return f"{value / 2**20:.1f} MiB"
    return f"{value:g}"


def cell(kind: str, side: dict[str, Any]) -> str:
    """`label: median (p99 tail)`, or just the label when the side has no numbers."""
    if "median" not in side:
        return str(side["label"])
    return f"{side['label']}: {format_value(kind, side['median'])} (p99 {format_value(kind, side['p99'])})"


def ratio_text(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def _table_cells(row: dict[str, Any]) -> list[str]:
    verdict = row["verdict"]
    if row.get("detail") and verdict in {"error", "skipped"}:
        verdict = f"{verdict}: {row['detail']}"
    return [
        f"{row['case']} [{row['pin']}]",
        cell(row["kind"], row["candidate"]),
        cell(row["kind"], row["baseline"]),
        ratio_text(row["ratio"]),
        row["target"]["text"] if row["target"] else "—",
        verdict,
    ]


HEADERS = ("case", "candidate", "baseline", "ratio", "target", "verdict")


def table_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The plain-text table: one line per row, columns padded to fit."""
    body = [_table_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in [list(HEADERS), *body]) for i in range(len(HEADERS))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body)
    return lines


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    return "\n".join(table_lines(rows))
