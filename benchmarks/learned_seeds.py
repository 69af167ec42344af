"""The solver with and without a goal network's heads as seeds, in the same run.

    python benchmarks/learned_seeds.py RUN [RUN ...] [--targets 1000] [--repeats 3] [--threads 2]

For each trained ``goal`` run (a run folder or checkpoint), on the same ``targets`` reachable
poses (forward kinematics of uniform joint values, seed 0), float32 chain, success within
1 mm and 1 degree: :func:`ikrl.solve` with its defaults (a seed table of 2,048 entries, then
restarts) against the same call with ``warm_start`` giving each target the run's K heads,
nearest first, before the seed table. Each configuration runs ``repeats`` times, alternating;
the table gives success, mean iterations and candidate starts per target (identical from run
to run), and the median and worst wall time of the whole batch (the heads' time included).
The bar: learned seeds cost fewer iterations per target and no more wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import ikrl
from ikrl.rl.checkpoint import load_checkpoint
from ikrl.rl.warmstart import policy_starts
from ikrl.solver.targets import random_targets


def compare(run: str, n: int, repeats: int) -> tuple[list[tuple[str, ...]], bool]:
    """Table rows for one run, and whether it meets the bar."""
    checkpoint = load_checkpoint(run)
    if checkpoint.policy_kind != "goal":
        raise SystemExit(f"{run}: trained with {checkpoint.algorithm!r}; learned seeds need a goal run")
    chain = checkpoint.make_env(batch_size=1).chain
    _, targets = random_targets(chain, n, seed=0)
    solvers = {
        "seed table": lambda: ikrl.solve(chain, targets),
        "learned seeds": lambda: ikrl.solve(chain, targets, warm_start=lambda q: policy_starts(checkpoint, chain, targets, q)),
    }
    times: dict[str, list[float]] = {name: [] for name in solvers}
    results = {}
    for _ in range(repeats):
        for name, solve in solvers.items():
            start = time.perf_counter()
            results[name] = solve()
            times[name].append(time.perf_counter() - start)
    rows = []
    for name, result in results.items():
        rows.append(
            (
                chain.name,
                name,
                f"{100 * float(result.success.double().mean()):.1f} %",
                f"{float(result.iterations.double().mean()):.1f}",
                f"{float(result.attempts.double().mean()):.2f}",
                f"{1000 * statistics.median(times[name]) / n:.3f}",
                f"{1000 * max(times[name]) / n:.3f}",
            )
        )
    fewer = float(results["learned seeds"].iterations.double().mean()) < float(results["seed table"].iterations.double().mean())
    faster = statistics.median(times["learned seeds"]) <= statistics.median(times["seed table"])
    rows.append((chain.name, "bar: fewer iterations, no more time", "", "pass" if fewer else "FAIL", "", "pass" if faster else "FAIL", ""))
    return rows, fewer and faster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, passed = [], True
    for run in args.runs:
        robot_rows, ok = compare(run, args.targets, args.repeats)
        rows += robot_rows
        passed &= ok
    print(f"{args.targets} targets per robot, success within 1 mm / 1 deg, {args.repeats} alternating runs, {args.threads} threads\n")
    print("| robot | starts | success | iterations / target | candidates / target | ms / target (median) | ms / target (worst) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
