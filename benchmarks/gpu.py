"""ikrl on a GPU: kinematics, env.step, the solver and one training update, timed in one command.

    python benchmarks/gpu.py [--device cuda] [--quick] [--threads 2] [--out gpu.md] [--json gpu.json]

All in float32 on ``--device`` (default ``cuda``):

* forward kinematics of the Dobot CR5 and the Panda at batch 65,536 and 1,048,576, and their
  Jacobians at batch 4,096 and 262,144 (joint values uniform within the limits, seed 0),
  under ``torch.no_grad()``: poses (or Jacobians) per second;
* ``env.step`` of ``make_env("dobot_cr5+weighted_pose+sincos", batch_size=65_536,
  device=...)``: blocks of 10 ``env.step_and_maybe_reset(td)`` calls (the returned
  tensordict fed back, as TorchRL's collectors do), one random action drawn once, under
  ``torch.no_grad()``: transitions per second;
* the solver, ``ikrl.solve(..., backend="tensor")`` (the compiled path runs on the CPU only),
  on 10,000 reachable CR5 targets (``benchmarks/solve.py``'s ``reachable_targets``, seed 0;
  solver seed 1; 1 mm / 1 deg): success (judged like solve.py, in float64 on the CPU:
  within tolerance and within the limits) and time per target;
* one training update: ``APG.update()`` (``ikrl.rl.training.apg``, its default
  hyperparameters: horizon 3) on ``make_env(..., batch_size=16_384, device=...)`` with the
  anchored MLP ``Policy`` (256x3) that ``ikrl train`` builds; ms per update and transitions
  per second. APG rather than the default ``goal`` algorithm: ``goal`` trains its heads in
  a worker process, so one ``update()`` of it does not time the GPU's work alone.

Timing: ``torch.cuda.synchronize()`` before each timed call and inside it, at its end; two
warm-up calls (the solver: one; success is that of the last call), then the
median of 5 timed calls (``--quick``: one warm-up, 2 calls, a 32x32 policy). Prints a markdown
table (written with ``--out``). There are no bars: these are the figures to set them from.
Sized to finish in under 5 minutes on an H200-class GPU (an estimate: the solver's 10,000
targets dominate; ``total`` at the end says what it took). Without a CUDA device it prints "no CUDA device:
nothing to time" and exits 0; ``--device cpu --quick`` runs the same code at tiny sizes on
the CPU (the smoke test does, tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

FULL = {"fk": [65_536, 1_048_576], "jac": [4_096, 262_144], "env": 65_536, "env_steps": 10,
        "solve": 10_000, "train": 16_384, "calls": 5, "warmup": 2, "hidden": (256, 256, 256)}  # fmt: skip
#: --quick: checks the code runs (e.g. on the CPU); fewer calls, a small policy.
QUICK = {"fk": [256, 1024], "jac": [64, 256], "env": 256, "env_steps": 2,
         "solve": 8, "train": 64, "calls": 2, "warmup": 1, "hidden": (32, 32)}  # fmt: skip
ROBOTS = ["dobot_cr5", "panda"]
SPEC = "dobot_cr5+weighted_pose+sincos"


class Timer:
    """Medians of synchronised calls on one device."""

    def __init__(self, device: torch.device, calls: int, warmup: int) -> None:
        self.device, self.calls, self.warmup = device, calls, warmup

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def median(self, fn: Callable[[], object], *, warmup: int | None = None) -> float:
        """Median wall seconds of ``calls`` calls of ``fn``, each ending with a synchronize,
        after ``warmup`` untimed ones."""
        from ikrl.util.timing import alternating_times

        def synced() -> None:
            fn()
            self.sync()

        self.sync()
        (times,) = alternating_times(
            [synced], calls=self.calls, warmup=self.warmup if warmup is None else warmup
        )
        return statistics.median(times)


def kinematics(timer: Timer, sizes: dict) -> list[dict]:
    import ikrl_robots

    import ikrl

    rows = []
    for name in ROBOTS:
        info = ikrl_robots.info(name)
        chain = ikrl.load_chain(info.urdf, base=info.base, tip=info.tip, dtype=torch.float32).to(
            device=timer.device
        )
        generator = torch.Generator(device=timer.device).manual_seed(0)
        for what, fn, batches, unit in (("forward kinematics", chain.forward_kinematics, sizes["fk"], "poses/s"),
                                        ("Jacobian", chain.jacobian, sizes["jac"], "Jacobians/s")):  # fmt: skip
            for batch in batches:
                u = torch.rand(batch, chain.dof, generator=generator, device=timer.device)
                q = chain.lower + (chain.upper - chain.lower) * u
                with torch.no_grad():
                    seconds = timer.median(lambda fn=fn, q=q: fn(q))
                rows.append({"what": f"{name} {what}", "batch": batch, "seconds": seconds,
                             "rate": batch / seconds, "unit": unit, "note": ""})  # fmt: skip
                del q, u
    return rows


def env_step(timer: Timer, sizes: dict) -> dict:
    import ikrl

    batch, steps = sizes["env"], sizes["env_steps"]
    env = ikrl.make_env(SPEC, batch_size=batch, device=timer.device, seed=0)
    generator = torch.Generator(device=timer.device).manual_seed(0)
    with torch.no_grad():
        u = torch.rand(batch, env.chain.dof, generator=generator, device=timer.device, dtype=env.dtype)
        action = (2 * u - 1) * env.max_delta
        state = {"td": env.reset()}

        def block() -> None:
            td = state["td"]
            for _ in range(steps):
                td["action"] = action
                _, td = env.step_and_maybe_reset(td)
            state["td"] = td

        seconds = timer.median(block)
    return {"what": f"env.step `{SPEC}`", "batch": batch, "seconds": seconds / steps,
            "rate": batch * steps / seconds, "unit": "transitions/s", "note": f"blocks of {steps} steps"}  # fmt: skip


def solver(timer: Timer, sizes: dict) -> dict:
    import solve as sb  # benchmarks/solve.py, beside this script (its folder is on sys.path)

    import ikrl
    from ikrl.solver.pool import solve

    urdf, base, tip = sb.robot_source("dobot_cr5")
    chain64 = ikrl.load_chain(urdf, base=base, tip=tip, dtype=torch.float64)
    chain = chain64.to(device=timer.device, dtype=torch.float32)
    n = sizes["solve"]
    _, targets = sb.reachable_targets(chain64, n)
    goal = targets.to(device=timer.device, dtype=torch.float32)
    found = {}

    def run() -> None:
        found["result"] = solve(
            chain,
            goal,
            position_tolerance=sb.TOL_POS,
            rotation_tolerance=sb.TOL_ROT,
            seed=sb.SOLVER_SEED,
            backend="tensor",
        )

    seconds = timer.median(run, warmup=1)
    judged = sb.score(chain64, found["result"].q.cpu(), targets)
    success = float((judged["success"] & judged["within"]).double().mean())
    return {"what": "solve (CR5, backend='tensor')", "batch": n, "seconds": seconds / n, "rate": n / seconds,
            "unit": "targets/s", "note": f"success {success:.2%} (1 mm, 1 deg, within limits)",
            "success": success}  # fmt: skip


def training_update(timer: Timer, sizes: dict) -> dict:
    import ikrl
    from ikrl.rl.policy import Policy, goal_features
    from ikrl.rl.training.apg import APG

    batch = sizes["train"]
    env = ikrl.make_env(SPEC, batch_size=batch, device=timer.device, seed=0)
    torch.manual_seed(0)
    policy = Policy(
        env.observation_spec["observation"].shape[-1],
        env.max_delta,
        hidden=sizes["hidden"],
        goal_features=goal_features(env),
    ).to(timer.device)
    algorithm = APG(env, policy, seed=0)
    algorithm.set_progress(0.5)  # past the learning-rate warm-up; the schedule does not change the work
    seconds = timer.median(algorithm.update)
    transitions = algorithm.horizon * batch
    return {"what": "APG.update()", "batch": batch, "seconds": seconds, "rate": transitions / seconds,
            "unit": "transitions/s", "note": f"horizon {algorithm.horizon}, policy MLP {'x'.join(map(str, sizes['hidden']))}"}  # fmt: skip


def rate_text(rate: float, unit: str) -> str:
    """``rate`` per second, scaled: 1.23 M poses/s, 4.5 k targets/s, 12.0 transitions/s."""
    for scale, prefix in ((1e9, "G "), (1e6, "M "), (1e3, "k ")):
        if rate >= scale:
            return f"{rate / scale:.2f} {prefix}{unit}"
    return f"{rate:.1f} {unit}"


def table(rows: list[dict]) -> list[str]:
    lines = ["| what | batch | median time per call | rate | note |", "|---|---:|---:|---:|---|"]
    for row in rows:
        per_call = row["seconds"] * (row["batch"] if row["unit"] == "targets/s" else 1)
        time_text = f"{per_call * 1e3:.3f} ms" + (
            f" ({row['seconds'] * 1e6:.1f} us per target)" if row["unit"] == "targets/s" else ""
        )
        if row["what"].startswith("env.step"):
            time_text = f"{per_call * 1e3:.3f} ms per step"
        lines.append(
            f"| {row['what']} | {row['batch']:,} | {time_text} | {rate_text(row['rate'], row['unit'])} | {row['note']} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="cuda", help="torch device (default cuda); cpu runs the same code"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (to check the script, e.g. with --device cpu)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to time")
        return 0
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    timer = Timer(device, sizes["calls"], sizes["warmup"])
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    header = [
        f"{name} ({device}), torch {torch.__version__}, CUDA {torch.version.cuda}, float32"
        + (" (--quick: tiny sizes)" if args.quick else ""),
        f"median of {sizes['calls']} synchronised calls after {sizes['warmup']} warm-up call(s) (the solver: 1)",
        "",
    ]
    print("\n".join(header), flush=True)
    start = time.perf_counter()
    rows = kinematics(timer, sizes)
    rows.append(env_step(timer, sizes))
    rows.append(solver(timer, sizes))
    rows.append(training_update(timer, sizes))
    lines = [*table(rows), "", f"total {time.perf_counter() - start:.0f} s"]
    if device.type == "cuda":
        lines.append(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join([*header, *lines]) + "\n")
    if args.json:
        args.json.write_text(
            json.dumps({"device": name, "torch": torch.__version__, "sizes": sizes, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
