"""Streaming digests from an open descriptor agree with hashlib for every algorithm."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from plugwire._security import ALGORITHMS, digest_fd, digest_file
from plugwire._security.hashing import CHUNK_SIZE, check_algorithm
from plugwire.errors import ErrorCode, SecurityError


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_digest_of_a_file_matches_hashlib_across_buffer_boundaries(tmp_path: Path, algorithm: str, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = hashlib.new(algorithm, data).hexdigest()
    assert len(expected) == ALGORITHMS[algorithm]
    assert digest_file(path, algorithm) == expected


def test_digest_fd_hashes_from_the_start_whatever_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"0123456789" * 1000)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 500, os.SEEK_SET)
        assert digest_fd(fd, "sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest_fd(fd, "sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
    finally:
        os.close(fd)


def test_an_unknown_algorithm_is_refused_with_1805() -> None:
    with pytest.raises(SecurityError) as caught:
        check_algorithm("md5", where="security.hash_algorithm")
    assert caught.value.code == ErrorCode.UNKNOWN_HASH_ALGORITHM
    assert "security.hash_algorithm" in caught.value.message
    assert check_algorithm(" SHA512 ") == "sha512"
