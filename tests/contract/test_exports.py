"""The public face: the top level keeps the README's names, the rest lives in namespaces."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

import plugwire
import plugwire.config
import plugwire.errors
import plugwire.lifecycle
import plugwire.observe
import plugwire.policies
import plugwire.sdk
import plugwire.security
import plugwire.testing

NAMESPACES: dict[str, ModuleType] = {
    "config": plugwire.config,
    "errors": plugwire.errors,
    "goplugin": plugwire.goplugin,
    "lifecycle": plugwire.lifecycle,
    "observe": plugwire.observe,
    "policies": plugwire.policies,
    "sdk": plugwire.sdk,
    "security": plugwire.security,
    "testing": plugwire.testing,
}

# The names of the README's mapping table ("The README's API in Python") and of DESIGN.md's:
# the product's promise, so they stay at the top level.
README_TABLE = {
    "auto",
    "development",
    "production",
    "simple",
    "AsyncPluginManager",
    "PluginManager",
    "Plugin",
    "serve",
    "subprocess",
    "grpc",
    "in_process",
    "default_manager_config",
    "ManagerConfig",
    "PluginConfig",
    "RetryConfig",
    "CircuitBreakerConfig",
    "HealthCheckConfig",
    "ConnectionConfig",
    "RateLimitConfig",
    "AuthConfig",
    "SecurityConfig",
    "SecurityAuditConfig",
    "TracingConfig",
    "OTLPConfig",
    "OTLPExporter",
    "Transport",
    "AuthMethod",
    "Status",
    "SecurityPolicy",
    "PluginError",
    "ExecutionContext",
    "PrometheusExporter",
    "PrometheusConfig",
}

PACKAGE = Path(plugwire.__file__).parent


def public_names(module: object) -> set[str]:
    return {name for name in dir(module) if not name.startswith("_")}


def test_all_lists_exactly_the_public_names() -> None:
    exported = set(plugwire.__all__) - {"__version__"}
    assert exported == public_names(plugwire) - set(NAMESPACES)


def test_all_is_sorted() -> None:
    assert plugwire.__all__ == sorted(plugwire.__all__)


def test_every_name_of_the_readme_mapping_table_stays_top_level() -> None:
    assert set(plugwire.__all__) >= README_TABLE


def test_every_export_is_importable() -> None:
    for name in plugwire.__all__:
        assert getattr(plugwire, name) is not None


def test_public_objects_say_they_come_from_plugwire_modules() -> None:
    for name in plugwire.__all__:
        obj = getattr(plugwire, name)
        if not (isinstance(obj, type) or inspect.isfunction(obj)):
            continue  # type aliases and constants carry their origin's module
        module = getattr(obj, "__module__", "plugwire")
        assert module.startswith("plugwire"), (name, module)


def test_version_comes_from_package_metadata() -> None:
    from importlib.metadata import version

    assert plugwire.__version__ == version("plugwire")


@pytest.mark.parametrize("name", sorted(NAMESPACES))
def test_every_namespace_all_is_sorted_and_importable(name: str) -> None:
    module = NAMESPACES[name]
    assert module.__all__ == sorted(module.__all__)
    submodules = {n for n in public_names(module) if isinstance(getattr(module, n), ModuleType)}
    assert set(module.__all__) == public_names(module) - submodules - {"annotations"}
    for export in module.__all__:
        assert getattr(module, export) is not None
    assert getattr(plugwire, name) is module


@pytest.mark.parametrize("name", ["config", "errors", "policies", "sdk", "security"])
def test_a_namespace_module_only_re_exports_from_private_modules(name: str) -> None:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom):
            assert node.module == "__future__" or (node.level == 1 and (node.module or "").startswith("_")), (
                ast.unparse(node)
            )
            continue
        assert isinstance(node, ast.Assign), ast.unparse(node)
        assert [ast.unparse(target) for target in node.targets] == ["__all__"]


def test_the_namespaces_together_hold_every_name_that_left_the_top_level() -> None:
    deprecated: dict[str, str] = plugwire._DEPRECATED
    for name, namespace in deprecated.items():
        assert name not in plugwire.__all__
        assert name not in dir(plugwire)
        assert name in NAMESPACES[namespace].__all__, (name, namespace)


@pytest.mark.parametrize("name", sorted(plugwire._DEPRECATED))
def test_an_old_top_level_name_warns_and_is_its_namespace_object(name: str) -> None:
    namespace = plugwire._DEPRECATED[name]
    expected = getattr(NAMESPACES[namespace], name)
    with pytest.warns(DeprecationWarning, match=rf"plugwire\.{name} is deprecated.*plugwire\.{namespace}\.{name}"):
        assert getattr(plugwire, name) is expected
    with pytest.warns(DeprecationWarning, match=rf"use plugwire\.{namespace}\.{name}"):
        exec(f"from plugwire import {name} as imported", (scope := {}))
    assert scope["imported"] is expected


def test_an_old_name_warns_on_every_use_not_only_the_first() -> None:
    for _ in range(2):
        with pytest.warns(DeprecationWarning, match="plugwire.ErrorCode is deprecated"):
            assert plugwire.ErrorCode is plugwire.errors.ErrorCode


def test_the_deprecation_points_at_the_line_that_used_the_old_name() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugwire.RequestSent  # noqa: B018 - the access under test
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = plugwire.NoSuchThing  # type: ignore[attr-defined]


def test_a_plugin_process_importing_plugwire_sdk_loads_no_host_code() -> None:
    code = (
        "import sys, plugwire, plugwire.sdk, plugwire.errors; "
        "bad = [m for m in sys.modules if m.startswith(('plugwire._manager', 'plugwire._transports', "
        "'plugwire._policies', 'plugwire._security', 'yaml', 'grpc'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"


def test_a_plugin_process_loads_no_opentelemetry_until_tracing_is_asked_for() -> None:
    # The plugin side's trace ids for log records are in plugwire.sdk; OpenTelemetry is
    # imported only by a server started with PLUGWIRE_TRACING=1 (plugin start-up stays lean).
    code = (
        "import sys, plugwire, plugwire.sdk; "
        "from plugwire.sdk import TraceIdsFilter, add_trace_ids, current_trace_ids, loguru_trace_ids; "
        "current_trace_ids(); "
        "print([m for m in sys.modules if m.startswith(('opentelemetry', 'structlog', 'loguru'))])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PLUGWIRE_TRACING"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30, env=env)
    assert out.stdout.strip() == "[]"


def test_importing_a_namespace_by_name_works_like_attribute_access() -> None:
    for name, module in NAMESPACES.items():
        assert importlib.import_module(f"plugwire.{name}") is module


def test_the_call_a_policy_receives_is_exported_beside_policy_and_lives_in_the_data_layer() -> None:
    from plugwire._transports.base import Call as transport_call

    assert plugwire.policies.Call is plugwire.testing.Call is transport_call
    assert plugwire.policies.Call.__module__ == "plugwire._call"
    assert {"Call", "Policy"} <= set(plugwire.policies.__all__)
