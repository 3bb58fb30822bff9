"""What docs/observability.md ("Prometheus") and examples/grafana-dashboard.json say about
the exporter's series is what it exposes."""

from __future__ import annotations

import re
from pathlib import Path

from plugwire._observe.prometheus_collector import SERIES
from tests.support import grafana

ROOT = Path(__file__).resolve().parents[2]


def prometheus_section() -> str:
    text = (ROOT / "docs" / "observability.md").read_text()
    start = text.index("\n## Prometheus\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def exposed(prefix: str) -> set[str]:
    """Every sample name a scrape can show (a histogram's as its three series)."""
    names = set()
    for series in SERIES:
        if series.kind == "histogram":
            names |= {f"{prefix}{series.name}{suffix}" for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(prefix + series.name)
    return names


def test_the_series_table_lists_every_series_with_its_readme_name_type_and_labels() -> None:
    rows = {}
    for line in prometheus_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[2] in {"counter", "gauge", "histogram"}:
            readme, name, kind, labels, _ = cells
            rows[name.strip("`")] = (readme.strip("`"), kind, tuple(re.findall(r"`(\w+)`", labels)))
    assert rows == {series.name: (series.readme, series.kind, series.labels) for series in SERIES}


def test_the_promql_examples_name_only_exposed_series_and_cover_every_readme_metric() -> None:
    section = prometheus_section()
    examples = section[section.index("A PromQL example per README metric") :]
    covered = set()
    for line in examples.splitlines():
        if not line.startswith("| `plugin_"):
            continue
        readme, promql = (cell.strip() for cell in line.strip().strip("|").split("|", 1))
        exprs = re.findall(r"`([^`]+)`", promql)
        assert exprs, line
        for expr in exprs:
            assert grafana.metric_names(expr) <= exposed("plugwire_"), expr
        covered.add(readme.strip("`"))
    assert covered == {series.readme for series in SERIES} - {""}


def test_the_dashboard_is_valid_json_with_a_datasource_and_a_prefix_variable() -> None:
    dashboard = grafana.load()
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["prefix"]["query"] == "plugwire_"
    ids = [panel["id"] for panel in grafana.panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in grafana.panels(dashboard):
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_every_dashboard_query_reads_only_series_the_exporter_exposes() -> None:
    for prefix in ("plugwire_", "myapp_plugins_", ""):
        for expr in grafana.expressions(grafana.load()):
            names = grafana.metric_names(grafana.expand(expr, prefix))
            assert names, expr
            assert names <= exposed(prefix), (expr, names - exposed(prefix))


def test_the_dashboard_shows_every_readme_metric() -> None:
    shown = set()
    for expr in grafana.expressions(grafana.load()):
        shown |= grafana.metric_names(grafana.expand(expr, ""))
    for series in SERIES:
        if series.readme:
            names = exposed("") & {series.name, *(f"{series.name}{s}" for s in ("_bucket", "_sum", "_count"))}
            assert shown & names, series.readme
