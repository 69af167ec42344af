"""Bad input of the kinds a fuzzer finds: each is a named error with its message, never a
traceback from deep inside (seeds, patterns, target files, destinations)."""

from __future__ import annotations

import math
import re

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


# -------------------------------------------------------------- the fuzz battery's findings (issue 13)

SPEC_TYPE = "a spec must be a string like 'dobot_cr5+weighted_pose' (or an EnvSpec); got {}"


@pytest.mark.parametrize(("spec", "shown"), [(None, "None (NoneType)"), (5, "5 (int)"), (b"panda", "b'panda' (bytes)"), (["panda"], "['panda'] (list)")])
def test_a_spec_that_is_not_a_string_is_named(spec, shown):
    from ikrl.extend.registry import assemble

    with pytest.raises(SpecSyntaxError) as caught:
        ikrl.make_env(spec)
    assert str(caught.value) == SPEC_TYPE.format(shown)
    with pytest.raises(SpecSyntaxError, match=re.escape(SPEC_TYPE.format("3.5 (float)"))):
        assemble(3.5)  # type: ignore[arg-type]


def test_a_registry_that_is_not_one_is_named():
    with pytest.raises(BadParameterError, match=r"^registry must be an ikrl.extend.registry.Registry \(or None: the installed plugins'\); got object$"):
        ikrl.make_env("panda", registry=object())  # type: ignore[arg-type]


def test_a_number_of_100k_digits_in_a_spec_is_a_syntax_error():
    from ikrl.spec.grammar import EnvSpec

    with pytest.raises(SpecSyntaxError, match=r"a number of 100,000 characters at position 15; a number has at most 4,300 digits"):
        EnvSpec.parse("panda+sincos(p=" + "9" * 100_000 + ")")
    quoted = EnvSpec.parse("panda(a='" + "9" * 5000 + "')")
    assert EnvSpec.parse(str(quoted)) == quoted  # a long quoted string stays a string


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_delta": "0.1"}, "max_delta must be one positive number or 7 (one per joint of 'panda'; radians or metres per step); got '0.1'"),
        ({"max_delta": None}, "max_delta must be one positive number or 7 (one per joint of 'panda'; radians or metres per step); got None"),
        ({"max_delta": 1 + 1j}, "max_delta must be one positive number or 7 (one per joint of 'panda'; radians or metres per step); got (1+1j)"),
        ({"max_delta": True}, "max_delta must be one positive number or 7 (one per joint of 'panda'; radians or metres per step); got True"),
        ({"batch_size": 2**40}, "batch_size must be a positive int N, [N] or torch.Size([N]) (the number of arms, at most 16,777,216); got 1099511627776"),
        ({"batch_size": 10**30}, f"batch_size must be a positive int N, [N] or torch.Size([N]) (the number of arms, at most 16,777,216); got {10**30}"),
        ({"max_steps": True}, "max_steps must be a positive int; got True"),
        ({"position_tolerance": True}, "position_tolerance must be a positive number (metres); got True"),
        ({"rotation_tolerance": True}, "rotation_tolerance must be a number of radians in (0, pi]; got True"),
        ({"rotation_tolerance": 10.0}, "rotation_tolerance must be a number of radians in (0, pi] (math.radians(10) for 10 degrees); got 10.0"),
    ],
)
def test_environment_options_of_the_wrong_kind_are_named(options, message):
    with pytest.raises(BadParameterError) as caught:
        ikrl.make_env("panda", **{"batch_size": 2, **options})
    assert str(caught.value) == message


def test_a_rotation_tolerance_of_pi_and_per_joint_arrays_are_accepted():
    env = ikrl.make_env("panda", batch_size=2, rotation_tolerance=math.pi, max_delta=np.full(7, 0.05))
    assert env.rotation_tolerance == math.pi and torch.allclose(env.max_delta, torch.full((7,), 0.05))


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (torch.eye(4, dtype=torch.int64)[None], "solve: targets must be a float32 or float64 tensor of poses (N, 4, 4); got dtype torch.int64"),
        (torch.eye(4, dtype=torch.bool)[None], "solve: targets must be a float32 or float64 tensor of poses (N, 4, 4); got dtype torch.bool"),
        (torch.eye(4, dtype=torch.float16)[None], "solve: targets must be a float32 or float64 tensor of poses (N, 4, 4); got dtype torch.float16"),
        (torch.eye(4, dtype=torch.bfloat16)[None], "solve: targets must be a float32 or float64 tensor of poses (N, 4, 4); got dtype torch.bfloat16"),
        (torch.eye(4, device="meta")[None], "solve: targets are on the meta device, which holds no values; give them on the CPU or the chain's device"),
    ],
)
def test_targets_of_another_dtype_or_without_values_are_named(cr5, targets, message):
    from ikrl.errors import NotAPoseError

    with pytest.raises(NotAPoseError) as caught:
        ikrl.solve(cr5, targets)
    assert str(caught.value) == message


def test_float64_targets_that_overflow_a_float32_chain_are_refused(cr5):
    from ikrl.errors import NotAPoseError

    far = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    far[1, :3, 3] = 1e39
    with pytest.raises(NotAPoseError, match=r"^solve: targets\[1\] does not fit the float32 chain \(an entry overflows to inf in float32\); give targets within \+-3.4e\+38 or solve with a float64 chain$"):
        ikrl.solve(cr5, far)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64, torch.bool])
def test_starts_that_are_not_real_floats_are_refused(cr5, dtype):
    from ikrl.errors import JointInputError

    targets = cr5.forward_kinematics(torch.zeros(2, 6))
    with pytest.raises(JointInputError, match=rf"^starts: joint values must be a real floating-point tensor \(float32 or float64\); got {dtype}$"):
        ikrl.solve(cr5, targets, starts=torch.zeros(2, 6, dtype=dtype))


def test_check_poses_refuses_tensors_that_are_not_floats():
    from ikrl.errors import NotAPoseError
    from ikrl.kinematics.se3 import check_poses

    with pytest.raises(NotAPoseError, match=r"^targets must hold floating-point numbers \(float32 or float64 poses\); got a torch.int64 tensor$"):
        check_poses(torch.eye(4, dtype=torch.int64)[None])


def _state_at_env():
    env = ikrl.make_env("panda+weighted_pose+sincos", batch_size=3, seed=0)
    q = ((env.chain.lower + env.chain.upper) / 2).expand(3, 7).clone()
    return env, q, env.chain.forward_kinematics(q)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda q, t: ([[0.0] * 7] * 3, t, None), r"state_at: q must be a tensor \(joint values \[N, dof\]\); got list"),
        (lambda q, t: (torch.zeros(3, 7, dtype=torch.bool), t, None), r"state_at: q must hold real joint values \(a float tensor, radians or metres\); got a torch.bool tensor"),
        (lambda q, t: (torch.full((3, 7), 10.0), t, None),
         r"state_at: q\[0, 0\] = 10 is outside the limits of joint 'panda_joint1', \[-2.8973, 2.8973\]; give joint values within the limits"),
        (lambda q, t: (q, torch.eye(4, dtype=torch.int64).repeat(3, 1, 1), None), r"state_at: target must be a float32 or float64 tensor of poses \[N, 4, 4\]; got dtype torch.int64"),
        (lambda q, t: (q, t, torch.zeros(2, 1, dtype=torch.int64)),
         r"state_at: step_count must be an int64 tensor of shape \(3, 1\), steps since each arm's reset; got a torch.int64 tensor of shape \(2, 1\)"),
        (lambda q, t: (q, t, torch.zeros(3, 1)), r"step_count must be an int64 tensor of shape \(3, 1\).*; got a torch.float32 tensor of shape \(3, 1\)"),
        (lambda q, t: (q, t, torch.full((3, 1), -5)), r"state_at: step_count\[0\] = -5; steps since a reset lie in \[0, max_steps = 100\]"),
        (lambda q, t: (q, t, torch.full((3, 1), 10**6)), r"state_at: step_count\[0\] = 1000000; steps since a reset lie in \[0, max_steps = 100\]"),
    ],
)
def test_state_at_names_what_is_wrong_with_its_inputs(change, message):
    from ikrl.errors import JointInputError, NotAPoseError

    env, q, target = _state_at_env()
    q, target, steps = change(q, target)
    with pytest.raises((JointInputError, NotAPoseError), match=message):
        env.state_at(q, target, step_count=steps)


def test_state_at_takes_values_at_the_limits_and_continuous_joints_within_pi(toy_arm_env):
    env, q, target = _state_at_env()
    at_limits = torch.stack([env.chain.lower, env.chain.upper, env.chain.upper]).double()  # float64 at the limits
    td = env.state_at(at_limits, target, step_count=torch.full((3, 1), 100))
    assert td["q"].dtype == torch.float32 and td["step_count"].max() == 100
    chain = toy_arm_env.chain
    q = torch.tensor([[math.pi, 0.0, 0.0, 0.1], [-math.pi, 0.0, 0.0, 0.1]])
    toy_arm_env.state_at(q, chain.forward_kinematics(q))
    from ikrl.errors import JointInputError

    with pytest.raises(JointInputError, match=r"limits of joint 'yaw', \[-3.14159, 3.14159\] \(continuous: it wraps into \[-pi, pi\)\)"):
        toy_arm_env.state_at(q + torch.tensor([1.0, 0, 0, 0]), chain.forward_kinematics(q))


@pytest.mark.parametrize(
    ("urdf", "kwargs", "error", "message"),
    [
        (None, {}, "UrdfError", r"^load_chain: urdf must be a path \(str or os.PathLike\) or the XML text \(str or bytes\); got NoneType None$"),
        (5, {}, "UrdfError", r"^load_chain: urdf must be a path .*; got int 5$"),
        ("PANDA", {"tip": 5}, "UrdfError", r"^load_chain: tip must be a link name \(a str\) or None; got int 5$"),
        ("PANDA", {"base": b"x"}, "UrdfError", r"^load_chain: base must be a link name \(a str\) or None; got bytes b'x'$"),
        ("PANDA", {"dtype": torch.int64}, "BadParameterError", r"^load_chain: dtype must be torch.float32 or torch.float64; got torch.int64$"),
        ("PANDA", {"dtype": "float32"}, "BadParameterError", r"^load_chain: dtype must be torch.float32 or torch.float64; got 'float32'$"),
        ("PANDA", {"device": "bogus"}, "BadParameterError", r"^device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got 'bogus'$"),
        ("PANDA", {"device": "cuda:99"}, "BadParameterError", r"^device 'cuda:99' (is not available here|does not exist)"),
    ],
)
def test_load_chain_checks_its_arguments_first(urdf, kwargs, error, message):
    import ikrl.errors
    from tests.conftest import PANDA_URDF

    with pytest.raises(getattr(ikrl.errors, error), match=message):
        ikrl.load_chain(PANDA_URDF if urdf == "PANDA" else urdf, **kwargs)


def test_a_chain_converts_only_to_float_dtypes_and_real_devices(cr5):
    with pytest.raises(BadParameterError, match=r"^chain 'dobot_cr5': dtype must be torch.float32 or torch.float64; got torch.int64$"):
        cr5.to(dtype=torch.int64)
    with pytest.raises(BadParameterError, match=r"^device must be a torch device"):
        cr5.to(device="bogus")


def test_a_bool_array_of_targets_is_refused(tmp_path):
    path = tmp_path / "bool.npy"
    np.save(path, np.eye(4, dtype=bool)[None].repeat(2, 0))
    with pytest.raises(TargetsFileError, match=rf"^{path}: targets must be real numbers \(ints or floats\); the file holds an array of bools$"):
        load_targets(path)


def test_a_csv_keeps_its_first_row_unless_it_is_a_header(tmp_path):
    eye = "1,0,0,0.5,0,1,0,0,0,0,1,0,0,0,0,1\n"
    bom = tmp_path / "bom.csv"
    bom.write_text("\ufeff" + eye * 2, encoding="utf-8")
    assert load_targets(bom).shape == (2, 4, 4)  # the byte order mark is not part of the first number
    header = tmp_path / "header.csv"
    header.write_text("x,y,z,qw,qx,qy,qz\n0.1,0.2,0.3,1,0,0,0\n")
    assert load_targets(header).shape == (1, 4, 4)
    typo = tmp_path / "typo.csv"
    typo.write_text(eye.replace("0.5", "O.5") + eye)
    with pytest.raises(TargetsFileError, match=rf"^{typo}: cannot read targets as numbers: row 0 mixes numbers and text: .*'O.5'.*; a header row holds names only, a row of targets numbers only$"):
        load_targets(typo)


def test_a_sparse_bonus_a_float32_reward_cannot_hold_is_refused():
    with pytest.raises(BadParameterError, match=r"^sparse: bonus must be a finite number from -3.40282e\+38 to 3.40282e\+38 \(a float32 reward holds it\); got 1e\+308$"):
        ikrl.make_env("panda+sparse(bonus=1e308)", batch_size=2)


def test_a_grid_of_a_billion_seeds_is_refused_before_it_is_listed():
    from ikrl.errors import GridError

    with pytest.raises(GridError, match=r"^seeds must be a count from 1 to 100,000 \(the number of seeds per spec\); got 1000000000$"):
        plan("panda+{sincos,raw}", 10**9)
    with pytest.raises(GridError, match=r"^2 specs with 60,000 seeds each make 120,000 cells; a grid has at most 100,000"):
        plan("panda+{sincos,raw}", 60_000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--batch", "4", "--out", "d.txt"], "error: --out d.txt: the picture is written as PNG (out.png) or another format matplotlib writes"),
        (["demo", "--batch", str(10**10), "--out", "d.png"], "Invalid value for '--batch'"),
        (["solve", "panda", "--random", str(10**12), "--out", "s.csv"], "Invalid value for '--random'"),
        (["ablate", "panda+{sincos,raw}", "--seeds", str(10**9), "--out", "g", "--dry-run"], "error: seeds must be a count from 1 to 100,000"),
    ],
)
def test_commands_bound_what_they_would_allocate(tmp_path, monkeypatch, args, message):
    from typer.testing import CliRunner

    from ikrl.cli.app import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (1, 2) and message in " ".join(result.output.split()), result.output
    assert not list(tmp_path.iterdir())  # refused before any work
