"""A test plugin: echoes, sleeps, fails, prints and logs on request (served with plugwire.serve)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import msgspec

import plugwire


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class Resp(msgspec.Struct):
    text: str
    pid: int = 0


class EchoPlugin(plugwire.Plugin[Req, Resp]):
    def __init__(self) -> None:
        self.log = logging.getLogger("echo")
        self.sick = False

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo", version="1.2.3", capabilities=("echo",))

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        if request.op == "sleep":
            try:
                await asyncio.sleep(request.seconds)
            except asyncio.CancelledError:
                self.log.warning("sleep of %gs cancelled (request %s)", request.seconds, ctx.request_id)
                raise
        elif request.op == "fail":
            raise plugwire.ExecutionError(request.text, retryable=True)
        elif request.op == "boom":
            raise RuntimeError(request.text)
        elif request.op == "block":  # a stuck plugin: its event loop blocked, no answer to anything
            time.sleep(request.seconds)  # noqa: ASYNC251 (on purpose)
        elif request.op == "late":  # the plugin's own timeout (a PluginError that is also a TimeoutError)
            raise plugwire.PluginTimeoutError(request.text, retryable=False)
        elif request.op == "print":
            print(request.text)
        elif request.op == "log":
            self.log.warning("%s", request.text)
        elif request.op == "env":
            return Resp(text=os.environ.get(request.text, "<unset>"), pid=os.getpid())
        elif request.op == "ctx":
            return Resp(text=f"{ctx.request_id}|{ctx.metadata}|{ctx.headers}|{ctx.timeout is not None}")
        elif request.op == "loop":  # which event loop runs the call, and whether inside a task
            task = asyncio.current_task()
            return Resp(text=f"{type(asyncio.get_running_loop()).__module__}|{isinstance(task, asyncio.Task)}")
        elif request.op == "crash":
            os._exit(3)
        elif request.op == "sick":
            self.sick = True
        return Resp(text=request.text, pid=os.getpid())

    async def health(self) -> plugwire.HealthStatus:
        if self.sick:
            return plugwire.HealthStatus(status=plugwire.Status.UNHEALTHY, message="told to be sick")
        return plugwire.HealthStatus(status=plugwire.Status.HEALTHY, message="ok")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    plugwire.serve(EchoPlugin(), codecs=("json",) if mode == "json" else ("msgpack", "json"))
