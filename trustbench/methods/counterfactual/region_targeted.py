"""Region-targeted counterfactuals: a generator with one latent code per image cell; only chosen codes move.

After Jacob, Zablocki, Ben-Younes, Chen, Pérez & Cord, "STEEX: Steering Counterfactual Explanations with
Semantics", ECCV 2022.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier, ExplanationData
from trustbench.methods.counterfactual.generative import (
    VAE,
    GenerativeConfig,
    LatentExplainer,
    cached_generative,
)
from trustbench.methods.counterfactual.regions import GRID, touched_cells
from trustbench.methods.counterfactual.search import SeededExplainer

_CELLS = GRID * GRID
# per-cell codes are small: 16 cells × 4 dimensions is the 64 a whole-image VAE would have at most here
REGION_GENERATIVE = {"latent_dim": 4}


def _patches(x: Tensor) -> Tensor:
    """Images (N, C, H, W) → the GRID × GRID cells' pixels (N, cells, C·h·w), row-major cells."""
    n, c, height, width = x.shape
    h, w = height // GRID, width // GRID
    return x.view(n, c, GRID, h, GRID, w).permute(0, 2, 4, 1, 3, 5).reshape(n, _CELLS, c * h * w)


def _image(patches: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The inverse of :func:`_patches`: (N, cells, C·h·w) → (N, C, H, W)."""
    c, height, width = shape
    h, w = height // GRID, width // GRID
    grid = patches.view(len(patches), GRID, GRID, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(len(patches), c, height, width)


def _cell_mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs + _CELLS, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class CellEncoder(nn.Module):
    """Each cell's pixels and its position (one-hot) → that cell's posterior mean and log-variance.

    Output (N, 2·cells·d): every cell's means first, then every cell's log-variances, the layout
    :meth:`VAE.posterior` splits in two; cell i's code is columns i·d .. (i+1)·d of each half.
    """

    def __init__(self, patch: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.latent = latent
        self.net = _cell_mlp(patch, hidden, 2 * latent)
        self.register_buffer("cells", torch.eye(_CELLS), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        patches = _patches(x)
        codes = self.net(torch.cat([patches, self.cells.expand(len(x), -1, -1)], dim=2))
        mean, logvar = codes.split(self.latent, dim=2)
        return torch.cat([mean.flatten(1), logvar.flatten(1)], dim=1)


class CellDecoder(nn.Module):
    """Each cell's code and its position → that cell's pixel logits only, so a code moves only its cell."""

    def __init__(self, shape: tuple[int, ...], hidden: int, latent: int) -> None:
        super().__init__()
        self.shape, self.latent = shape, latent
        self.net = _cell_mlp(latent, hidden, math.prod(shape) // _CELLS)
        self.register_buffer("cells", torch.eye(_CELLS), persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        codes = z.view(len(z), _CELLS, self.latent)
        patches = self.net(torch.cat([codes, self.cells.expand(len(z), -1, -1)], dim=2))
        return _image(patches, self.shape)


class RegionVAE(VAE):
    """A VAE whose code is one `latent_dim` code per cell of a GRID × GRID grid over the image.

    Cells are encoded and decoded independently (one small MLP shared by all cells, told the cell's
    position), which is what makes region targeting exact at the generator: changing a cell's code
    changes only that cell's pixels. Codes are (N, cells·latent_dim).
    """

    def networks(self, input_shape: tuple[int, ...], config: GenerativeConfig) -> tuple[nn.Module, ...]:
        if len(input_shape) != 3 or input_shape[1] % GRID or input_shape[2] % GRID:
            raise ValueError(
                f"region-targeted counterfactuals need images C×H×W with sides divisible by {GRID}; got "
                f"inputs of shape {input_shape}"
            )
        patch = math.prod(input_shape) // _CELLS
        return (
            CellEncoder(patch, config.hidden, config.latent_dim),
            CellDecoder(input_shape, config.hidden, config.latent_dim),
        )


class RegionTargeted(LatentExplainer):
    """Minimise CE(f(x'), target) + λ·‖z − z0‖² over the codes of the chosen regions' cells only.

    z0 is the :class:`RegionVAE` code of x. The codes of cells that hold no pixel of the input's region
    mask (``method.explain.regions``, see :mod:`~trustbench.methods.counterfactual.regions`) are reset to
    z0 after every step, as STEEX optimises only the specified regions' codes. The candidate x' is the
    decoded image pasted into x on the region's pixels (x elsewhere), so nothing outside the region
    changes, also for stroke/background masks that cut through cells and for the cells' reconstruction
    error. A search stops as soon as x' is assigned to the target (REVISE's rule); λ is `proximity_weight`.

    Departures from STEEX: no semantic segmentation or SEAN generator exists for these images, so the
    regions are grid cells or intensity masks and the generator is a VAE of per-cell codes; the paste step
    (not in STEEX, whose generator redraws the whole image) is what makes leakage exactly zero.
    """

    name = "region_targeted"
    targets_regions: ClassVar[bool] = True

    def __init__(
        self,
        proximity_weight: float = 0.01,
        steps: int = 300,
        lr: float = 0.05,
        generative: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(steps=steps, lr=lr, generative={**REGION_GENERATIVE, **(generative or {})})
        self.proximity_weight = proximity_weight

    def fit(self, data: ExplanationData) -> RegionTargeted:
        SeededExplainer.fit(self, data)  # not LatentExplainer's: the whole-image VAE is not used
        self.vae = cached_generative(RegionVAE, "region-vae", data, data.x_train, self.generative, None)
        return self

    def explain(
        self,
        model: Classifier,
        x: Tensor,
        target: Tensor,
        constraints: Constraints,
        regions: Tensor | None = None,
    ) -> Tensor:
        """Counterfactuals that change only the pixels where `regions` (N, *shape, bool) is True."""
        if regions is None or regions.shape != x.shape:
            raise ValueError(
                "region_targeted changes only the regions named by method.explain.regions (stroke, "
                "background, {quadrants: [...]} or {cells: [...]}); set it"
            )
        vae = self.fitted_vae(x.device)
        with torch.no_grad():
            start = vae.encode(x)
        moving = touched_cells(regions).repeat_interleave(self.generative.latent_dim, dim=1)

        def objective(z: Tensor, candidate: Tensor) -> Tensor:
            misfit = F.cross_entropy(model(candidate), target, reduction="none")
            return misfit + self.proximity_weight * (z - start).square().sum(dim=1)

        def reached(answer: Tensor) -> Tensor:
            return model(answer).argmax(dim=1) == target

        return self.search(
            start,
            x,
            constraints,
            objective,
            reached,
            keep_within=lambda z: torch.where(moving, z, start),
            paste=lambda decoded: torch.where(regions, decoded, x),
        )
