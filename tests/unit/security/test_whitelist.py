"""The whitelist file: formats, safe loading, and a coded error naming each bad entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugwire._security import load_whitelist
from plugwire.errors import ErrorCode, SecurityError

HEX64 = "a" * 64


def load_text(tmp_path: Path, text: str, name: str = "plugins.whitelist"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text)
    return load_whitelist(path)


def test_readme_yaml_format_loads_with_relative_paths_resolved_against_the_whitelist_folder(tmp_path: Path) -> None:
    whitelist = load_text(
        tmp_path,
        f"""
# Plugin Whitelist Configuration
version: "1.0"
plugins:
  - name: "auth-service"
    path: "./plugins/auth-service"
    hash: "sha256:{HEX64}"
    algorithm: "sha256"
    enabled: true
    metadata:
      version: "1.2.3"
      author: "security-team@company.com"
  - name: "pricing"
    endpoint: "pricing.internal:9090"
""",
    )
    entry = whitelist.get("auth-service")
    assert entry is not None
    assert entry.path == tmp_path / "plugins" / "auth-service"
    assert entry.digest == HEX64
    assert entry.pinned == f"sha256:{HEX64}"
    assert entry.metadata == {"version": "1.2.3", "author": "security-team@company.com"}
    pricing = whitelist.get("pricing")
    assert pricing is not None
    assert pricing.endpoint == "pricing.internal:9090"
    assert whitelist.has_endpoints
    assert whitelist.folders == (tmp_path / "plugins",)


def test_json_and_toml_whitelists_load_the_same_entries(tmp_path: Path) -> None:
    json_list = load_text(tmp_path, f'{{"plugins": [{{"name": "a", "path": "a", "hash": "{HEX64}"}}]}}', "w.json")
    toml_list = load_text(
        tmp_path, f'version = "1.0"\n[[plugins]]\nname = "a"\npath = "a"\nhash = "{HEX64}"\n', "w.toml"
    )
    assert json_list.entries == toml_list.entries
    assert json_list.entries[0].algorithm == "sha256"


@pytest.mark.parametrize(
    ("algorithm", "length"),
    [("sha256", 64), ("sha512", 128), ("blake2b", 128)],
)
def test_each_supported_algorithm_is_accepted_at_its_digest_length(tmp_path: Path, algorithm: str, length: int) -> None:
    whitelist = load_text(tmp_path, f'plugins: [{{name: a, path: a, hash: "{algorithm}:{"b" * length}"}}]')
    assert whitelist.entries[0].algorithm == algorithm


@pytest.mark.parametrize(
    ("entry", "code", "words"),
    [
        (f'{{name: good, path: a, hash: "md5:{HEX64}"}}', ErrorCode.UNKNOWN_HASH_ALGORITHM, "md5"),
        (f'{{name: good, path: a, hash: "{HEX64}", algorithm: whirlpool}}', ErrorCode.UNKNOWN_HASH_ALGORITHM, "whirl"),
        (f'{{name: good, path: a, hash: "sha512:{HEX64}", algorithm: sha256}}', ErrorCode.UNKNOWN_HASH_ALGORITHM, ""),
        ('{name: good, path: a, hash: "sha256:abc"}', ErrorCode.BAD_HASH_LENGTH, "64"),
        (f'{{name: good, path: a, hash: "sha256:{"z" * 64}"}}', ErrorCode.BAD_HASH_LENGTH, "hexadecimal"),
        (f'{{name: good, path: ../outside/a, hash: "{HEX64}"}}', ErrorCode.PATH_TRAVERSAL, ".."),
        (f'{{name: good, path: "plugins/../../etc/passwd", hash: "{HEX64}"}}', ErrorCode.PATH_TRAVERSAL, ".."),
        ("{name: good, path: a}", ErrorCode.WHITELIST_MALFORMED, "hash"),
        (f'{{name: good, hash: "{HEX64}"}}', ErrorCode.WHITELIST_MALFORMED, "path"),
        (f'{{name: good, path: a, hash: "{HEX64}", enabled: "yes"}}', ErrorCode.WHITELIST_MALFORMED, "enabled"),
        (f'{{name: good, path: a, hash: "{HEX64}", colour: red}}', ErrorCode.WHITELIST_MALFORMED, "colour"),
        (f'{{name: good, path: a, hash: "{HEX64}", endpoint: "x:1"}}', ErrorCode.WHITELIST_MALFORMED, "endpoint"),
    ],
)
def test_a_bad_entry_gives_its_code_and_names_the_entry(tmp_path: Path, entry: str, code: int, words: str) -> None:
    with pytest.raises(SecurityError) as caught:
        load_text(tmp_path, f"plugins:\n  - {{name: first, endpoint: 'h:1'}}\n  - {entry}\n")
    assert caught.value.code == code
    assert "plugins[1]" in caught.value.message
    assert "'good'" in caught.value.message
    assert words in caught.value.message


def test_duplicate_names_are_refused_naming_both_entries(tmp_path: Path) -> None:
    with pytest.raises(SecurityError) as caught:
        load_text(tmp_path, f'plugins: [{{name: a, path: a, hash: "{HEX64}"}}, {{name: a, path: b, hash: "{HEX64}"}}]')
    assert caught.value.code == ErrorCode.WHITELIST_DUPLICATE_NAME
    assert "plugins[1]" in caught.value.message
    assert "plugins[0]" in caught.value.message


def test_yaml_python_object_tags_are_refused_and_nothing_is_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    text = f"""
plugins:
  - name: evil
    path: !!python/object/apply:os.system ["touch {marker}"]
    hash: "{HEX64}"
"""
    with pytest.raises(SecurityError) as caught:
        load_text(tmp_path, text)
    assert caught.value.code == ErrorCode.WHITELIST_MALFORMED
    assert "python/object" in caught.value.message
    assert not marker.exists()


def test_a_billion_laughs_alias_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [
        f"a{i}: &a{i} [*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1}]"
        for i in range(1, 10)
    ]
    lines.append("plugins: *a9")
    with pytest.raises(SecurityError) as caught:
        load_text(tmp_path, "\n".join(lines))
    assert caught.value.code == ErrorCode.WHITELIST_MALFORMED
    assert "nodes" in caught.value.message


@pytest.mark.parametrize("text", ["plugins: [unclosed", "- just\n- a list\n", "plugins: {a: 1}", "version: [1]"])
def test_malformed_files_are_refused_with_1804(tmp_path: Path, text: str) -> None:
    with pytest.raises(SecurityError) as caught:
        load_text(tmp_path, text)
    assert caught.value.code == ErrorCode.WHITELIST_MALFORMED


def test_a_missing_whitelist_file_is_a_malformed_whitelist(tmp_path: Path) -> None:
    with pytest.raises(SecurityError) as caught:
        load_whitelist(tmp_path / "absent.yaml")
    assert caught.value.code == ErrorCode.WHITELIST_MALFORMED
    assert "no such file" in caught.value.message


def test_a_changed_file_has_a_new_fingerprint(tmp_path: Path) -> None:
    first = load_text(tmp_path, f'plugins: [{{name: a, path: a, hash: "{HEX64}"}}]')
    same = load_text(tmp_path, f'plugins: [{{name: a, path: a, hash: "{HEX64}"}}]')
    other = load_text(tmp_path, f'plugins: [{{name: b, path: a, hash: "{HEX64}"}}]')
    assert first.fingerprint == same.fingerprint != other.fingerprint


def test_entries_without_an_algorithm_use_the_configured_default(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(f'plugins: [{{name: a, path: a, hash: "{"d" * 128}"}}]')
    assert load_whitelist(path, default_algorithm="sha512").entries[0].algorithm == "sha512"
    with pytest.raises(SecurityError) as caught:
        load_whitelist(path)
    assert caught.value.code == ErrorCode.BAD_HASH_LENGTH
