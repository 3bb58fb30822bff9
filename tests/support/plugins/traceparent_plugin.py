"""A test plugin for host-side tracing: answers with the `traceparent` its `execute` saw.

Ops: "echo" (default); "env" (the value of the variable named by `text`); "fail" (raises a
retryable error on the first `fails` attempts of each request id); "garbage" (answers with a
malformed traceparent of its own, which the host must ignore). Served with plugwire.serve, or
in-process / over gRPC by the tests.
"""

from __future__ import annotations

import os

import msgspec

import plugwire


class TraceReq(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    fails: int = 0


class TraceResp(msgspec.Struct):
    traceparent: str
    text: str = ""


class TraceparentPlugin(plugwire.Plugin[TraceReq, TraceResp]):
    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.seen: list[str] = []  # the traceparent of every call, in order

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="traceparent", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: TraceReq) -> TraceResp:
        self.seen.append(ctx.traceparent)
        if request.op == "fail":
            attempt = self.attempts[ctx.request_id] = self.attempts.get(ctx.request_id, 0) + 1
            if attempt <= request.fails:
                raise plugwire.ExecutionError(f"attempt {attempt} fails", retryable=True)
        if request.op == "env":
            return TraceResp(traceparent=ctx.traceparent, text=os.environ.get(request.text, "<unset>"))
        if request.op == "garbage":
            return TraceResp(traceparent="00-zz-not-a-trace-parent-!!", text="garbage")
        return TraceResp(traceparent=ctx.traceparent, text=request.text)


if __name__ == "__main__":
    plugwire.serve(TraceparentPlugin())
