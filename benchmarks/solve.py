"""Inverse kinematics: ikrl's solver against pytorch_kinematics, in the same run, on the CPU.

    python benchmarks/solve.py [--quick] [--targets 1000] [--threads 2] [--repeats 3]
                               [--pk-lm-damping 0.1] [--checkpoint RUN [--policy-steps 5 20 100]]
                               [--json out.json]

For the Dobot CR5, the Panda and the UR5 (example-robot-data), 1,000 reachable targets per
robot: forward kinematics, in float64, of joint values drawn uniformly within the limits
(seed 0). Each library solves all of them at once, in float32 and in float64:

* ikrl: :func:`ikrl.solver.solve` with its defaults (tolerances 1 mm, 1 deg), but seed 1:
  its random draws come from a generator seeded like the targets' one, so with seed 0
  its first starts *are* the answers;
* pytorch_kinematics, twice: ``PseudoInverseIK`` with its defaults plus joint limits (the
  sampling range, same bounds as ikrl's), 10 retries, tolerances 1 mm / 1 deg, as the issue
  timed it ("pytorch_kinematics", the peer of the 20x bar); and the same with
  ``early_stopping_any_converged=True`` ("early-stop": faster, same answers). Global torch
  seed 1. For each target the best of its retries counts (within the limits first, then the
  smallest error relative to the tolerances). If it raises, the row says "crashed" (it does
  in float32 on the CR5 and the UR5 with ``--pk-lm-damping 0``, the undamped solve of
  pytorch_kinematics before 0.10).

Both libraries' answers are judged identically: ikrl's float64 forward kinematics of the
joint values, then :func:`ikrl.se3.pose_errors` against the float64 targets; success is
both errors under tolerance, and joint values count as within limits up to 1e-6. Times are
the best of ``--repeats`` warm calls (alternating between the libraries); solutions/s is
targets answered per second. Then the batch-1 latency of ikrl: for 50 single targets, the
best of 3 calls each, and the median over the targets. With ``--checkpoint``, the CR5
targets again, solved with the trained policy's rollout as the first start, for several
rollout lengths, against no policy (the environment stack is built once before timing).

Prints markdown tables and checks the bars set in issue 5: ikrl succeeds on at least 99.9%
of targets, all its solutions are within the limits, and it is at least 20x faster than
pytorch_kinematics (in the same dtype; if pytorch_kinematics crashed there, against its
other dtype, so marked). The ratio against the early-stop variant is printed beside it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import ikrl_robots
import torch

import ikrl
from ikrl.kinematics.protocol import bounds
from ikrl.kinematics.se3 import pose_errors
from ikrl.solver.pool import solve
from ikrl.util.timing import alternating_times

ROBOTS = ["dobot_cr5", "panda", "ur5"]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
TOL_POS = 1e-3  # metres
TOL_ROT = math.radians(1.0)
LIMIT_TOL = 1e-6
TARGET_SEED = 0
SOLVER_SEED = 1  # not TARGET_SEED: see the module docstring
PK_RETRIES = 10
#: pytorch_kinematics as the issue measured it: its defaults, with joint limits and our tolerances.
PK_SETTINGS = {"num_retries": PK_RETRIES, "pos_tolerance": TOL_POS, "rot_tolerance": TOL_ROT}
#: The same, stopping as soon as any retry of every target converged: faster, same answers.
PK_EARLY = {**PK_SETTINGS, "early_stopping_any_converged": True}
PK_VARIANTS = {"pytorch_kinematics": PK_SETTINGS, "pytorch_kinematics early-stop": PK_EARLY}
LATENCY_TARGETS = 50
LATENCY_CALLS = 3
SUCCESS_BAR = 0.999
RATIO_BAR = 20.0
#: The peer of the speed bar: pytorch_kinematics as the issue timed it (its default stopping rule).
BAR_PEER = "pytorch_kinematics"


def robot_source(name: str) -> tuple[Path, str, str]:
    """URDF path, base and tip link of a robot: ikrl's own, or the UR5 of example-robot-data."""
    if name != "ur5":
        info = ikrl_robots.info(name)
        return info.urdf, info.base, info.tip
    prefix = importlib.metadata.distribution("example-robot-data").locate_file("cmeel.prefix")
    urdf = Path(str(prefix)) / "share/example-robot-data/robots/ur_description/urdf/ur5_robot.urdf"
    links = {link.get("name") for link in ElementTree.parse(urdf).getroot().iter("link")}
    return urdf, "base_link", "tool0" if "tool0" in links else "ee_link"


def pytorch_kinematics_chain(urdf: Path, base: str, tip: str, dtype: torch.dtype):
    import pytorch_kinematics as pk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain = pk.build_serial_chain_from_urdf(urdf.read_bytes(), tip, base)
    return chain.to(dtype=dtype)


def score(chain64: ikrl.Chain, q: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The common judge: ikrl float64 forward kinematics of ``q`` ``[..., dof]`` against ``targets``."""
    q = q.detach().to(torch.float64)
    flat = q.reshape(-1, chain64.dof)
    expanded = targets.reshape(targets.shape[0], *([1] * (q.dim() - 2)), 4, 4).expand(*q.shape[:-1], 4, 4)
    position, rotation = pose_errors(chain64.forward_kinematics(flat).reshape(*q.shape[:-1], 4, 4), expanded)
    position = torch.nan_to_num(position, nan=math.inf)
    rotation = torch.nan_to_num(rotation, nan=math.inf)
    within = ((q >= chain64.lower - LIMIT_TOL) & (q <= chain64.upper + LIMIT_TOL)).all(-1)
    return {
        "position": position,
        "rotation": rotation,
        "success": (position < TOL_POS) & (rotation < TOL_ROT),
        "within": within,
    }


def best_seconds(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Best wall time of each function over ``repeats`` warm calls, alternating between them
    (:func:`ikrl.util.timing.alternating_times`)."""
    return [min(record) for record in alternating_times(fns, rounds=repeats)]


def summary(judged: dict[str, torch.Tensor]) -> dict:
    failing = torch.nonzero(~judged["success"]).squeeze(-1)
    return {
        "success_rate": float(judged["success"].double().mean()),
        "failures": int(failing.numel()),
        "all_within_limits": bool(judged["within"].all()),
        "outside_limits": int((~judged["within"]).sum()),
        "max_position_error_m": float(judged["position"].max()),
        "max_rotation_error_rad": float(judged["rotation"].max()),
        "failing_targets": [
            {"index": int(i), "position_error_m": float(judged["position"][i]),
             "rotation_error_rad": float(judged["rotation"][i])}
            for i in failing[:20]
        ],
    }  # fmt: skip


def run_pytorch_kinematics(name, urdf, base, tip, dtype, low, high, goal, targets, chain64, settings, label) -> tuple[dict, Callable | None]:
    """One pytorch_kinematics row (or a "crashed" one) and its timed call, if it runs."""
    import pytorch_kinematics as pk

    n = len(goal)
    row: dict = {"robot": name, "dtype": str(dtype).removeprefix("torch."), "library": label, "targets": n}
    try:
        theirs = pytorch_kinematics_chain(urdf, base, tip, dtype)
        torch.manual_seed(SOLVER_SEED)  # PseudoInverseIK draws its retry starts from the global generator
        ik = pk.PseudoInverseIK(theirs, joint_limits=torch.stack([low, high], -1).to(dtype), **settings)

        def run(goal: torch.Tensor = goal, ik=ik):
            return ik.solve(pk.Transform3d(matrix=goal, dtype=goal.dtype))

        run(goal[:16])  # warm-up
        result = run()
        candidates = score(chain64, result.solutions, targets)  # [N, retries]
        badness = torch.maximum(candidates["position"] / TOL_POS, candidates["rotation"] / TOL_ROT)
        badness = badness + torch.where(candidates["within"], 0.0, 1e9)
        pick = badness.argmin(-1)
        best_q = result.solutions[torch.arange(n), pick]
        row.update(summary(score(chain64, best_q, targets)))
        row["reported_success_rate"] = float(result.converged_any.double().mean())
        row["batch_iterations"] = int(result.iterations)
        return row, run
    # A crash is a result to report, whatever its type.
    except Exception as error:  # noqa: BLE001
        row["crashed"] = type(error).__name__
        row["error"] = str(error)[:300]
        return row, None


def reachable_targets(chain64: ikrl.Chain, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark's targets: joint values uniform within the limits (seed ``TARGET_SEED``),
    float64, and the poses they reach."""
    low, high = bounds(chain64)
    generator = torch.Generator().manual_seed(TARGET_SEED)
    q_true = low + (high - low) * torch.rand(n, chain64.dof, generator=generator, dtype=torch.float64)
    return q_true, chain64.forward_kinematics(q_true)


def measure(name: str, n: int, repeats: int, variants: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    urdf, base, tip = robot_source(name)
    chain64 = ikrl.load_chain(urdf, base=base, tip=tip, dtype=torch.float64)
    low, high = bounds(chain64)
    q_true, targets = reachable_targets(chain64, n)

    # Same answers first: the two libraries must agree on the robot, and the targets be reachable.
    if not bool(score(chain64, q_true, targets)["success"].all()):
        raise SystemExit(f"{name}: the targets' own joint values do not reach them; not timing")
    check = q_true[:64]
    for dtype in DTYPES.values():
        theirs = pytorch_kinematics_chain(urdf, base, tip, dtype)
        gap = (
            (theirs.forward_kinematics(check.to(dtype)).get_matrix().double() - targets[:64])
            .abs()
            .max()
            .item()
        )
        if gap > 1e-4:
            raise SystemExit(f"{name}: ikrl and pytorch_kinematics disagree ({gap:.1e}, {dtype}); not timing")

    rows, latency = [], []
    for dtype_name, dtype in DTYPES.items():
        chain = chain64.to(dtype=dtype)
        goal = targets.to(dtype)

        def run_ikrl(goal: torch.Tensor = goal, chain: ikrl.Chain = chain):
            return solve(chain, goal, position_tolerance=TOL_POS, rotation_tolerance=TOL_ROT, seed=SOLVER_SEED)

        run_ikrl(goal[:16])  # warm-up
        ours = run_ikrl()
        judged = score(chain64, ours.q, targets)
        ikrl_row = {
            "robot": name, "dtype": dtype_name, "library": "ikrl", "targets": n, **summary(judged),
            "reported_success_rate": ours.success_rate,
            "mean_iterations": float(ours.iterations.double().mean()),
            "max_iterations": int(ours.iterations.max()),
            "mean_attempts": float(ours.attempts.double().mean()),
        }  # fmt: skip
        pk_rows, runs = [], [run_ikrl]
        for label, settings in variants.items():
            row, run = run_pytorch_kinematics(name, urdf, base, tip, dtype, low, high, goal, targets, chain64, settings, label)
            pk_rows.append(row)
            if run is not None:
                runs.append(run)
        try:
            seconds = best_seconds(runs, repeats)
        except Exception as error:  # noqa: BLE001 - a peer crashing on a timed call is reported
            for row in pk_rows:
                row.setdefault("crashed", type(error).__name__)
                row.setdefault("error", str(error)[:300])
            seconds = best_seconds([run_ikrl], repeats)
        ikrl_row["seconds"] = seconds[0]
        for row, value in zip([r for r in pk_rows if "crashed" not in r], seconds[1:], strict=False):
            row["seconds"] = value
        for row in (ikrl_row, *pk_rows):
            if "seconds" in row:
                row["solutions_per_second"] = n / row["seconds"]
        rows += [ikrl_row, *pk_rows]

        # Batch-1 latency of ikrl.
        singles = goal[:LATENCY_TARGETS]
        for _ in range(3):
            run_ikrl(singles[:1])
        per_target, solved = [], 0
        for i in range(len(singles)):
            best = math.inf
            for _ in range(LATENCY_CALLS):
                start = time.perf_counter()
                one = run_ikrl(singles[i : i + 1])
                best = min(best, time.perf_counter() - start)
            per_target.append(best)
            solved += int(score(chain64, one.q, targets[i : i + 1])["success"].item())
        latency.append(
            {"robot": name, "dtype": dtype_name, "targets": len(singles), "median_s": statistics.median(per_target),
             "max_s": max(per_target), "solved": solved}
        )  # fmt: skip

    # Ratios: each pk variant's time over ikrl's, in the same dtype, else against that variant's other dtype.
    by_key = {(row["dtype"], row["library"]): row for row in rows}
    for dtype_name in DTYPES:
        ours = by_key[(dtype_name, "ikrl")]
        ours["ratios"] = {}
        for label in variants:
            theirs = by_key[(dtype_name, label)]
            against = dtype_name
            if "seconds" not in theirs:
                others = [by_key[(d, label)] for d in DTYPES if d != dtype_name and "seconds" in by_key[(d, label)]]
                if not others:
                    continue
                theirs = min(others, key=lambda o: o["seconds"])
                against = theirs["dtype"]
            ours["ratios"][label] = {"ratio": theirs["seconds"] / ours["seconds"], "against": against}
    return rows, latency


def verdict(row: dict) -> str:
    if row["library"] != "ikrl":
        return ""
    problems = []
    if row["success_rate"] < SUCCESS_BAR:
        problems.append(f"success < {SUCCESS_BAR:.1%}")
    if not row["all_within_limits"]:
        problems.append("outside limits")
    bar = row["ratios"].get(BAR_PEER)
    if bar is None:
        problems.append("no pk time to compare")
    elif bar["ratio"] < RATIO_BAR:
        problems.append(f"speed < {RATIO_BAR:g}x")
    return "pass" if not problems else "FAIL (" + "; ".join(problems) + ")"


def _ratio(entry: dict | None, dtype: str) -> str:
    if entry is None:
        return "n/a"
    text = f"{entry['ratio']:.1f}x"
    return text + (f" (vs {entry['against']})" if entry["against"] != dtype else "")


def cells(row: dict) -> list[str]:
    if "crashed" in row:
        return [f"crashed: {row['crashed']}", "", "", "", "", "", ""]
    within = "yes" if row["all_within_limits"] else f"no ({row['outside_limits']} outside)"
    success = f"{row['success_rate']:.1%}" + (f" ({row['failures']} failed)" if row["failures"] else "")
    if row["library"] == "ikrl":
        iterations = f"{row['mean_iterations']:.1f} (mean per target)"
        ratio = _ratio(row["ratios"].get("pytorch_kinematics"), row["dtype"])
        early = _ratio(row["ratios"].get("pytorch_kinematics early-stop"), row["dtype"])
    else:
        iterations = f"{row['batch_iterations']} (batch)"
        ratio = early = ""
    seconds = f"{row['seconds'] * 1e3:.0f} ms" if "seconds" in row else "n/a"
    rate = f"{row['solutions_per_second']:,.0f}" if "seconds" in row else "n/a"
    return [success, within, seconds, rate, iterations, ratio, early]


def warm_start(checkpoint: Path, n: int, repeats: int, steps: list[int]) -> list[dict]:
    """The CR5 solved from a trained policy's rollouts (several lengths) and without one."""
    from ikrl.rl.checkpoint import load_checkpoint
    from ikrl.rl.warmstart import policy_starts

    loaded = load_checkpoint(checkpoint)
    urdf, base, tip = robot_source("dobot_cr5")
    chain64 = ikrl.load_chain(urdf, base=base, tip=tip, dtype=torch.float64)
    chain = chain64.to(dtype=getattr(torch, loaded.env.get("dtype", "float32")))
    _, targets = reachable_targets(chain64, n)
    goal = targets.to(chain.dtype)
    loaded.make_env(batch_size=1)  # builds (and imports) the environment stack once, outside the timings
    cases = {"no policy": None, **{f"policy, {k} steps": k for k in steps}}
    rows = []
    for label, k in cases.items():
        kwargs = {} if k is None else {"warm_start": lambda q, k=k: policy_starts(loaded, chain, goal, q, steps=k)}

        def run(kwargs=kwargs):
            return solve(chain, goal, position_tolerance=TOL_POS, rotation_tolerance=TOL_ROT, seed=SOLVER_SEED, **kwargs)

        result = run()
        (seconds,) = best_seconds([run], repeats)
        judged = score(chain64, result.q, targets)
        rows.append({"case": label, "policy_steps": k, "success_rate": float(judged["success"].double().mean()),
                     "mean_iterations": float(result.iterations.double().mean()),
                     "mean_attempts": float(result.attempts.double().mean()), "seconds": seconds})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000, help="targets per robot (default 1000)")
    parser.add_argument("--quick", action="store_true", help="200 targets per robot, 1 timed call")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed calls per library and case (best counts)"
    )
    parser.add_argument(
        "--pk-lm-damping",
        type=float,
        help="pytorch_kinematics' lm_damping (default: its own, 0.1; 0 as before 0.10)",
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="a trained CR5 run: also measure the solver warm-started by its policy"
    )
    parser.add_argument(
        "--policy-steps", type=int, nargs="+", default=[5, 20, 100], help="rollout lengths of the warm start"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.targets, args.repeats = 200, 1
    variants = {label: dict(settings) for label, settings in PK_VARIANTS.items()}
    if args.pk_lm_damping is not None:
        for settings in variants.values():
            settings["lm_damping"] = args.pk_lm_damping
    torch.set_num_threads(args.threads)

    rows, latency = [], []
    for name in ROBOTS:
        robot_rows, robot_latency = measure(name, args.targets, args.repeats, variants)
        rows += robot_rows
        latency += robot_latency
    warm = warm_start(args.checkpoint, args.targets, args.repeats, args.policy_steps) if args.checkpoint else []

    pk_version = importlib.metadata.version("pytorch_kinematics")
    print(
        f"torch {torch.__version__}, pytorch_kinematics {pk_version}, {args.threads} threads, "
        f"{args.targets:,} targets per robot, best of {args.repeats}, {platform.processor() or platform.machine()}"
    )
    for label, settings in variants.items():
        print(f"{label} settings: {settings} (others its defaults; joint limits on)")
    print(f"bar: at least {SUCCESS_BAR:.1%} solved, all within limits, at least {RATIO_BAR:g}x faster than {BAR_PEER}")
    print()
    n = f"{args.targets:,}"
    print(
        f"| robot | dtype | library | success (1 mm, 1 deg) | all within limits | time for {n} | solutions/s "
        f"| iterations | pk / ikrl time | pk early-stop / ikrl time | bar |"
    )
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        values = " | ".join(cells(row))
        print(f"| {row['robot']} | {row['dtype']} | {row['library']} | {values} | {verdict(row)} |")
    print()
    print(
        f"ikrl batch-1 latency (median over {LATENCY_TARGETS} single targets, best of {LATENCY_CALLS} calls each):"
    )
    print()
    for entry in latency:
        print(
            f"- {entry['robot']} {entry['dtype']}: {entry['median_s'] * 1e3:.2f} ms "
            f"(slowest {entry['max_s'] * 1e3:.2f} ms; {entry['solved']}/{entry['targets']} solved)"
        )
    if warm:
        print()
        print(f"ikrl on the CR5 warm-started by the policy of {args.checkpoint} ({args.targets:,} targets, best of {args.repeats}):")
        print()
        print("| case | success (1 mm, 1 deg) | iterations per target (mean) | candidate starts (mean) | time | solutions/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for entry in warm:
            print(
                f"| {entry['case']} | {entry['success_rate']:.1%} | {entry['mean_iterations']:.1f} | "
                f"{entry['mean_attempts']:.2f} | {entry['seconds'] * 1e3:,.0f} ms | {args.targets / entry['seconds']:,.0f} |"
            )
    failing = [row for row in rows if row.get("failures")]
    if failing:
        print()
        print("Failed targets (position error mm, rotation error deg), first 5 per case:")
        print()
        for row in failing:
            shown = ", ".join(
                f"#{t['index']}: {t['position_error_m'] * 1e3:.3g} mm, {math.degrees(t['rotation_error_rad']):.3g} deg"
                for t in row["failing_targets"][:5]
            )
            print(f"- {row['robot']} {row['dtype']} {row['library']} ({row['failures']}): {shown}")
    crashed = [row for row in rows if "crashed" in row]
    if crashed:
        print()
        print("Crashes:")
        print()
    for row in crashed:
        print(f"- {row['robot']} {row['dtype']} {row['library']} crashed: {row['crashed']}: {row['error']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"threads": args.threads, "torch": torch.__version__, "pytorch_kinematics": pk_version,
                 "targets": args.targets, "repeats": args.repeats, "target_seed": TARGET_SEED,
                 "solver_seed": SOLVER_SEED, "tolerances": {"position_m": TOL_POS, "rotation_rad": TOL_ROT},
                 "pytorch_kinematics_settings": variants, "rows": rows, "latency": latency, "warm_start": warm},
                indent=2,
            )
        )  # fmt: skip


if __name__ == "__main__":
    main()
