"""Bad input of the kinds a fuzzer finds: each is a named error with its message, never a
traceback from deep inside (seeds, patterns, target files, destinations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ikrl
from ikrl.errors import BadParameterError, DestinationError, SpecSyntaxError, TargetsFileError
from ikrl.grid import plan
from ikrl.rl.evaluate import held_out
from ikrl.solver.targets import load_targets, random_targets
from ikrl.spec.braces import MAX_BRACE_DEPTH, expand_braces
from ikrl.util.files import check_destination

SEED_MESSAGE = "seed must be an int from 0 to 4294967295; got {!r}"


@pytest.mark.parametrize("seed", [-1, 2**32, 2**70, 1.5, "a", True, None.__class__])
def test_a_seed_is_an_int_from_0_to_2_32_everywhere(seed, cr5):
    calls = [
        ("IKEnv", lambda: ikrl.make_env("panda", batch_size=2, seed=seed)),
        ("solve", lambda: ikrl.solve(cr5, cr5.forward_kinematics(torch.zeros(1, 6)), seed=seed)),
        ("random_targets", lambda: random_targets(cr5, 2, seed)),
        ("held-out targets", lambda: held_out(cr5, 2, 1, seed=seed)),
    ]
    for component, call in calls:
        with pytest.raises(BadParameterError) as caught:
            call()
        assert str(caught.value) == f"{component}: " + SEED_MESSAGE.format(seed)


def test_the_largest_seed_is_accepted(cr5):
    env = ikrl.make_env("panda", batch_size=2, seed=2**32 - 1)
    assert env.reset()["q"].shape == (2, 7)
    assert random_targets(cr5, 1, 2**32 - 1)[0].shape == (1, 6)


def test_braces_nested_too_deep_are_a_named_error_not_a_recursion_error():
    deep = "panda+" + "{" * 2000 + "sincos" + "}" * 2000
    with pytest.raises(SpecSyntaxError, match=rf"braces nested more than {MAX_BRACE_DEPTH} deep at position {6 + MAX_BRACE_DEPTH}; a pattern nests at most that many"):
        expand_braces(deep)
    with pytest.raises(SpecSyntaxError, match="braces nested more than"):
        plan(deep, 1)
    fine = "panda+" + "{" * MAX_BRACE_DEPTH + "sincos" + "}" * MAX_BRACE_DEPTH
    assert expand_braces(fine) == ["panda+sincos"]


def test_a_pattern_that_expands_to_too_many_specs_is_refused_before_expanding():
    with pytest.raises(SpecSyntaxError, match=r"expands to 1,048,576 specs; a grid takes at most 100,000: split it"):
        expand_braces("panda+near_target(noise=0.1)" + "+sincos(x={1,2})" * 20)


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("empty.npy", lambda p: np.save(p, np.zeros((0, 16))), r"holds no targets \(an array of shape \(0, 16\)\); give at least one pose"),
        ("flat.npy", lambda p: np.save(p, np.zeros((0,))), r"holds no targets \(an array of shape \(0,\)\)"),
        ("empty.pt", lambda p: torch.save(torch.zeros(0, 4, 4), p), r"holds no targets"),
        ("empty.csv", lambda p: p.write_text(""), r"cannot read targets as numbers: no rows of numbers"),
        ("huge.csv", lambda p: p.write_text("1," + "2" * 200_000 + "\n"), r"not a CSV file of numbers: field larger than field limit"),
    ],
)
def test_empty_and_malformed_target_files_are_named(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(TargetsFileError, match=rf"^{path}: {message}"):
        load_targets(path)


def test_a_destination_is_checked_before_the_work(tmp_path):
    (tmp_path / "file").write_text("")
    assert check_destination(tmp_path / "new" / "deeper" / "out.csv") == tmp_path / "new" / "deeper" / "out.csv"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(DestinationError, match=r"is a folder; give a file path"):
        check_destination(tmp_path)
    with pytest.raises(DestinationError, match=r"--targets-out .*file: is a file; give a folder"):
        check_destination(tmp_path / "file", what="--targets-out", folder=True)
    with pytest.raises(DestinationError, match=r"file is a file, so no folder can be made inside it"):
        check_destination(tmp_path / "file" / "x.csv")
    with pytest.raises(DestinationError, match=r"--out /proc/x/y.csv: cannot write in /proc"):
        check_destination("/proc/x/y.csv")
    assert not list(tmp_path.glob(".ikrl-write-test-*"))  # the probe leaves nothing behind
