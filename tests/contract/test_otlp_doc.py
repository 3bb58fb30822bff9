"""docs/observability.md's OTLP metric table lists exactly what the exporter sends."""

from __future__ import annotations

from pathlib import Path

from plugwire._observe.otlp_data import METRICS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def test_the_otlp_metric_table_matches_the_exporter() -> None:
    text = PAGE.read_text()
    start = text.index("<!-- otlp-metrics-table")
    rows = []
    for line in text[start:].splitlines()[3:]:
        if not line.startswith("| `"):
            break
        name, kind, unit, attributes = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:4])
        rows.append((name, kind, unit, attributes))
    assert rows == list(METRICS)
