"""`plugwire.testing.check_plugin`: conforming plugins pass, a broken one gets specific findings."""

from __future__ import annotations

import shutil
import sys

import pytest

from plugwire.testing import check_plugin
from tests.support.procguard import EXAMPLES, PLUGINS, plugin_env

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the Node.js example cannot run")
def test_the_node_plugin_written_without_plugwire_passes_every_check() -> None:
    report = check_plugin(["node", str(EXAMPLES / "node" / "echo_plugin.js")], request={"op": "upper", "text": "hi"})
    assert report.ok, str(report)
    assert report.failures == ()
    assert "result: conforms" in str(report)


def test_a_python_sdk_plugin_passes_every_check() -> None:
    report = check_plugin(
        [sys.executable, str(EXAMPLES / "text_stats.py")], request={"text": "One. Two."}, env=plugin_env()
    )
    assert report.ok, str(report)
    assert report.failures == (), str(report)


def test_a_broken_plugin_fails_with_a_finding_for_each_defect() -> None:
    report = check_plugin([sys.executable, str(PLUGINS / "broken_plugin.py")], timeout=1.0)
    assert not report.ok
    failed = {f.check for f in report.failures}
    assert failed == {"no-cookie", "health", "shutdown", "oversized-frame", "deadline"}, str(report)
    text = str(report)
    assert "[FAIL] shutdown: still running after shutdown" in text
    assert "[FAIL] oversized-frame" in text
    assert "[WARN] deadline" in text
    assert "required check(s) failed" in text


def test_a_plugin_that_writes_junk_fails_the_handshake_with_the_bytes_quoted() -> None:
    report = check_plugin([sys.executable, str(PLUGINS / "raw_plugin.py"), "junk"], timeout=1.0)
    handshake = next(f for f in report.findings if f.check == "handshake")
    assert not handshake.passed
    assert "Starting raw plugin" in handshake.detail


def test_a_frame_the_host_refuses_fails_its_check_with_the_code_the_host_raises() -> None:
    # An `error` without `message`: the host breaks the connection on it (2003, calls 1207).
    report = check_plugin([sys.executable, str(PLUGINS / "raw_plugin.py"), "terse-errors"], timeout=1.0)
    unknown = next(f for f in report.findings if f.check == "unknown-method")
    assert not unknown.passed
    assert unknown.severity == "must"
    assert "error 2003" in unknown.detail
    assert "message" in unknown.detail  # the host's own words name the missing field
    assert "1207" in unknown.detail


def test_a_plugin_answering_a_frame_nested_too_deep_fails_the_call_check_without_crashing_the_checker() -> None:
    command = [sys.executable, str(PLUGINS / "raw_plugin.py"), "deep-answer"]
    report = check_plugin(command, request={"op": "deep"}, timeout=1.0)
    call = next(f for f in report.findings if f.check == "call")
    assert not call.passed
    assert "2003" in call.detail
