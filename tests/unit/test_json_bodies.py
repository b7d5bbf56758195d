"""The nesting limit of JSON request bodies, measured on their bytes (bankhub.api.json_bodies)."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bankhub.api.json_bodies import MAX_DEPTH, decode, depth_exceeds
from bankhub.errors import DomainError


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def test_the_limit_is_exact_for_arrays_objects_and_their_mixes() -> None:
    for depth in (1, 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 1000):
        arrays = b"[" * depth + b"]" * depth
        objects = b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
        mixed = b'[{"k":' * (depth // 2) + b"0" + b"}]" * (depth // 2)
        assert depth_exceeds(arrays) == (depth > MAX_DEPTH), depth
        assert depth_exceeds(objects) == (depth > MAX_DEPTH), depth
        assert depth_exceeds(mixed) == (2 * (depth // 2) > MAX_DEPTH), depth


def test_brackets_inside_strings_nest_nothing() -> None:
    deep_text = json.dumps({"note": "[" * 1000, "quote": '\\"[{' * 100, "list": ["]]]"] * 50})
    assert not depth_exceeds(deep_text.encode())
    assert decode(deep_text.encode())["note"] == "[" * 1000
    # an escaped quote does not end the string: what follows it is still text
    assert not depth_exceeds(b'["\\"' + b"[" * 100 + b'"]')


def test_decode_refuses_deep_bodies_before_the_decoder_recurses() -> None:
    with pytest.raises(DomainError) as deep:
        decode(b"[" * 200_000 + b"]" * 200_000)
    assert deep.value.code == "DataInvalid"
    with pytest.raises(DomainError) as broken:
        decode(b'{"a": ')
    assert broken.value.code == "ContentInputInvalid"
    assert decode(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=3), inner, max_size=3)
    ),
    max_leaves=60,
)


@given(JSON)
def test_the_measured_depth_is_the_decoded_depth(value: object) -> None:
    body = msgspec.json.encode(value)
    for limit in range(0, _depth(value) + 2):
        assert depth_exceeds(body, limit) == (_depth(value) > limit)
