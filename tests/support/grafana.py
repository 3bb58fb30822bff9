"""The PromQL of examples/grafana-dashboard.json, as Grafana would send it, and the metric
names each expression reads (tests/contract/test_prometheus_docs.py, and the real
Prometheus test, which runs every expression)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json"

# What PromQL writes as bare words that are not metric names.
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every target's PromQL, then the selectors of the template variables' queries
    (Grafana's `label_values(selector, label)`), unexpanded."""
    found = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert match is not None, variable["definition"]
            found.append(match.group(1))
    return found


def expand(expr: str, prefix: str, rate_interval: str = "1m") -> str:
    """The expression as Grafana sends it: the dashboard's variables replaced."""
    return expr.replace("${prefix}", prefix).replace("$__rate_interval", rate_interval).replace("$plugin", ".*")


def metric_names(expr: str) -> set[str]:
    """The metric names an (expanded) expression reads: its bare identifiers once strings,
    label matchers, groupings and ranges are taken out, minus functions and keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS:
            names.add(match.group(1))
    return names
