"""A test plugin that fails some of its calls on purpose: for load tests that count errors.

The request says which calls fail: `{"every": {"1203": 3, "1205": 5}}` makes this process's
3rd, 6th, 9th... call fail with `ExecutionError` (1203), and of the others every 5th with
`RequestValidationError` (1205). Counted per process: run it as one process
(`connection.max_connections: 1`) for exact counts.
"""

from __future__ import annotations

import msgspec

import plugwire

ERRORS: dict[int, type[plugwire.PluginError]] = {
    1203: plugwire.ExecutionError,
    1205: plugwire.errors.RequestValidationError,
}


class Req(msgspec.Struct):
    every: dict[str, int] = {}  # error code (as JSON keys are: text) -> every how many calls


class Resp(msgspec.Struct):
    call: int


class FlakyPlugin(plugwire.Plugin[Req, Resp]):
    def __init__(self) -> None:
        self.calls = 0

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="flaky", version="0.1.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        self.calls += 1
        for code, every in request.every.items():
            if every > 0 and self.calls % every == 0:
                raise ERRORS[int(code)](f"call {self.calls} fails on purpose", retryable=False)
        return Resp(call=self.calls)


if __name__ == "__main__":
    plugwire.serve(FlakyPlugin())
