"""The solver's seed table: where its entries sit in pose space and which are near a target.

Both paths of :func:`ikrl.solve` rank the table with these, so that the tensor path and the
compiled one (:mod:`ikrl.solver.kernel`) start a target from the same entries.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NEIGHBOURS", "ROTATION_LENGTH", "nearest_in_parts", "pose_features"]

#: Seed-table neighbours tried per target before random restarts take over.
NEIGHBOURS = 8
#: Metres per unit of rotation-matrix difference when the seed table ranks poses.
ROTATION_LENGTH = 0.2


def pose_features(pose: Tensor) -> Tensor:
    """``[N, 12]``: the position (metres) and :data:`ROTATION_LENGTH` times the rotation
    matrix (row by row) of poses ``[N, 4, 4]``, the space the seed table is searched in.

    Examples:
        >>> pose_features(torch.eye(4, dtype=torch.float64)[None]).tolist()
        [[0.0, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.2]]
    """
    return torch.cat([pose[:, :3, 3], ROTATION_LENGTH * pose[:, :3, :3].reshape(-1, 9)], -1)


def nearest_in_parts(table: Tensor, wanted: Tensor, k: int) -> Tensor:
    """``[N, k]`` indices into ``table [size, F]`` (``size`` a multiple of ``k``): the entry
    nearest to each row of ``wanted [N, F]`` (Euclidean) in each of ``k`` equal parts of the
    table, nearest first.

    The ``k`` nearest of one table tend to share a basin; the nearest of each part are ``k``
    independent near starts, and an ``argmin`` costs a fraction of a ``topk``.

    Examples:
        >>> table = torch.tensor([[0.0], [5.0], [1.0], [9.0]])
        >>> nearest_in_parts(table, torch.tensor([[0.9], [6.0]]), 2).tolist()
        [[2, 0], [1, 3]]
    """
    size = table.shape[0]
    # |a - b|^2 - |a|^2 = |b|^2 - 2 a.b: the ranking for each target, in one addmm.
    distance = torch.addmm((table * table).sum(-1), wanted, table.T.contiguous(), alpha=-2.0)
    best, index = distance.view(len(wanted), k, size // k).min(-1)
    index = index + torch.arange(k, device=index.device) * (size // k)
    return index.gather(-1, best.argsort(-1))
