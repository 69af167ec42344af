"""A fuzz battery: many generated bad or odd inputs, each run in a forked child with a timeout.

    python benchmarks/fuzz.py [--seed S] [--quick] [--timeout 60] [--out table.md] [--strict-cli]

Families of inputs (issue 13, "results you can trust"):

* ``spec``: mutated spec strings for ``ikrl.make_env``, ``ikrl.extend.registry.assemble``,
  ``EnvSpec.parse`` and the brace expander ``ikrl.spec.braces.expand_braces``;
* ``options``: ``make_env`` keyword options (batch size, dtype, device, seed, max_steps,
  max_delta, tolerances, component overrides);
* ``targets``: targets for ``ikrl.solve`` (and its settings, starts, warm starts), for
  ``IKEnv.state_at`` and target files for ``ikrl.solver.targets.load_targets``;
* ``urdf``: mutations of ``robots/panda/panda.urdf`` and of ``tests/random_urdf.py`` robots
  for ``ikrl.load_chain``;
* ``checkpoint``: a real checkpoint trained once (``ikrl train ... --algorithm apg --steps 300``),
  its fields mutated, then ``load_checkpoint``, ``Checkpoint.policy()`` and a rollout;
* ``cli``: every ``ikrl`` command through ``typer.testing.CliRunner`` with bad values.

Each outcome is one of:

* ``named error``: an :class:`ikrl.errors.IkrlError` raised; on the command line exit code 1
  with one ``error: ...`` line and no traceback. Click's own usage errors (exit code 2, a
  "Usage:" panel, from typer's ``min=`` ranges and type parsing) count here too, and are
  counted apart; ``--strict-cli`` counts them as tracebacks instead;
* ``handled``: accepted, and the result checked: finite, joint values within the limits,
  success flags that agree with pose errors recomputed in float64 against the targets, option
  values that are what was asked, a canonical spec that reads back the same, ...;
* ``traceback``: any other exception (or a crash of the child), a traceback in the command's
  output, or an exit code other than 0 or 1;
* ``silent-wrong``: accepted, but the check of the result failed;
* ``hang``: the child ran past the timeout (it is killed, with its process group).

A named error whose message misses the words expected for its input (the option, the file,
the field at fault) is listed apart, under "named errors with unexpected messages".
Children run with an address-space limit (``--memory-gb`` more than the parent's), one torch thread, in a folder of
their own under one ``tempfile.mkdtemp()`` folder, which is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import random
import re
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.random_urdf

import ikrl  # noqa: E402
from ikrl.errors import IkrlError  # noqa: E402

__all__ = [
    "FAMILIES", "FULL_SIZES", "OUTCOMES", "QUICK_SIZES", "Case", "Context", "Outcome", "build_cases", "main", "make_context",
    "outcome_from_record", "outcome_record", "report", "run_battery", "run_case",
]  # fmt: skip

OUTCOMES = ("named error", "handled", "traceback", "silent-wrong", "hang")
FAMILIES = ("spec", "options", "targets", "urdf", "checkpoint", "cli")
#: Cases per family: the full battery and --quick.
FULL_SIZES = {"spec": 120, "options": 110, "targets": 180, "urdf": 90, "checkpoint": 130, "cli": 120}
QUICK_SIZES = {"spec": 12, "options": 10, "targets": 12, "urdf": 10, "checkpoint": 8, "cli": 10}
TRAIN_SPEC = "dobot_cr5+weighted_pose+sincos"
TRAIN_ARGS = ["train", TRAIN_SPEC, "--algorithm", "apg", "--steps", "300", "--batch-size", "16", "--eval-targets", "4", "--no-progress"]
PANDA_URDF = ROOT / "robots" / "panda" / "panda.urdf"


def short(value: object, limit: int = 150) -> str:
    """``value`` (a string, or its repr) cut to ``limit`` characters, saying how long it was."""
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    if len(text) <= limit:
        return text
    return f"{text[: limit - 25]}...(+{len(text) - limit + 25:,} chars)"


class Wrong(Exception):
    """Accepted, but the result is wrong (what the verifiers raise)."""


@dataclass
class Case:
    family: str
    label: str  #: the input, shortened
    run: Callable[[], tuple[str, str, str] | None]  #: None: handled (verified); or (kind, type, message)
    expect: str | None = None  #: regex (case-insensitive) a named error's message should match


@dataclass
class Outcome:
    case: Case
    kind: str
    error_type: str = ""
    message: str = ""
    where: str = ""
    seconds: float = 0.0
    usage: bool = False  #: a click usage error (exit code 2)

    message_ok: bool = True  #: for a named error: its message matches the case's ``expect`` (see :func:`_message_ok`)


@dataclass
class Context:
    """What the cases share, made once in the parent before forking."""

    tmp: Path
    panda_text: str
    chains: dict[str, object] = field(default_factory=dict)
    run_dir: Path | None = None
    checkpoint: dict | None = None
    joints_csv: Path | None = None
    usage_is_traceback: bool = False


# ---------------------------------------------------------------------------------- running


def _where(error: BaseException) -> str:
    """The innermost ikrl frame (file:line in function) of ``error`` or of its causes."""
    seen: set[int] = set()
    best = ""
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        inner = [f for f in frames if "/ikrl/" in f.filename or "/plugins/" in f.filename]
        if inner:
            f = inner[-1]
            best = f"{f.filename.split('/main/')[-1]}:{f.lineno} in {f.name}"
            last = frames[-1]
            if last is not f:
                best += f" (raised in {Path(last.filename).name}:{last.lineno} {last.name})"
        current = current.__cause__ or current.__context__
        if best:
            break
    return best


def _message_ok(case: Case, message: str) -> bool:
    """A named error's message is non-empty, matches ``case.expect``, and on the command line
    takes at most three lines (an error line and a caret under the input)."""
    if not message.strip():
        return False
    if case.family == "cli" and message.strip().count("\n") >= 3:
        return False
    return case.expect is None or re.search(case.expect, message, re.IGNORECASE | re.DOTALL) is not None


def _classify(case: Case) -> dict:
    try:
        verdict = case.run()
    except IkrlError as error:
        return {"kind": "named error", "type": type(error).__name__, "message": str(error), "message_ok": _message_ok(case, str(error))}
    except Wrong as error:
        return {"kind": "silent-wrong", "type": "Wrong", "message": str(error)}
    except BaseException as error:  # noqa: BLE001 - the point is to see every other exception
        return {"kind": "traceback", "type": type(error).__name__, "message": str(error), "where": _where(error)}
    if verdict is None:
        return {"kind": "handled"}
    kind, error_type, message = verdict
    return {"kind": kind, "type": error_type, "message": message, "usage": error_type.startswith("click usage"), "message_ok": _message_ok(case, message)}


def _address_space() -> int:
    """This process's virtual memory size in bytes (0 if unknown)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(case: Case, write_fd: int, folder: Path, memory: int) -> None:
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (_address_space() + memory,) * 2)
        folder.mkdir(parents=True, exist_ok=True)
        os.chdir(folder)
        log = os.open(folder / "output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        result = _classify(case)
    except BaseException as error:  # noqa: BLE001
        result = {"kind": "traceback", "type": type(error).__name__, "message": f"in the battery's child: {error}"}
    for key in ("message", "where"):
        if key in result:
            result[key] = str(result[key])[:4000]
    data = json.dumps(result).encode()
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(write_fd, data) :]
    os._exit(0)


def run_case(case: Case, timeout: float, folder: Path, memory_gb: float = 6.0) -> Outcome:
    """Run ``case`` in a forked child (its own session, folder and memory limit) for at most ``timeout`` s."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        _child(case, write_fd, folder, int(memory_gb * 2**30))
    os.close(write_fd)
    chunks: list[bytes] = []
    hung = False
    deadline = start + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                hung = True
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # the child's session: it and anything it started
        _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    if hung:
        return Outcome(case, "hang", "timeout", f"still running after {timeout:g} s", seconds=seconds)
    try:
        result = json.loads(b"".join(chunks).decode())
    except (ValueError, UnicodeDecodeError):
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"
        tail = ""
        with contextlib.suppress(OSError):
            tail = (folder / "output.txt").read_text(errors="replace")[-300:]
        return Outcome(case, "traceback", "crash", f"the child died ({how}) without a result; output ends {short(tail, 200)}", seconds=seconds)
    return Outcome(
        case, result["kind"], result.get("type", ""), result.get("message", ""), result.get("where", ""), seconds,
        result.get("usage", False), result.get("message_ok", True),
    )  # fmt: skip


# ---------------------------------------------------------------------------------- checks


def _f64(x) -> np.ndarray:
    return x.detach().cpu().to(torch.float64).numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def pose_errors64(current: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (m) and rotation (rad) errors between poses ``[N, 4, 4]``, in numpy float64,
    written independently of ikrl's se3."""
    position = np.linalg.norm(current[:, :3, 3] - target[:, :3, 3], axis=1)
    r = np.swapaxes(current[:, :3, :3], 1, 2) @ target[:, :3, :3]
    v = np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], 1)
    sine = 0.5 * np.linalg.norm(v, axis=1)
    cosine = 0.5 * (np.trace(r, axis1=1, axis2=2) - 1.0)
    return position, np.arctan2(sine, cosine)


def check_pose_array(poses: np.ndarray, what: str, tol: float = 1e-4) -> None:
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise Wrong(f"{what}: shape {poses.shape}, not (N, 4, 4)")
    if not np.isfinite(poses).all():
        raise Wrong(f"{what}: holds values that are not finite")
    r = poses[:, :3, :3]
    gram = np.swapaxes(r, 1, 2) @ r - np.eye(3)
    if np.abs(gram).max(initial=0) > tol:
        raise Wrong(f"{what}: a rotation that is not orthonormal (R^T R - I up to {np.abs(gram).max():.3g})")
    if len(r) and np.linalg.det(r).min() < 0:
        raise Wrong(f"{what}: a rotation with determinant -1")
    if len(r) and not (poses[:, 3] == np.array([0.0, 0.0, 0.0, 1.0])).all():
        raise Wrong(f"{what}: a bottom row other than 0 0 0 1")


def fk64(chain, q) -> np.ndarray:
    c64 = chain.to(dtype=torch.float64)
    with torch.no_grad():
        return _f64(c64.forward_kinematics(q.detach().to(device=c64.device, dtype=torch.float64)))


def check_within_limits(chain, q, what: str) -> None:
    values = _f64(q)
    if not np.isfinite(values).all():
        raise Wrong(f"{what}: joint values that are not finite (NaN or inf)")
    lower, upper = _f64(chain.lower), _f64(chain.upper)
    continuous = chain.continuous.cpu().numpy().astype(bool)
    lower = np.where(continuous, -math.pi, lower)
    upper = np.where(continuous, math.pi, upper)
    slack = 1e-6 * (1 + np.abs(np.where(np.isfinite(lower), lower, 0)))
    below = values < lower - slack
    above = values > upper + 1e-6 * (1 + np.abs(np.where(np.isfinite(upper), upper, 0)))
    if below.any() or above.any():
        index = np.argwhere(below | above)[0]
        raise Wrong(
            f"{what}: joint {chain.joint_names[index[-1]]} = {values[tuple(index)]:.6g} is outside its limits "
            f"[{lower[index[-1]]:.6g}, {upper[index[-1]]:.6g}]"
        )


def check_env(env, n: int) -> None:
    """Reset and roll ``env`` out with random actions; everything finite, within limits and consistent."""
    if tuple(env.batch_size) != (n,):
        raise Wrong(f"asked for {n} arms; the environment has batch_size {tuple(env.batch_size)}")
    td = env.reset()
    roll = env.rollout(3, break_when_any_done=False, tensordict=td, auto_reset=False)
    for name, state in (("reset", td), ("after 3 random steps", roll[:, -1]["next"])):
        check_within_limits(env.chain, state["q"], f"env {name}: q")
        for key in ("observation", "error", "position_error", "rotation_error"):
            if not bool(torch.isfinite(state[key]).all()):
                raise Wrong(f"env {name}: {key} holds NaN or inf")
        position, rotation = pose_errors64(fk64(env.chain, state["q"]), _f64(state["target"]))
        reported = _f64(state["position_error"]).reshape(-1)
        if not np.allclose(reported, position, rtol=1e-3, atol=1e-4):
            raise Wrong(f"env {name}: position_error {reported[:3]} but float64 recomputation gives {position[:3]}")
    nxt = roll[:, -1]["next"]
    success = _f64(nxt["terminated"]).reshape(-1) > 0
    position, rotation = pose_errors64(fk64(env.chain, nxt["q"]), _f64(nxt["target"]))
    bad = success & ((position > env.position_tolerance + 1e-4) | (rotation > env.rotation_tolerance + 1e-3))
    if bad.any():
        raise Wrong(f"env: an arm terminated as a success with float64 errors {position[bad][0]:.4g} m, {rotation[bad][0]:.4g} rad")


def verify_solve(chain, targets, result, position_tolerance: float = 1e-3, rotation_tolerance: float = math.radians(1.0)) -> None:
    """``ikrl.solve``'s result against ``targets``: shapes, finite, within limits, and success
    flags and errors that agree with float64 recomputation."""
    n = targets.shape[0]
    if tuple(result.q.shape) != (n, chain.dof) or tuple(result.success.shape) != (n,):
        raise Wrong(f"result shapes q {tuple(result.q.shape)}, success {tuple(result.success.shape)} for {n} targets")
    check_within_limits(chain, result.q, "solve: q")
    if n == 0:
        return
    goal = _f64(targets)
    position, rotation = pose_errors64(fk64(chain, result.q), goal)
    f32 = chain.dtype != torch.float64
    margin_p, margin_r = (1e-4, 1e-3) if f32 else (1e-9, 1e-8)
    success = result.success.cpu().numpy().astype(bool)
    reported_p, reported_r = _f64(result.position_error), _f64(result.rotation_error)
    if np.isnan(reported_p).any() or np.isnan(reported_r).any():
        raise Wrong(f"solve: NaN errors reported (position {reported_p[np.isnan(reported_p)][:1]}, success {success[:3]})")
    false_success = success & ((position > position_tolerance + margin_p) | (rotation > rotation_tolerance + margin_r))
    if false_success.any():
        i = int(np.argmax(false_success))
        raise Wrong(f"solve: target {i} flagged solved, but its float64 errors are {position[i]:.6g} m, {rotation[i]:.6g} rad")
    missed = ~success & (position < position_tolerance - margin_p) & (rotation < rotation_tolerance - margin_r)
    if missed.any():
        i = int(np.argmax(missed))
        raise Wrong(f"solve: target {i} flagged unsolved, but its float64 errors are {position[i]:.6g} m, {rotation[i]:.6g} rad")
    far = ~np.isclose(reported_p, position, rtol=1e-3, atol=margin_p * 10) | ~np.isclose(reported_r, rotation, rtol=1e-3, atol=margin_r * 10)
    if far.any():
        i = int(np.argmax(far))
        raise Wrong(
            f"solve: target {i}: reported errors {reported_p[i]:.6g} m, {reported_r[i]:.6g} rad; "
            f"float64 recomputation {position[i]:.6g} m, {rotation[i]:.6g} rad"
        )


def check_chain(chain, *, reference=None) -> None:
    """A chain loaded from a URDF: sane limits, finite poses and Jacobians, every joint moving the tip."""
    c = chain.to(dtype=torch.float64)
    if c.dof < 1 or len(c.joint_names) != c.dof:
        raise Wrong(f"chain with dof {c.dof} and joints {short(c.joint_names, 80)}")
    lower, upper = _f64(c.lower), _f64(c.upper)
    continuous = c.continuous.cpu().numpy().astype(bool)
    if np.isnan(lower).any() or np.isnan(upper).any():
        raise Wrong("chain limits hold NaN")
    if (lower > upper).any():
        j = int(np.argmax(lower > upper))
        raise Wrong(f"joint {c.joint_names[j]}: lower limit {lower[j]} > upper limit {upper[j]}")
    if (~continuous & ~(np.isfinite(lower) & np.isfinite(upper))).any():
        j = int(np.argmax(~continuous & ~(np.isfinite(lower) & np.isfinite(upper))))
        raise Wrong(f"joint {c.joint_names[j]} ({c.joint_types[j] if hasattr(c, 'joint_types') else '?'}) has infinite limits [{lower[j]}, {upper[j]}]")
    generator = np.random.default_rng(0)
    low = np.where(continuous, -math.pi, lower)
    high = np.where(continuous, math.pi, upper)
    q = torch.from_numpy(low + generator.random((8, c.dof)) * (high - low))
    with torch.no_grad():
        poses = _f64(c.forward_kinematics(q))
        jac = _f64(c.jacobian(q))
    check_pose_array(poses, "forward kinematics", tol=1e-8)
    if not np.isfinite(jac).all():
        raise Wrong("the Jacobian holds NaN or inf")
    still = np.abs(jac).max(axis=(0, 1)) < 1e-12
    if still.any():
        raise Wrong(f"joint {c.joint_names[int(np.argmax(still))]} never moves the tip (a zero Jacobian column): a zero axis accepted?")
    if reference is not None:
        ref = reference.to(dtype=torch.float64)
        if ref.dof != c.dof:
            raise Wrong(f"dof {c.dof}; the unchanged robot has {ref.dof}")
        with torch.no_grad():
            expected = _f64(ref.forward_kinematics(q))
        if not np.allclose(poses, expected, atol=1e-9):
            raise Wrong(f"forward kinematics differ from the unchanged robot's by {np.abs(poses - expected).max():.3g}")


# ---------------------------------------------------------------------------------- family: spec

INSERTS = [*"+(){},=\"' \t\n\\#;:.-_*0", "é", "∑", "😀", "\x00", "\u202e", "\ufeff", "\ue000", "１", "𝟙", "\u00a0"]
NUMBERS = ["1e400", "-1e400", "nan", "inf", "-inf", "1e-320", "9" * 40, "-0", "0x10", "1_000", "--1", "1e", ".", "true", "none",
           "'0.1'", '"x"', "()", "(1,)", "[1]", "1,2", "1,2,3,4,5,6,7", "-1", "0", "1e308", "٣"]  # fmt: skip
NAMES = ["pandaa", "Panda", "weighted_pos", "near-target", "sin cos", "_", "a" * 300, "__import__", "robot", "uniform", "sincos",
         "fixed", "dobot_cr5", "w", "noise", "bonus", "gamma", "x", "1abc", "ü", "PANDA"]  # fmt: skip
SPEC_BASES = [
    "dobot_cr5+weighted_pose(w=(1,1,1,0.2,0.2,0.2))+near_target(noise=0.3)+sincos",
    "dobot_cr5+weighted_pose(w=1,1,1,0.2,0.2,0.2)+near_target(noise=0.3)+sincos",
    "panda+geodesic(rotation_weight=0.5)+uniform+raw+error",
    "ur5e+progress(gamma=0.99,rotation_weight=1)+normalize+target",
    "panda+sparse(bonus=1)+near_target(noise=0.1)+sincos+error",
    "panda+position+fixed(file='JOINTS',starts=near)+raw",
]
BRACE_BASES = [
    "dobot_cr5+{weighted_pose,geodesic}+{sincos,raw}",
    "panda+position+near_target(noise={0.1,0.2})+{sincos,}",
    "ur5e+{sparse(bonus={1,2}),progress}+{normalize,target+error}",
]
SPEC_EXPECT = r"position|unknown|got|must|expected|no parameter|not a|does not|pattern|brace|string|nest|reserved|twice|empty|closing|accepts|names|joints|at most|file|starts with|is a"


def _mutate_spec(text: str, rng: random.Random) -> tuple[str, str]:
    """One random mutation of ``text``: (mutated, what was done)."""
    op = rng.choice(["delete", "insert", "duplicate", "number", "name", "nest", "truncate", "repeat", "huge", "swap", "insert", "delete"])
    if op == "delete" and text:
        for _ in range(rng.randint(1, 3)):
            if text:
                i = rng.randrange(len(text))
                text = text[:i] + text[i + 1 :]
        return text, "deleted characters"
    if op == "insert":
        i = rng.randrange(len(text) + 1)
        char = rng.choice(INSERTS)
        return text[:i] + char + text[i:], f"inserted {char!r}"
    if op == "duplicate" and text:
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.randint(1, 12))
        return text[:j] + text[i:j] + text[j:], "duplicated a substring"
    if op == "number":
        numbers = list(re.finditer(r"(?<![A-Za-z_])\d+(\.\d+)?", text))
        if numbers:
            m = rng.choice(numbers)
            value = rng.choice(NUMBERS)
            return text[: m.start()] + value + text[m.end() :], f"number -> {value!r}"
    if op == "name":
        names = list(re.finditer(r"[a-z_][a-z_0-9]*", text))
        if names:
            m = rng.choice(names)
            value = rng.choice(NAMES)
            return text[: m.start()] + value + text[m.end() :], f"name {m.group()!r} -> {short(value, 20)!r}"
    if op == "nest":
        depth = rng.choice([2, 5, 33, 200, 3000])
        opener, closer = rng.choice([("(", ")"), ("{", "}"), ("((", ")"), ("{", ""), ("", ")")])
        i = rng.randrange(len(text) + 1)
        j = rng.randrange(i, len(text) + 1)
        return text[:i] + opener * depth + text[i:j] + closer * depth + text[j:], f"nested {opener}{closer} x{depth}"
    if op == "truncate":
        return text[: rng.randrange(len(text) + 1)], "truncated"
    if op == "repeat":
        part = rng.choice(["+sincos", "+raw", "+error", "+weighted_pose", "+near_target", "+{a,b}", "+{sincos,raw}"])
        count = rng.choice([2, 20, 400])
        return text + part * count, f"{part} x{count}"
    if op == "huge":
        body = rng.choice(["9" * 100_000, "x" * 100_000, "1," * 50_000 + "1", "é" * 50_000])
        return text + f"+sincos(p={body})", "a 100k-character parameter"
    if op == "swap":
        parts = text.split("+")
        rng.shuffle(parts)
        return "+".join(parts), "parts shuffled"
    return text + rng.choice(INSERTS), "appended a character"


def _spec_call(target: str, value: object, ctx: Context):
    from ikrl.env.make import make_env
    from ikrl.extend.registry import assemble
    from ikrl.spec.braces import expand_braces
    from ikrl.spec.grammar import EnvSpec

    if isinstance(value, str) and "JOINTS" in value:
        value = value.replace("JOINTS", str(ctx.joints_csv))
    if target == "parse":
        spec = EnvSpec.parse(value)  # type: ignore[arg-type]
        text = str(spec)
        again = EnvSpec.parse(text)
        if again != spec or str(again) != text:
            raise Wrong(f"EnvSpec.parse: canonical {short(text, 80)!r} reads back as {short(str(again), 80)!r}")
    elif target == "expand":
        specs = expand_braces(value)  # type: ignore[arg-type]
        if not specs or not all(isinstance(s, str) for s in specs):
            raise Wrong(f"expand_braces gave {short(specs, 80)}")
        if len(set(specs)) != len(specs):
            raise Wrong("expand_braces gave the same spec twice")
        for s in specs[:50]:
            if str(EnvSpec.parse(s)) != s:
                raise Wrong(f"expand_braces gave {short(s, 80)!r}, not canonical")
    elif target == "assemble":
        parts = assemble(value)  # type: ignore[arg-type]
        text = str(parts.spec)
        if str(EnvSpec.parse(text)) != text or parts.chain.dof < 1:
            raise Wrong(f"assemble: resolved spec {short(text, 80)!r} does not read back")
    else:
        env = make_env(value, batch_size=2, seed=0)  # type: ignore[arg-type]
        check_env(env, 2)
        text = str(env.resolved_spec)
        again = make_env(text, batch_size=2, seed=0)
        if str(again.resolved_spec) != text:
            raise Wrong(f"make_env: resolved spec {short(text, 60)!r} rebuilds as {short(str(again.resolved_spec), 60)!r}")
    return None


def spec_cases(ctx: Context, rng: random.Random, n: int) -> list[Case]:
    from ikrl.spec.grammar import EnvSpec

    fixed: list[tuple[str, object]] = [
        ("make_env", ""), ("make_env", " "), ("make_env", "+"), ("make_env", "panda+"), ("make_env", "+panda"),
        ("make_env", "panda++sincos"), ("make_env", None), ("make_env", 5), ("make_env", b"panda"), ("make_env", ["panda"]),
        ("make_env", EnvSpec.parse("panda+sincos")), ("make_env", "panda"), ("make_env", "panda\n"), ("make_env", "PANDA"),
        ("make_env", "panda+weighted_pose(w=1,1,1,1,1,1,1)"), ("make_env", "panda+weighted_pose(w=1,1,1)"),
        ("make_env", "panda+weighted_pose(w=-1,1,1,1,1,1)"), ("make_env", "panda+weighted_pose(w=0,0,0,0,0,0)"),
        ("make_env", "panda+near_target(noise=-0.1)"), ("make_env", "panda+near_target(noise=1e300)"),
        ("make_env", "panda+near_target(noise=abc)"), ("make_env", "panda+near_target(noise=true)"),
        ("make_env", "panda+near_target(noise=(1,2))"), ("make_env", "panda+near_target(nois=0.1)"),
        ("make_env", "panda+near_target(noise=0.1,noise=0.2)"), ("make_env", "panda+uniform+near_target"),
        ("make_env", "panda+geodesic+position"), ("make_env", "panda+sincos(x=1)"), ("make_env", "panda(x=1)"),
        ("make_env", "panda+fixed"), ("make_env", "panda+fixed(file=/nonexistent.csv)"), ("make_env", "panda+fixed(file='JOINTS')"),
        ("make_env", "dobot_cr5+fixed(file='JOINTS')"), ("make_env", "panda+fixed(file=/proc)"), ("make_env", "panda+fixed(file=/etc/passwd)"),
        ("make_env", "panda+fixed(file='JOINTS',starts=far)"), ("make_env", "panda+sparse(bonus=1e308)"),
        ("make_env", "panda+progress(gamma=0)"), ("make_env", "panda+progress(gamma=1e-300)"), ("make_env", "sincos+panda"),
        ("make_env", "panda+sincos+sincos"), ("make_env", "panda+" + "+".join(["raw"] * 200)),
        ("parse", ""), ("parse", "panda(a='b)"), ("parse", 'panda(a="\\"")'), ("parse", "panda(a=(((1))))"), ("parse", None),
        ("parse", "panda(a=1e999999)"), ("parse", "panda(a=" + "(" * 5000 + ")"), ("parse", "panda(a='x'," + "b=1," * 2000 + ")"),
        ("expand", ""), ("expand", "{}"), ("expand", "{,}"), ("expand", "panda+{sincos,sincos}"), ("expand", "panda+{"),
        ("expand", "panda+}"), ("expand", "panda+{sincos,raw"), ("expand", "{" * 33 + "panda" + "}" * 33), ("expand", None),
        ("expand", "panda+near_target(noise={0.1,0.1})"), ("expand", "panda+{sincos,raw}" * 17), ("expand", "panda+'{a,b}'"),
        ("expand", "\ue000"), ("expand", "{panda,ur5e}+{,sincos}+{,raw}+{,error}"),
        ("assemble", ""), ("assemble", "panda+sincos"), ("assemble", 3.5), ("assemble", "panda+geodesic(rotation_weight=-1)"),
    ]  # fmt: skip
    cases: list[tuple[str, object, str]] = [(t, v, "fixed") for t, v in fixed]
    while len(cases) < n:
        if rng.random() < 0.3:
            base, target = rng.choice(BRACE_BASES), rng.choice(["expand", "expand", "make_env", "parse"])
        else:
            base, target = rng.choice(SPEC_BASES), rng.choice(["make_env", "make_env", "assemble", "parse", "expand"])
        text, what = base, []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            text, did = _mutate_spec(text, rng)
            what.append(did)
        cases.append((target, text, "; ".join(what)))
    out = []
    for target, value, what in cases:
        label = f"{target}({short(repr(value), 110)})" + (f" [{what}]" if what != "fixed" else "")
        out.append(Case("spec", label, lambda t=target, v=value: _spec_call(t, v, ctx), SPEC_EXPECT))
    return out


# ---------------------------------------------------------------------------------- family: options


def _options_call(spec: str, options: dict, expect_arms: int | None):
    from ikrl.env.make import make_env

    env = make_env(spec, **{"batch_size": 2, "seed": 0, **options})
    for name, value in options.items():
        if isinstance(value, bool):
            raise Wrong(f"make_env accepted {name}={value!r}, a bool, as a number")
    check_env(env, expect_arms if expect_arms is not None else 2)
    checks = {"max_steps": env.max_steps, "position_tolerance": env.position_tolerance, "rotation_tolerance": env.rotation_tolerance}
    for name, actual in checks.items():
        if name in options and actual != options[name]:
            raise Wrong(f"make_env({name}={options[name]!r}) gives an environment with {name} {actual!r}")
    if "rotation_tolerance" in options and options["rotation_tolerance"] > math.pi:
        raise Wrong(
            f"make_env accepted rotation_tolerance={options['rotation_tolerance']!r} > pi (degrees given as radians?): every "
            "rotation passes; a robot's env_defaults with this value are refused"
        )
    if "dtype" in options and env.reset()["q"].dtype != options["dtype"]:
        raise Wrong(f"make_env(dtype={options['dtype']}) gives q of dtype {env.reset()['q'].dtype}")
    return None


def options_cases(ctx: Context, rng: random.Random, n: int) -> list[Case]:
    nan, inf = math.nan, math.inf
    values: dict[str, list] = {
        "batch_size": [0, -1, 1.5, True, "4", [2, 3], [], torch.Size([]), nan, None, 2**40, 10**30, [4], torch.Size([3]), 1, (5,), np.int64(3), torch.tensor(3)],
        "dtype": [torch.float16, torch.bfloat16, torch.int64, torch.complex64, torch.bool, "float32", None, np.float32, torch.float64],
        "device": ["cuda", "cuda:7", "meta", "tpu", "", 3, None, "cpu:0", torch.device("cpu"), "CPU", "mps", "cpu:1"],
        "seed": [-1, 2**32, 1.5, "7", True, None, 2**32 - 1, np.int64(5), nan],
        "max_steps": [0, -5, 1.5, True, nan, "10", None, 10**12, 1],
        "max_delta": [0, -0.1, nan, inf, 1e300, [0.1] * 5, [0.1] * 7, "0.1", True, [], [[0.1] * 7], 1 + 1j, [0.1, -0.1, 0.1, 0.1, 0.1, 0.1, 0.1], torch.full((7,), 0.05), None],
        "position_tolerance": [0, -1, nan, inf, 1e300, True, "0.01", [0.01], 1e-300, None],
        "rotation_tolerance": [0, -1, nan, inf, 10.0, 5, True, "2", math.pi, None],
    }  # fmt: skip
    cases: list[Case] = []
    for name, options in values.items():
        for value in options:
            arms = None
            if name == "batch_size":
                try:
                    from ikrl.env.ikenv import arms as count

                    arms = count(value)
                except Exception:  # noqa: BLE001 - the case itself will see the error
                    arms = None
            spec = "panda+weighted_pose+sincos" if rng.random() < 0.5 else "dobot_cr5+geodesic+near_target+error"
            if name == "max_delta" and isinstance(value, list | torch.Tensor) and len(value) == 7:
                spec = "panda+weighted_pose+sincos"
            expect = {"batch_size": "batch_size", "max_delta": "max_delta"}.get(name, name.replace("_", "[_ ]") + "|" + name)
            if name == "device":
                expect = "device"
            cases.append(Case("options", f"make_env({spec!r}, {name}={short(repr(value), 60)})",
                              lambda s=spec, o={name: value}, a=arms: _options_call(s, o, a), expect))  # fmt: skip
    overrides = [
        ("panda+near_target", {"near_target": {"noise": -1}}, "noise"),
        ("panda+near_target", {"near_target": {"nois": 0.1}}, "nois|noise"),
        ("panda+near_target", {"near_target": {"noise": "x"}}, "noise"),
        ("panda+near_target", {"near_target": 0.1}, "near_target"),
        ("panda", {"near_target": {"noise": 0.1}}, "near_target"),
        ("panda", {"colour": 1}, "colour"),
        ("panda", {"registry": object()}, "registry"),
        ("panda+weighted_pose", {"weighted_pose": {"w": [1, 1, 1]}}, "w"),
        ("panda+weighted_pose", {"weighted_pose": {"w": (1, 1, 1, 0.1, 0.1, math.nan)}}, "w"),
        ("panda+near_target", {"near_target": {"noise": 0.05}}, None),
    ]
    for spec, options, expect in overrides:
        cases.append(Case("options", f"make_env({spec!r}, {short(options, 80)})", lambda s=spec, o=options: _options_call(s, o, None), expect))
    rng.shuffle(cases)
    return cases[:n]


# ---------------------------------------------------------------------------------- family: targets

TARGET_EXPECT = r"target|pose|shape|starts|warm_start|tolerance|max_iters|restarts|seeds|seed|joint|q |q\b|finite|dtype|device|step_count"


def _valid_targets(chain, n: int, seed: int) -> torch.Tensor:
    from ikrl.kinematics.protocol import random_joints

    q = random_joints(chain.to(dtype=torch.float64), n, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return chain.to(dtype=torch.float64).forward_kinematics(q)


def _rotate_off(t: torch.Tensor, eps: float) -> torch.Tensor:
    t = t.clone()
    t[0, 0, 0] += eps
    return t


TARGET_OPS: dict[str, Callable[[torch.Tensor], object]] = {
    "a NaN entry": lambda t: t.index_put_((torch.tensor(0), torch.tensor(0), torch.tensor(3)), torch.tensor(math.nan, dtype=t.dtype)),
    "an inf entry": lambda t: t.index_put_((torch.tensor(0), torch.tensor(1), torch.tensor(1)), torch.tensor(math.inf, dtype=t.dtype)),
    "rotation scaled by 2": lambda t: torch.cat([torch.cat([2 * t[:, :3, :3], t[:, :3, 3:]], 2), t[:, 3:]], 1),
    "rotation 1e-3 off": lambda t: _rotate_off(t, 1e-3),
    "rotation 1e-8 off (within tolerance)": lambda t: _rotate_off(t, 1e-8),
    "determinant -1": lambda t: t * torch.tensor([[-1.0, 1, 1, 1], [-1, 1, 1, 1], [-1, 1, 1, 1], [1, 1, 1, 1]], dtype=t.dtype),
    "bottom row 0 0 0 2": lambda t: torch.cat([t[:, :3], 2 * t[:, 3:]], 1),
    "bottom row 1e-12 off": lambda t: torch.cat([t[:, :3], t[:, 3:] + torch.tensor([1e-12, 0, 0, 0], dtype=t.dtype)], 1),
    "shape (N, 4)": lambda t: t[:, 0],
    "shape (4, 4)": lambda t: t[0],
    "shape (N, 3, 4)": lambda t: t[:, :3],
    "shape (N, 4, 4, 1)": lambda t: t[..., None],
    "shape (1, N, 4, 4)": lambda t: t[None],
    "shape (N, 16)": lambda t: t.reshape(-1, 16),
    "empty (0, 4, 4)": lambda t: t[:0],
    "complex64 (imaginary parts 0.5)": lambda t: t.to(torch.complex64) + 0.5j,
    "int64 identity": lambda t: torch.eye(4, dtype=torch.int64).repeat(len(t), 1, 1),
    "bool identity": lambda t: torch.eye(4, dtype=torch.bool).repeat(len(t), 1, 1),
    "float16": lambda t: t.half(),
    "bfloat16": lambda t: t.bfloat16(),
    "float32": lambda t: t.float(),
    "a numpy array": lambda t: t.numpy(),
    "a list of lists": lambda t: t.tolist(),
    "None": lambda t: None,
    "a scalar tensor": lambda t: torch.tensor(1.0),
    "requires_grad": lambda t: t.clone().requires_grad_(True),
    "non-contiguous": lambda t: t.transpose(1, 2).contiguous().transpose(1, 2),
    "expanded (stride 0)": lambda t: t[:1].expand(5, 4, 4),
    "unreachable (100 m away)": lambda t: torch.cat([torch.cat([t[:, :3, :3], t[:, :3, 3:] + 100], 2), t[:, 3:]], 1),
    "translation 1e20": lambda t: torch.cat([torch.cat([t[:, :3, :3], torch.full_like(t[:, :3, 3:], 1e20)], 2), t[:, 3:]], 1),
    "translation 1e39 (past float32)": lambda t: torch.cat([torch.cat([t[:, :3, :3], torch.full_like(t[:, :3, 3:], 1e39)], 2), t[:, 3:]], 1),
    "translation 1e308": lambda t: torch.cat([torch.cat([t[:, :3, :3], torch.full_like(t[:, :3, 3:], 1e308)], 2), t[:, 3:]], 1),
    "translation 1e-310 (subnormal)": lambda t: torch.cat([torch.cat([t[:, :3, :3], torch.full_like(t[:, :3, 3:], 1e-310)], 2), t[:, 3:]], 1),
    "on the meta device": lambda t: t.to("meta"),
    "1000 copies of one target": lambda t: t[:1].repeat(1000, 1, 1),
    "rotation of exactly pi about x": lambda t: torch.cat([torch.cat([torch.diag(torch.tensor([1.0, -1, -1], dtype=t.dtype)).expand(len(t), 3, 3), t[:, :3, 3:]], 2), t[:, 3:]], 1),
}


def _solve_call(chain_name: str, ctx: Context, targets: object, kwargs: dict, verify_targets: object = None):
    chain = ctx.chains[chain_name]
    if callable(kwargs.get("starts")):
        kwargs = {**kwargs, "starts": kwargs["starts"](chain, targets)}
    result = ikrl.solve(chain, targets, **kwargs)  # type: ignore[arg-type]
    for what, value in (("targets", targets), ("starts", kwargs.get("starts"))):
        if isinstance(value, torch.Tensor) and value.is_complex():
            raise Wrong(f"solve accepted complex {what} (their imaginary parts are dropped)")
    for name in ("position_tolerance", "rotation_tolerance"):
        if name in kwargs and not isinstance(kwargs[name], int | float):
            raise Wrong(f"solve accepted {name}={kwargs[name]!r}, not a number")
    for name in ("position_tolerance", "rotation_tolerance", "max_iters", "restarts", "seeds", "seed"):
        if isinstance(kwargs.get(name), bool):
            raise Wrong(f"solve accepted {name}={kwargs[name]!r}, a bool, as a number")
    rotation_tolerance = kwargs.get("rotation_tolerance", math.radians(1.0))
    if rotation_tolerance > math.pi:
        raise Wrong(f"solve accepted rotation_tolerance={rotation_tolerance!r} > pi (degrees given as radians?): every rotation passes")
    reference = verify_targets if verify_targets is not None else targets
    verify_solve(chain, reference, result, kwargs.get("position_tolerance", 1e-3), rotation_tolerance)
    return None


def _state_at_call(ctx: Context, q, target, step_count):
    from ikrl.env.make import make_env

    env = make_env("panda+weighted_pose+sincos", batch_size=3, seed=0)
    kwargs = {} if step_count is None else {"step_count": step_count}
    td = env.state_at(q, target, **kwargs)
    if isinstance(q, torch.Tensor) and q.dtype == torch.bool:
        raise Wrong("state_at accepted a bool tensor as joint values q")
    if isinstance(target, torch.Tensor) and target.is_complex():
        raise Wrong("state_at accepted complex targets (their imaginary parts are dropped)")
    check_within_limits(env.chain, td["q"], "state_at: q")
    if not bool(torch.isfinite(td["observation"]).all()):
        raise Wrong("state_at: the observation holds NaN or inf")
    position, _ = pose_errors64(fk64(env.chain, td["q"]), _f64(td["target"]))
    if not np.allclose(_f64(td["position_error"]).reshape(-1), position, rtol=1e-3, atol=1e-4):
        raise Wrong("state_at: position_error disagrees with the float64 recomputation")
    steps = td["step_count"]
    if tuple(steps.shape) != (3, 1) or steps.dtype != torch.int64 or bool((steps < 0).any()) or bool((steps > env.max_steps).any()):
        raise Wrong(f"state_at accepted step_count {short(steps, 60)} (shape {tuple(steps.shape)}, {steps.dtype}): outside 0..max_steps or malformed")
    # A step from there must work too.
    td["action"] = torch.zeros(3, env.chain.dof)
    env.step(td)
    return None


def _write_targets(name: str, content: Callable[[Path], None]) -> Path:
    path = Path.cwd() / name
    content(path)
    return path


def _load_targets_call(name: str, content: Callable[[Path], None], expected: np.ndarray | None, source_bool: bool = False):
    from ikrl.solver.targets import load_targets

    path = _write_targets(name, content)
    poses = load_targets(path)
    if source_bool:
        raise Wrong("load_targets accepted a bool array as numbers (a .pt bool tensor is refused)")
    out = _f64(poses)
    check_pose_array(out, "load_targets", tol=1e-4)
    if expected is not None:
        if out.shape != expected.shape:
            raise Wrong(f"load_targets gave {out.shape[0]} poses; the file holds {expected.shape[0]} (a row dropped?)")
        if not np.allclose(out, expected, atol=1e-5):
            raise Wrong(f"load_targets gave poses that differ from the file's by {np.abs(out - expected).max():.3g}")
    return None


def _quat_rows(poses: np.ndarray) -> np.ndarray:
    """x y z qw qx qy qz rows of ``poses`` (independent of ikrl's conversion)."""
    rows = []
    for m in poses:
        r = m[:3, :3]
        w = math.sqrt(max(0.0, 1 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
        x = math.copysign(math.sqrt(max(0.0, 1 + r[0, 0] - r[1, 1] - r[2, 2])) / 2, r[2, 1] - r[1, 2])
        y = math.copysign(math.sqrt(max(0.0, 1 - r[0, 0] + r[1, 1] - r[2, 2])) / 2, r[0, 2] - r[2, 0])
        z = math.copysign(math.sqrt(max(0.0, 1 - r[0, 0] - r[1, 1] + r[2, 2])) / 2, r[1, 0] - r[0, 1])
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        rows.append([*m[:3, 3], w / norm, x / norm, y / norm, z / norm])
    return np.array(rows)


def _csv_text(rows) -> str:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)


def targets_cases(ctx: Context, rng: random.Random, n: int) -> list[Case]:
    cases: list[Case] = []
    chains = ["panda32", "cr5_64", "ur5e32"]
    # -- ikrl.solve with mutated targets
    for name, op in TARGET_OPS.items():
        chain = rng.choice(chains)
        base = _valid_targets(ctx.chains[chain], rng.randint(1, 5), rng.randrange(1000))
        try:
            targets = op(base.clone())
        except Exception as error:  # noqa: BLE001 - a broken op is the battery's bug: make it visible
            targets = f"<op failed: {error}>"
        cases.append(Case("targets", f"solve({chain}, targets: {name})", lambda c=chain, t=targets: _solve_call(c, ctx, t, {}), TARGET_EXPECT))
    # -- solve settings, starts and warm starts
    nan, inf = math.nan, math.inf
    settings = [
        ("position_tolerance", [0, -1, nan, inf, 1e300, True, "0.001", [0.001]]),
        ("rotation_tolerance", [0, nan, -0.1, 10.0, True]),
        ("max_iters", [0, -1, 1.5, True, "15", 10**9]),
        ("restarts", [-1, 1.5, None, 10**12]),
        ("seeds", [-1, 1.5, 10**10, 1, 0]),
        ("seed", [-1, 2**32, "0", 1.5, None, np.int64(4)]),
    ]
    for name, options in settings:
        for value in options:
            chain = rng.choice(chains)
            targets = _valid_targets(ctx.chains[chain], 3, rng.randrange(1000))
            cases.append(Case("targets", f"solve({chain}, 3 reachable targets, {name}={short(repr(value), 40)})",
                              lambda c=chain, t=targets, k={name: value}: _solve_call(c, ctx, t, k), name))  # fmt: skip

    def starts_of(kind):
        def make(chain, targets):
            n_, dof = targets.shape[0], chain.dof
            return {
                "NaN": torch.full((n_, dof), math.nan),
                "wrong width": torch.zeros(n_, dof + 1),
                "one row too many": torch.zeros(n_ + 1, dof),
                "outside the limits": torch.full((n_, dof), 100.0),
                "[N, 3, dof]": torch.zeros(n_, 3, dof),
                "int64": torch.zeros(n_, dof, dtype=torch.int64),
                "a list": [[0.0] * dof] * n_,
                "[N, 0, dof]": torch.zeros(n_, 0, dof),
                "complex": torch.zeros(n_, dof, dtype=torch.complex64) + 0.5j,
            }[kind]

        return make

    for kind in ["NaN", "wrong width", "one row too many", "outside the limits", "[N, 3, dof]", "int64", "a list", "[N, 0, dof]", "complex"]:
        chain = rng.choice(chains)
        targets = _valid_targets(ctx.chains[chain], 3, rng.randrange(1000))
        cases.append(Case("targets", f"solve({chain}, starts: {kind})", lambda c=chain, t=targets, k=kind: _solve_call(c, ctx, t, {"starts": starts_of(k)}), "starts"))
    warm = {
        "NaN": lambda q: torch.full_like(q, math.nan),
        "wrong width": lambda q: q[:, :-1],
        "a list": lambda q: q.tolist(),
        "None": lambda q: None,
        "outside the limits": lambda q: q + 100,
        "[N, 4, dof]": lambda q: q[:, None].repeat(1, 4, 1),
        "int64": lambda q: q.long(),
        "one row short": lambda q: q[:-1],
    }
    for kind, fn in warm.items():
        chain = rng.choice(chains)
        targets = _valid_targets(ctx.chains[chain], 3, rng.randrange(1000))
        cases.append(Case("targets", f"solve({chain}, warm_start returns {kind})", lambda c=chain, t=targets, f=fn: _solve_call(c, ctx, t, {"warm_start": f}), "warm_start"))
    # -- IKEnv.state_at
    panda = ctx.chains["panda32"]
    good_t = _valid_targets(panda, 3, 5).float()
    good_q = ((panda.lower + panda.upper) / 2).expand(3, 7).clone()
    state_inputs = [
        ("target NaN", good_q, TARGET_OPS["a NaN entry"](good_t.clone()), None),
        ("target rotation scaled", good_q, TARGET_OPS["rotation scaled by 2"](good_t.clone()), None),
        ("target shape (3, 3, 4)", good_q, good_t[:, :3], None),
        ("target float64", good_q, good_t.double(), None),
        ("target int64 identity", good_q, TARGET_OPS["int64 identity"](good_t), None),
        ("target complex (imaginary parts 0.5)", good_q, good_t.to(torch.complex64) + 0.5j, None),
        ("q NaN", torch.full((3, 7), math.nan), good_t, None),
        ("q inf", torch.full((3, 7), math.inf), good_t, None),
        ("q shape (3, 6)", torch.zeros(3, 6), good_t, None),
        ("q outside the limits (10 rad)", torch.full((3, 7), 10.0), good_t, None),
        ("q float64", good_q.double(), good_t, None),
        ("q int64 (inside the limits)", good_q.round().long(), good_t, None),
        ("q bool", torch.zeros(3, 7, dtype=torch.bool), good_t, None),
        ("q a list", [[0.0] * 7] * 3, good_t, None),
        ("step_count shape (2, 1)", good_q, good_t, torch.zeros(2, 1, dtype=torch.int64)),
        ("step_count -5", good_q, good_t, torch.full((3, 1), -5, dtype=torch.int64)),
        ("step_count float", good_q, good_t, torch.zeros(3, 1)),
        ("step_count 10**6", good_q, good_t, torch.full((3, 1), 10**6, dtype=torch.int64)),
    ]
    for label, q, target, steps in state_inputs:
        cases.append(Case("targets", f"env.state_at({label})", lambda a=q, b=target, c=steps: _state_at_call(ctx, a, b, c), TARGET_EXPECT))
    # -- load_targets files
    poses = _f64(_valid_targets(ctx.chains["cr5_64"], 4, 9))
    rows16 = poses.reshape(-1, 16)
    quats = _quat_rows(poses)
    bad_first = _csv_text(rows16).replace("1.0", "l.0", 1) if "1.0" in _csv_text(rows16) else "x" + _csv_text(rows16)
    typo = rows16.copy()
    typo_text = _csv_text(typo).split("\n")
    typo_text[0] = typo_text[0].replace(",", ",O", 1)  # a letter O in the first row
    files: list[tuple[str, Callable[[Path], None], np.ndarray | None, bool]] = [
        ("ok.npy", lambda p: np.save(p, poses), poses, False),
        ("ok16.csv", lambda p: p.write_text(_csv_text(rows16)), poses, False),
        ("ok7.csv", lambda p: p.write_text("x,y,z,qw,qx,qy,qz\n" + _csv_text(quats)), poses, False),
        ("ok.pt", lambda p: torch.save(torch.from_numpy(poses), p), poses, False),
        ("nan.npy", lambda p: np.save(p, np.where(np.arange(64).reshape(4, 4, 4) == 3, np.nan, poses)), None, False),
        ("inf.csv", lambda p: p.write_text(_csv_text(rows16).replace(repr(float(rows16[1, 3])), "inf", 1)), None, False),
        ("big.csv", lambda p: p.write_text(_csv_text(rows16).replace(repr(float(rows16[1, 3])), "1e400", 1)), None, False),
        ("shape5.npy", lambda p: np.save(p, np.zeros((3, 5))), None, False),
        ("shape444.npy", lambda p: np.save(p, np.zeros((2, 4, 4, 4))), None, False),
        ("shape1d.npy", lambda p: np.save(p, rows16[0]), None, False),
        ("scalar.npy", lambda p: np.save(p, np.float64(3.0)), None, False),
        ("nonortho.npy", lambda p: np.save(p, poses * np.array([1.01, 1, 1, 1])), None, False),
        ("complex.npy", lambda p: np.save(p, poses.astype(np.complex128)), None, False),
        ("complex.pt", lambda p: torch.save(torch.from_numpy(poses).to(torch.complex128), p), None, False),
        ("empty.npy", lambda p: np.save(p, np.zeros((0, 4, 4))), None, False),
        ("bool.npy", lambda p: np.save(p, np.eye(4, dtype=bool)[None].repeat(2, 0)), None, True),
        ("bool.pt", lambda p: torch.save(torch.eye(4, dtype=torch.bool)[None], p), None, False),
        ("int.npy", lambda p: np.save(p, np.eye(4, dtype=np.int64)[None].repeat(2, 0)), np.eye(4)[None].repeat(2, 0), False),
        ("float16.npy", lambda p: np.save(p, np.eye(4, dtype=np.float16)[None]), np.eye(4)[None], False),
        ("object.npy", lambda p: np.save(p, np.array([poses[0], "x"], dtype=object), allow_pickle=True), None, False),
        ("structured.npy", lambda p: np.save(p, np.zeros(3, dtype=[("a", "f8"), ("b", "i4")])), None, False),
        ("string.npy", lambda p: np.save(p, np.array([["1"] * 16])), None, False),
        ("garbage.npy", lambda p: p.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(3000))), None, False),
        ("garbage.csv", lambda p: p.write_bytes(bytes(random.Random(2).randrange(256) for _ in range(3000))), None, False),
        ("garbage.pt", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(random.Random(3).randrange(256) for _ in range(3000))), None, False),
        ("truncated.pt", lambda p: (torch.save(torch.from_numpy(poses), p), p.write_bytes(p.read_bytes()[:300])), None, False),
        ("dict.pt", lambda p: torch.save({"poses": torch.from_numpy(poses)}, p), None, False),
        ("list.pt", lambda p: torch.save([torch.from_numpy(poses)], p), None, False),
        ("sparse.pt", lambda p: torch.save(torch.from_numpy(poses).to_sparse(), p), None, False),
        ("meta.pt", lambda p: torch.save(torch.empty(2, 4, 4, device="meta"), p), None, False),
        ("int.pt", lambda p: torch.save(torch.eye(4, dtype=torch.int32)[None], p), np.eye(4)[None], False),
        ("param.pt", lambda p: torch.save(torch.nn.Parameter(torch.from_numpy(poses)), p), poses, False),
        ("float8.pt", lambda p: torch.save(torch.eye(4).to(torch.float8_e4m3fn)[None], p), np.eye(4)[None], False),
        ("pickle-code.pt", lambda p: p.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR."), None, False),
        ("widths.csv", lambda p: p.write_text("1,2,3\n1,2\n"), None, False),
        ("empty.csv", lambda p: p.write_text(""), None, False),
        ("header-only.csv", lambda p: p.write_text("x,y,z,qw,qx,qy,qz\n"), None, False),
        ("semicolons.csv", lambda p: p.write_text(_csv_text(rows16).replace(",", ";")), None, False),
        ("bom.csv", lambda p: p.write_text("\ufeff" + _csv_text(rows16)), poses, False),
        ("typo-first-row.csv", lambda p: p.write_text("\n".join(typo_text)), poses, False),
        ("letter-l-first-row.csv", lambda p: p.write_text(bad_first), poses, False),
        ("utf16.csv", lambda p: p.write_text(_csv_text(rows16), encoding="utf-16"), None, False),
        ("nul.csv", lambda p: p.write_bytes(b"1,2\x00,3\n"), None, False),
        ("huge-field.csv", lambda p: p.write_text("1," + "2" * 200_000 + "\n"), None, False),
        ("quat-not-unit.csv", lambda p: p.write_text(_csv_text(quats * np.array([1, 1, 1, 1.1, 1.1, 1.1, 1.1]))), None, False),
        ("quat-zero.csv", lambda p: p.write_text("0,0,0,0,0,0,0\n"), None, False),
        ("comment.csv", lambda p: p.write_text("# poses\n" + _csv_text(rows16)), poses, False),
        ("spaces.csv", lambda p: p.write_text(_csv_text(rows16).replace(",", " , ")), poses, False),
        ("underscores.csv", lambda p: p.write_text("1_0,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1\n"), None, False),
        ("targets.txt", lambda p: p.write_text(_csv_text(rows16)), None, False),
        ("noext", lambda p: p.write_text(_csv_text(rows16)), None, False),
        ("folder.csv", lambda p: p.mkdir(), None, False),
        ("fifo.csv", lambda p: os.mkfifo(p), None, False),
        ("missing.csv", lambda p: None, None, False),
        ("unreadable.csv", lambda p: (p.write_text(_csv_text(rows16)), p.chmod(0)), None, False),
    ]  # fmt: skip
    for name, content, expected, is_bool in files:
        cases.append(Case("targets", f"load_targets({name})", lambda a=name, b=content, c=expected, d=is_bool: _load_targets_call(a, b, c, d), r"\." + re.escape(name.rsplit(".", 1)[-1]) + r"|" + re.escape(name)))
    # -- random combinations of mutations
    ops = list(TARGET_OPS.items())
    while len(cases) < n:
        chain = rng.choice(chains)
        base = _valid_targets(ctx.chains[chain], rng.randint(1, 6), rng.randrange(10**6))
        picked = rng.sample(ops, 2)
        try:
            targets = picked[1][1](picked[0][1](base.clone()))
        except Exception:  # noqa: BLE001 - ops that do not compose: skip
            continue
        label = f"solve({chain}, targets: {picked[0][0]} then {picked[1][0]})"
        cases.append(Case("targets", label, lambda c=chain, t=targets: _solve_call(c, ctx, t, {}), TARGET_EXPECT))
    return cases


# ---------------------------------------------------------------------------------- family: urdf

URDF_EXPECT = r"<string>|\.urdf|urdf|xml|joint|link"


def _sub_nth(pattern: str, text: str, repl: Callable[[re.Match], str], index: int) -> str:
    matches = list(re.finditer(pattern, text))
    if not matches:
        return text
    m = matches[index % len(matches)]
    return text[: m.start()] + repl(m) + text[m.end() :]


def _duplicate_joint_name(text: str, k: int) -> str:
    """The name of a later joint replaced by the first joint's name."""
    names = re.findall(r'<joint name="([^"]*)"', text)
    if len(names) < 2:
        return text
    index = 1 + k % (len(names) - 1)
    return _sub_nth(r'(<joint name=")([^"]*)(")', text, lambda m: m.group(1) + names[0] + m.group(3), index)


def _urdf_ops(text: str, k: int) -> dict[str, tuple[str, bool]]:
    """Mutations of a URDF text: name -> (mutated text, whether the kinematics stay the same)."""
    origin_xyz = r'(<origin[^>]*xyz=")([^"]*)(")'
    axis = r'(<axis xyz=")([^"]*)(")'
    lower = r'(lower=")([^"]*)(")'
    upper = r'(upper=")([^"]*)(")'
    jtype = r'(<joint name="[^"]*" type=")([^"]*)(")'

    def set_(pattern, value):
        return _sub_nth(pattern, text, lambda m: m.group(1) + value + m.group(3), k)

    limit_tag = r"<limit [^>]*/>"
    ops = {
        "origin xyz NaN": (set_(origin_xyz, "nan 0 0"), False),
        "origin xyz inf": (set_(origin_xyz, "0 inf 0"), False),
        "origin xyz 1e400": (set_(origin_xyz, "0 0 1e400"), False),
        "origin xyz 'abc'": (set_(origin_xyz, "abc"), False),
        "origin xyz empty": (set_(origin_xyz, ""), False),
        "origin xyz two numbers": (set_(origin_xyz, "0 0"), False),
        "origin xyz four numbers": (set_(origin_xyz, "0 0 0 1"), False),
        "origin rpy NaN": (_sub_nth(r'(rpy=")([^"]*)(")', text, lambda m: m.group(1) + "nan 0 0" + m.group(3), k), False),
        "origin rpy 1e300": (_sub_nth(r'(rpy=")([^"]*)(")', text, lambda m: m.group(1) + "1e300 0 0" + m.group(3), k), False),
        "axis 0 0 0": (set_(axis, "0 0 0"), False),
        "axis NaN": (set_(axis, "nan 0 0"), False),
        "axis 1e-300 0 0": (set_(axis, "1e-300 0 0"), False),
        "axis 1e-170 0 0": (set_(axis, "1e-170 1e-170 0"), False),
        "axis 1e300 0 0": (set_(axis, "1e300 1e300 0"), False),
        "axis two numbers": (set_(axis, "0 1"), False),
        "axis removed": (_sub_nth(r"<axis [^>]*/>", text, lambda m: "", k), False),
        "lower > upper": (_sub_nth(limit_tag, text, lambda m: re.sub(r'lower="[^"]*"', 'lower="2.5"', re.sub(r'upper="[^"]*"', 'upper="-2.5"', m.group())), k), False),
        "lower == upper": (_sub_nth(limit_tag, text, lambda m: re.sub(r'lower="[^"]*"', 'lower="0.5"', re.sub(r'upper="[^"]*"', 'upper="0.5"', m.group())), k), False),
        "lower NaN": (set_(lower, "nan"), False),
        "upper inf": (set_(upper, "inf"), False),
        "lower -inf upper inf": (_sub_nth(limit_tag, text, lambda m: re.sub(r'lower="[^"]*"', 'lower="-inf"', re.sub(r'upper="[^"]*"', 'upper="inf"', m.group())), k), False),
        "upper 'x'": (set_(upper, "x"), False),
        "limit removed": (_sub_nth(limit_tag, text, lambda m: "", k), False),
        "lower removed": (_sub_nth(r' lower="[^"]*"', text, lambda m: "", k), False),
        "type floating": (set_(jtype, "floating"), False),
        "type planar": (set_(jtype, "planar"), False),
        "type bogus": (set_(jtype, "bogus"), False),
        "type empty": (set_(jtype, ""), False),
        "type Revolute": (set_(jtype, "Revolute"), False),
        "type continuous": (set_(jtype, "continuous"), False),
        "type prismatic": (set_(jtype, "prismatic"), False),
        "type fixed": (set_(jtype, "fixed"), False),
        "type removed": (_sub_nth(r' type="[^"]*"', text, lambda m: "", k), False),
        "joint name unicode": (_sub_nth(r'(<joint name=")([^"]*)(")', text, lambda m: m.group(1) + "関節\u202e😀" + m.group(3), k), True),
        "joint name empty": (_sub_nth(r'(<joint name=")([^"]*)(")', text, lambda m: m.group(1) + m.group(3), k), False),
        "joint name removed": (_sub_nth(r'<joint( name="[^"]*")', text, lambda m: "<joint", k), False),
        "joint name duplicated": (_duplicate_joint_name(text, k), False),
        "link duplicated": (text.replace("</robot>", '<link name="%s"/></robot>' % re.search(r'<link name="([^"]*)"', text).group(1)), False),  # type: ignore[union-attr]
        "child is the root (cycle)": (_sub_nth(r'(<child link=")([^"]*)(")', text, lambda m: m.group(1) + re.search(r'<link name="([^"]*)"', text).group(1) + m.group(3), k), False),  # type: ignore[union-attr]
        "child is its own parent": (_sub_nth(r'<parent link="([^"]*)"/>\s*<child link="[^"]*"/>', text, lambda m: f'<parent link="{m.group(1)}"/><child link="{m.group(1)}"/>', k), False),
        "parent unknown": (_sub_nth(r'(<parent link=")([^"]*)(")', text, lambda m: m.group(1) + "nowhere" + m.group(3), k), False),
        "parent removed": (_sub_nth(r"<parent [^>]*/>", text, lambda m: "", k), False),
        "child removed": (_sub_nth(r"<child [^>]*/>", text, lambda m: "", k), False),
        "two parents of one link": (text.replace("</robot>", re.sub(r'name="([^"]*)"', r'name="\1_again"', re.search(r"<joint .*?</joint>", text, re.S).group(), count=1) + "</robot>"), False),  # type: ignore[union-attr]
        "mimic of an unknown joint": (_sub_nth(r"</joint>", text, lambda m: '<mimic joint="nobody"/></joint>', k), False),
        "mimic of itself": (_sub_nth(r'(<joint name="([^"]*)" type="revolute">)', text, lambda m: m.group(1) + f'<mimic joint="{m.group(2)}"/>', k), False),
        "mimic multiplier NaN": (_sub_nth(r'(<joint name="[^"]*" type="revolute">)', text, lambda m: m.group(1) + '<mimic joint="%s" multiplier="nan"/>' % re.search(r'<joint name="([^"]*)"', text).group(1), k + 1), False),  # type: ignore[union-attr]
        "truncated": (text[: len(text) * (k % 7 + 1) // 8], False),
        "closing tag removed": (text.replace("</robot>", ""), False),
        "garbage inserted": (text[: len(text) // 2] + "<<&&" + text[len(text) // 2 :], False),
        "billion laughs (small)": ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>' + text.split("?>", 1)[-1].replace('name="panda"', 'name="&f;"'), False),
        "external entity": ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]>' + text.split("?>", 1)[-1].replace('name="panda"', 'name="&x;"'), False),
        "whitespace and comments added": (text.replace("><", ">\n  <!-- c -->\n\t<"), True),
        "a 5 MB comment": (text.replace("</robot>", "<!--" + "x" * 5_000_000 + "--></robot>"), True),
        "unknown tags": (text.replace("</robot>", '<gazebo><plugin name="x"/></gazebo><transmission name="t"/></robot>'), True),
        "root is not robot": (text.replace("<robot", "<notrobot").replace("</robot>", "</notrobot>"), False),
        "no joints": ('<?xml version="1.0"?><robot name="x"><link name="a"/></robot>', False),
        "only fixed joints": (re.sub(r'type="(revolute|continuous|prismatic)"', 'type="fixed"', text), False),
        "BOM in front": ("\ufeff" + text, True),
        "empty": ("", False),
        "spaces": ("   \n ", False),
        "not xml": ("hello, robot", False),
    }  # fmt: skip
    return ops


def _urdf_call(source: object, kwargs: dict, reference_name: str | None, ctx: Context, as_file: bool = False):
    from ikrl.kinematics.urdf import load_chain

    if as_file and isinstance(source, str):
        path = Path.cwd() / "robot.urdf"
        path.write_text(source)
        source = path
    chain = load_chain(source, **kwargs)  # type: ignore[arg-type]
    check_chain(chain, reference=ctx.chains[reference_name] if reference_name else None)
    return None


def urdf_cases(ctx: Context, rng: random.Random, n: int) -> list[Case]:
    from tests.random_urdf import random_urdf

    text = ctx.panda_text
    cases: list[Case] = []
    for name, (mutated, same) in _urdf_ops(text, rng.randrange(7)).items():
        as_file = rng.random() < 0.3
        cases.append(Case("urdf", f"load_chain(panda.urdf: {name}{', as a file' if as_file else ''})",
                          lambda s=mutated, r=("panda64" if same else None), f=as_file: _urdf_call(s, {}, r, ctx, f), URDF_EXPECT))  # fmt: skip
    big = ['<?xml version="1.0"?><robot name="long"><link name="l0"/>']
    for i in range(1500):
        big.append(f'<link name="l{i + 1}"/><joint name="j{i}" type="revolute"><origin xyz="0 0 0.001" rpy="0.1 0 0"/>'
                   f'<parent link="l{i}"/><child link="l{i + 1}"/><axis xyz="0 0 1"/><limit lower="-1" upper="1" effort="1" velocity="1"/></joint>')  # fmt: skip
    big.append("</robot>")
    extra = [
        ("a 1,500-joint chain", "".join(big), {}, None),
        ("None", None, {}, None),
        ("5", 5, {}, None),
        ("bytes", text.encode(), {}, "panda64"),
        ("a missing path", Path("/nonexistent/robot.urdf"), {}, None),
        ("a folder", Path("/tmp"), {}, None),
        ("a missing .urdf string path", "nonexistent.urdf", {}, None),
        ("tip unknown", text, {"tip": "panda_hand"}, None),
        ("tip empty", text, {"tip": ""}, None),
        ("tip = base", text, {"tip": "panda_link0", "base": "panda_link0"}, None),
        ("base above tip reversed", text, {"base": "panda_link8", "tip": "panda_link0"}, None),
        ("tip 5", text, {"tip": 5}, None),
        ("tip panda_link4", text, {"tip": "panda_link4"}, None),
        ("dtype int64", text, {"dtype": torch.int64}, None),
        ("dtype float16", text, {"dtype": torch.float16}, None),
        ("dtype 'float32'", text, {"dtype": "float32"}, None),
        ("device cuda", text, {"device": "cuda"}, None),
        ("device bogus", text, {"device": "bogus"}, None),
    ]
    for label, source, kwargs, reference in extra:
        cases.append(Case("urdf", f"load_chain({label}{', ' + short(kwargs, 40) if kwargs else ''})",
                          lambda s=source, k=kwargs, r=reference: _urdf_call(s, k, r, ctx), URDF_EXPECT + r"|tip|base|dtype|device|robot|path|file|folder"))  # fmt: skip
    # random robots, valid and mutated
    while len(cases) < n:
        robot = random_urdf(rng.randrange(10**6))
        if rng.random() < 0.25:
            kwargs = {"base": robot.base, "tip": robot.tip}
            cases.append(Case("urdf", f"load_chain(random_urdf, base={robot.base}, tip={robot.tip})", lambda s=robot.xml, k=kwargs: _urdf_call(s, k, None, ctx), URDF_EXPECT))
            continue
        ops = _urdf_ops(robot.xml, rng.randrange(20))
        name = rng.choice(sorted(ops))
        mutated, _ = ops[name]
        kwargs = {"base": robot.base, "tip": robot.tip} if rng.random() < 0.5 else {}
        cases.append(Case("urdf", f"load_chain(random_urdf: {name}{', base/tip given' if kwargs else ''})",
                          lambda s=mutated, k=kwargs: _urdf_call(s, k, None, ctx), URDF_EXPECT + r"|tip|base|end"))  # fmt: skip
    return cases


# ---------------------------------------------------------------------------------- family: checkpoint

CHECKPOINT_EXPECT = r"checkpoint|\.pt"


def train_checkpoint(folder: Path, timeout: float = 600) -> Path:
    """Train the tiny checkpoint once (``ikrl train ... --algorithm apg --steps 300``), in a forked child."""
    run_dir = folder / "run"

    def train():
        from typer.testing import CliRunner

        from ikrl.cli.app import app

        result = CliRunner().invoke(app, [*TRAIN_ARGS, "--out", str(run_dir)])
        if result.exit_code != 0:
            raise RuntimeError(f"ikrl train failed (exit {result.exit_code}): {short(result.output, 300)}")
        return None

    outcome = run_case(Case("setup", "train", train), timeout, folder / "train")
    if outcome.kind != "handled" or not (run_dir / "checkpoint.pt").is_file():
        raise SystemExit(f"fuzz: could not train the checkpoint: {outcome.error_type}: {short(outcome.message, 300)}")
    return run_dir


def _use_checkpoint(path: Path, how: str = "rollout"):
    from ikrl.rl.checkpoint import load_checkpoint
    from ikrl.rl.evaluate import held_out
    from ikrl.rl.rollout import rollout_policy

    checkpoint = load_checkpoint(path)
    policy = checkpoint.policy()
    used = policy.state_dict()
    for key, stored in checkpoint.policy_state.items():
        if key in used and (stored.is_complex() or not torch.allclose(stored.double(), used[key].double(), equal_nan=True)):
            raise Wrong(f"the policy's {key} is not what the checkpoint stores ({stored.dtype} cast to {used[key].dtype})")
    configured = checkpoint.policy_config.get("max_delta")
    buffer = used.get("max_delta")
    if buffer is not None and configured is not None and not torch.allclose(buffer.double(), torch.tensor(configured, dtype=torch.float64)):
        raise Wrong(f"the policy acts with max_delta {buffer.tolist()} from its state, but its config says {configured}")
    env = checkpoint.make_env(batch_size=4, seed=0)
    if how == "evaluate":
        from ikrl.rl.evaluate import evaluate

        result = evaluate(checkpoint, targets=4)
        metrics = result.metrics()
        for key, value in metrics.items():
            if key.startswith("success_") and not (isinstance(value, float) and 0 <= value <= 1):
                raise Wrong(f"evaluate: {key} = {value}")
        return None
    if how == "warmstart":
        from ikrl.rl.warmstart import policy_starts

        chain = env.chain
        targets = _valid_targets(chain, 4, 3).to(chain.dtype)
        result = ikrl.solve(chain, targets, warm_start=lambda q: policy_starts(checkpoint, chain, targets, q), restarts=5)
        verify_solve(chain, targets, result)
        return None
    starts, target_q = held_out(env.chain, 4, 1, seed=1)
    with torch.no_grad():
        target = env.chain.forward_kinematics(target_q)
    td, _, _ = rollout_policy(env, policy, starts, target)
    check_within_limits(env.chain, td["q"], "rollout of the checkpoint's policy: q")
    if not bool(torch.isfinite(td["position_error"]).all()):
        raise Wrong("rollout of the checkpoint's policy: position errors not finite")
    for name in ("max_steps", "position_tolerance", "rotation_tolerance"):
        stored = checkpoint.env[name]
        if isinstance(stored, bool):
            raise Wrong(f"checkpoint env.{name} = {stored!r}, a bool, accepted as a number")
    if checkpoint.env["rotation_tolerance"] > math.pi:
        raise Wrong(f"checkpoint env.rotation_tolerance = {checkpoint.env['rotation_tolerance']} > pi accepted: every rotation passes")
    return None


class _Replace:
    """A mutation's request to save ``value`` instead of the (mutated) dict."""

    def __init__(self, value: object) -> None:
        self.value = value


def _checkpoint_call(ctx: Context, mutate: Callable[[dict], object], how: str = "rollout", raw: Callable[[Path], None] | None = None):
    path = Path.cwd() / "checkpoint.pt"
    if raw is not None:
        raw(path)
    else:
        data = ctx.checkpoint  # the child's own copy (fork): mutate freely
        out = mutate(data)
        torch.save(out.value if isinstance(out, _Replace) else data, path)
    return _use_checkpoint(path, how)


def _set(path: str, value: object) -> Callable[[dict], None]:
    keys = path.split(".")

    def apply(data: dict) -> None:
        node = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return apply


def _delete(path: str) -> Callable[[dict], None]:
    keys = path.split(".")

    def apply(data: dict) -> None:
        node = data
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return apply


def _state(fn: Callable[[dict], None]) -> Callable[[dict], None]:
    return lambda data: fn(data["policy"]["state"])


def _dof7(data: dict) -> None:
    """A consistent policy for 7 joints (config, buffer and last layer), in a 6-joint checkpoint."""
    data["policy"]["config"]["max_delta"] = [0.1] * 7
    state = data["policy"]["state"]
    state["max_delta"] = torch.full((7,), 0.1)
    state["net.6.weight"] = torch.zeros(7, state["net.6.weight"].shape[1])
    state["net.6.bias"] = torch.zeros(7)


def _obs28(data: dict) -> None:
    data["policy"]["config"]["observation_size"] = 28
    state = data["policy"]["state"]
    state["net.0.weight"] = torch.zeros(state["net.0.weight"].shape[0], 28)


def checkpoint_cases(ctx: Context, rng: random.Random, n: int) -> list[Case]:
    nan, inf = math.nan, math.inf
    mutations: list[tuple[str, Callable[[dict], object], str | None]] = [
        ("unchanged", lambda d: None, None),
        ("format 2", _set("format", 2), None), ("format '1'", _set("format", "1"), None), ("format None", _set("format", None), None),
        ("format True", _set("format", True), None), ("format 1.0", _set("format", 1.0), None),
        ("algorithm ''", _set("algorithm", ""), "algorithm"), ("algorithm 5", _set("algorithm", 5), "algorithm"),
        ("spec ''", _set("spec", ""), "spec"), ("spec 'pandaa'", _set("spec", "pandaa"), None), ("spec 'panda+sincos'", _set("spec", "panda+sincos"), None),
        ("spec of the same robot, other reward", _set("spec", "dobot_cr5+geodesic+uniform+target+error+sincos"), None),
        ("spec with fewer transforms", _set("spec", "dobot_cr5+weighted_pose+sincos+target"), None),
        ("spec 1 MB", _set("spec", "dobot_cr5+" + "x" * 10**6), None), ("spec 5", _set("spec", 5), "spec"),
        ("fingerprint 'x'", _set("fingerprint", "x"), None), ("fingerprint None", _set("fingerprint", None), "fingerprint"),
        ("robot None", _set("robot", None), "robot"), ("robot {'name': 5}", _set("robot", {"name": 5}), None),
        ("env None", _set("env", None), "env"), ("env {}", _set("env", {}), "env"),
        ("env.max_steps 0", _set("env.max_steps", 0), "max_steps"), ("env.max_steps -1", _set("env.max_steps", -1), "max_steps"),
        ("env.max_steps 10**9", _set("env.max_steps", 10**9), "max_steps"), ("env.max_steps True", _set("env.max_steps", True), "max_steps"),
        ("env.max_steps 1.5", _set("env.max_steps", 1.5), "max_steps"), ("env.max_steps '100'", _set("env.max_steps", "100"), "max_steps"),
        ("env.max_steps 10000", _set("env.max_steps", 10000), None),
        ("env.max_delta []", _set("env.max_delta", []), "max_delta"), ("env.max_delta [nan]*6", _set("env.max_delta", [nan] * 6), "max_delta"),
        ("env.max_delta [-0.1]*6", _set("env.max_delta", [-0.1] * 6), "max_delta"), ("env.max_delta [0.1]*3", _set("env.max_delta", [0.1] * 3), "max_delta"),
        ("env.max_delta '0.1'", _set("env.max_delta", "0.1"), "max_delta"), ("env.max_delta [1e300]*6", _set("env.max_delta", [1e300] * 6), None),
        ("env.max_delta [True]*6", _set("env.max_delta", [True] * 6), "max_delta"),
        ("env.position_tolerance nan", _set("env.position_tolerance", nan), "position_tolerance"),
        ("env.position_tolerance 0", _set("env.position_tolerance", 0), "position_tolerance"),
        ("env.position_tolerance inf", _set("env.position_tolerance", inf), "position_tolerance"),
        ("env.position_tolerance 'x'", _set("env.position_tolerance", "x"), "position_tolerance"),
        ("env.position_tolerance True", _set("env.position_tolerance", True), "position_tolerance"),
        ("env.rotation_tolerance -1", _set("env.rotation_tolerance", -1), "rotation_tolerance"),
        ("env.rotation_tolerance 100", _set("env.rotation_tolerance", 100.0), "rotation_tolerance"),
        ("env.dtype 'float16'", _set("env.dtype", "float16"), "dtype"), ("env.dtype 5", _set("env.dtype", 5), "dtype"),
        ("env.dtype 'float64' (policy trained in float32)", _set("env.dtype", "float64"), None),
        ("policy None", _set("policy", None), "policy"), ("policy []", _set("policy", []), "policy"),
        ("policy.kind 'bogus'", _set("policy.kind", "bogus"), "kind|bogus"), ("policy.kind 5", _set("policy.kind", 5), "kind"),
        ("policy.kind 'goal'", _set("policy.kind", "goal"), None),
        ("policy.config {}", _set("policy.config", {}), "config"),
        ("policy.config.observation_size 0", _set("policy.config.observation_size", 0), "observation_size|config"),
        ("policy.config.observation_size '27'", _set("policy.config.observation_size", "27"), "observation_size"),
        ("policy.config.observation_size 10**9", _set("policy.config.observation_size", 10**9), "parameters|observation_size"),
        ("policy.config.hidden [10**5]*3", _set("policy.config.hidden", [10**5] * 3), "parameters"),
        ("policy.config.hidden []", _set("policy.config.hidden", []), "hidden"),
        ("policy.config.hidden [-1]", _set("policy.config.hidden", [-1]), "hidden|widths"),
        ("policy.config.hidden [256.5]*3", _set("policy.config.hidden", [256.5] * 3), "hidden"),
        ("policy.config.hidden 'abc'", _set("policy.config.hidden", "abc"), "hidden"),
        ("policy.config.activation 'bogus'", _set("policy.config.activation", "bogus"), "activation"),
        ("policy.config.goal_features [100]", _set("policy.config.goal_features", [100]), "goal_features"),
        ("policy.config.goal_features [-1]", _set("policy.config.goal_features", [-1]), "goal_features"),
        ("policy.config.goal_features ['a']", _set("policy.config.goal_features", ["a"]), "goal_features"),
        ("policy.config.max_delta [nan]*6", _set("policy.config.max_delta", [nan] * 6), "max_delta"),
        ("policy.config.colour 1", _set("policy.config.colour", 1), "colour"),
        ("policy.state {}", _set("policy.state", {}), "state"),
        ("policy.state NaN weights", _state(lambda s: s["net.2.weight"].fill_(nan)), "checkpoint|weight|not finite"),
        ("policy.state inf bias", _state(lambda s: s["net.6.bias"].fill_(inf)), "checkpoint|weight|not finite"),
        ("policy.state max_delta buffer NaN", _state(lambda s: s["max_delta"].fill_(nan)), "checkpoint|max_delta|not finite"),
        ("policy.state max_delta buffer 100", _state(lambda s: s["max_delta"].fill_(100.0)), "max_delta"),
        ("policy.state max_delta buffer -0.1", _state(lambda s: s["max_delta"].fill_(-0.1)), "max_delta"),
        ("policy.state net.0.weight shape (256, 28)", _state(lambda s: s.__setitem__("net.0.weight", torch.zeros(256, 28))), "size|shape"),
        ("policy.state float64 weights", _state(lambda s: s.__setitem__("net.2.weight", s["net.2.weight"].double())), None),
        ("policy.state int weights", _state(lambda s: s.__setitem__("net.2.weight", s["net.2.weight"].long())), None),
        ("policy.state complex weights", _state(lambda s: s.__setitem__("net.2.weight", s["net.2.weight"].to(torch.complex64) + 0.5j)), "complex|dtype|weight"),
        ("policy.state missing net.6.bias", _state(lambda s: s.pop("net.6.bias")), "net.6.bias|missing"),
        ("policy.state extra key", _state(lambda s: s.__setitem__("extra", torch.zeros(3))), "extra|unexpected"),
        ("policy.state non-str key", _state(lambda s: s.__setitem__(5, torch.zeros(3))), "state"),
        ("policy.state value a list", _state(lambda s: s.__setitem__("net.6.bias", [0.0] * 6)), "state"),
        ("policy.state huge tensor (10**8)", _state(lambda s: s.__setitem__("big", torch.zeros(10**8, dtype=torch.uint8))), "big|unexpected"),
        ("a policy for 7 joints (config and weights agree)", _dof7, "joint|dof|max_delta|7|6"),
        ("a policy for observations of 28 (config and weights agree)", _obs28, "observation|28|27"),
        ("optimizer 'x'", _set("optimizer", "x"), None),
        ("train_config deleted", _delete("train_config"), None),
        ("versions 5", _set("versions", 5), None),
        ("the whole file a list", lambda d: _Replace([d]), None), ("the whole file None", lambda d: _Replace(None), None),
        ("the whole file a tensor", lambda d: _Replace(torch.zeros(3)), None),
    ]  # fmt: skip
    for key in ("format", "algorithm", "spec", "fingerprint", "robot", "env", "policy", "env.max_steps", "env.max_delta", "env.rotation_tolerance",
                "env.dtype", "policy.config", "policy.state", "policy.kind", "policy.config.hidden", "policy.config.max_delta",
                "policy.config.observation_size", "policy.config.goal_features"):  # fmt: skip
        mutations.append((f"{key} deleted", _delete(key), key.split(".")[-1] + "|lacks|missing"))
    cases: list[Case] = []
    for label, mutate, expect in mutations:
        cases.append(Case("checkpoint", f"checkpoint: {label}", lambda m=mutate: _checkpoint_call(ctx, m), CHECKPOINT_EXPECT if expect is None else f"({CHECKPOINT_EXPECT}).*({expect})|({expect}).*({CHECKPOINT_EXPECT})"))
    raw_files: list[tuple[str, Callable[[Path], None]]] = [
        ("garbage bytes", lambda p: p.write_bytes(bytes(random.Random(5).randrange(256) for _ in range(5000)))),
        ("empty file", lambda p: p.write_bytes(b"")),
        ("truncated", lambda p: p.write_bytes((ctx.run_dir / "checkpoint.pt").read_bytes()[:5000])),  # type: ignore[operator]
        ("a pickle that runs code", lambda p: p.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")),
        ("a folder named checkpoint.pt", lambda p: p.mkdir()),
        ("missing", lambda p: None),
        ("unreadable", lambda p: (shutil.copy(ctx.run_dir / "checkpoint.pt", p), p.chmod(0))),  # type: ignore[operator]
    ]
    for label, raw in raw_files:
        cases.append(Case("checkpoint", f"checkpoint file: {label}", lambda r=raw: _checkpoint_call(ctx, lambda d: None, raw=r), CHECKPOINT_EXPECT))
    for how in ("evaluate", "warmstart"):
        for label, mutate in (("unchanged", lambda d: None), ("NaN weights", _state(lambda s: s["net.2.weight"].fill_(math.nan)))):
            cases.append(Case("checkpoint", f"checkpoint ({how}): {label}", lambda m=mutate, h=how: _checkpoint_call(ctx, m, h), CHECKPOINT_EXPECT))
    # random combinations of two field mutations
    simple = [m for m in mutations if m[0] != "unchanged"]
    while len(cases) < n:
        (a, fa, _), (b, fb, _) = rng.sample(simple, 2)
        cases.append(Case("checkpoint", f"checkpoint: {a}, then {b}", lambda x=fa, y=fb: _checkpoint_call(ctx, _both(x, y)), CHECKPOINT_EXPECT))
    rng.shuffle(cases)
    return cases[:n] if len(cases) > n else cases


def _both(first: Callable[[dict], object], second: Callable[[dict], object]) -> Callable[[dict], object]:
    def apply(data: dict) -> object:
        out = first(data)
        if isinstance(out, _Replace):
            return out
        try:
            return second(data)
        except (KeyError, TypeError, AttributeError):
            return None  # the first removed what the second changes

    return apply


# ---------------------------------------------------------------------------------- family: cli


def _cli_call(args: list[str], ctx: Context, verify: Callable[[str], None] | None = None, setup: Callable[[], None] | None = None):
    from typer.testing import CliRunner

    from ikrl.cli.app import app

    if setup is not None:
        setup()
    args = [a.replace("RUN", str(ctx.run_dir)) for a in args]
    result = CliRunner().invoke(app, args, catch_exceptions=True)
    output = result.output
    error = result.exception
    if error is not None and not isinstance(error, SystemExit):
        raise RuntimeError(f"the command raised {type(error).__name__}: {short(str(error), 300)}") from error
    if "Traceback (most recent call last)" in output:
        raise RuntimeError(f"a traceback in the output: {short(output[-400:], 300)}")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if result.exit_code == 0:
        if verify is not None:
            verify(output)
        return None
    if result.exit_code == 1:
        errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
        if len(errors) == 1:  # progress lines before it are fine; lines after it are the message's
            return ("named error", "CLI exit 1", "\n".join(lines[errors[0] :]))
        raise RuntimeError(f"exit code 1 without one 'error:' line: {short(output, 300)}")
    if result.exit_code == 2 and "Usage:" in output and not ctx.usage_is_traceback:
        text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())
        return ("named error", "click usage (exit 2)", text[text.find("Error") if "Error" in text else 0 :])
    raise RuntimeError(f"exit code {result.exit_code}: {short(output, 300)}")


def _verify_solutions(path: str, chain_name: str, ctx: Context, position_tolerance=1e-3, rotation_tolerance_deg=1.0) -> Callable[[str], None]:
    def verify(output: str) -> None:
        file = Path(path)
        if not file.is_file():
            raise Wrong(f"solve exited 0 but wrote no {path}")
        chain = ctx.chains[chain_name]
        with file.open() as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise Wrong("solve wrote no rows")
        q = torch.tensor([[float(r[name]) for name in chain.joint_names] for r in rows], dtype=torch.float64)
        check_within_limits(chain, q, "ikrl solve's CSV")
        for r in rows:
            success = r["success"] == "1"
            p, a = float(r["position_error_mm"]) / 1e3, math.radians(float(r["rotation_error_deg"]))
            if math.isnan(p) or math.isnan(a):
                raise Wrong("ikrl solve wrote NaN errors")
            if success and (p > position_tolerance * 1.001 + 1e-6 or a > math.radians(rotation_tolerance_deg) * 1.001 + 1e-6):
                raise Wrong(f"ikrl solve flagged a row solved with errors {p} m, {a} rad")

    return verify


def _verify_file(name: str, what: str) -> Callable[[str], None]:
    def verify(output: str) -> None:
        if not Path(name).is_file() or Path(name).stat().st_size == 0:
            raise Wrong(f"{what} exited 0 but wrote no {name}")
        if name.endswith(".json"):
            record = json.loads(Path(name).read_text())
            for key, value in record.items():
                if key.startswith("success_") and not (isinstance(value, float) and 0 <= value <= 1):
                    raise Wrong(f"{what}: {key} = {value}")

    return verify


def _verify_json(output: str) -> None:
    data = json.loads(output)
    if not data:
        raise Wrong("ikrl list --json printed nothing")


def cli_cases(ctx: Context, rng: random.Random, n: int) -> list[Case]:
    def write(name: str, text: str | bytes) -> Callable[[], None]:
        def setup() -> None:
            path = Path.cwd() / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode() if isinstance(text, str) else text)

        return setup

    eye = "1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1\n"
    S = TRAIN_SPEC
    T = ["--steps", "64", "--batch-size", "8", "--eval-targets", "2", "--no-progress"]
    specs: list[tuple[list[str], str | None, Callable[[str], None] | None, Callable[[], None] | None]] = [
        # demo
        (["demo", "--batch", "0"], "batch", None, None), (["demo", "--batch", "-1"], "batch", None, None),
        (["demo", "--robot", "bogus", "--out", "d.png"], "bogus|robot", None, None), (["demo", "--out", "/proc/x.png", "--batch", "4"], "/proc", None, None),
        (["demo", "--out", ".", "--batch", "4"], "folder|out", None, None), (["demo", "--threads", "0"], "threads", None, None),
        (["demo", "--seed", "-1", "--batch", "4", "--out", "d.png"], "seed", None, None), (["demo", "--batch", "4", "--out", "d.png"], None, _verify_file("d.png", "demo"), None),
        (["demo", "--batch", str(10**10), "--out", "d.png"], "batch", None, None), (["demo", "--batch", "4", "--out", "d.txt"], "png|out|suffix", None, None),
        # list
        (["list", "--json"], None, _verify_json, None), (["list", "--bogus"], "bogus|no such option", None, None),
        # check
        (["check", "pandaa"], "pandaa|unknown", None, None), (["check", ""], "spec|empty|expected", None, None), (["check", "panda+{a,b}"], "position|expected|{", None, None),
        (["check", "panda", "--batch-size", "0"], "batch", None, None), (["check", "panda", "--steps", "0"], "steps", None, None),
        (["check", "panda", "--seed", "-1"], "seed", None, None), (["check", "panda", "--seed", str(2**40)], "seed", None, None),
        (["check", "panda", "--batch-size", "2", "--steps", "2"], None, None, None), (["check", "panda+near_target(noise=-1)"], "noise", None, None),
        (["check", "panda", "--batch-size", str(10**9), "--steps", "1"], "batch", None, None),
        # train
        (["train", "pandaa", *T, "--out", "r"], "pandaa|unknown", None, None), (["train", S, "--algorithm", "bogus", *T, "--out", "r"], "bogus|algorithm", None, None),
        (["train", S, "--steps", "0", "--out", "r"], "steps", None, None), (["train", S, "--minutes", "-1", "--out", "r"], "minutes", None, None),
        (["train", S, "--minutes", "nan", "--out", "r", "--no-progress"], "minutes", None, None), (["train", S, "--minutes", "inf", "--out", "r", "--no-progress"], "minutes", None, None),
        (["train", S, "--minutes", "0", "--out", "r", "--no-progress"], "minutes", None, None), (["train", S, "--batch-size", "0", "--out", "r"], "batch", None, None),
        (["train", S, *T, "--out", "/proc/x"], "/proc", None, None), (["train", S, *T, "--out", "afile"], "afile|file", None, write("afile", "x")),
        (["train", S, *T, "--param", "bogus=1", "--out", "r"], "bogus", None, None), (["train", S, *T, "--algorithm", "apg", "--param", "lr=abc", "--out", "r"], "lr", None, None),
        (["train", S, *T, "--param", "noequals", "--out", "r"], "NAME=VALUE|param", None, None), (["train", S, *T, "--logger", "bogus", "--out", "r"], "logger|bogus", None, None),
        (["train", S, "--eval-targets", "0", "--out", "r"], "eval-targets|eval_targets", None, None), (["train", S, *T, "--resume", "missing", "--out", "r"], "missing|checkpoint", None, None),
        (["train", S, *T, "--device", "cuda", "--out", "r"], "cuda|device", None, None), (["train", S, *T, "--seed", "-1", "--out", "r"], "seed", None, None),
        (["train", S, *T, "--algorithm", "apg", "--param", "lr=-1", "--out", "r"], "lr", None, None), (["train", S, *T, "--algorithm", "apg", "--param", "lr=nan", "--out", "r"], "lr", None, None),
        (["train", S, *T, "--out", "RUN"], "exists|overwrite|resume|already", None, None), (["train", S, *T, "--threads", "0", "--out", "r"], "threads", None, None),
        (["train", "panda+sincos", *T, "--resume", "RUN", "--out", "r"], "checkpoint|robot|resume|spec", None, None),
        # eval
        (["eval", "missing"], "missing|checkpoint", None, None), (["eval", "garbage.pt"], "garbage|checkpoint", None, write("garbage.pt", b"\x00\x01garbage")),
        (["eval", "RUN", "--targets", "0"], "targets", None, None), (["eval", "RUN", "--targets", "-5"], "targets", None, None),
        (["eval", "RUN", "--targets", "abc"], "targets|abc", None, None), (["eval", "RUN", "--targets", "missing.csv"], "missing.csv", None, None),
        (["eval", "RUN", "--targets", "bad.csv"], "bad.csv", None, write("bad.csv", "1,2,3\n")), (["eval", "RUN", "--targets", "nan.csv"], "nan.csv|finite", None, write("nan.csv", eye.replace("1,0,0,0,0", "nan,0,0,0,0", 1))),
        (["eval", "RUN", "--swarm", "0"], "swarm", None, None), (["eval", "RUN", "--targets", "3", "--out", "/proc/x.json"], "/proc", None, None),
        (["eval", "RUN", "--targets", "3", "--out", "."], "folder|out", None, None), (["eval", "RUN", "--targets", "3", "--seed", "-1"], "seed", None, None),
        (["eval", "RUN", "--targets", "3", "--device", "bogus", "--out", "e.json"], "device", None, None), (["eval", "RUN", "--goal-only", "--swarm", "2"], "goal-only|goal", None, None),
        (["eval", "RUN", "--goal-only", "--targets", "3", "--out", "e.json"], "goal|kind|apg|mlp", None, None), (["eval", "RUN", "--targets", "3", "--out", "e.json"], None, _verify_file("e.json", "eval"), None),
        (["eval", "RUN", "--targets", "eye.csv", "--out", "e.json"], None, _verify_file("e.json", "eval"), write("eye.csv", eye)),
        (["eval", "RUN", "--targets", str(10**9), "--out", "e.json"], "targets", None, None), (["eval", "RUN", "--targets", "3", "--out", "e.txt"], "json|out|suffix", None, None),
        (["eval", "RUN", "--targets", "3", "--refine", "--swarm", "2", "--out", "e.json"], None, _verify_file("e.json", "eval"), None),
        # solve
        (["solve", "bogus", "--random", "3", "--out", "s.csv"], "bogus|robot", None, None), (["solve", "panda", "--random", "0"], "random", None, None),
        (["solve", "panda", "--random", "3", "--targets", "t.csv"], "exactly one|--targets|--random", None, None), (["solve", "panda"], "exactly one", None, None),
        (["solve", "panda", "--targets", "g.csv", "--out", "s.csv"], "g.csv", None, write("g.csv", b"\xff\xfe\x00garbage")), (["solve", "panda", "--random", "3", "--out", "/proc/x.csv"], "/proc", None, None),
        (["solve", "panda", "--random", "3", "--out", "."], "folder|out|suffix", None, None), (["solve", "panda", "--random", "3", "--out", "x.txt"], "txt|csv", None, None),
        (["solve", "panda", "--random", "3", "--position-tolerance", "nan", "--out", "s.csv"], "tolerance", None, None),
        (["solve", "panda", "--random", "3", "--position-tolerance", "0", "--out", "s.csv"], "tolerance", None, None),
        (["solve", "panda", "--random", "3", "--position-tolerance", "inf", "--out", "s.csv"], "tolerance", None, None),
        (["solve", "panda", "--random", "3", "--rotation-tolerance", "nan", "--out", "s.csv"], "tolerance", None, None),
        (["solve", "panda", "--random", "3", "--rotation-tolerance", "500", "--out", "s.csv"], "tolerance|180", None, None),
        (["solve", "panda", "--random", "3", "--max-iters", "0"], "max-iters|max_iters", None, None), (["solve", "panda", "--random", "3", "--restarts", "-1"], "restarts", None, None),
        (["solve", "panda", "--random", "3", "--seed", "-1", "--out", "s.csv"], "seed", None, None), (["solve", "panda", "--random", "3", "--device", "bogus", "--out", "s.csv"], "device", None, None),
        (["solve", "missing.urdf", "--random", "3", "--out", "s.csv"], "missing.urdf", None, None), (["solve", "panda+sincos", "--random", "3", "--out", "s.csv"], "sincos|spec", None, None),
        (["solve", "panda", "--random", "3", "--base", "panda_link0", "--out", "s.csv"], "base", None, None), (["solve", "panda", "--random", "3", "--checkpoint", "RUN", "--out", "s.csv"], "checkpoint|robot|dobot", None, None),
        (["solve", "dobot_cr5", "--random", "3", "--checkpoint", "RUN", "--policy-steps", "0"], "policy-steps|policy_steps", None, None),
        (["solve", "dobot_cr5", "--random", "3", "--checkpoint", "RUN", "--out", "s.csv"], None, _verify_solutions("s.csv", "cr5_32", ctx), None),
        (["solve", "panda", "--random", "5", "--out", "s.csv"], None, _verify_solutions("s.csv", "panda32", ctx), None),
        (["solve", "panda", "--targets", "eye.csv", "--out", "s.csv"], None, _verify_solutions("s.csv", "panda32", ctx), write("eye.csv", eye)),
        (["solve", "panda", "--random", str(10**12), "--out", "s.csv"], "random", None, None),
        (["solve", "robot.urdf", "--random", "3", "--out", "s.csv"], "robot.urdf", None, write("robot.urdf", "<robot name='x'><link name='a'/></robot>")),
        (["solve", "robot.urdf", "--random", "3", "--tip", "nowhere", "--out", "s.csv"], "nowhere|tip", None, write("robot.urdf", PANDA_URDF.read_text())),
        (["solve", "panda", "--random", "3", "--seed", "1.5"], "seed|1.5", None, None),
        # render
        (["render", "missing"], "missing|checkpoint", None, None), (["render", "RUN", "--targets", "0"], "targets", None, None), (["render", "RUN", "--targets", "9"], "targets", None, None),
        (["render", "RUN", "--size", "10"], "size", None, None), (["render", "RUN", "--fps", "0"], "fps", None, None), (["render", "RUN", "--out", "/proc/x.gif"], "/proc", None, None),
        (["render", "RUN", "--out", "."], "folder|out", None, None), (["render", "RUN", "--seed", "-1", "--out", "r.gif"], "seed", None, None),
        (["render", "RUN", "--targets", "1", "--size", "64", "--out", "r.gif"], None, _verify_file("r.gif", "render"), None),
        (["render", "RUN", "--targets", "1", "--size", str(10**6), "--out", "r.gif"], "size", None, None),
        # ablate
        (["ablate", "panda+{a", "--out", "g"], "position|brace|{", None, None), (["ablate", "panda+{sincos,raw}", "--seeds", "0", "--out", "g"], "seeds", None, None),
        (["ablate", "panda+{sincos,raw}", "--out", "/proc/x", "--steps", "64"], "/proc", None, None), (["ablate", "panda+{sincos,raw}", "--backend", "bogus", "--out", "g", "--steps", "64"], "backend|bogus", None, None),
        (["ablate", "panda+{sincos,raw}", "--workers", "0", "--out", "g"], "workers", None, None), (["ablate", "panda+{sincos,raw}", "--steps", "0", "--out", "g"], "steps", None, None),
        (["ablate", "panda+{sincos,raw}", "--dry-run", "--out", "g", "--steps", "64"], None, None, None), (["ablate", "panda+{sincos,sincos}", "--out", "g", "--dry-run"], "twice|same", None, None),
        (["ablate", "panda" + "+{sincos,raw}" * 17, "--out", "g", "--dry-run"], "expands|100,000", None, None), (["ablate", "pandaa+{sincos,raw}", "--out", "g", "--dry-run"], "pandaa|unknown", None, None),
        (["ablate", "panda+{sincos,raw}", "--seeds", str(10**9), "--out", "g", "--dry-run"], "seeds", None, None),
        (["ablate", "panda+{sincos,raw}", "--minutes", "nan", "--out", "g", "--dry-run"], "minutes", None, None),
        (["ablate", "panda+{sincos,raw}", "--algorithm", "bogus", "--out", "g", "--dry-run"], "bogus|algorithm", None, None),
        # the app itself
        (["bogus"], "bogus|no such command", None, None), (["solve", "--help"], None, None, None),
    ]  # fmt: skip
    cases = [Case("cli", "ikrl " + short(" ".join(args), 140), lambda a=args, v=verify, s=setup: _cli_call(a, ctx, v, s), expect) for args, expect, verify, setup in specs]
    rng.shuffle(cases)
    return cases[:n]


# ---------------------------------------------------------------------------------- the battery

BUILDERS = {"spec": spec_cases, "options": options_cases, "targets": targets_cases, "urdf": urdf_cases, "checkpoint": checkpoint_cases, "cli": cli_cases}


def make_context(tmp: Path, families: list[str], usage_is_traceback: bool = False) -> Context:
    """Chains, the Panda URDF, a file of joint values and (for checkpoint and cli) the trained checkpoint."""
    import ikrl_robots

    ctx = Context(tmp=tmp, panda_text=PANDA_URDF.read_text(), usage_is_traceback=usage_is_traceback)
    ctx.chains = {
        "panda32": ikrl_robots.load("panda"),
        "panda64": ikrl.load_chain(PANDA_URDF, dtype=torch.float64),  # the URDF as it is: what its mutations are compared with
        "cr5_64": ikrl_robots.load("dobot_cr5", dtype=torch.float64),
        "cr5_32": ikrl_robots.load("dobot_cr5"),
        "ur5e32": ikrl_robots.load("ur5e"),
    }
    ctx.joints_csv = tmp / "joints.csv"
    ctx.joints_csv.write_text("0.1,0.2,0.3,-1.0,0.1,1.0,0.2\n0,0,0,-1.5,0,1.5,0\n")
    if {"checkpoint", "cli"} & set(families):
        ctx.run_dir = train_checkpoint(tmp)
        ctx.checkpoint = torch.load(ctx.run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    return ctx


def _preload() -> None:
    """Import in the parent what the children use, so that each fork starts warm; one torch thread."""
    torch.set_num_threads(1)
    import torchrl  # noqa: F401
    import typer.testing  # noqa: F401

    import ikrl.cli.app  # noqa: F401
    import ikrl.env.make  # noqa: F401
    import ikrl.grid.run  # noqa: F401
    import ikrl.rl.evaluate  # noqa: F401
    import ikrl.rl.rollout  # noqa: F401
    import ikrl.rl.warmstart  # noqa: F401
    import ikrl.viz.arm  # noqa: F401
    from ikrl.extend.registry import default_registry

    default_registry()
    with contextlib.suppress(ImportError):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401


def build_cases(ctx: Context, seed: int, sizes: dict[str, int], families: list[str] | None = None) -> list[Case]:
    """The battery's cases, ``sizes[family]`` of each (a seeded subset when smaller than the family)."""
    cases: list[Case] = []
    for family in families or list(FAMILIES):
        rng = random.Random(f"{seed}:{family}")
        full = BUILDERS[family](ctx, rng, FULL_SIZES[family])
        want = sizes[family]
        cases += full if want >= len(full) else random.Random(f"{seed}:{family}:subset").sample(full, want)
    return cases


def outcome_record(outcome: Outcome) -> dict:
    """``outcome`` as plain JSON data."""
    case = outcome.case
    return {
        "family": case.family, "label": case.label, "expect": case.expect, "kind": outcome.kind, "error_type": outcome.error_type,
        "message": outcome.message, "where": outcome.where, "seconds": outcome.seconds, "usage": outcome.usage, "message_ok": outcome.message_ok,
    }  # fmt: skip


def outcome_from_record(record: dict) -> Outcome:
    case = Case(record["family"], record["label"], lambda: None, record["expect"])
    fields = ("kind", "error_type", "message", "where", "seconds", "usage", "message_ok")
    return Outcome(case, **{k: record[k] for k in fields})


def run_battery(
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    families: list[str] | None = None,
    timeout: float = 60.0,
    memory_gb: float = 6.0,
    usage_is_traceback: bool = False,
    progress: Callable[[Outcome], None] | None = None,
    fresh: bool = False,
) -> list[Outcome]:
    """Build and run the battery in a temporary folder (removed afterwards).

    The cases run in children forked from this process, which must not have used more than
    one torch (OpenMP) thread yet: a child forked after that can hang in its first parallel
    operation. ``fresh=True`` runs the battery in a new Python process instead (what a test
    in a busy pytest process wants) and reads its outcomes back.
    """
    families = families or list(FAMILIES)
    sizes = sizes or FULL_SIZES
    if fresh:
        return _run_fresh(seed, sizes, families, timeout, memory_gb, usage_is_traceback)
    threads = torch.get_num_threads()
    _preload()
    tmp = Path(tempfile.mkdtemp(prefix="ikrl-fuzz-"))
    try:
        ctx = make_context(tmp, families, usage_is_traceback)
        cases = build_cases(ctx, seed, sizes, families)
        outcomes = []
        for index, case in enumerate(cases):
            outcome = run_case(case, timeout, tmp / "cases" / f"{index:04d}", memory_gb)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
        return outcomes
    finally:
        torch.set_num_threads(threads)
        for path in tmp.rglob("*"):  # cases may have made files unreadable
            with contextlib.suppress(OSError):
                if not path.is_symlink():
                    path.chmod(0o700)
        shutil.rmtree(tmp, ignore_errors=True)


def _run_fresh(seed: int, sizes: dict[str, int], families: list[str], timeout: float, memory_gb: float, strict: bool) -> list[Outcome]:
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="ikrl-fuzz-run-"))
    try:
        out = folder / "outcomes.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--seed", str(seed), "--timeout", str(timeout), "--memory-gb", str(memory_gb),
                   "--families", *families, "--sizes", *(f"{f}={sizes[f]}" for f in families), "--json", str(out), "--quiet"]  # fmt: skip
        if strict:
            command.append("--strict-cli")
        limit = 300 + timeout * sum(sizes[f] for f in families)
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=False)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"the fuzz battery failed (exit code {done.returncode}): {short(done.stderr[-2000:], 1500)}")
        return [outcome_from_record(r) for r in json.loads(out.read_text())]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(outcomes: list[Outcome]) -> str:
    """The markdown table of counts, then every traceback / silent-wrong / hang case."""
    families = [f for f in FAMILIES if any(o.case.family == f for o in outcomes)]
    lines = ["| family | tried | named error | handled | traceback | silent-wrong | hang |", "|---|---|---|---|---|---|---|"]
    totals = dict.fromkeys(OUTCOMES, 0)
    for family in families:
        mine = [o for o in outcomes if o.case.family == family]
        counts = {kind: sum(o.kind == kind for o in mine) for kind in OUTCOMES}
        for kind in OUTCOMES:
            totals[kind] += counts[kind]
        lines.append(f"| {family} | {len(mine)} | " + " | ".join(str(counts[k]) for k in OUTCOMES) + " |")
    lines.append(f"| **total** | **{len(outcomes)}** | " + " | ".join(f"**{totals[k]}**" for k in OUTCOMES) + " |")
    usage = sum(o.usage for o in outcomes)
    lines += ["", f"Of the named errors, {usage} are click usage errors (exit code 2, a 'Usage:' panel) of the command line."]
    bad = [o for o in outcomes if o.kind in ("traceback", "silent-wrong", "hang")]
    lines += ["", f"## Traceback, silent-wrong and hang cases ({len(bad)})", ""]
    for o in sorted(bad, key=lambda o: (OUTCOMES.index(o.kind), o.case.family)):
        where = f" — at {o.where}" if o.where else ""
        lines.append(f"- **{o.kind}** [{o.case.family}] `{short(o.case.label, 150)}`: {o.error_type}: {short(o.message, 200)}{where}")
    vague = [o for o in outcomes if not o.message_ok]
    lines += ["", f"## Named errors with unexpected messages ({len(vague)})", ""]
    for o in vague:
        lines.append(f"- [{o.case.family}] `{short(o.case.label, 150)}` (expected /{short(o.case.expect or '', 60)}/): {o.error_type}: {short(o.message, 200)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated inputs")
    parser.add_argument("--quick", action="store_true", help="a seeded subset of each family (about a minute)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per case before it counts as a hang (60; 30 with --quick)")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address space each case's process may add to the parent's")
    parser.add_argument("--families", nargs="*", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--strict-cli", action="store_true", help="count click usage errors (exit code 2) as tracebacks")
    parser.add_argument("--sizes", nargs="*", default=[], metavar="FAMILY=N", help="cases of a family (default: all of it, or the --quick subset)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    parser.add_argument("--json", type=Path, default=None, help="write every outcome as JSON here")
    parser.add_argument("--quiet", action="store_true", help="print nothing (with --json or --out)")
    args = parser.parse_args(argv)
    sizes = dict(QUICK_SIZES if args.quick else FULL_SIZES)
    for item in args.sizes:
        family, _, count = item.partition("=")
        if family not in FAMILIES or not count.isdigit():
            parser.error(f"--sizes takes FAMILY=N with a family of {', '.join(FAMILIES)}; got {item!r}")
        sizes[family] = int(count)
    timeout = args.timeout or (30.0 if args.quick else 60.0)
    start = time.monotonic()
    counter = {"n": 0}

    def progress(outcome: Outcome) -> None:
        if args.quiet:
            return
        counter["n"] += 1
        mark = {"named error": ".", "handled": "+", "traceback": "T", "silent-wrong": "W", "hang": "H"}[outcome.kind]
        print(mark, end="\n" if counter["n"] % 80 == 0 else "", flush=True)

    outcomes = run_battery(args.seed, sizes, args.families, timeout, args.memory_gb, args.strict_cli, progress)
    text = report(outcomes)
    text += f"\n{len(outcomes)} cases, seed {args.seed}, {time.monotonic() - start:.0f} s.\n"
    if not args.quiet:
        print()
        print(text)
    if args.out is not None:
        args.out.write_text(text)
    if args.json is not None:
        args.json.write_text(json.dumps([outcome_record(o) for o in outcomes]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
