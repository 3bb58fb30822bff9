"""hclog JSON lines: what a go-plugin host parses from a plugin's stderr."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re

import pytest

from plugwire._goplugin.hclog import HclogHandler, hclog_level, hclog_line, hclog_timestamp
from plugwire._goplugin.stdout import stdout_to_log

# go-plugin's parser: time.Parse("2006-01-02T15:04:05.000000Z07:00", ...)
GO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")


@pytest.mark.parametrize(
    ("created", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000000Z"),  # no fraction at all: still six digits
        (1_700_000_000.5, "2023-11-14T22:13:20.500000Z"),
        (1_700_000_000.000001, "2023-11-14T22:13:20.000001Z"),
        (1_700_000_000.9999996, "2023-11-14T22:13:21.000000Z"),  # rounding carries into the second
    ],
)
def test_timestamps_have_exactly_six_fractional_digits(created: float, text: str) -> None:
    assert hclog_timestamp(created) == text
    assert GO_TIMESTAMP.match(text)


def test_a_timestamp_is_the_records_time_in_utc() -> None:
    now = datetime.datetime(2026, 12, 7, 17, 0, 1, 250000, tzinfo=datetime.UTC)
    assert hclog_timestamp(now.timestamp()) == "2026-12-07T17:00:01.250000Z"


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (5, "trace"),
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (25, "info"),
        (logging.WARNING, "warn"),  # hclog has no "warning": the host would not know the level
        (logging.ERROR, "error"),
        (logging.CRITICAL, "error"),
    ],
)
def test_stdlib_levels_map_to_the_five_hclog_knows(level: int, name: str) -> None:
    assert hclog_level(level) == name


def test_a_line_holds_the_hclog_keys_then_the_fields() -> None:
    line = json.loads(hclog_line("info", "put", module="kv", created=0.0, key="k", size=3, obj=object))
    assert line["@level"] == "info"
    assert line["@message"] == "put"
    assert line["@timestamp"] == "1970-01-01T00:00:00.000000Z"
    assert line["@module"] == "kv"
    assert (line["key"], line["size"]) == ("k", 3)
    assert line["obj"] == str(object)  # what JSON cannot hold is written as text


def test_a_field_cannot_overwrite_an_hclog_key() -> None:
    assert json.loads(hclog_line("info", "m", **{"@level": "error"}))["@level"] == "info"


def test_the_handler_writes_one_json_line_per_record_with_extra_fields_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("plugwire.tests.hclog")
    logger.propagate = False
    handler = HclogHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("disk %s low", "/var", extra={"free_mb": 12})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["@level"] == "warn"
    assert first["@message"] == "disk /var low"
    assert first["@module"] == "plugwire.tests.hclog"
    assert first["free_mb"] == 12
    assert GO_TIMESTAMP.match(first["@timestamp"])
    assert second["@level"] == "error"
    assert "ValueError: boom" in second["exception"]
    assert set(first) == {"@level", "@message", "@timestamp", "@module", "free_mb"}


def test_stdout_becomes_whole_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    stdout_to_log(b"first line\nsecond ")
    stdout_to_log(b"half\r\n")
    stdout_to_log(b"no end")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["@level"], line["@module"], line["@message"]) for line in lines] == [
        ("debug", "stdout", "first line"),
        ("debug", "stdout", "second half"),
    ]
    stdout_to_log(b"", final=True)  # the end of the process writes what is left
    assert json.loads(capsys.readouterr().err)["@message"] == "no end"
