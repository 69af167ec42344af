"""The fuzz battery (benchmarks/fuzz.py, issue 13): bad or odd inputs of every family give a
named error or a verified result, never a traceback, a silently wrong result or a hang.

A seeded subset of each family runs in the fast suite; the whole battery is marked slow.
The battery runs in a fresh process (``fresh=True``): its cases are forked children, and a
child forked from a process that has already used several torch threads can hang.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from ikrl.errors import BadParameterError

BATTERY = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"
#: Cases per family in the fast subset (about 30 s in all on two busy cores, set-up and one tiny training included).
SUBSET = {"spec": 6, "options": 6, "targets": 8, "urdf": 6, "checkpoint": 5, "cli": 5}


def _load_battery():
    name = "ikrl_fuzz_battery"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BATTERY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


fuzz = _load_battery()


def _problems(outcomes) -> list[str]:
    return [
        f"{o.kind} [{o.case.family}] {o.case.label}: {o.error_type}: {fuzz.short(o.message, 200)} {o.where}"
        for o in outcomes
        if o.kind in ("traceback", "silent-wrong", "hang")
    ]


def _vague(outcomes) -> list[str]:
    return [f"[{o.case.family}] {o.case.label} (expected /{o.case.expect}/): {fuzz.short(o.message, 200)}" for o in outcomes if not o.message_ok]


def test_the_battery_classifies_outcomes(tmp_path):
    """The machinery itself, on cases that need no ikrl: each outcome kind is recognised."""

    def named():
        raise BadParameterError(component="x", parameter="y", accepted="a number", value=-1)

    def wrong():
        raise fuzz.Wrong("a NaN result")

    def hang():
        time.sleep(60)

    cases = {
        "named error": fuzz.Case("t", "named", named, r"y must be a number"),
        "traceback": fuzz.Case("t", "traceback", lambda: 1 / 0),
        "silent-wrong": fuzz.Case("t", "wrong", wrong),
        "hang": fuzz.Case("t", "hang", hang),
        "handled": fuzz.Case("t", "handled", lambda: None),
    }
    for kind, case in cases.items():
        outcome = fuzz.run_case(case, 3.0 if kind == "hang" else 30.0, tmp_path / kind)
        assert outcome.kind == kind, (kind, outcome)
    outcome = fuzz.run_case(fuzz.Case("t", "named", named, r"no such words"), 30.0, tmp_path / "vague")
    assert outcome.kind == "named error" and not outcome.message_ok
    assert outcome.message == "x: y must be a number; got -1"
    assert "ZeroDivisionError" in fuzz.run_case(cases["traceback"], 30.0, tmp_path / "tb").error_type


@pytest.fixture(scope="module")
def subset():
    return fuzz.run_battery(seed=0, sizes=SUBSET, timeout=30.0, fresh=True)


def test_the_subset_covers_every_family(subset):
    for family, count in SUBSET.items():
        mine = [o for o in subset if o.case.family == family]
        assert len(mine) == count, family
        assert any(o.kind == "named error" for o in mine), f"{family}: no case was refused at all"
    assert any(o.kind == "handled" for o in subset), "no valid-but-odd input was accepted and verified"


@pytest.mark.parametrize("family", list(SUBSET))
def test_no_traceback_silent_wrong_or_hang(subset, family):
    problems = _problems([o for o in subset if o.case.family == family])
    assert not problems, "\n".join(problems)


def test_named_errors_say_what_was_wrong(subset):
    vague = _vague(subset)
    assert not vague, "\n".join(vague)


@pytest.mark.slow
def test_the_whole_battery():
    outcomes = fuzz.run_battery(seed=0, timeout=60.0, fresh=True)
    assert len(outcomes) >= 400
    problems = _problems(outcomes) + [f"unclear message: {v}" for v in _vague(outcomes)]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:100])
