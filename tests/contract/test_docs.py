"""The docs say what the code does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_reference_matches_the_config_types() -> None:
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts" / "config_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert module.render(current) == current, "docs/configuration.md is stale: run python scripts/config_docs.py"


def test_the_readme_presets_table_matches_the_builders() -> None:
    module = _config_docs()
    current = (ROOT / "README.md").read_text()
    assert module.PRESETS_BEGIN in current
    assert module.render_readme(current) == current, "README.md presets are stale: run python scripts/config_docs.py"


def test_the_readme_presets_table_reads_its_values_from_the_builders() -> None:
    import plugwire

    table = _config_docs().presets()
    for name in ("simple", "development", "production"):
        config = getattr(plugwire, name)(object, object).with_timeout(7.5).plugin_config("p")
        assert config.connection.request_timeout == 7.5  # the builders' settings are what the table reads
    row = next(line for line in table.splitlines() if line.startswith("| `production`"))
    production = plugwire.production(object, object).plugin_config("p")
    assert f"| {production.connection.request_timeout:g} s |" in row
    assert f"every {production.health_check.interval:g} s" in row
    assert f"half-open after {production.circuit_breaker.recovery_timeout:g} s" in row


def _config_docs() -> Any:
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts" / "config_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_config_example_is_a_valid_config(tmp_path: Path) -> None:
    import re

    from plugwire import ManagerConfig, Transport

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S)
    assert block is not None
    path = tmp_path / "plugins.yaml"
    path.write_text(block.group(1))
    config = ManagerConfig.load(path)
    assert [p.name for p in config.plugins] == ["auth-service", "payment-service"]
    assert config.plugins[1].transport is Transport.GRPC_TLS
    assert config.plugins[0].retry.initial_interval == 0.1


def test_the_architecture_page_names_every_module() -> None:
    package = ROOT / "src" / "plugwire"
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith("_proto/"):
            continue  # generated stubs, named as a folder
        if f"`{relative}`" not in page:
            missing.append(relative)
    assert missing == [], f"docs/architecture.md does not name: {missing}"
