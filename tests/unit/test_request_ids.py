"""Request ids: cheap enough for every call, unique within and across processes."""

from __future__ import annotations

import os

import pytest

from plugwire import ExecutionContext
from plugwire._models import new_request_id


def test_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert ExecutionContext().with_request_id().request_id != ExecutionContext().with_request_id().request_id


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_its_own_random_prefix() -> None:
    parent = new_request_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave without running any cleanup
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child = pipe.read()
    assert status == 0
    assert len(child) == 32
    assert child[:16] != parent[:16]
