"""Growing Spheres: the nearest input of the target class found by sampling ever wider spherical layers."""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier
from trustbench.methods.counterfactual.search import SeededExplainer, group_matrix


class GrowingSpheres(SeededExplainer):
    """Laugel, Lesot, Marsala, Renard & Detyniecki, "Comparison-based inverse classification for
    interpretability in machine learning", IPMU 2018 (Algorithms 1 and 2). Model-agnostic: it only
    queries predicted classes.

    Generation, for each input x: draw `n_samples` points uniformly in the ball of radius η =
    `first_radius` around x; while any is classified as the target, halve η and draw again. Then draw in
    the spherical layers {a0 ≤ ‖z − x‖₂ < a1} = (η, 2η), (2η, 3η), ... until a layer holds a point of the
    target class; the nearest such point (L2) is the candidate. An input gets at most `max_layers` draws.
    Feature selection: in order of increasing change, put each changed feature back to its value in x
    whenever the prediction stays the target (as the authors' code does; a one-hot group is one feature).

    Points are drawn only along mutable elements and never downwards along increase-only ones (the
    direction's component there is taken in absolute value), then snapped to the constraints before they
    are classified, so distances and predictions are those of points the explainer may return. Inputs are
    processed together, each with its own radius, at most `max_elements` sampled values at a time. An
    input already classified as its target is its own counterfactual; one still searching after
    `max_layers` draws keeps the last target-class point it saw (from a ball it was shrinking), or itself.
    """

    name = "growing_spheres"

    def __init__(
        self,
        n_samples: int = 1000,
        first_radius: float = 0.1,
        max_layers: int = 200,
        max_elements: int = 2**23,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if n_samples < 1 or max_layers < 1 or first_radius <= 0:
            raise ValueError(
                f"need n_samples >= 1, max_layers >= 1 and first_radius > 0, got n_samples={n_samples}, "
                f"max_layers={max_layers}, first_radius={first_radius}"
            )
        self.n_samples = n_samples
        self.first_radius = first_radius
        self.max_layers = max_layers
        self.max_elements = max_elements

    @torch.no_grad()
    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        generator = self.generator()
        found = model(x).argmax(dim=-1) == target
        best = x.clone()
        eta = torch.full((len(x),), self.first_radius, dtype=x.dtype, device=x.device)
        low, high = torch.zeros_like(eta), eta.clone()
        shrinking = torch.ones_like(found)
        for _ in range(self.max_layers):
            rows = (~found).nonzero().squeeze(1)
            if len(rows) == 0:
                break
            hit, nearest = self._nearest_hits(
                model, x[rows], target[rows], low[rows], high[rows], constraints, generator
            )
            shrink = shrinking[rows]
            keep_shrinking = shrink & hit
            eta[rows] = torch.where(keep_shrinking, eta[rows] / 2, eta[rows])
            empty_up_to = torch.where(shrink, eta[rows], high[rows])  # no target-class point drawn inside
            low[rows] = torch.where(keep_shrinking, 0.0, empty_up_to)
            high[rows] = torch.where(keep_shrinking, eta[rows], empty_up_to + eta[rows])
            shrinking[rows] = keep_shrinking
            best[rows[hit]] = nearest[hit]
            found[rows[~shrink & hit]] = True
        return constraints.snap(self._select_features(model, x, best, target, constraints), x)

    def _nearest_hits(
        self,
        model: Classifier,
        x: Tensor,
        target: Tensor,
        low: Tensor,
        high: Tensor,
        constraints: Constraints,
        generator: torch.Generator,
    ) -> tuple[Tensor, Tensor]:
        """For each row of x: whether its layer (low, high) holds a target-class point, and the nearest."""
        chunk = max(1, self.max_elements // (self.n_samples * x[0].numel()))
        hits, nearest = [], []
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            samples = constraints.snap(
                self._sample_layer(x[part], low[part], high[part], constraints, generator), x[part]
            )
            predicted = model(samples.flatten(0, 1)).argmax(dim=-1).unflatten(0, samples.shape[:2])
            is_target = predicted == target[part].unsqueeze(1)
            distance = (
                (samples - x[part].unsqueeze(1)).flatten(2).norm(dim=-1).masked_fill(~is_target, float("inf"))
            )
            hits.append(is_target.any(dim=1))
            nearest.append(samples[torch.arange(len(samples)), distance.argmin(dim=1)])
        return torch.cat(hits), torch.cat(nearest)

    def _sample_layer(
        self, x: Tensor, low: Tensor, high: Tensor, constraints: Constraints, generator: torch.Generator
    ) -> Tensor:
        """`n_samples` points per row, uniform in its layer over the free directions: (rows, n, *shape).

        Uniform in volume: the radius is a1 · (ρ^d + (1 − ρ^d) u)^(1/d) with ρ = a0 / a1, u ~ U(0, 1) and
        d the number of mutable elements; the direction is a normalised Gaussian.
        """
        free = constraints.mutable.to(x.device)
        dims = int(free.sum())
        shape = (len(x), self.n_samples, *x.shape[1:])
        direction = torch.randn(shape, generator=generator).to(x) * free
        direction = torch.where(constraints.increase_only.to(x.device), direction.abs(), direction)
        direction = direction / direction.flatten(2).norm(dim=-1).clamp_min(1e-12).view(
            *shape[:2], *[1] * (x.ndim - 1)
        )
        inner = (low / high).pow(dims).unsqueeze(1)
        uniform = torch.rand(shape[:2], generator=generator).to(x)
        radius = high.unsqueeze(1) * (inner + (1 - inner) * uniform).pow(1 / max(dims, 1))
        return x.unsqueeze(1) + radius.view(*shape[:2], *[1] * (x.ndim - 1)) * direction

    def _select_features(
        self, model: Classifier, x: Tensor, counterfactual: Tensor, target: Tensor, constraints: Constraints
    ) -> Tensor:
        """Algorithm 2, batched: try putting back each changed feature, smallest change first."""
        size = x[0].numel()
        grouped = {column for group in constraints.onehot_groups for column in group}
        mutable = constraints.mutable.flatten().tolist()
        singles = [(column,) for column in range(size) if mutable[column] and column not in grouped]
        features = group_matrix([*constraints.onehot_groups, *singles], size).to(x)
        original, answer = x.flatten(1), counterfactual.flatten(1)
        change = (answer - original).abs() @ features.T
        order = change.argsort(dim=1)
        for position in range(len(features)):
            feature = order[:, position]
            changed = change.gather(1, feature.unsqueeze(1)).squeeze(1) > 0
            if not bool(changed.any()):
                continue
            trial = torch.where(features[feature].bool(), original, answer)
            keep = changed & (model(trial.view_as(x)).argmax(dim=-1) == target)
            answer = torch.where(keep.unsqueeze(1), trial, answer)
        return answer.view_as(x)
