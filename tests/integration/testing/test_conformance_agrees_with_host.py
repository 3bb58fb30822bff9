"""`check_plugin` and the host read one definition of what a plugin must send: for every
field the host's structs require, a plugin that leaves it out fails the check with the very
code a real host raises when it starts (or calls) that plugin."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import pytest

from plugwire import AsyncPluginManager, PluginError
from plugwire._codes import ErrorCode
from plugwire._models import PluginInfo
from plugwire._protocol import ErrorMsg, PluginHello, ResultMsg
from plugwire.testing import Finding, check_plugin
from tests.support.procguard import PLUGINS, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")


def required(struct: type[msgspec.Struct], prefix: str = "") -> list[str]:
    """The fields a decoder of `struct` cannot do without (its tag field too), as dotted paths."""
    names = [f"{prefix}{f.encode_name}" for f in msgspec.structs.fields(struct) if f.required]
    tag = struct.__struct_config__.tag_field
    return [f"{prefix}{tag}", *names] if tag else names


HELLO_FIELDS = [*required(PluginHello), *required(PluginInfo, "info.")]
ANSWER_FIELDS = [f"result:{name}" for name in required(ResultMsg)] + [f"error:{name}" for name in required(ErrorMsg)]


def test_the_required_fields_come_from_the_host_structs() -> None:
    # What the loops below cover: had a struct lost a required field, they would cover less.
    assert HELLO_FIELDS == ["type", "version", "codec", "info", "info.name"]
    assert ANSWER_FIELDS == ["result:type", "result:id", "result:payload", "error:type", "error:code", "error:message"]


def finding(mode: str, check: str) -> Finding:
    report = check_plugin([sys.executable, str(PLUGINS / "fields_plugin.py"), mode], timeout=2.0)
    return next(f for f in report.findings if f.check == check)


async def host_error(mode: str, *, call: bool) -> PluginError:
    manager: AsyncPluginManager[Any, Any] = AsyncPluginManager(Any, Any)
    try:
        if call:
            await manager.register(python_plugin("fields_plugin.py", mode), name="fields")
            with pytest.raises(PluginError) as caught:
                await manager.execute("fields", {})
        else:
            with pytest.raises(PluginError) as caught:
                await manager.register(python_plugin("fields_plugin.py", mode), name="fields")
    finally:
        await manager.shutdown()
    return caught.value


@pytest.mark.parametrize("field", HELLO_FIELDS)
async def test_a_hello_without_a_required_field_fails_with_the_code_the_host_raises_at_start(field: str) -> None:
    check = finding(f"hello:{field}", "handshake")
    assert not check.passed
    assert check.severity == "must"
    error = await host_error(f"hello:{field}", call=False)
    assert check.code == error.code == ErrorCode.HANDSHAKE_FAILED
    assert str(error.code) in check.detail


@pytest.mark.parametrize("mode", ANSWER_FIELDS)
async def test_an_answer_without_a_required_field_fails_with_the_code_the_host_breaks_the_connection_with(
    mode: str,
) -> None:
    check = finding(mode, "call")
    assert not check.passed
    error = await host_error(mode, call=True)
    # The call in flight fails outcome-unknown; why the connection broke is the check's code.
    assert error.code == ErrorCode.OUTCOME_UNKNOWN
    assert check.code == error.details["reason_code"] == ErrorCode.ENVELOPE_INVALID
    assert f"{ErrorCode.OUTCOME_UNKNOWN}" in check.detail


async def test_a_plugin_that_leaves_nothing_out_passes_the_check_and_starts() -> None:
    report = check_plugin([sys.executable, str(PLUGINS / "fields_plugin.py"), "hello:-"], timeout=2.0)
    assert {f.check for f in report.findings if f.passed} >= {"handshake", "info-name", "call", "health"}
    manager: AsyncPluginManager[Any, Any] = AsyncPluginManager(Any, Any)
    try:
        await manager.register(python_plugin("fields_plugin.py", "hello:-"), name="fields")
        assert await manager.execute("fields", {}) == {"ok": True}
    finally:
        await manager.shutdown()


async def test_an_empty_plugin_name_is_only_a_warning_because_the_host_accepts_it() -> None:
    check = finding("hello:info.name=", "info-name")
    assert not check.passed
    assert check.severity == "should"
    assert finding("hello:info.name=", "handshake").passed
    manager: AsyncPluginManager[Any, Any] = AsyncPluginManager(Any, Any)
    try:
        await manager.register(python_plugin("fields_plugin.py", "hello:info.name="), name="fields")
        assert await manager.execute("fields", {}) == {"ok": True}
    finally:
        await manager.shutdown()
