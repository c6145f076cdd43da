"""The image regions a region-targeted counterfactual may change (``method.explain.regions``), as pixel masks.

After Jacob et al., "STEEX: Steering Counterfactual Explanations with Semantics", ECCV 2022, where the user
names the semantic regions an explanation may change. Images here have no segmentation, so regions are
spatial or by intensity:

- ``{quadrants: [i, ...]}``: quadrants of the image, 0 top left, 1 top right, 2 bottom left, 3 bottom right;
- ``{cells: [i, ...]}``: cells of a 4×4 grid, row-major from the top left (0..15);
- ``stroke`` / ``background``: the pixels of each image brighter / not brighter than the middle of the
  pixel range (the digit's or garment's stroke, or what is around it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

GRID = 4
"""Cells per side of the region grid (and of the region-targeted generator's codes); a quadrant is 2×2."""
INTENSITY_REGIONS = ("stroke", "background")


def region_masks(spec: Any, x: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Per input (N, C, H, W) of images `x`, True on the pixels the counterfactual may change.

    `lower`/`upper` are the pixel range in model-input space (stroke/background split at its middle).
    Every channel of a chosen pixel may change.
    """
    if x.ndim != 4 or x.shape[2] % GRID or x.shape[3] % GRID:
        raise ValueError(
            f"method.explain.regions needs images (N, C, H, W) with sides divisible by {GRID}; got inputs of "
            f"shape {tuple(x.shape)}"
        )
    if spec in INTENSITY_REGIONS:
        middle = (lower + upper) / 2
        bright = (x > middle).any(dim=1, keepdim=True)
        return (bright if spec == "stroke" else ~bright).expand_as(x).clone()
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((kind, chosen),) = spec.items()
        if kind in ("quadrants", "cells") and isinstance(chosen, Sequence) and not isinstance(chosen, str):
            cells = _quadrant_cells(chosen) if kind == "quadrants" else _grid_cells(chosen)
            return cell_mask(cells, x.shape).expand_as(x).clone()
    raise ValueError(
        f"method.explain.regions={spec!r} is not a region; use stroke, background, "
        f"{{quadrants: [0..3, ...]}} or {{cells: [0..{GRID * GRID - 1}, ...]}} (a 4x4 grid, row-major)"
    )


def cell_mask(cells: Sequence[int], shape: torch.Size) -> Tensor:
    """(1, 1, H, W) mask of the given cells of the GRID × GRID grid over images of `shape` (N, C, H, W)."""
    height, width = shape[2] // GRID, shape[3] // GRID
    chosen = torch.zeros(GRID * GRID, dtype=torch.bool)
    chosen[list(cells)] = True
    grid = chosen.view(GRID, GRID).repeat_interleave(height, dim=0).repeat_interleave(width, dim=1)
    return grid.view(1, 1, shape[2], shape[3])


def touched_cells(masks: Tensor) -> Tensor:
    """(N, GRID·GRID) bools: which grid cells hold at least one pixel of each input's mask (N, C, H, W)."""
    n, _, height, width = masks.shape
    cells = masks.any(dim=1).view(n, GRID, height // GRID, GRID, width // GRID)
    return cells.any(dim=4).any(dim=2).reshape(n, GRID * GRID)


def _quadrant_cells(quadrants: Sequence[int]) -> list[int]:
    if not quadrants or any(not 0 <= int(q) <= 3 for q in quadrants):
        raise ValueError(f"quadrants are 0 (top left) .. 3 (bottom right); got {list(quadrants)}")
    half = GRID // 2
    cells = []
    for quadrant in quadrants:
        top, left = (int(quadrant) // 2) * half, (int(quadrant) % 2) * half
        cells += [(top + r) * GRID + left + c for r in range(half) for c in range(half)]
    return cells


def _grid_cells(cells: Sequence[int]) -> list[int]:
    if not cells or any(not 0 <= int(c) < GRID * GRID for c in cells):
        raise ValueError(f"cells of the {GRID}x{GRID} grid are 0..{GRID * GRID - 1}; got {list(cells)}")
    return [int(c) for c in cells]
