"""The manager's `logger=` takes any framework's logger (issue 17, item 5; the README's
"pluggable logging supporting any framework"): real stdlib, structlog and loguru loggers
receive the manager's messages, a registration and a circuit breaker opening among them."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger

from plugwire import AsyncPluginManager, CircuitBreakerConfig, ExecutionContext, Plugin, PluginConfig, PluginInfo
from plugwire.errors import ExecutionError

REGISTERED = "registered plugin 'flaky'"
OPENED = "circuit breaker of plugin 'flaky': closed -> open"
SHUT_DOWN = "shutdown complete"


class Flaky(Plugin[str, str]):
    def info(self) -> PluginInfo:
        return PluginInfo(name="flaky", version="1.0.0")

    async def execute(self, ctx: ExecutionContext, request: str) -> str:
        raise RuntimeError("always fails")


async def drive(logger: Any) -> None:
    """Registers a plugin, opens its breaker with one failure, shuts down."""
    config = PluginConfig(
        name="flaky",
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1, min_request_threshold=0, recovery_timeout=60),
    )
    async with AsyncPluginManager(str, str, logger=logger) as manager:
        await manager.register(Flaky(), config=config)
        with pytest.raises(ExecutionError):
            await manager.execute("flaky", "x")


def level_of(messages: list[tuple[str, str]], text: str) -> str:
    found = [level for level, message in messages if message.startswith(text)]
    assert len(found) == 1, (text, messages)
    return found[0].lower()


def assert_heard(messages: list[tuple[str, str]]) -> None:
    assert level_of(messages, REGISTERED) == "info"
    assert level_of(messages, OPENED) == "warning"
    assert level_of(messages, SHUT_DOWN) == "info"


async def test_a_stdlib_logger_hears_the_manager() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(f"test.host.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    handler = Keep()
    logger.addHandler(handler)
    try:
        await drive(logger)
    finally:
        logger.removeHandler(handler)
    assert_heard([(record.levelname, record.getMessage()) for record in records])


async def test_a_structlog_logger_hears_the_manager() -> None:
    stream = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
    )
    await drive(logger)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert_heard([(event["level"], event["event"]) for event in events])


async def test_a_loguru_logger_hears_the_manager() -> None:
    heard: list[tuple[str, str]] = []
    mark = uuid.uuid4().hex
    sink = loguru_logger.add(
        lambda message: heard.append((message.record["level"].name, message.record["message"])),
        filter=lambda record: record["extra"].get("test_mark") == mark,
    )
    try:
        await drive(loguru_logger.bind(test_mark=mark))
    finally:
        loguru_logger.remove(sink)
    assert_heard(heard)
