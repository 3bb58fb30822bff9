from __future__ import annotations

import itertools
import pickle
import re
from pathlib import Path

import pytest

import plugwire
from plugwire import PluginError
from plugwire._errors import _FAMILIES, _rebuild, answered, error_class_for_code, error_from_code
from plugwire.errors import ErrorCode

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def all_error_classes() -> list[type[PluginError]]:
    found: list[type[PluginError]] = []
    stack: list[type[PluginError]] = [PluginError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_every_code_is_unique() -> None:
    values = [member.value for member in ErrorCode]
    assert len(values) == len(set(values))


def test_every_code_is_documented_with_its_name() -> None:
    text = DOCS.read_text()
    documented = {int(code): name for code, name in re.findall(r"^\| (\d{4}) \| `([A-Z_]+)` \|", text, re.M)}
    for member in ErrorCode:
        assert documented.get(member.value) == member.name, f"{member.value} {member.name} missing in errors.md"
    assert set(documented) == {m.value for m in ErrorCode}, "errors.md lists codes that do not exist"


def test_every_class_default_code_lies_in_its_family_range() -> None:
    for cls in all_error_classes():
        low, high = cls.code_range
        assert low <= cls.default_code <= high, cls
        assert cls.default_code in {m.value for m in ErrorCode}, cls


def test_family_ranges_do_not_overlap() -> None:
    spans = sorted(family.code_range for family in _FAMILIES)
    for (_, high), (low, _) in itertools.pairwise(spans):
        assert high < low


def test_str_includes_code_message_plugin_and_cause() -> None:
    try:
        try:
            raise OSError("disk on fire")
        except OSError as exc:
            raise plugwire.ExecutionError("plugin raised", plugin="auth") from exc
    except plugwire.ExecutionError as err:
        text = str(err)
    assert text == "[1203] plugin raised (plugin 'auth'): caused by OSError: disk on fire"


def test_str_says_nothing_twice_that_the_message_already_says() -> None:
    named = plugwire.errors.ProcessError("cannot start plugin 'auth': ./auth does not exist", plugin="auth")
    assert str(named) == "[1900] cannot start plugin 'auth': ./auth does not exist"
    other = plugwire.ExecutionError("plugin 'billing' is down", plugin="auth")
    assert str(other) == "[1203] plugin 'billing' is down (plugin 'auth')"

    lost = plugwire.TransportError("the plugin closed its end of the connection", code=1302, plugin="c")
    lost.__cause__ = plugwire.TransportError("the plugin closed its end of the connection", code=1302, plugin="c")
    unknown = plugwire.OutcomeUnknownError(f"the plugin failed after receiving the request: {lost.message}", plugin="c")
    unknown.__cause__ = lost
    assert str(unknown) == (
        "[1207] the plugin failed after receiving the request: the plugin closed its end of the connection"
        " (plugin 'c'): caused by TransportError [1302]"
    )
    missing = FileNotFoundError(2, "no such audit database", "x.db")
    opened = plugwire.errors.SecurityError(f"cannot open the audit log x.db: {missing}", code=1811)
    opened.__cause__ = missing
    assert str(opened) == (
        "[1811] cannot open the audit log x.db: [Errno 2] no such audit database: 'x.db': caused by FileNotFoundError"
    )


def test_a_code_outside_the_family_range_is_refused() -> None:
    with pytest.raises(ValueError, match="takes codes 1200-1299"):
        plugwire.ExecutionError("x", code=1001)


def test_caller_mistakes_are_also_builtin_errors() -> None:
    assert issubclass(plugwire.ConfigError, ValueError)
    assert issubclass(plugwire.PluginNotFoundError, LookupError)
    assert issubclass(plugwire.errors.RequestValidationError, ValueError)
    assert issubclass(plugwire.PluginTimeoutError, TimeoutError)
    assert issubclass(plugwire.errors.MissingDependencyError, ImportError)


def test_errors_survive_pickling_with_all_their_fields() -> None:
    err = plugwire.PluginTimeoutError("slow", plugin="p", details={"timeout": 1.5})
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.code, copy.retryable, copy.plugin, copy.details) == (
        plugwire.PluginTimeoutError,
        1204,
        True,
        "p",
        {"timeout": 1.5},
    )


def test_error_from_code_rebuilds_the_most_specific_class() -> None:
    assert type(error_from_code(1201, "gone")) is plugwire.PluginNotFoundError
    assert error_class_for_code(1302) is plugwire.TransportError
    rebuilt = error_from_code(1105, "custom auth failure", plugin="p")
    assert isinstance(rebuilt, plugwire.errors.AuthenticationError)
    assert rebuilt.code == 1105


def test_error_from_code_keeps_an_unknown_peer_code_in_details() -> None:
    rebuilt = error_from_code(42, "plugin specific", retryable=True)
    assert type(rebuilt) is plugwire.ExecutionError
    assert rebuilt.details["remote_code"] == 42
    assert rebuilt.retryable is True


def test_retryable_defaults_follow_the_family() -> None:
    assert plugwire.TransportError("x").retryable is True
    assert plugwire.ExecutionError("x").retryable is False
    assert plugwire.ExecutionError("x", retryable=True).retryable is True


def test_every_error_says_whether_the_request_was_sent_and_keeps_it_through_pickling() -> None:
    assert plugwire.ConfigError("x").request_sent is plugwire.errors.RequestSent.NOT_APPLICABLE
    assert plugwire.CircuitOpenError("x").request_sent is plugwire.errors.RequestSent.NO
    assert plugwire.RateLimitedError("x").request_sent is plugwire.errors.RequestSent.NO
    assert plugwire.OutcomeUnknownError("x").request_sent is plugwire.errors.RequestSent.MAYBE
    assert plugwire.PluginTimeoutError("x").request_sent is plugwire.errors.RequestSent.MAYBE
    assert plugwire.ExecutionError("x").request_sent is plugwire.errors.RequestSent.YES
    err = plugwire.PluginTimeoutError("queued too long", plugin="p", request_sent=plugwire.errors.RequestSent.NO)
    copy = pickle.loads(pickle.dumps(err))
    assert copy.request_sent is plugwire.errors.RequestSent.NO
    assert copy.message == "queued too long"


def test_an_error_pickled_before_request_sent_existed_gets_its_class_default() -> None:

    rebuilt = _rebuild(plugwire.PluginTimeoutError, ("slow", 1204, True, "p", {}))
    assert rebuilt.request_sent is plugwire.errors.RequestSent.MAYBE


def test_error_from_code_takes_whether_the_request_was_sent() -> None:
    assert error_from_code(1304, "stopping", retryable=True, request_sent=answered(1304)).request_sent is (
        plugwire.errors.RequestSent.YES
    )
    assert answered(1204) is answered(1207) is plugwire.errors.RequestSent.MAYBE
    unknown_code = error_from_code(42, "plugin specific", request_sent=plugwire.errors.RequestSent.YES)
    assert unknown_code.request_sent is plugwire.errors.RequestSent.YES
