"""Brace patterns: one string standing for many specs, ``"dobot_cr5+{weighted_pose,geodesic}+{sincos,raw}"``.

:func:`expand_braces` turns a pattern into canonical spec strings (the cells of an ablation
grid, :mod:`ikrl.grid`). It shares quoting and error formatting with the spec grammar
(:mod:`ikrl.spec.lexer`), and validates every result with :meth:`EnvSpec.parse`.

Examples:
    >>> expand_braces("dobot_cr5+{geodesic,position}+{sincos,}")
    ['dobot_cr5+geodesic+sincos', 'dobot_cr5+geodesic', 'dobot_cr5+position+sincos', 'dobot_cr5+position']
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ikrl.errors import SpecError, SpecSyntaxError
from ikrl.spec.grammar import EnvSpec
from ikrl.spec.lexer import caret_error, quote_end

__all__ = ["MAX_BRACE_DEPTH", "MAX_EXPANSION", "expand_braces"]

#: Braces nest at most this deep (the parser recurses once per level).
MAX_BRACE_DEPTH = 32
#: A pattern expands to at most this many specs: a grid of more is a typo, not a plan.
MAX_EXPANSION = 100_000

_EMPTY = "\ue000"  # marks an empty alternative until its part is dropped (private use)


def expand_braces(pattern: str) -> list[str]:
    """Expand shell-like braces into canonical spec strings, in row-major order.

    ``"a+{b,c}+{d,e}"`` gives ``a+b+d, a+b+e, a+c+d, a+c+e``: the first brace varies
    slowest, as in a shell. Rules:

    * A comma splits alternatives only directly inside a brace: commas inside parentheses
      belong to the part, so ``{weighted_pose(w=1,1,1,0.5,0.5,0.5),geodesic}`` has two
      alternatives. Braces inside quotes are plain text.
    * Braces may nest (``{a,b{c,d}}``) and may sit inside a part, which sweeps a parameter:
      ``weighted_pose(w={1,2})``. A brace with one alternative is just that text.
    * An empty alternative means "no part": ``dobot_cr5+{sincos,}`` gives ``dobot_cr5+sincos``
      and ``dobot_cr5``; the ``+`` left dangling by a part that came out empty is removed.
      A ``+`` with nothing beside it that no brace produced (``a++b``) stays, and is an error.

    Every result is validated by :meth:`EnvSpec.parse` and returned in canonical form;
    two alternatives that give the same canonical spec are an error, since the grid would
    train one spec twice under two names. Unbalanced braces or parentheses raise
    :class:`SpecSyntaxError` with the position and a caret.
    """
    if not isinstance(pattern, str):
        raise SpecSyntaxError(
            f"a pattern must be a string like 'dobot_cr5+{{geodesic,position}}'; got {type(pattern).__name__}"
        )
    if _EMPTY in pattern:
        raise _pattern_error(pattern, pattern.index(_EMPTY), "the reserved character U+E000", "; remove it")
    tree = _BraceParser(pattern).parse()
    count = _count(tree)
    if count > MAX_EXPANSION:
        raise SpecSyntaxError(
            f"pattern {pattern!r} expands to {count:,} specs; a grid takes at most {MAX_EXPANSION:,}: "
            "split it into smaller patterns"
        )
    raw = [_drop_empty_parts(text) for text in _expand(tree)]

    canonical: list[str] = []
    sources: dict[str, list[str]] = {}
    for text in raw:
        try:
            spec = str(EnvSpec.parse(text))
        except SpecError as error:
            raise SpecSyntaxError(
                f"pattern {pattern!r} expands to {text!r}, which is not a valid spec: {error}"
            ) from None
        if spec not in sources:
            canonical.append(spec)
            sources[spec] = []
        sources[spec].append(text)
    repeated = {spec: texts for spec, texts in sources.items() if len(texts) > 1}
    if repeated:
        listing = "; ".join(
            f"{spec!r} from {' and '.join(map(repr, texts))}" for spec, texts in repeated.items()
        )
        raise SpecSyntaxError(
            f"pattern {pattern!r} gives the same spec more than once: {listing}. "
            f"Each alternative must give a different spec; remove the repeats"
        )
    return canonical


# A parsed pattern: a sequence of literal text and brace groups; a group is a list of
# alternatives, each itself a sequence.
_Seq = list["str | _Group"]


@dataclass
class _Group:
    alternatives: list[_Seq]


def _pattern_error(text: str, pos: int, problem: str, fix: str = "") -> SpecSyntaxError:
    """An error pointing at ``pos`` under the pattern, formatted as the spec grammar's are."""
    return caret_error("pattern", text, pos, f"{problem} at position {pos}{fix}")


class _BraceParser:
    """Recursive descent over braces, tracking parentheses and quotes for commas and errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def parse(self) -> _Seq:
        return self.sequence(brace_at=None)  # at the top level it reads to the end or raises

    def sequence(self, brace_at: int | None) -> _Seq:
        """Read up to the ',' or '}' that ends this alternative (or the end of the text)."""
        text = self.text
        seq: _Seq = []
        literal: list[str] = []
        parens: list[int] = []  # positions of '(' opened in this alternative
        while self.pos < len(text):
            char = text[self.pos]
            if char in "'\"":
                literal.append(self.quoted())
                continue
            if char == "(":
                parens.append(self.pos)
            elif char == ")":
                if not parens:
                    raise _pattern_error(
                        text, self.pos, "')' without a matching '('", "; remove it or add the '('"
                    )
                parens.pop()
            elif char == "{":
                if literal:
                    seq.append("".join(literal))
                    literal = []
                seq.append(self.group())
                continue
            elif char == "}":
                if brace_at is None:
                    raise _pattern_error(
                        text, self.pos, "'}' without a matching '{'", "; remove it or add the '{'"
                    )
                if parens:
                    raise _pattern_error(
                        text,
                        parens[-1],
                        "unclosed '('",
                        f"; close it before the '}}' at position {self.pos} that ends its brace",
                    )
                break
            elif char == "," and brace_at is not None and not parens:
                break
            literal.append(char)
            self.pos += 1
        else:
            if parens:
                raise _pattern_error(
                    text, parens[-1], "unclosed '('", "; add the ')' that ends its parameters"
                )
            if brace_at is not None:
                raise _pattern_error(
                    text, brace_at, "unclosed '{'", "; add the '}' that ends its alternatives"
                )
        if literal:
            seq.append("".join(literal))
        return seq

    def group(self) -> _Group:
        start = self.pos
        self.depth += 1
        if self.depth > MAX_BRACE_DEPTH:
            raise _pattern_error(
                self.text, start, f"braces nested more than {MAX_BRACE_DEPTH} deep", "; a pattern nests at most that many"
            )
        self.pos += 1  # the '{'
        alternatives = [self.sequence(brace_at=start)]
        while self.text[self.pos] == ",":  # sequence() stopped at ',' or '}' (else it raised)
            self.pos += 1
            alternatives.append(self.sequence(brace_at=start))
        self.pos += 1  # the '}'
        self.depth -= 1
        return _Group([alt if alt else [_EMPTY] for alt in alternatives])

    def quoted(self) -> str:
        """A quoted value, verbatim (quotes and escapes kept): EnvSpec.parse reads it later."""
        start = self.pos
        end = quote_end(self.text, start)
        if end is None:
            quote = self.text[start]
            raise _pattern_error(self.text, start, f"unclosed {quote}", f"; add the closing {quote}")
        self.pos = end
        return self.text[start:end]


def _count(seq: _Seq) -> int:
    """How many strings :func:`_expand` would give, without making them."""
    total = 1
    for item in seq:
        if not isinstance(item, str):
            total *= sum(_count(alternative) for alternative in item.alternatives)
    return total


def _expand(seq: _Seq) -> list[str]:
    """Every string the sequence stands for; the first group varies slowest."""
    choices: list[list[str]] = []
    for item in seq:
        if isinstance(item, str):
            choices.append([item])
        else:
            choices.append([text for alternative in item.alternatives for text in _expand(alternative)])
    return ["".join(combination) for combination in itertools.product(*choices)]


def _drop_empty_parts(text: str) -> str:
    """Remove the parts an empty alternative left blank, with their '+' (see expand_braces)."""
    if _EMPTY not in text:
        return text
    parts = _split_top_level(text)
    kept = [part for part in parts if not (_EMPTY in part and not part.replace(_EMPTY, "").strip())]
    return "+".join(kept).replace(_EMPTY, "")


def _split_top_level(text: str) -> list[str]:
    """Split at each '+' outside parentheses and quotes."""
    parts, start, depth, pos = [], 0, 0, 0
    while pos < len(text):
        char = text[pos]
        if char in "'\"":
            pos = quote_end(text, pos) or len(text)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "+" and depth == 0:
            parts.append(text[start:pos])
            start = pos + 1
        pos += 1
    parts.append(text[start:])
    return parts
