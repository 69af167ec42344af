"""Spec strings: the ``robot+part+part...`` grammar and the brace patterns of ablation grids."""

from __future__ import annotations

from ikrl.spec.grammar import EnvSpec, Part, Value, format_value, parse_value

__all__ = ["EnvSpec", "Part", "Value", "format_value", "parse_value"]
