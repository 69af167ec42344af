"""The spec-string grammar: ``robot+part+part...``, parsed into a frozen :class:`EnvSpec`.

Grammar::

    spec   := part ("+" part)*              the robot first, then rewards, samplers and
                                            transforms, in any order
    part   := NAME ["(" [param ("," param)*] ")"]
    param  := NAME "=" value ("," value)*   several values make a tuple: w=1,1,1,0.2,0.2,0.2
    value  := number | true | false | 'quoted' | "quoted" | bare
    NAME   := [A-Za-z_][A-Za-z0-9_]*

Numbers are ints (``3``) or floats (``0.3``, ``1e-3``, ``inf``); a bare value is any run of
characters other than ``+ ( ) , = ' "`` and spaces (``file=data/targets.csv``). Spaces
between tokens are allowed. :meth:`EnvSpec.parse` and ``str(spec)`` are inverses: the
string form is canonical (no spaces, parameters sorted by name, shortest float form).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ikrl.errors import SpecSyntaxError
from ikrl.spec.lexer import caret_error, quote_end

__all__ = ["MAX_NUMBER_DIGITS", "EnvSpec", "Part", "Value", "format_value", "parse_value"]

#: A number in a spec has at most this many characters (Python's own limit for an int's digits).
MAX_NUMBER_DIGITS = 4300

Value = int | float | bool | str | tuple["Value", ...]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf)")
_INT = re.compile(r"[-+]?\d+")
_BARE = re.compile(r"[^+(),='\"\s]+")


@dataclass(frozen=True)
class Part:
    """One named component with its parameters (sorted by name)."""

    name: str
    params: tuple[tuple[str, Value], ...] = ()

    @classmethod
    def of(cls, name: str, params: Mapping[str, Value] | None = None) -> Part:
        return cls(name, tuple(sorted((params or {}).items())))

    @property
    def kwargs(self) -> dict[str, Value]:
        return dict(self.params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{k}={format_value(v)}' for k, v in self.params)})"


@dataclass(frozen=True)
class EnvSpec:
    """A parsed spec string: the robot, then the other parts in the order written."""

    robot: Part
    parts: tuple[Part, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> EnvSpec:
        """Parse a spec string; :class:`SpecSyntaxError` says where it goes wrong."""
        if not isinstance(text, str):
            raise SpecSyntaxError(f"a spec must be a string like 'dobot_cr5+weighted_pose'; got {type(text).__name__}")
        parts = _Parser(text).spec()
        return cls(parts[0], tuple(parts[1:]))

    def __str__(self) -> str:
        return "+".join(str(p) for p in (self.robot, *self.parts))


def format_value(value: Value) -> str:
    """The canonical text of a parameter value (parses back to an equal value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise SpecSyntaxError("a spec value cannot be NaN")
        # The shortest text that round-trips (it always has '.', 'e' or 'inf'), without the
        # exponent's '+', which would split the spec: 1e+16 -> 1e16.
        return repr(value).replace("e+", "e")
    if isinstance(value, tuple):
        if len(value) < 2:
            raise SpecSyntaxError(f"a tuple value needs at least two elements; got {value!r}")
        if any(isinstance(v, tuple) for v in value):
            raise SpecSyntaxError(f"tuple values cannot nest; got {value!r}")
        return ",".join(format_value(v) for v in value)
    if isinstance(value, str):
        if len(value) <= MAX_NUMBER_DIGITS and _BARE.fullmatch(value) and _scalar(value) == value:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise SpecSyntaxError(f"unsupported spec value {value!r} ({type(value).__name__})")


def parse_value(text: str) -> Value:
    """A parameter value written as in a spec (``0.3``, ``true``, ``'a b'``, ``1,1,0.2``),
    for command-line options that take one."""
    return EnvSpec.parse(f"value(v={text})").robot.kwargs["v"]


def _scalar(text: str) -> Value:
    """A bare token's value: bool, int, float or the text itself."""
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    return text


class _Parser:
    """Recursive descent over the spec text, with positions for error messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, expected: str) -> SpecSyntaxError:
        found = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"
        return caret_error("spec", self.text, self.pos, f"expected {expected} at position {self.pos}, found {found}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, char: str) -> bool:
        self.skip_space()
        return self.text.startswith(char, self.pos)

    def expect(self, char: str, what: str) -> None:
        if not self.peek(char):
            raise self.error(what)
        self.pos += 1

    def name(self, what: str) -> str:
        self.skip_space()
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.error(what)
        self.pos = match.end()
        return match.group()

    def spec(self) -> list[Part]:
        parts = [self.part()]
        while self.peek("+"):
            self.pos += 1
            parts.append(self.part())
        self.skip_space()
        if self.pos != len(self.text):
            raise self.error("'+' or the end")
        return parts

    def part(self) -> Part:
        name = self.name("a name (letters, digits, _)")
        params: dict[str, Value] = {}
        if self.peek("("):
            self.pos += 1
            if not self.peek(")"):
                while True:
                    start = self.pos
                    key = self.name("a parameter name")
                    if key in params:
                        self.pos = start
                        raise self.error(f"a new parameter (not {key!r} again)")
                    self.expect("=", f"'=' after {key!r}")
                    values = [self.value()]
                    # Values continue until a new "name=" starts the next parameter.
                    while self.peek(",") and not self._next_is_key():
                        self.pos += 1
                        values.append(self.value())
                    params[key] = values[0] if len(values) == 1 else tuple(values)
                    if not self.peek(","):
                        break
                    self.pos += 1
            self.expect(")", "',' or ')'")
        return Part.of(name, params)

    def _next_is_key(self) -> bool:
        match = re.compile(r",\s*[A-Za-z_][A-Za-z0-9_]*\s*=").match(self.text, self.pos)
        return match is not None

    def value(self) -> Value:
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] in "'\"":
            return self.quoted()
        match = _BARE.match(self.text, self.pos)
        if not match:
            raise self.error("a value")
        token = match.group()
        if len(token) > MAX_NUMBER_DIGITS and _NUMBER.fullmatch(token):
            # Python's int() refuses more than 4,300 digits; no parameter needs a tenth of that.
            raise caret_error(
                "spec", self.text, self.pos,
                f"a number of {len(token):,} characters at position {self.pos}; a number has at most {MAX_NUMBER_DIGITS:,} digits",
            )  # fmt: skip
        self.pos = match.end()
        return _scalar(token)

    def quoted(self) -> str:
        end = quote_end(self.text, self.pos)
        if end is None:
            raise self.error(f"a closing {self.text[self.pos]}")
        content = self.text[self.pos + 1 : end - 1]
        self.pos = end
        return re.sub(r"\\(.)", r"\1", content, flags=re.DOTALL)
