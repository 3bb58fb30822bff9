"""go-plugin's handshake: the config, the stdout line both ways, every malformed line, and the
app version negotiation, without processes."""

from __future__ import annotations

import base64

import pytest

from plugwire._goplugin import (
    CORE_PROTOCOL_VERSION,
    PROTOCOL_VERSIONS_ENV,
    HandshakeConfig,
    HandshakeLine,
    format_handshake_line,
    negotiate_app_version,
    parse_handshake_line,
)
from plugwire.errors import ConfigError, ErrorCode, ProtocolError

# A DER certificate's first bytes are a SEQUENCE header; the parser checks no further.
DER = b"\x30\x82\x01\x0a" + bytes(range(200))
CERT_RAW = base64.b64encode(DER).decode().rstrip("=")  # go-plugin writes it unpadded
CERT_PADDED = base64.b64encode(DER).decode()


def parse(text: str, versions: tuple[int, ...] = (1,)) -> HandshakeLine:
    return parse_handshake_line(text, app_versions=versions)


def refusal(text: str, versions: tuple[int, ...] = (1,)) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse(text, versions)
    return caught.value


class TestHandshakeConfig:
    def test_go_plugins_example_config_is_valid(self) -> None:
        config = HandshakeConfig(protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello")
        assert config.cookie_matches({"BASIC_PLUGIN": "hello"})

    def test_a_missing_or_different_cookie_does_not_match(self) -> None:
        config = HandshakeConfig(1, "BASIC_PLUGIN", "hello")
        assert not config.cookie_matches({})
        assert not config.cookie_matches({"BASIC_PLUGIN": "hello2"})

    @pytest.mark.parametrize(
        ("version", "key", "value"),
        [
            (-1, "K", "v"),
            (True, "K", "v"),
            ("1", "K", "v"),
            (1, "", "v"),
            (1, "A=B", "v"),
            (1, "A\0", "v"),
            (1, "K", ""),
            (1, "K", "v\0"),
        ],
    )
    def test_invalid_configs_are_refused_with_a_coded_value_error(self, version: object, key: str, value: str) -> None:
        with pytest.raises(ConfigError) as caught:
            HandshakeConfig(protocol_version=version, magic_cookie_key=key, magic_cookie_value=value)  # type: ignore[arg-type]
        assert caught.value.code == ErrorCode.CONFIG_INVALID_VALUE
        assert isinstance(caught.value, ValueError)

    def test_is_frozen(self) -> None:
        config = HandshakeConfig(1, "K", "v")
        with pytest.raises(AttributeError):
            config.protocol_version = 2  # type: ignore[misc]


class TestFormat:
    def test_a_unix_grpc_line_has_six_fields_and_an_empty_certificate(self) -> None:
        line = HandshakeLine(app_protocol_version=3, network="unix", address="/tmp/plugin123")
        assert format_handshake_line(line) == "1|3|unix|/tmp/plugin123|grpc|"

    def test_a_certificate_and_multiplexing_are_written(self) -> None:
        line = HandshakeLine(1, "tcp", "127.0.0.1:1234", server_cert=CERT_RAW, multiplex=True)
        assert format_handshake_line(line) == f"1|1|tcp|127.0.0.1:1234|grpc|{CERT_RAW}|true"

    @pytest.mark.parametrize(
        "line",
        [
            HandshakeLine(1, "unix", "/tmp/s"),
            HandshakeLine(2, "tcp", "127.0.0.1:10000", server_cert=CERT_RAW),
            HandshakeLine(7, "unix", "/run/p/sock", multiplex=True),
        ],
    )
    def test_parse_reads_back_what_format_writes(self, line: HandshakeLine) -> None:
        assert parse(format_handshake_line(line) + "\n", (line.app_protocol_version,)) == line

    @pytest.mark.parametrize(
        "fields",
        [
            {"app_protocol_version": -1},
            {"core_protocol_version": -1},
            {"network": "udp"},
            {"protocol": "http"},
            {"address": ""},
            {"address": "/tmp/a|b"},
            {"address": "/tmp/a\nb"},
            {"server_cert": "not base64!"},
            {"server_cert": base64.b64encode(b"not DER").decode()},
        ],
    )
    def test_a_line_that_cannot_be_written_is_refused(self, fields: dict[str, object]) -> None:
        values: dict[str, object] = {"app_protocol_version": 1, "network": "unix", "address": "/tmp/s"}
        values.update(fields)
        with pytest.raises(ConfigError) as caught:
            HandshakeLine(**values)  # type: ignore[arg-type]
        assert caught.value.code == ErrorCode.CONFIG_INVALID_VALUE


class TestParse:
    def test_go_plugins_own_line_is_read(self) -> None:
        line = parse("1|1|unix|/tmp/plugin2389451467|grpc|\n")
        assert line == HandshakeLine(1, "unix", "/tmp/plugin2389451467")
        assert line.core_protocol_version == CORE_PROTOCOL_VERSION
        assert line.server_cert_der() == b""

    def test_a_five_field_line_without_certificate_is_read(self) -> None:
        assert parse("1|1|tcp|127.0.0.1:1234|grpc") == HandshakeLine(1, "tcp", "127.0.0.1:1234")

    @pytest.mark.parametrize("cert", [CERT_RAW, CERT_PADDED])
    def test_the_server_certificate_is_decoded_padded_or_not(self, cert: str) -> None:
        line = parse(f"1|1|unix|/tmp/s|grpc|{cert}")
        assert line.server_cert == cert
        assert line.server_cert_der() == DER

    def test_the_multiplex_field_is_read(self) -> None:
        assert parse("1|1|unix|/tmp/s|grpc||true").multiplex
        assert not parse("1|1|unix|/tmp/s|grpc||false").multiplex

    def test_the_highest_offered_version_the_plugin_chose_is_accepted(self) -> None:
        assert parse("1|2|unix|/tmp/s|grpc|", (1, 2)).app_protocol_version == 2

    @pytest.mark.parametrize(
        ("text", "code", "says"),
        [
            ("", ErrorCode.GO_HANDSHAKE_MALFORMED, "0 field(s)"),
            ("   \n", ErrorCode.GO_HANDSHAKE_MALFORMED, "0 field(s)"),
            ("garbage before the handshake", ErrorCode.GO_HANDSHAKE_MALFORMED, "1 field(s)"),
            ("1|1|unix", ErrorCode.GO_HANDSHAKE_MALFORMED, "3 field(s)"),
            ("1|1|unix|/tmp/s|grpc||true|extra", ErrorCode.GO_HANDSHAKE_MALFORMED, "8 field(s)"),
            ("x|1|unix|/tmp/s|grpc|", ErrorCode.GO_HANDSHAKE_MALFORMED, "core protocol version 'x' is not a number"),
            ("-1|1|unix|/tmp/s|grpc|", ErrorCode.GO_HANDSHAKE_MALFORMED, "core protocol version '-1'"),
            ("\uff11|1|unix|/tmp/s|grpc|", ErrorCode.GO_HANDSHAKE_MALFORMED, "is not a number"),  # fullwidth 1
            ("2|1|unix|/tmp/s|grpc|", ErrorCode.GO_CORE_VERSION_UNSUPPORTED, "core protocol version 2"),
            ("1||unix|/tmp/s|grpc|", ErrorCode.GO_HANDSHAKE_MALFORMED, "app protocol version '' is not a number"),
            ("1|v1|unix|/tmp/s|grpc|", ErrorCode.GO_HANDSHAKE_MALFORMED, "app protocol version 'v1'"),
            ("1|2|unix|/tmp/s|grpc|", ErrorCode.GO_APP_VERSION_NOT_OFFERED, "version 2, which the host did not offer"),
            ("1|1|udp|/tmp/s|grpc|", ErrorCode.GO_NETWORK_UNKNOWN, "unknown network 'udp'"),
            ("1|1||/tmp/s|grpc|", ErrorCode.GO_NETWORK_UNKNOWN, "unknown network ''"),
            ("1|1|unix||grpc|", ErrorCode.GO_HANDSHAKE_MALFORMED, "the address is empty"),
            ("1|1|tcp|127.0.0.1|grpc|", ErrorCode.GO_ADDRESS_INVALID, "has no port"),
            ("1|1|tcp|127.0.0.1:|grpc|", ErrorCode.GO_ADDRESS_INVALID, "has no port"),
            ("1|1|tcp|127.0.0.1:0|grpc|", ErrorCode.GO_ADDRESS_INVALID, "has no port"),
            ("1|1|tcp|127.0.0.1:65536|grpc|", ErrorCode.GO_ADDRESS_INVALID, "has no port"),
            ("1|1|unix|/tmp/s", ErrorCode.GO_PROTOCOL_UNSUPPORTED, "no protocol field"),
            ("1|1|unix|/tmp/s|netrpc|", ErrorCode.GO_PROTOCOL_UNSUPPORTED, "net/rpc"),
            ("1|1|unix|/tmp/s|http|", ErrorCode.GO_PROTOCOL_UNSUPPORTED, "unknown protocol 'http'"),
            ("1|1|unix|/tmp/s||", ErrorCode.GO_PROTOCOL_UNSUPPORTED, "unknown protocol ''"),
            ("1|1|unix|/tmp/s|grpc|@@not-base64@@", ErrorCode.GO_SERVER_CERT_INVALID, "not base64 DER"),
            (
                f"1|1|unix|/tmp/s|grpc|{base64.b64encode(b'plain text, not DER').decode()}",
                ErrorCode.GO_SERVER_CERT_INVALID,
                "not base64 DER",
            ),
            ("1|1|unix|/tmp/s|grpc||yes", ErrorCode.GO_HANDSHAKE_MALFORMED, "multiplex field 'yes'"),
        ],
    )
    def test_every_malformed_line_is_a_coded_error_quoting_it(self, text: str, code: ErrorCode, says: str) -> None:
        error = refusal(text)
        assert error.code == code
        assert says in str(error)
        assert repr(text.strip()) in str(error)
        assert error.details["line"] == text.strip()

    def test_a_huge_line_is_quoted_in_part(self) -> None:
        text = "x" * 100_000
        error = refusal(text)
        assert error.code == ErrorCode.GO_HANDSHAKE_MALFORMED
        assert "100000 characters" in str(error)
        assert len(str(error)) < 1_000

    def test_another_core_version_can_be_accepted_when_asked(self) -> None:
        line = parse_handshake_line("2|1|unix|/tmp/s|grpc|", app_versions=(1,), core_versions=(1, 2))
        assert line.core_protocol_version == 2


class TestNegotiateAppVersion:
    @pytest.mark.parametrize(
        ("offered", "supported", "chosen"),
        [
            ("1", (1,), 1),
            ("1,2,3", (2, 3, 4), 3),
            ("3, 1", (1, 3), 3),
            (None, (2, 5), 2),  # an old host that sends no list gets the lowest version
            ("", (2, 5), 2),
        ],
    )
    def test_the_highest_common_version_is_chosen(
        self, offered: str | None, supported: tuple[int, ...], chosen: int
    ) -> None:
        assert negotiate_app_version(offered, supported) == chosen

    def test_no_common_version_is_a_coded_error_quoting_both_lists(self) -> None:
        with pytest.raises(ProtocolError) as caught:
            negotiate_app_version("2,3", (1,))
        assert caught.value.code == ErrorCode.GO_NO_COMMON_APP_VERSION
        assert f"{PROTOCOL_VERSIONS_ENV}='2,3'" in str(caught.value)
        assert "[1]" in str(caught.value)

    def test_a_list_with_junk_is_a_coded_error(self) -> None:
        with pytest.raises(ProtocolError) as caught:
            negotiate_app_version("1,two", (1,))
        assert caught.value.code == ErrorCode.GO_NO_COMMON_APP_VERSION
        assert "'1,two'" in str(caught.value)

    def test_a_plugin_with_no_version_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError):
            negotiate_app_version("1", ())
