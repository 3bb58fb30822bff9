from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypedDict

import msgspec
import pydantic
import pytest

from plugwire import ConfigError
from plugwire._codec import encode, field_path
from plugwire.errors import RequestValidationError, ResponseValidationError
from plugwire.sdk import TypedCodec


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Labels(TypedDict):
    name: str
    tags: list[str]


class Order(msgspec.Struct):
    sku: str
    quantity: int


class Invoice(pydantic.BaseModel):
    number: int
    lines: list[str]


CASES: list[tuple[Any, Any]] = [
    (Point, Point(1, 2)),
    (Labels, {"name": "a", "tags": ["x"]}),
    (Order, Order("sku-1", 3)),
    (Invoice, Invoice(number=7, lines=["a", "b"])),
    (list[int], [1, 2, 3]),
    (dict[str, float], {"a": 1.5}),
    (str, "plain"),
    (bytes, b"\x00\x01"),
]


@pytest.mark.parametrize("codec", ["msgpack", "json"])
@pytest.mark.parametrize(("tp", "value"), CASES, ids=lambda v: getattr(v, "__name__", None) or "")
def test_values_round_trip_through_both_codecs(tp: Any, value: Any, codec: Literal["msgpack", "json"]) -> None:
    typed: TypedCodec[Any] = TypedCodec(tp, codec)
    assert typed.decode(typed.encode(value)) == value


@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_a_wrong_shape_names_the_field_and_never_half_builds(codec: Literal["msgpack", "json"]) -> None:
    typed = TypedCodec(Point, codec, role="response")
    with pytest.raises(ResponseValidationError) as caught:
        typed.decode(encode({"x": "one"}, codec))
    assert caught.value.code == 1206
    assert caught.value.details["field"] == "x"
    assert "at field 'x'" in caught.value.message


def test_a_missing_field_in_a_nested_value_is_named() -> None:
    typed = TypedCodec(list[Order], role="request")
    with pytest.raises(RequestValidationError) as caught:
        typed.decode(encode([{"sku": "a", "quantity": 1}, {"sku": "b"}]))
    assert caught.value.code == 1205
    assert "quantity" in caught.value.message


def test_pydantic_validation_errors_name_the_field() -> None:
    typed = TypedCodec(Invoice)
    with pytest.raises(RequestValidationError) as caught:
        typed.decode(encode({"number": "seven", "lines": []}))
    assert caught.value.details["field"] == "number"


def test_garbage_bytes_are_a_coded_error() -> None:
    with pytest.raises(RequestValidationError, match="not valid msgpack"):
        TypedCodec(Point).decode(b"\xc1")
    with pytest.raises(ResponseValidationError, match="not valid json"):
        TypedCodec(Point, "json", role="response").decode(b"{")


def test_an_unencodable_value_is_a_coded_error() -> None:
    with pytest.raises(RequestValidationError) as caught:
        TypedCodec(Point).encode(object())  # type: ignore[arg-type]
    assert caught.value.code == 1205


def test_an_unsupported_type_is_refused_up_front() -> None:
    with pytest.raises(ConfigError) as caught:
        TypedCodec(object())
    assert caught.value.code == 1002


def test_an_unknown_codec_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        TypedCodec(int, "xml")  # type: ignore[arg-type]


def test_unhashable_type_expressions_still_work() -> None:
    tp = Literal["a", "b"]
    assert TypedCodec(tp).decode(encode("a")) == "a"


def test_field_path_reads_msgspec_locations() -> None:
    assert field_path("Expected `int`, got `str` - at `$.items[2].qty`") == "items[2].qty"
    assert field_path("Expected `int`, got `str`") == ""


def test_a_self_referencing_value_is_a_coded_error() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(RequestValidationError) as caught:
        TypedCodec(list[object]).encode(cycle)
    assert caught.value.code == 1205
