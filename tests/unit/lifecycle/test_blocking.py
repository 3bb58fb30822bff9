"""The blocking twin's `replace`, `reload_config` and `shutdown` report."""

from __future__ import annotations

import plugwire
from plugwire import PluginManager
from tests.support.plugins.versioned_plugin import Req, Resp
from tests.support.procguard import python_plugin
from tests.unit.lifecycle.test_replace import plugin_config


def test_the_blocking_twin_replaces_reloads_and_reports_its_shutdown() -> None:
    manager: PluginManager[Req, Resp] = PluginManager(Req, Resp, plugwire.ManagerConfig(plugins=(plugin_config("1"),)))
    with manager:
        assert manager.execute("v", Req()).version == "1"
        result = manager.replace("v", python_plugin("versioned_plugin.py", "2"))
        assert (result.generation, manager.execute("v", Req()).version) == (2, "2")
        report = manager.reload_config(plugwire.ManagerConfig(plugins=(plugin_config("3"),)))
        assert set(report.replaced) == {"v"}
        assert manager.execute("v", Req()).version == "3"
        shutdown = manager.shutdown()
    assert shutdown is not None
    assert shutdown.drained
    assert shutdown.plugins == 1
