"""Training the goal network, in this process or in a worker process of its own.

:class:`HeadsTraining` takes one optimiser step at a time on fresh targets from the spec's
sampler (their poses by forward kinematics, so every target is reachable): no labels, no
rollouts. The ``goal`` algorithm (:mod:`ikrl.rl.training.goal`) either interleaves its steps
with the corrector's updates, or runs :func:`main` in a second process, one core each, for
the same CPU time.

The worker's folder holds ``init.pt`` (what it starts from, written by the parent),
``snapshot.pt`` (its latest weights and optimiser state, rewritten every few per cent of
its budget), ``final.pt`` and ``log.txt``; all written atomically, all plain data.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ikrl.rl.goal.heads import GoalNet, heads_loss
from ikrl.rl.training.schedules import cosine_lr
from ikrl.util.files import atomic_write
from ikrl.util.processes import end_with_parent

__all__ = ["HeadsTraining", "main"]

#: How often (fraction of its budget) the worker writes ``snapshot.pt``.
SNAPSHOT_EVERY = 0.02


class HeadsTraining:
    """One Adam step at a time for a :class:`~ikrl.rl.goal.heads.GoalNet`.

    Args:
        net: trained in place.
        chain: the arm; sampler: the spec's sampler (its target joint values are used).
        seed: of the target stream.
        lr: peak learning rate (2 % warm-up, cosine decay to 1 %).
        batch: targets per step.
        mean_weight: weight of the mean-over-heads loss at the start; it decays linearly to 0
            at ``mean_until`` of the budget.
    """

    def __init__(
        self, net: GoalNet, chain, sampler, *, seed: int, lr: float = 2e-3, batch: int = 512, mean_weight: float = 0.05, mean_until: float = 0.7
    ) -> None:
        self.net, self.chain, self.sampler = net, chain, sampler
        self.lr, self.batch, self.mean_weight, self.mean_until = lr, batch, mean_weight, mean_until
        self.optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        self.generator = torch.Generator(device=chain.device).manual_seed(seed)
        self.steps = 0
        self.last_loss = math.nan

    def step(self, progress: float) -> float:
        """One step at ``progress`` (0 to 1) of the budget; returns the median best-head loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(progress, self.lr)
        weight = self.mean_weight * max(0.0, 1.0 - progress / self.mean_until) if self.mean_until > 0 else 0.0
        with torch.no_grad():
            _, target_q = self.sampler(self.chain, self.batch, self.generator)
            target = self.chain.forward_kinematics(target_q)
        loss, best = heads_loss(self.net, self.chain, target, weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 100.0)
        self.optimizer.step()
        self.steps += 1
        self.last_loss = float(best.median())
        return self.last_loss

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.steps = int(state["steps"])


def save_part(path: Path, record: dict[str, Any]) -> None:
    atomic_write(path, lambda partial: torch.save(record, partial))


def load_part(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m ikrl.rl.training.goal_heads FOLDER [PARENT_PID]``: train the goal network described by
    ``FOLDER/init.pt`` for its CPU seconds, writing snapshots and ``final.pt``."""
    from ikrl.env.make import make_env

    args = argv if argv is not None else sys.argv[1:]
    folder = Path(args[0])
    if len(args) > 1:  # the trainer's pid: this worker ends with it (ikrl.util.processes)
        end_with_parent(int(args[1]))
    init = load_part(folder / "init.pt")
    torch.set_num_threads(1)
    env = make_env(init["spec"], batch_size=1, seed=0, dtype=getattr(torch, init["dtype"]))
    net = GoalNet(**init["net_config"])
    net.load_state_dict(init["net_state"])
    heads = HeadsTraining(net, env.chain, env.sampler, seed=init["seed"], **init["options"])
    if init.get("trainer_state") is not None:
        heads.load_state_dict(init["trainer_state"])
    total, used_before = float(init["seconds"]), float(init.get("seconds_used", 0.0))
    start = time.process_time()
    next_snapshot = 0.0

    def record(used: float) -> dict[str, Any]:
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return {"net_state": state, "trainer_state": heads.state_dict(), "seconds_used": used, "loss": heads.last_loss}

    while True:
        used = used_before + time.process_time() - start
        progress = min(used / total, 1.0)
        if progress >= 1.0:
            break
        heads.step(progress)
        if progress >= next_snapshot:
            save_part(folder / "snapshot.pt", record(used))
            next_snapshot = progress + SNAPSHOT_EVERY
    save_part(folder / "final.pt", record(used_before + time.process_time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
