"""Incremental fitting: grow production's memory banks with the new normals' patches.

A full fit embeds every good image, picks a coreset from all their patches and
scores every bank image against the others for calibration. Most of that is
already done and lives in production's graph: its memory banks are initializers
of the ONNX file (``levels.<i>.search_matrix``, stored as ``[-2·bankᵀ; |bank|²]``).
So the incremental fit reads the banks back, embeds only the new normals,
continues the greedy k-center selection from the existing bank (the new patches
that lie farthest from every normal patch already known are added first), and
recalibrates on the held-out images plus the new normals scored without their
own patches.
"""

from __future__ import annotations

import onnx
import torch
from onnx import numpy_helper

from cloud.errors import RetrainError
from edge.runtime.bundle import ModelBundle

__all__ = ["extend_coreset", "prior_banks"]

_CHUNK_ROWS = 4096  # candidate patches per distance block: 4096 x 8192 floats is 128 MiB


def prior_banks(bundle: ModelBundle, level_dims: list[int]) -> list[torch.Tensor]:
    """The memory bank (M_l, D_l) of each level of a bundle's graph, finest first.

    Raises:
        RetrainError: a graph without the banks this detector writes (another exporter,
            other feature blocks); a full refit (the default) does not need them.
    """
    graph = onnx.load(str(bundle.model_path))
    matrices = {
        item.name: numpy_helper.to_array(item)
        for item in graph.graph.initializer
        if item.name.endswith(".search_matrix")
    }
    banks = []
    for index, dim in enumerate(level_dims):
        matrix = matrices.get(f"levels.{index}.search_matrix")
        if matrix is None or matrix.shape[0] != dim + 1:
            msg = (
                f"model {bundle.label}: its graph holds no level-{index} memory bank of width "
                f"{dim}; retrain without --incremental to fit every image again"
            )
            raise RetrainError(msg)
        # search_matrix = [-2 * bank^T; |bank|^2]; halving and negating is exact in binary.
        banks.append(torch.from_numpy(-0.5 * matrix[:-1].T.copy()).float())
    return banks


def _projected(points: torch.Tensor, projection: torch.Tensor | None) -> torch.Tensor:
    return (points @ projection if projection is not None else points).contiguous()


@torch.no_grad()
def extend_coreset(
    bank: torch.Tensor,
    candidates: torch.Tensor,
    size: int,
    *,
    seed: int = 0,
    projection_dim: int = 64,
) -> torch.Tensor:
    """Indices of ``size`` candidates that greedy k-center picks next, given ``bank``.

    The same selection ``greedy_coreset`` makes, started from a bank that is
    already chosen: each step adds the candidate farthest from the bank and
    from everything added so far. Candidates that normal patches already cover
    are left out, so the bank grows only where the new normals are new.
    """
    count, dim = candidates.shape
    if size >= count:
        return torch.arange(count)
    if size <= 0:
        return torch.empty(0, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    projection = (
        torch.randn(dim, projection_dim, generator=generator) / projection_dim**0.5
        if dim > projection_dim
        else None
    )
    points = _projected(candidates, projection)
    known = _projected(bank, projection)
    sq_norms = (points**2).sum(dim=1)
    known_sq = (known**2).sum(dim=1)
    nearest = torch.empty(count)
    for start in range(0, count, _CHUNK_ROWS):
        block = points[start : start + _CHUNK_ROWS]
        # |x - y|^2 = |x|^2 - 2 x.y + |y|^2: one matrix product per block, no cdist.
        squared = (
            (block @ known.T).mul_(-2.0).add_(known_sq).add_(sq_norms[start:][: len(block), None])
        )
        nearest[start : start + len(block)] = squared.min(dim=1).values
    selected = torch.empty(size, dtype=torch.long)
    squared_to_new = torch.empty(count)
    for step in range(size):
        selected[step] = int(torch.argmax(nearest))
        centre = points[selected[step]]
        torch.mv(points, centre, out=squared_to_new)
        squared_to_new.mul_(-2.0).add_(sq_norms).add_(sq_norms[selected[step]])
        torch.minimum(nearest, squared_to_new, out=nearest)
    return selected
