"""The spec-string grammar: parsing, canonical formatting (an inverse pair), errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ikrl.errors import SpecSyntaxError
from ikrl.spec.grammar import EnvSpec, Part, format_value

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
scalars = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, width=64),
    st.booleans(),
    st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
)
values = st.one_of(scalars, st.lists(scalars, min_size=2, max_size=5).map(tuple))
parts = st.builds(Part.of, names, st.dictionaries(names, values, max_size=4))
specs = st.builds(lambda robot, rest: EnvSpec(robot, tuple(rest)), parts, st.lists(parts, max_size=4))


@given(specs)
@settings(max_examples=300, deadline=None)
def test_parse_inverts_format(spec):
    text = str(spec)
    assert EnvSpec.parse(text) == spec
    assert str(EnvSpec.parse(text)) == text  # the string form is canonical


def test_the_one_line():
    spec = EnvSpec.parse("dobot_cr5+weighted_pose+sincos")
    assert spec.robot == Part("dobot_cr5")
    assert spec.parts == (Part("weighted_pose"), Part("sincos"))


def test_parameters_numbers_tuples_booleans_strings():
    spec = EnvSpec.parse(
        "panda + weighted_pose(w=1,1,1,0.2,0.2,0.2) + near_target(noise=0.3) + fixed(file=data/t.csv, flag=true, n=3, tag='a b')"
    )
    weighted, near, fixed = spec.parts
    assert weighted.kwargs == {"w": (1, 1, 1, 0.2, 0.2, 0.2)}
    assert near.kwargs == {"noise": 0.3}
    assert fixed.kwargs == {"file": "data/t.csv", "flag": True, "n": 3, "tag": "a b"}
    assert isinstance(fixed.kwargs["n"], int) and isinstance(near.kwargs["noise"], float)
    assert str(spec) == (
        "panda+weighted_pose(w=1,1,1,0.2,0.2,0.2)+near_target(noise=0.3)+fixed(file=data/t.csv,flag=true,n=3,tag='a b')"
    )


def test_values_that_look_like_other_types_are_quoted():
    assert format_value("true") == "'true'"
    assert format_value("3") == "'3'"
    assert format_value("inf") == "'inf'"
    assert format_value("it's") == "'it\\'s'"
    assert format_value(1e-5) == "1e-05" and format_value(math.inf) == "inf"
    assert format_value(1e16) == "1e16"  # not 1e+16: '+' separates parts
    assert EnvSpec.parse("r+p(a='3',b=3,c=-inf,d=1E3)").parts[0].kwargs == {"a": "3", "b": 3, "c": -math.inf, "d": 1000.0}


def test_parameters_are_sorted_and_empty_parentheses_vanish():
    assert str(EnvSpec.parse("r+p(b=1, a=2)+q()")) == "r+p(a=2,b=1)+q"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"expected a name \(letters, digits, _\) at position 0, found the end"),
        ("dobot_cr5+", r"expected a name .* at position 10, found the end"),
        ("dobot_cr5++sincos", r"at position 10, found '\+'"),
        ("dobot_cr5+near_target(noise=0.3", r"expected ',' or '\)' at position 31, found the end"),
        ("dobot_cr5+near_target(noise)", r"expected '=' after 'noise' at position 27, found '\)'"),
        ("dobot_cr5+near_target(noise=)", r"expected a value at position 28"),
        ("dobot_cr5+p(a=1,a=2)", r"expected a new parameter \(not 'a' again\) at position 16"),
        ("dobot_cr5 sincos", r"expected '\+' or the end at position 10, found 's'"),
        ("dobot_cr5+p(a='x)", r"expected a closing ' at position 14"),
        ("3robot", r"expected a name .* at position 0, found '3'"),
    ],
)
def test_syntax_errors_point_at_the_position(text, message):
    with pytest.raises(SpecSyntaxError, match=message) as info:
        EnvSpec.parse(text)
    assert "^" in str(info.value)  # a caret under the spot


def test_unformattable_values():
    with pytest.raises(SpecSyntaxError, match="NaN"):
        format_value(math.nan)
    with pytest.raises(SpecSyntaxError, match="cannot nest"):
        format_value((1, (2, 3)))
    with pytest.raises(SpecSyntaxError, match="a spec must be a string"):
        EnvSpec.parse(3)
