"""Type-checked (not run): subprocess plugins used the way a user would write them."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

import plugwire
from plugwire.testing import ConformanceReport, check_plugin


@dataclass
class Query:
    text: str


@dataclass
class Answer:
    text: str


class Upper(plugwire.Plugin[Query, Answer]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="upper")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Query) -> Answer:
        return Answer(text=request.text.upper())


def verify(credentials: Mapping[str, str]) -> None:
    if credentials.get("authorization") != "Bearer t":
        raise plugwire.errors.AuthenticationError("no", code=plugwire.errors.ErrorCode.AUTH_INVALID_CREDENTIALS)


def plugin_main() -> None:
    plugwire.serve(Upper(), max_concurrency=8, grace=2.0, auth=verify)


async def prepare(argv: list[str]) -> list[str]:
    return argv


async def host() -> Answer:
    options = plugwire.config.SubprocessOptions(
        grace=1.0,
        restart=plugwire.config.RestartPolicy(
            max_restarts=3, window=30.0, incident_window=0.5, max_offline_backoff=300.0
        ),
        credentials=lambda: {"authorization": "Bearer t"},
        prepare_launch=prepare,
    )
    source = plugwire.subprocess(sys.executable, "upper.py", env={"LOG_LEVEL": "info"}, cwd="/tmp", options=options)
    manager: plugwire.AsyncPluginManager[Query, Answer] = plugwire.AsyncPluginManager(Query, Answer)
    async with manager:
        await manager.register(source, name="upper")
        return await manager.execute("upper", Query(text="hi"))


def check() -> bool:
    report: ConformanceReport = check_plugin([sys.executable, "upper.py"], request={"text": "hi"}, timeout=2.0)
    print(report)
    return report.ok
