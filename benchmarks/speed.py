"""The speed bars of issue 14, in one run on the CPU: ikrl against its peers, calls alternating, medians.

    python benchmarks/speed.py [--quick] [--repeats 3] [--threads 2] [--robots ...]
                               [--latency-targets 100] [--out report.md] [--json out.json]

Targets (parts 1 and 2): for the Dobot CR5, the Panda (both shipped in ``robots/``) and the
UR5 (example-robot-data's ``ur_description/urdf/ur5_robot.urdf``), 1,000 reachable targets
each: float64 forward kinematics of joint values uniform within the limits, seed 0
(``benchmarks/solve.py``'s ``reachable_targets``). Every library's answer is judged alike
(``benchmarks/solve.py``'s ``score``): ikrl's float64 forward kinematics of the joint values,
:func:`ikrl.kinematics.se3.pose_errors` against the float64 target; success is within 1 mm
and 1 degree *and* every joint value within the limits (1e-6 slack). ikrl runs with its
defaults but seed 1 (see solve.py: seed 0 would start it on the answers).

1. **Batch-1 latency.** For each of the first ``--latency-targets`` targets (default 100, at
   least 30), one warm ``solve(chain_float32, target[None])`` and one TRAC-IK call
   (``pytracik``: Speed solve type, 5 ms timeout, epsilon 1e-5, joint limits set from
   ikrl's chain, seed a uniform random start, seed 1), the order of the two alternating from
   target to target; median and p90 of the per-target times. TRAC-IK takes one call at a
   time ("1 thread"; internally each call races its KDL and SQP solvers in two threads).
   The quaternion TRAC-IK wants is computed before timing. Bars: ikrl median <= 0.5 ms,
   ikrl success >= 99.9 %, ikrl median <= TRAC-IK's median.
2. **Batch 1,000.** Per-target time of one ``solve`` call on all the targets (float32,
   ``--threads`` threads) against pytorch_kinematics' ``PseudoInverseIK`` (solve.py's
   early-stop settings: 10 retries, 1 mm / 1 deg, ``early_stopping_any_converged=True``,
   joint limits on; the best retry per target is judged) and against TRAC-IK's throughput
   on 2 cores, taken as its one-at-a-time per-target time (a Python loop over all the
   targets) halved. The three alternate, median of the rounds. Bars: >= 20x
   pytorch_kinematics, >= 10x TRAC-IK on 2 cores, ikrl success >= 99.9 %.
3. **env.step.** ``make_env("dobot_cr5+weighted_pose+sincos", batch_size=4096)`` under
   ``torch.no_grad()``: blocks of 10 ``env.step_and_maybe_reset(td)`` calls (as TorchRL's
   collectors step: the returned tensordict is fed back, done arms reset), with one
   random action drawn once (uniform within ``±max_delta``); transitions/s against bare
   ``env.chain.forward_kinematics`` poses/s at the same batch, alternating (15 rounds: the
   ratio of two medians swings with this VM's load, fewer rounds swing more), medians. Bars:
   env.step >= 40 % of FK's rate and >= 1.5e6 transitions/s.
4. **Kinematics.** CR5 and Panda, float32, ``torch.no_grad()``: forward kinematics at batch
   65,536 and Jacobians at batch 4,096, ikrl against pytorch_kinematics
   (``build_serial_chain_from_urdf``) and Pinocchio: a Python loop over the *whole* batch
   (``forwardKinematics`` + ``updateFramePlacement``, or ``computeFrameJacobian`` in
   ``LOCAL_WORLD_ALIGNED``, each result copied into an array; float64, the only dtype of its
   Python bindings). The answers are checked to agree first. Alternating calls, medians.
   Bar: >= 10x pytorch_kinematics (Pinocchio's ratio is shown, without a bar).

``--repeats R`` (default 3) runs the whole benchmark R times and prints every run; the one
that counts is, row by row, the worst run (smallest margin to its bars). Each part is a
markdown table with ikrl, the peers, the ratio, the bar and PASS/FAIL; an overall PASS/FAIL
line ends the report. The exit code is 0 either way: this is a report, not a test. The
machine's load average (``uptime``) is printed first: on a shared machine timings are noisy.
A peer that is not installed (``pytracik``, ``pin``) shows as n/a and its bar fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# benchmarks/solve.py, beside this script (a script runs with its folder on sys.path): its
# targets, its judge and its pytorch_kinematics set-up are reused as they are.
import solve as sb
import torch

import ikrl
from ikrl.kinematics.protocol import bounds
from ikrl.solver.pool import solve
from ikrl.util.timing import alternating_times

try:
    import pytracik
except ImportError:  # not in the bench extra yet: its columns read n/a
    pytracik = None
try:
    import pinocchio as pin
except ImportError:
    pin = None




ROBOTS = ["dobot_cr5", "panda", "ur5"]
KINEMATICS_ROBOTS = ["dobot_cr5", "panda"]
ENV_SPEC = "dobot_cr5+weighted_pose+sincos"
SOLVER_SEED = sb.SOLVER_SEED
TRACIK_TIMEOUT = 0.005  # seconds
TRACIK_EPSILON = 1e-5
PK_LABEL = "pytorch_kinematics early-stop"

SUCCESS_BAR = 0.999
LATENCY_BAR_MS = 0.5
PK_SOLVE_BAR = 20.0
TRACIK_BATCH_BAR = 10.0
ENV_FRACTION_BAR = 0.40
ENV_RATE_BAR = 1.5e6
KINEMATICS_BAR = 10.0

#: Sizes of a real run; ``pk`` overrides solve.py's early-stop settings of pytorch_kinematics (none).
FULL = {"targets": 1000, "latency": 100, "solve_rounds": 5, "env_batch": 4096, "env_steps": 10,
        "env_rounds": 15, "fk_batch": 65_536, "jac_batch": 4096, "kin_calls": 3, "kin_rounds": 3, "pk": {}}  # fmt: skip
#: --quick: only checks that the script runs (pytorch_kinematics cut to 2 retries of 5 iterations).
QUICK = {"targets": 8, "latency": 30, "solve_rounds": 1, "env_batch": 256, "env_steps": 3,
         "env_rounds": 2, "fk_batch": 1024, "jac_batch": 256, "kin_calls": 1, "kin_rounds": 2,
         "pk": {"num_retries": 2, "max_iterations": 5}}  # fmt: skip


# ---------------------------------------------------------------------------------- rows


def check(label: str, value: float, bar: float, *, at_least: bool) -> dict:
    """One bar: ``value >= bar`` (``at_least``) or ``value <= bar``; margin >= 1 passes.
    A missing value (nan) fails with margin 0."""
    if not math.isfinite(value) and not (value == math.inf and at_least):
        return {"label": label, "ok": False, "margin": 0.0}
    if at_least:
        margin = value / bar if bar else math.inf
    else:
        margin = bar / value if value > 0 else math.inf
    return {"label": label, "ok": margin >= 1.0, "margin": margin}


def verdict(row: dict) -> str:
    failed = [c["label"] for c in row["checks"] if not c["ok"]]
    return "PASS" if not failed else "FAIL (" + "; ".join(failed) + ")"


def margin(row: dict) -> float:
    return min((c["margin"] for c in row["checks"]), default=math.inf)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90)) if values else math.nan


def fmt(value: float, spec: str, unit: str = "") -> str:
    return "n/a" if not math.isfinite(value) else f"{value:{spec}}{unit}"


# ------------------------------------------------------------------------------- TRAC-IK


def quaternion_xyzw(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of a 3x3 rotation matrix (Shepperd's method)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    return float(x), float(y), float(z), float(w)


class TracIK:
    """TRAC-IK on one robot: its arguments for every target prepared up front, so a timed call
    is exactly one ``pytracik.ik``."""

    def __init__(self, urdf: Path, base: str, tip: str, chain64: ikrl.Chain, targets: torch.Tensor) -> None:
        assert pytracik is not None
        self.solver = pytracik.TRAC_IK(
            base, tip, urdf.read_text(), TRACIK_TIMEOUT, TRACIK_EPSILON, pytracik.SolveType.Speed
        )
        if pytracik.get_num_joints(self.solver) != chain64.dof:
            raise SystemExit(
                f"TRAC-IK sees {pytracik.get_num_joints(self.solver)} joints from {base} to {tip}, ikrl {chain64.dof}"
            )
        low, high = bounds(chain64)
        # Set explicitly: KDL reads some URDFs' limits wrongly (the Panda's soft limits as zeros).
        pytracik.set_joint_limits(self.solver, low.tolist(), high.tolist())
        generator = torch.Generator().manual_seed(SOLVER_SEED)
        n = targets.shape[0]
        self.seeds = (
            low + (high - low) * torch.rand(n, chain64.dof, generator=generator, dtype=torch.float64)
        ).numpy()
        poses = targets.numpy()
        self.args = [(*map(float, pose[:3, 3]), *quaternion_xyzw(pose[:3, :3])) for pose in poses]
        self.dof = chain64.dof
        self.q = self.seeds.copy()  # the last answer of each target (the seed where it found none)
        self.found = np.zeros(n, dtype=bool)
        probe = self.seeds[0]
        gap = np.abs(
            pytracik.fk(self.solver, probe) - chain64.forward_kinematics(torch.from_numpy(probe)).numpy()
        ).max()
        if gap > 1e-6:
            raise SystemExit(f"TRAC-IK and ikrl disagree on the forward kinematics ({gap:.1e}); not timing")

    def __call__(self, i: int) -> None:
        r = pytracik.ik(self.solver, self.seeds[i], *self.args[i])  # pyright: ignore[reportOptionalMemberAccess]
        self.found[i] = r[0] >= 0
        self.q[i] = r[1:] if self.found[i] else self.seeds[i]

    def run(self, n: int) -> None:
        """The first ``n`` targets, one after another."""
        for i in range(n):
            self(i)

    def success(self, chain64: ikrl.Chain, targets: torch.Tensor, n: int) -> float:
        """Share of the first ``n`` targets whose last answer is a success, judged like ikrl's."""
        judged = sb.score(chain64, torch.from_numpy(self.q[:n]), targets[:n])
        ok = judged["success"] & judged["within"] & torch.from_numpy(self.found[:n])
        return float(ok.double().mean())


def judged_success(chain64: ikrl.Chain, q: torch.Tensor, targets: torch.Tensor) -> float:
    judged = sb.score(chain64, q, targets)
    return float((judged["success"] & judged["within"]).double().mean())


# ------------------------------------------------------------------------------ parts 1, 2


def solver_rows(name: str, sizes: dict, parts: set[int]) -> list[dict]:
    urdf, base, tip = sb.robot_source(name)
    chain64 = ikrl.load_chain(urdf, base=base, tip=tip, dtype=torch.float64)
    chain = chain64.to(dtype=torch.float32)
    low, high = bounds(chain64)
    # One draw: the first targets of a larger draw are the targets of a smaller one.
    _, targets = sb.reachable_targets(chain64, max(sizes["targets"], sizes["latency"]))
    goal = targets.to(torch.float32)
    trac = TracIK(urdf, base, tip, chain64, targets) if pytracik is not None else None

    def ikrl_solve(goal: torch.Tensor):
        return solve(
            chain, goal, position_tolerance=sb.TOL_POS, rotation_tolerance=sb.TOL_ROT, seed=SOLVER_SEED
        )

    rows = []
    if 1 in parts:  # batch-1 latency, one call per target, the two solvers' order alternating
        latency = sizes["latency"]
        for _ in range(5):  # warm: compiled code loaded, caches filled
            ikrl_solve(goal[:1])
            if trac is not None:
                trac(0)
        ours_s, theirs_s, ours_q = [], [], []
        for i in range(latency):
            one = goal[i : i + 1]
            calls: list[tuple[str, Callable[[], Any]]] = [("ikrl", lambda one=one: ikrl_solve(one))]
            if trac is not None:
                calls.append(("trac", lambda i=i: trac(i)))
            for label, call in calls if i % 2 == 0 else calls[::-1]:
                start = time.perf_counter()
                result = call()
                seconds = time.perf_counter() - start
                if label == "ikrl":
                    ours_s.append(seconds)
                    ours_q.append(result.q)
                else:
                    theirs_s.append(seconds)
        ours_success = judged_success(chain64, torch.cat(ours_q), targets[:latency])
        theirs_success = trac.success(chain64, targets, latency) if trac is not None else math.nan
        ours_ms, theirs_ms = median(ours_s) * 1e3, median(theirs_s) * 1e3
        rows.append({
            "part": 1, "key": name, "robot": name, "targets": latency,
            "ikrl_median_ms": ours_ms, "ikrl_p90_ms": p90(ours_s) * 1e3, "ikrl_success": ours_success,
            "tracik_median_ms": theirs_ms, "tracik_p90_ms": p90(theirs_s) * 1e3, "tracik_success": theirs_success,
            "checks": [
                check(f"median <= {LATENCY_BAR_MS:g} ms", ours_ms, LATENCY_BAR_MS, at_least=False),
                check(f"success >= {SUCCESS_BAR:.1%}", ours_success, SUCCESS_BAR, at_least=True),
                check("median <= TRAC-IK's", theirs_ms / ours_ms, 1.0, at_least=True),
            ],
        })  # fmt: skip
    if 2 not in parts:
        return rows

    # The whole batch at once; TRAC-IK one target after another.
    n = sizes["targets"]
    batch_goal, batch_targets = goal[:n], targets[:n]
    ikrl_solve(batch_goal[:16])
    ours_success = judged_success(chain64, ikrl_solve(batch_goal).q, batch_targets)
    pk_row, pk_run = sb.run_pytorch_kinematics(
        name, urdf, base, tip, torch.float32, low, high, batch_goal, batch_targets, chain64,
        {**sb.PK_EARLY, **sizes["pk"]}, PK_LABEL,
    )  # fmt: skip
    pk_success = pk_row.get("success_rate", math.nan) if "crashed" not in pk_row else math.nan
    runs: list[Callable[[], object]] = [lambda: ikrl_solve(batch_goal)]
    if pk_run is not None:
        runs.append(pk_run)
    if trac is not None:
        trac.run(n)
        runs.append(lambda: trac.run(n))
    times = alternating_times(runs, rounds=sizes["solve_rounds"])
    per_target = [median(t) / n for t in times]
    ours_us = per_target[0] * 1e6
    pk_us = per_target[1] * 1e6 if pk_run is not None else math.nan
    trac_us = per_target[-1] * 1e6 if trac is not None else math.nan
    trac_success = trac.success(chain64, targets, n) if trac is not None else math.nan
    rows.append({
        "part": 2, "key": name, "robot": name, "targets": n,
        "ikrl_us": ours_us, "ikrl_success": ours_success,
        "pk_us": pk_us, "pk_success": pk_success, "pk_crashed": pk_row.get("crashed"),
        "tracik_us": trac_us, "tracik_2core_us": trac_us / 2, "tracik_success": trac_success,
        "pk_ratio": pk_us / ours_us, "tracik_ratio": trac_us / 2 / ours_us,
        "checks": [
            check(f"success >= {SUCCESS_BAR:.1%}", ours_success, SUCCESS_BAR, at_least=True),
            check(f">= {PK_SOLVE_BAR:g}x pk", pk_us / ours_us, PK_SOLVE_BAR, at_least=True),
            check(f">= {TRACIK_BATCH_BAR:g}x TRAC-IK", trac_us / 2 / ours_us, TRACIK_BATCH_BAR, at_least=True),
        ],
    })  # fmt: skip
    return rows


# --------------------------------------------------------------------------------- part 3


def env_row(sizes: dict) -> dict:
    batch, steps = sizes["env_batch"], sizes["env_steps"]
    env = ikrl.make_env(ENV_SPEC, batch_size=batch, seed=0)
    chain = env.chain
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        action = (2 * torch.rand(batch, chain.dof, generator=generator, dtype=env.dtype) - 1) * env.max_delta
        q = chain.lower + (chain.upper - chain.lower) * torch.rand(
            batch, chain.dof, generator=generator, dtype=env.dtype
        )
        state = {"td": env.reset()}

        def step_block() -> None:
            td = state["td"]
            for _ in range(steps):
                td["action"] = action
                _, td = env.step_and_maybe_reset(td)
            state["td"] = td

        times = alternating_times(
            [step_block, lambda: chain.forward_kinematics(q)], calls=3, rounds=sizes["env_rounds"], warmup=1
        )
    step_rate = batch * steps / median(times[0])
    fk_rate = batch / median(times[1])
    return {
        "part": 3, "key": ENV_SPEC, "spec": ENV_SPEC, "batch": batch,
        "step_per_s": step_rate, "fk_per_s": fk_rate, "fraction": step_rate / fk_rate,
        "checks": [
            check(f">= {ENV_FRACTION_BAR:.0%} of FK", step_rate / fk_rate, ENV_FRACTION_BAR, at_least=True),
            check(f">= {ENV_RATE_BAR:.1e}/s", step_rate, ENV_RATE_BAR, at_least=True),
        ],
    }  # fmt: skip


# --------------------------------------------------------------------------------- part 4


def kinematics_rows(name: str, sizes: dict) -> list[dict]:
    urdf, base, tip = sb.robot_source(name)
    ours = ikrl.load_chain(urdf, base=base, tip=tip, dtype=torch.float32)
    theirs = sb.pytorch_kinematics_chain(urdf, base, tip, torch.float32)
    model = data = frame = None
    if pin is not None:
        model = pin.buildModelFromUrdf(str(urdf))
        data = model.createData()
        frame = model.getFrameId(tip)
        if model.nq != ours.dof:  # the frames are checked below: the answers must agree
            raise SystemExit(
                f"{name}: Pinocchio's model has {model.nq} joints, ikrl's chain {ours.dof}; not timing"
            )
    generator = torch.Generator().manual_seed(0)

    def configurations(batch: int) -> torch.Tensor:
        return ours.lower + (ours.upper - ours.lower) * torch.rand(batch, ours.dof, generator=generator)

    def pin_fk(qs: np.ndarray, out: np.ndarray) -> None:
        for i in range(len(qs)):
            pin.forwardKinematics(model, data, qs[i])  # pyright: ignore[reportOptionalMemberAccess]
            pin.updateFramePlacement(model, data, frame)  # pyright: ignore[reportOptionalMemberAccess]
            out[i] = data.oMf[frame].homogeneous  # pyright: ignore[reportOptionalMemberAccess]

    def pin_jac(qs: np.ndarray, out: np.ndarray) -> None:
        for i in range(len(qs)):
            out[i] = pin.computeFrameJacobian(model, data, qs[i], frame, pin.LOCAL_WORLD_ALIGNED)  # pyright: ignore[reportOptionalMemberAccess]

    cases = [
        ("forward kinematics", sizes["fk_batch"], ours.forward_kinematics,
         lambda x: theirs.forward_kinematics(x).get_matrix(), pin_fk, (4, 4)),
        ("Jacobian", sizes["jac_batch"], ours.jacobian, theirs.jacobian, pin_jac, (6, ours.dof)),
    ]  # fmt: skip
    rows = []
    with torch.no_grad():
        for what, batch, ikrl_fn, pk_fn, pin_fn, shape in cases:
            q = configurations(batch)
            qs = q.double().numpy().copy()
            out = np.empty((batch, *shape))
            # Same answers first: a benchmark of different computations would mean nothing.
            gaps = [(ikrl_fn(q[:64]) - pk_fn(q[:64])).abs().max().item()]
            if pin is not None:
                pin_fn(qs[:64], out[:64])
                gaps.append(float(np.abs(ikrl_fn(q[:64]).double().numpy() - out[:64]).max()))
            if max(gaps) > 1e-4:
                raise SystemExit(f"{name} {what}: ikrl and its peers disagree ({max(gaps):.1e}); not timing")
            fns: list[Callable[[], object]] = [lambda: ikrl_fn(q), lambda: pk_fn(q)]  # noqa: B023
            if pin is not None:
                fns.append(lambda: pin_fn(qs, out))  # noqa: B023
            times = alternating_times(fns, calls=sizes["kin_calls"], rounds=sizes["kin_rounds"], warmup=1)
            rates = [batch / median(t) for t in times]
            ikrl_rate, pk_rate = rates[0], rates[1]
            pin_rate = rates[2] if pin is not None else math.nan
            rows.append(
                {"part": 4, "key": f"{name} {what}", "robot": name, "what": what, "batch": batch,
                 "ikrl_per_s": ikrl_rate, "pk_per_s": pk_rate, "pin_per_s": pin_rate,
                 "pk_ratio": ikrl_rate / pk_rate, "pin_ratio": ikrl_rate / pin_rate,
                 "checks": [check(f">= {KINEMATICS_BAR:g}x pk", ikrl_rate / pk_rate, KINEMATICS_BAR, at_least=True)]}
            )  # fmt: skip
    return rows


# --------------------------------------------------------------------------------- tables


def _success(value: float) -> str:
    return fmt(value * 100, ".1f", " %")


def _rate(value: float) -> str:
    if math.isfinite(value) and value < 1e5:
        return fmt(value / 1e3, ".1f", " k/s")
    return fmt(value / 1e6, ".2f", " M/s")


def tables(rows: list[dict]) -> list[str]:
    """Markdown: one table per part present in ``rows``."""
    lines: list[str] = []
    parts = {row["part"] for row in rows}

    def table(title: str, header: list[str], part: int, cells: Callable[[dict], list[str]]) -> None:
        if part not in parts:
            return
        lines.extend([f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)])
        for row in rows:
            if row["part"] == part:
                lines.append("| " + " | ".join([*cells(row), verdict(row)]) + " |")
        lines.append("")

    table(
        "1. Batch-1 solve latency (float32, one call per target, ms)",
        ["robot", "targets", "ikrl median / p90", "ikrl success", "TRAC-IK median / p90", "TRAC-IK success",
         "TRAC-IK / ikrl (median)", f"bar: ikrl <= {LATENCY_BAR_MS:g} ms, <= TRAC-IK, >= {SUCCESS_BAR:.1%}"],
        1,
        lambda r: [r["robot"], str(r["targets"]),
                   f"{fmt(r['ikrl_median_ms'], '.3f')} / {fmt(r['ikrl_p90_ms'], '.3f')}", _success(r["ikrl_success"]),
                   f"{fmt(r['tracik_median_ms'], '.3f')} / {fmt(r['tracik_p90_ms'], '.3f')}",
                   _success(r["tracik_success"]), fmt(r["tracik_median_ms"] / r["ikrl_median_ms"], ".1f", "x")],
    )  # fmt: skip
    table(
        "2. Batch solve (float32, all targets in one call; us per target)",
        ["robot", "targets", "ikrl", "ikrl success", "pk early-stop", "pk success", "pk / ikrl",
         "TRAC-IK 1 thread", "TRAC-IK 2 cores (halved)", "TRAC-IK success", "TRAC-IK 2 cores / ikrl",
         f"bar: >= {PK_SOLVE_BAR:g}x pk, >= {TRACIK_BATCH_BAR:g}x TRAC-IK, >= {SUCCESS_BAR:.1%}"],
        2,
        lambda r: [r["robot"], f"{r['targets']:,}", fmt(r["ikrl_us"], ".1f"), _success(r["ikrl_success"]),
                   f"crashed: {r['pk_crashed']}" if r["pk_crashed"] else fmt(r["pk_us"], ".1f"),
                   _success(r["pk_success"]), fmt(r["pk_ratio"], ".1f", "x"), fmt(r["tracik_us"], ".1f"),
                   fmt(r["tracik_2core_us"], ".1f"), _success(r["tracik_success"]), fmt(r["tracik_ratio"], ".1f", "x")],
    )  # fmt: skip
    table(
        "3. env.step (float32, no_grad, step_and_maybe_reset)",
        ["spec", "batch", "env.step transitions/s", "bare FK poses/s", "step / FK",
         f"bar: >= {ENV_FRACTION_BAR:.0%} of FK, >= {ENV_RATE_BAR:.1e}/s"],
        3,
        lambda r: [f"`{r['spec']}`", f"{r['batch']:,}", _rate(r["step_per_s"]), _rate(r["fk_per_s"]),
                   fmt(r["fraction"] * 100, ".0f", " %")],
    )  # fmt: skip
    table(
        "4. Kinematics (float32; Pinocchio: Python loop over the batch, float64)",
        ["robot", "what", "batch", "ikrl", "pytorch_kinematics", "Pinocchio", "ikrl / pk", "ikrl / Pinocchio",
         f"bar: >= {KINEMATICS_BAR:g}x pk"],
        4,
        lambda r: [r["robot"], r["what"], f"{r['batch']:,}", _rate(r["ikrl_per_s"]), _rate(r["pk_per_s"]),
                   _rate(r["pin_per_s"]), fmt(r["pk_ratio"], ".1f", "x"), fmt(r["pin_ratio"], ".1f", "x")],
    )  # fmt: skip
    return lines


def load_average() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def one_run(robots: list[str], parts: set[int], sizes: dict) -> list[dict]:
    rows: list[dict] = []
    if parts & {1, 2}:
        for name in robots:
            rows += solver_rows(name, sizes, parts)
    if 3 in parts:
        rows.append(env_row(sizes))
    if 4 in parts:
        for name in robots:
            if name in KINEMATICS_ROBOTS:
                rows += kinematics_rows(name, sizes)
    return sorted(rows, key=lambda row: row["part"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the script runs, times nothing useful"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="whole runs; the worst counts, row by row (default 3)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch (and the compiled solver's) CPU threads (default 2)"
    )
    parser.add_argument(
        "--robots", nargs="+", choices=ROBOTS, default=ROBOTS, help="robots of parts 1, 2 and 4"
    )
    parser.add_argument("--parts", nargs="+", type=int, choices=[1, 2, 3, 4], default=[1, 2, 3, 4])
    parser.add_argument(
        "--latency-targets", type=int, help="targets of the batch-1 latency (default 100, >= 30)"
    )
    parser.add_argument("--out", type=Path, help="also write the report (markdown) to this file")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.latency_targets is not None:
        if args.latency_targets < 30:
            parser.error("--latency-targets must be at least 30")
        sizes["latency"] = args.latency_targets
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)

    lines = [
        f"load at start: {load_average()}",
        "",
        f"torch {torch.__version__}, pytorch_kinematics {version('pytorch_kinematics')}, pytracik "
        f"{version('pytracik')}, pin {version('pin')}; {args.threads} threads, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} cores" + (" (--quick: tiny sizes, figures meaningless)" if args.quick else ""),
        f"sizes: {sizes}",
        "",
    ]
    print("\n".join(lines), flush=True)
    parts = set(args.parts)
    runs = []
    for r in range(args.repeats):
        rows = one_run(args.robots, parts, sizes)
        runs.append(rows)
        block = [f"### Run {r + 1} of {args.repeats}", "", *tables(rows)]
        print("\n".join(block), flush=True)
        lines += block
    # Row by row, the run with the smallest margin to its bars counts.
    counted = [min(same, key=margin) for same in zip(*runs, strict=True)]
    block = []
    if args.repeats > 1:
        block = [f"### Counted: the worst of {args.repeats} runs, row by row", "", *tables(counted)]
    passed = sum(all(c["ok"] for c in row["checks"]) for row in counted)
    overall = "PASS" if passed == len(counted) else "FAIL"
    block += [
        f"load at end: {load_average()}",
        "",
        f"Overall: {overall} ({passed} of {len(counted)} rows pass)",
    ]
    print("\n".join(block), flush=True)
    lines += block
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"threads": args.threads, "torch": torch.__version__, "sizes": sizes, "repeats": args.repeats,
                 "overall": overall, "runs": runs, "counted": counted},
                indent=2, default=str,
            )
        )  # fmt: skip


if __name__ == "__main__":
    main()
