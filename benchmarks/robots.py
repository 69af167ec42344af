"""One table across robots: the solver, the kinematics against Pinocchio, a learned policy.

    python benchmarks/robots.py [--robots ur10 panda ...] [--targets 1000] [--singles 30]
                                [--dtype float32] [--threads 2] [--minutes 1.0 | --no-train]
                                [--out robots.md] [--plot robots.png] [--json robots.json]

For every robot in the registry (ikrl's own, the zoo's, any installed plugin's; ``--robots``
picks some), on the CPU:

* **solver**: 1,000 reachable targets (forward kinematics, in float64, of joint values drawn
  uniformly within the limits, seed 0), solved at once by :func:`ikrl.solve` with its defaults
  (1 mm, 1 deg; solver seed 1, so its first starts are not the answers) on the chain in
  ``--dtype``; its answers judged in float64 (:func:`ikrl.kinematics.se3.pose_errors`,
  success is both errors under tolerance). Time per target is the best wall time of
  ``--repeats`` further calls (after a 16-target warm-up and the judged call) over 1,000. Then batch 1: the median wall time of
  ``--singles`` single-target solves (one call each, after 3 warm-up calls), and how many
  of them succeeded. A batch of 1,000 costs about what a few single targets cost, because
  the solver's work is its sequence of iterations, not its rows (CONTRIBUTING, "The solver");
* **forward kinematics against Pinocchio**: where the robot's URDF is known (ikrl's own
  robots, the zoo's, a plugin module's ``URDF`` whose chain has the robot's fingerprint) and
  Pinocchio reads it: the largest position and rotation difference between ikrl's float64
  pose of the tip in the base frame and Pinocchio's, over 1,000 random configurations;
* **learned policy** (unless ``--no-train``): ``ikrl train ROBOT+weighted_pose+sincos
  --minutes M`` (the ``goal`` algorithm, M CPU-minutes of its training process; the worker it
  starts gets as many, so a robot costs about 2M CPU-minutes plus the evaluation), then the
  share of its 1,000 held-out targets within 5 mm / 2 deg from its ``eval.json``. Robots train
  one after another.

Prints a markdown table (also written to ``--out``), draws it with ``--plot`` (matplotlib)
and writes every figure to ``--json``. This machine's timings vary by tens of percent: run it
twice before reading anything into a difference of speed.
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
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import ikrl
from ikrl.errors import IkrlError
from ikrl.extend.registry import Component, default_registry
from ikrl.kinematics.protocol import random_joints
from ikrl.kinematics.se3 import pose_errors
from ikrl.solver.pool import solve
from ikrl.util.metrics import TOLERANCES
from ikrl.util.timing import alternating_times

SOLVER_TOLERANCE = TOLERANCES["1mm_1deg"]  # metres, radians
POLICY_KEY = "success_5mm_2deg"  # eval.json's success within TOLERANCES["5mm_2deg"]
TARGET_SEED = 0
SOLVER_SEED = 1  # not TARGET_SEED: a solver seeded like the targets would start on the answers
FK_SEED = 2
FK_CONFIGURATIONS = 1000
WARMUP_TARGETS = 16
SPEC = "{robot}+weighted_pose+sincos"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Row:
    """Every figure of one robot (None where it was not measured)."""

    robot: str
    distribution: str
    dof: int
    batch: int = 0
    batch_success: float | None = None  # share within 1 mm / 1 deg
    batch_seconds: float | None = None  # the whole batch's wall time
    singles: int = 0
    single_median_seconds: float | None = None
    single_solved: int | None = None
    urdf: str | None = None
    fk_position_max_m: float | None = None
    fk_rotation_max_rad: float | None = None
    fk_note: str = ""  # why there is no Pinocchio figure
    policy_success: float | None = None  # share within 5 mm / 2 deg
    policy_note: str = ""
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- which URDF a robot is


def _urdf_candidates(component: Component) -> list[Path]:
    """Files the robot may come from; each is used only if its chain has the robot's fingerprint."""
    found: list[Path] = []
    if component.distribution == "ikrl":
        import ikrl_robots

        found.append(ikrl_robots.info(component.name).urdf)
    if component.distribution == "ikrl-zoo":
        from ikrl_zoo import catalog, data

        found.append(data.urdf_path(catalog.get(component.name).urdf, robot=component.name))
    module = sys.modules.get(getattr(component.factory, "__module__", ""))
    urdf = getattr(module, "URDF", None)  # the example plugin's convention
    if isinstance(urdf, Path):
        found.append(urdf)
    return found


def urdf_of(component: Component, chain) -> Path | None:
    """The URDF whose base-to-tip chain is exactly ``chain`` (same fingerprint), if one is known."""
    base, tip = getattr(chain, "base", None), getattr(chain, "tip", None)
    if base is None or tip is None:
        return None
    for path in _urdf_candidates(component):
        try:
            candidate = ikrl.load_chain(path, base=base, tip=tip, dtype=torch.float64)
        except IkrlError:
            continue
        if candidate.fingerprint() == chain.fingerprint():
            return path
    return None


# ---------------------------------------------------------------------- Pinocchio


def _mimics(root: ET.Element) -> dict[str, tuple[str, float, float]]:
    """joint -> (mimicked joint, multiplier, offset), from the XML."""
    out = {}
    for joint in root.findall("joint"):
        mimic = joint.find("mimic")
        if mimic is not None:
            out[str(joint.get("name"))] = (
                str(mimic.get("joint")), float(mimic.get("multiplier", "1")), float(mimic.get("offset", "0")),
            )  # fmt: skip
    return out


def pinocchio_agreement(path: Path, chain, n: int) -> tuple[float, float]:
    """Largest (position m, rotation rad) difference between ikrl's float64 pose of the tip in
    the base frame and Pinocchio's, over ``n`` random configurations. Pinocchio's model is the
    whole robot; joints off the chain stay neutral (they do not move the tip in the base
    frame) and mimic joints are set from their source, as ikrl resolves them."""
    import numpy as np
    import pinocchio as pin

    text = path.read_text(encoding="utf-8")
    model = pin.buildModelFromXML(text)
    data = model.createData()
    base_id, tip_id = model.getFrameId(chain.base, pin.BODY), model.getFrameId(chain.tip, pin.BODY)
    above = set(model.supports[model.frames[base_id].parentJoint])
    path_joints = [j for j in model.supports[model.frames[tip_id].parentJoint] if j not in above]
    mimics = _mimics(ET.fromstring(text))
    index = {name: i for i, name in enumerate(chain.joint_names)}

    def resolve(name: str) -> tuple[int, float, float]:
        multiplier, offset = 1.0, 0.0
        while name in mimics:
            source, m, o = mimics[name]
            multiplier, offset, name = multiplier * m, offset + multiplier * o, source
        if name not in index:
            raise LookupError(f"Pinocchio's joint {name!r} between {chain.base} and {chain.tip} is not one of ikrl's")
        return index[name], multiplier, offset

    setters = [(model.joints[j], *resolve(model.names[j])) for j in path_joints]
    chain64 = chain.to(dtype=torch.float64)
    q = random_joints(chain64, n, torch.Generator().manual_seed(FK_SEED))
    ours = chain64.forward_kinematics(q)
    theirs = []
    for row in q.numpy():
        q_pin = pin.neutral(model)
        for joint, i, multiplier, offset in setters:
            value = multiplier * row[i] + offset
            if joint.nq == 2:  # continuous: (cos, sin)
                q_pin[joint.idx_q : joint.idx_q + 2] = (math.cos(value), math.sin(value))
            else:
                q_pin[joint.idx_q] = value
        pin.framesForwardKinematics(model, data, q_pin)
        theirs.append((data.oMf[base_id].inverse() * data.oMf[tip_id]).homogeneous)
    position, rotation = pose_errors(ours, torch.from_numpy(np.stack(theirs)))
    return float(position.max()), float(rotation.max())


# ---------------------------------------------------------------------- the solver


def judged_success(chain64, q: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Within the solver's tolerances, judged by float64 forward kinematics of the answers."""
    position, rotation = pose_errors(chain64.forward_kinematics(q.detach().to(torch.float64)), targets)
    return (position < SOLVER_TOLERANCE[0]) & (rotation < SOLVER_TOLERANCE[1])


def measure_solver(row: Row, chain, dtype: torch.dtype, n: int, singles: int, repeats: int) -> None:
    chain64 = chain.to(dtype=torch.float64)
    q_true = random_joints(chain64, max(n, singles), torch.Generator().manual_seed(TARGET_SEED))
    targets = chain64.forward_kinematics(q_true)
    working = chain.to(dtype=dtype)
    goal = targets.to(dtype)

    def run(poses: torch.Tensor):
        return solve(working, poses, position_tolerance=SOLVER_TOLERANCE[0], rotation_tolerance=SOLVER_TOLERANCE[1], seed=SOLVER_SEED)

    run(goal[:WARMUP_TARGETS])
    result = run(goal[:n])  # also the warm-up of the timed calls (the compiled path loads on first use)
    (times,) = alternating_times([lambda: run(goal[:n])], rounds=repeats)
    row.batch, row.batch_seconds = n, min(times)
    row.batch_success = float(judged_success(chain64, result.q, targets[:n]).double().mean())
    for _ in range(3):
        run(goal[:1])
    seconds, solved = [], 0
    for i in range(singles):
        start = time.perf_counter()
        one = run(goal[i : i + 1])
        seconds.append(time.perf_counter() - start)
        solved += int(judged_success(chain64, one.q, targets[i : i + 1]).item())
    row.singles, row.single_median_seconds, row.single_solved = singles, statistics.median(seconds), solved


# ---------------------------------------------------------------------- the learned policy


def train_policy(row: Row, minutes: float, runs: Path, threads: int) -> None:
    """``ikrl train`` in a process of its own, then the success rate from its eval.json."""
    spec = SPEC.format(robot=row.robot)
    folder = runs / f"{row.robot}-goal"
    command = [
        sys.executable, "-c", "from ikrl.cli import app; app()", "train", spec, "--minutes", str(minutes),
        "--out", str(folder), "--overwrite", "--logger", "none", "--no-progress", "--threads", str(threads),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    record = folder / "eval.json"
    if result.returncode != 0 or not record.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        row.policy_note = f"training failed (exit {result.returncode}): {tail[0][:200]}"
        return
    row.policy_success = float(json.loads(record.read_text())[POLICY_KEY])


# ---------------------------------------------------------------------- output


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _fk(row: Row) -> tuple[str, str]:
    if row.fk_position_max_m is None or row.fk_rotation_max_rad is None:
        return (f"n/a ({row.fk_note})" if row.fk_note else "n/a"), ""
    return f"{row.fk_position_max_m:.1e} m", f"{row.fk_rotation_max_rad:.1e} rad"


def table(rows: list[Row], minutes: float | None, singles: int, n: int) -> list[str]:
    policy = "policy (5 mm, 2 deg)" + ("" if minutes is None else f" after {minutes:g} CPU-min")
    lines = [
        f"| robot | from | dof | solver (1 mm, 1 deg), batch {n:,} | time per target, batch {n:,} "
        f"| batch 1: median of {singles} (solved) | FK vs Pinocchio: position | rotation | {policy} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        position, rotation = _fk(row)
        per_target = "n/a" if row.batch_seconds is None else f"{row.batch_seconds / row.batch * 1e6:,.0f} us"
        single = (
            "n/a" if row.single_median_seconds is None
            else f"{row.single_median_seconds * 1e3:.1f} ms ({row.single_solved}/{row.singles})"
        )  # fmt: skip
        learned = "not trained" if minutes is None else (row.policy_note or _percent(row.policy_success))
        lines.append(
            f"| {row.robot} | {row.distribution} | {row.dof} | {_percent(row.batch_success)} | {per_target} | {single} "
            f"| {position} | {rotation} | {learned} |"
        )
    return lines


def plot(rows: list[Row], path: Path, title: str) -> None:
    """Three panels, one pair of bars per robot: success rates, solve time per target (batch
    N and batch 1, log scale), the largest difference from Pinocchio (log scale). Figures
    not measured are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    def values(get: Callable[[Row], float | None], scale: float = 1.0) -> list[float]:
        return [math.nan if (v := get(r)) is None else scale * v for r in rows]

    y = list(range(len(rows)))
    h = 0.4
    panels = [
        ("success (%)", False, [("solver, 1 mm / 1 deg", values(lambda r: r.batch_success, 100)),
                                ("policy, 5 mm / 2 deg", values(lambda r: r.policy_success, 100))]),
        ("solve time per target (ms)", True, [
            (f"batch {rows[0].batch:,}, per target", values(lambda r: r.batch_seconds and r.batch_seconds / r.batch, 1e3)),
            ("batch 1 (median)", values(lambda r: r.single_median_seconds, 1e3))]),
        ("largest difference from Pinocchio (float64)", True, [
            ("position (m)", values(lambda r: r.fk_position_max_m)), ("rotation (rad)", values(lambda r: r.fk_rotation_max_rad))]),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.32 * len(rows) + 1.8), sharey=True)
    for ax, (label, log, bars) in zip(axes, panels, strict=True):
        for k, (name, data) in enumerate(bars):
            if not all(math.isnan(v) for v in data):
                ax.barh([v + (k - 0.5) * h for v in y], data, h, label=name)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_xlim(0, 100)
    axes[0].set_yticks(y, [row.robot for row in rows], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- main


def measure(name: str, args, runs: Path | None) -> Row:
    component = default_registry().robot(name)
    chain = component.build({})
    row = Row(robot=name, distribution=component.distribution, dof=chain.dof)
    measure_solver(row, chain, DTYPES[args.dtype], args.targets, args.singles, args.repeats)
    try:
        path = urdf_of(component, chain)
    except IkrlError as error:  # e.g. a zoo robot without example-robot-data
        path, row.fk_note = None, str(error)[:80]
    if path is None:
        row.fk_note = row.fk_note or "no URDF known"
    else:
        row.urdf = str(path)
        try:
            row.fk_position_max_m, row.fk_rotation_max_rad = pinocchio_agreement(path, chain, FK_CONFIGURATIONS)
        except ImportError:
            row.fk_note = "Pinocchio not installed"
        except Exception as error:  # noqa: BLE001 - a URDF Pinocchio cannot read is a result to report
            row.fk_note = f"Pinocchio: {type(error).__name__}"
            row.notes.append(f"Pinocchio on {path}: {error}"[:300])
    if runs is not None:
        train_policy(row, args.minutes, runs, threads=1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", help="robots to measure (default: every robot in the registry)")
    parser.add_argument("--targets", type=int, default=1000, help="targets of the batch solve (default 1000)")
    parser.add_argument("--singles", type=int, default=30, help="single-target solves for the batch-1 median (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of the batch solve; the best counts (default 3)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="the solver's dtype (default float32)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of this process (default 2)")
    parser.add_argument("--minutes", type=float, default=1.0, help="CPU-minutes of ikrl train per robot (default 1.0)")
    parser.add_argument("--no-train", action="store_true", help="skip the learned policy")
    parser.add_argument("--runs", type=Path, help="keep the training runs in this folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="also write the markdown table to this file")
    parser.add_argument("--plot", type=Path, help="draw the table into this PNG")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args()
    if min(args.targets, args.singles, args.repeats) < 1 or args.minutes <= 0:
        parser.error("--targets, --singles and --repeats must be at least 1, and --minutes positive")
    torch.set_num_threads(args.threads)
    registry = default_registry()
    names = args.robots or registry.names("robot")
    for name in names:
        try:
            registry.robot(name)  # an unknown name fails here, before any work
        except IkrlError as error:
            parser.error(str(error))
    minutes = None if args.no_train else args.minutes

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ikrl-robots-") as scratch:
        runs = None if minutes is None else (args.runs or Path(scratch))
        for name in names:
            started = time.perf_counter()
            rows.append(measure(name, args, runs))
            print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    header = (
        f"ikrl {importlib.metadata.version('ikrl')}, robots benchmark: torch {torch.__version__}, "
        f"{args.threads} threads, {platform.processor() or platform.machine()}; solver in {args.dtype}, "
        f"{args.targets:,} targets (seed {TARGET_SEED}), solver seed {SOLVER_SEED}; FK vs Pinocchio over "
        f"{FK_CONFIGURATIONS:,} configurations (float64)"
    )
    lines = [header, "", *table(rows, minutes, args.singles, args.targets)]
    notes = [f"- {row.robot}: {note}" for row in rows for note in row.notes]
    if notes:
        lines += ["", *notes]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.plot:
        plot(rows, args.plot, title=f"{len(rows)} robots: solver ({args.dtype}), Pinocchio agreement"
             + ("" if minutes is None else f", policy after {minutes:g} CPU-min"))  # fmt: skip
    if args.json:
        record = {
            "torch": torch.__version__, "threads": args.threads, "dtype": args.dtype, "targets": args.targets,
            "singles": args.singles, "minutes": minutes, "target_seed": TARGET_SEED, "solver_seed": SOLVER_SEED,
            "solver_tolerance": SOLVER_TOLERANCE, "policy_metric": POLICY_KEY, "rows": [asdict(row) for row in rows],
        }  # fmt: skip
        args.json.write_text(json.dumps(record, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
