"""`plugwire.serve()`: the plugin side, driven by hand-built frames from real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import plugwire
from tests.support.procguard import PLUGINS, SRC, plugin_env

pytestmark = pytest.mark.usefixtures("no_leaks")

SYNC = [sys.executable, str(PLUGINS / "sdk_plugin.py")]
ECHO = [sys.executable, str(PLUGINS / "echo_plugin.py")]


def test_run_by_hand_without_the_cookie_a_plugin_explains_itself_and_exits_1() -> None:
    result = subprocess.run(ECHO, env=plugin_env(), capture_output=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().strip().count("\n") == 0
    assert "not meant to be run by hand" in result.stderr.decode()


def test_an_unknown_transport_is_a_coded_config_error() -> None:
    with pytest.raises(plugwire.ConfigError) as caught:
        plugwire.serve(object(), transport="carrier-pigeon")
    assert caught.value.code == plugwire.errors.ErrorCode.CONFIG_UNKNOWN_TRANSPORT


@pytest.mark.parametrize("statement", ["import plugwire._sdk.serve", "import plugwire; plugwire.serve"])
def test_importing_the_sdk_loads_no_host_code(statement: str) -> None:
    code = (
        f"{statement}; import sys; "
        "bad = [m for m in sys.modules if m == 'plugwire._manager' or m.startswith('plugwire._transports')"
        " or m.startswith('plugwire._policies') or m == 'plugwire._sources']; print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True, timeout=30, check=True
    )
    assert result.stdout.decode().strip() == "[]"


def test_the_handshake_answers_with_version_codec_and_info(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(SYNC)
    reply = driver.hello(codecs=("json", "msgpack"))
    assert reply["type"] == "hello"
    assert reply["version"] == 1
    assert reply["codec"] == "json"
    assert reply["info"]["name"] == "sync"


def test_plain_def_calls_run_in_a_bounded_thread_pool(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(SYNC)
    driver.hello()
    driver.send({"type": "call", "id": 1, "payload": {"seconds": 0}})
    reply = driver.recv()
    assert reply["id"] == 1
    assert reply["payload"]["thread"].startswith("plugwire-plugin")


def test_max_concurrency_bounds_the_calls_running_at_once(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory([*SYNC, "2"])
    driver.hello()
    for i in range(1, 7):
        driver.send({"type": "call", "id": i, "payload": {"seconds": 0.05}})
    replies = [driver.recv() for _ in range(6)]
    assert sorted(r["id"] for r in replies) == [1, 2, 3, 4, 5, 6]
    assert max(r["payload"]["peak"] for r in replies) == 2


def test_a_passed_deadline_answers_a_retryable_timeout(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(ECHO)
    driver.hello()
    driver.send({"type": "call", "id": 5, "payload": {"op": "sleep", "seconds": 5}, "ctx": {"deadline": 1.0}})
    reply = driver.recv()
    assert reply == {"type": "error", "id": 5, "code": 1204, "message": "the call's deadline passed", "retryable": True}


def test_cancel_stops_the_call_without_an_answer(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(ECHO)
    driver.hello()
    driver.send({"type": "call", "id": 1, "payload": {"op": "sleep", "seconds": 30}})
    driver.send({"type": "cancel", "id": 1})
    driver.send({"type": "cancel", "id": 99})  # unknown ids are ignored
    driver.send({"type": "health", "id": 2})
    reply = driver.recv()
    assert reply["id"] == 2  # the next frame is the health answer: nothing came for call 1
    assert reply["payload"]["status"] == "healthy"


def test_an_unknown_method_is_a_coded_error(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(ECHO)
    driver.hello()
    driver.send({"type": "call", "id": 3, "method": "teleport", "payload": {}})
    reply = driver.recv()
    assert (reply["type"], reply["id"], reply["code"]) == ("error", 3, 2007)


def test_a_request_of_the_wrong_shape_is_refused_naming_the_field(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(ECHO)
    driver.hello()
    driver.send({"type": "call", "id": 4, "payload": {"text": 12}})
    reply = driver.recv()
    assert reply["code"] == 1205
    assert "text" in reply["message"]


def test_sigterm_finishes_in_flight_calls_then_closes_and_exits_0(driver_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "closed"
    driver = driver_factory(SYNC, env={"CLOSE_MARKER": str(marker)})
    driver.hello()
    driver.send({"type": "call", "id": 1, "payload": {"seconds": 0.3}})
    driver.send({"type": "health", "id": 2})
    assert driver.recv()["id"] == 2  # the call is running now
    driver.proc.send_signal(signal.SIGTERM)
    assert driver.proc.stderr is not None
    while b"stopping (SIGTERM)" not in driver.proc.stderr.readline():
        pass
    driver.send({"type": "call", "id": 3, "payload": {}})
    replies = {r["id"]: r for r in (driver.recv(), driver.recv())}
    assert replies[1]["type"] == "result"
    assert replies[3]["code"] == plugwire.errors.ErrorCode.PLUGIN_STOPPING
    assert driver.wait() == 0
    assert marker.read_text() == "closed"


def test_after_plain_def_calls_the_plugin_exits_normally_running_its_atexit_hooks(
    driver_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "exited"
    driver = driver_factory(SYNC, env={"EXIT_MARKER": str(marker)})
    driver.hello()
    for i in range(1, 9):  # calls that wait: the pool grows to several workers
        driver.send({"type": "call", "id": i, "payload": {"seconds": 0.02}})
    assert sorted(driver.recv()["id"] for _ in range(8)) == list(range(1, 9))
    driver.send({"type": "shutdown", "grace": 5})
    assert driver.wait() == 0
    assert marker.exists()  # not cut short by os._exit: idle workers are not stuck calls


def test_a_plain_def_call_stuck_past_the_grace_does_not_hold_the_exit(driver_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "exited"
    driver = driver_factory(SYNC, env={"EXIT_MARKER": str(marker)})
    driver.hello()
    driver.send({"type": "call", "id": 1, "payload": {"seconds": 30}})  # a thread cannot be cancelled
    driver.send({"type": "health", "id": 2})
    assert driver.recv()["id"] == 2
    driver.send({"type": "shutdown", "grace": 0.1})
    reply = driver.recv()
    assert (reply["id"], reply["code"]) == (1, plugwire.errors.ErrorCode.OUTCOME_UNKNOWN)
    assert driver.wait(timeout=10) == 0
    assert not marker.exists()  # left at once, without the interpreter's exit


def test_shutdown_cancels_calls_that_outlive_the_grace(driver_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(ECHO)
    driver.hello()
    driver.send({"type": "call", "id": 1, "payload": {"op": "sleep", "seconds": 30}})
    driver.send({"type": "shutdown", "grace": 0.1})
    reply = driver.recv()
    assert (reply["id"], reply["code"]) == (1, plugwire.errors.ErrorCode.OUTCOME_UNKNOWN)
    assert driver.wait() == 0


def test_end_of_input_stops_the_plugin_cleanly(driver_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "closed"
    driver = driver_factory(SYNC, env={"CLOSE_MARKER": str(marker)})
    driver.hello()
    driver.sock.shutdown(__import__("socket").SHUT_WR)
    assert driver.wait() == 0
    assert marker.read_text() == "closed"


def test_an_auth_verifier_refusal_is_answered_with_its_code_and_the_plugin_exits(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory([sys.executable, str(PLUGINS / "auth_checked_plugin.py")])
    reply = driver.hello(auth={"authorization": "Bearer nope"})
    assert reply["type"] == "error"
    assert reply["code"] == plugwire.errors.ErrorCode.AUTH_INVALID_CREDENTIALS
    assert driver.wait() == 1


def test_an_oversized_frame_from_the_host_is_refused_and_the_plugin_exits(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(ECHO)
    reply = driver.hello()
    driver.send_bytes((reply["max_frame"] + 1).to_bytes(4, "big"))
    error = driver.recv()
    assert (error["type"], error["id"], error["code"]) == ("error", 0, plugwire.errors.ErrorCode.FRAME_TOO_LARGE)
    assert driver.wait() == 1


def test_logging_goes_to_stderr_as_json_lines(driver_factory) -> None:  # type: ignore[no-untyped-def]
    import json

    driver = driver_factory(ECHO)
    driver.hello()
    driver.send({"type": "call", "id": 1, "payload": {"op": "log", "text": "careful"}})
    driver.recv()
    driver.send({"type": "shutdown", "grace": 1})
    assert driver.wait() == 0
    lines = [json.loads(line) for line in driver.stderr().splitlines() if line.startswith("{")]
    assert {"level": "WARNING", "logger": "echo", "message": "careful"} in lines


def test_a_plugin_also_works_over_two_plain_pipes() -> None:
    import json
    import os

    env = {"PATH": os.environ.get("PATH", ""), **plugin_env()}
    env.update(PLUGWIRE_MAGIC_COOKIE="8c2f9b1e4d7a4f6b-plugwire", PLUGWIRE_PROTOCOL_VERSIONS="1")
    proc = subprocess.Popen(ECHO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None
    assert proc.stdout is not None

    def send(message: dict[str, object]) -> None:
        body = json.dumps(message).encode()
        proc.stdin.write(len(body).to_bytes(4, "big") + body)  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    def recv() -> dict[str, object]:
        size = int.from_bytes(proc.stdout.read(4), "big")  # type: ignore[union-attr]
        return json.loads(proc.stdout.read(size))  # type: ignore[union-attr,no-any-return]

    try:
        send({"type": "hello", "versions": [1], "codecs": ["json"], "max_frame": 1 << 20, "auth": {}})
        assert recv()["type"] == "hello"
        send({"type": "call", "id": 1, "payload": {"text": "piped"}})
        assert recv()["payload"]["text"] == "piped"  # type: ignore[index]
        proc.stdin.close()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        if not proc.stdin.closed:
            proc.stdin.close()


def test_answers_larger_than_the_socket_buffers_reach_a_host_that_reads_late(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory(ECHO)
    assert driver.hello()["type"] == "hello"
    text = "x" * 900_000  # each answer is several times what a socket pair buffers
    # Sent from a thread: the plugin stops reading while its answers wait (backpressure).
    sender = threading.Thread(
        target=lambda: [driver.send({"type": "call", "id": i, "payload": {"text": text}}) for i in range(1, 5)]
    )
    sender.start()
    time.sleep(0.2)  # the plugin answers into a full socket: it must hold the rest and keep going
    answers = [driver.recv() for _ in range(4)]
    sender.join(10)
    assert sorted(a["id"] for a in answers) == list(range(1, 5))
    assert all(a["type"] == "result" and a["payload"]["text"] == text for a in answers)
    driver.sock.shutdown(socket.SHUT_WR)
    assert driver.wait() == 0
