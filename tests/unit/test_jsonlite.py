"""The CLI's light JSON (C accelerator only) says what json says."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.client import jsonlite

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(values)
def test_same_as_json(v: object) -> None:
    assert jsonlite.pretty(v) == json.dumps(v, indent=4, ensure_ascii=False)
    assert jsonlite.dumps(v) == json.dumps(v)
    text = json.dumps(v, indent=2)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(text.encode()) == json.loads(text.encode())


def test_constants_and_errors() -> None:
    assert math.isnan(jsonlite.loads("NaN")) and jsonlite.loads(" [Infinity, -Infinity] ") == [math.inf, -math.inf]
    assert jsonlite.pretty({1: [], "a": {}, "b": float("nan")}) == json.dumps({1: [], "a": {}, "b": float("nan")},
                                                                               indent=4, ensure_ascii=False)
    for bad in ("", "{", "[1,]", "1 2", '"\x01"', "{'a': 1}"):
        with pytest.raises(ValueError):
            jsonlite.loads(bad)
    with pytest.raises(TypeError):
        jsonlite.dumps({"a": object()})
