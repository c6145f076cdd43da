"""Predictive distributions of a scalar target, one per row: what every regression metric reads.

Two families cover the methods here:

- :class:`GaussianMixture`: M weighted Gaussians per row. One component is the heteroscedastic Gaussian;
  T dropout samples or M ensemble members are an equal-weight mixture (Lakshminarayanan et al. 2017 score
  the mixture, not a Gaussian fitted to it).
- :class:`BinnedDensity`: K bins with probabilities, uniform inside each bin: the density a softmax over
  bins implies (classification-as-regression). Its mean is Σ p_k c_k with c_k the bin centres.

Both give mean, variance, log density, CDF and quantiles, and both can be moved to the target's own units
(:meth:`rescaled`: y = loc + scale · z). Quantiles of a mixture have no closed form and are found by
bisection on the CDF (60 halvings of a bracket wide enough to hold every component's ±12 σ).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

BISECTION_STEPS = 60


@dataclass(frozen=True)
class GaussianMixture:
    """Weights, means and stds shaped N × M (weights sum to 1 per row)."""

    weights: Tensor
    means: Tensor
    stds: Tensor

    @classmethod
    def gaussian(cls, mean: Tensor, std: Tensor) -> GaussianMixture:
        return cls(torch.ones_like(mean)[:, None], mean[:, None], std[:, None])

    @classmethod
    def equal_weights(cls, means: Tensor, stds: Tensor) -> GaussianMixture:
        """The mixture of T × N samples (each a Gaussian), every sample weighing 1/T."""
        means, stds = means.T, stds.T
        return cls(torch.full_like(means, 1 / means.shape[1]), means, stds)

    def mean(self) -> Tensor:
        return (self.weights * self.means).sum(1)

    def variance(self) -> Tensor:
        """Total variance: mean of the components' variances plus the variance of their means."""
        return self.aleatoric() + self.epistemic()

    def aleatoric(self) -> Tensor:
        return (self.weights * self.stds**2).sum(1)

    def epistemic(self) -> Tensor:
        return (self.weights * (self.means - self.mean()[:, None]) ** 2).sum(1)

    def log_prob(self, y: Tensor) -> Tensor:
        normal = torch.distributions.Normal(self.means, self.stds)
        return torch.logsumexp(self.weights.log() + normal.log_prob(y[:, None]), dim=1)

    def cdf(self, y: Tensor) -> Tensor:
        return (self.weights * torch.distributions.Normal(self.means, self.stds).cdf(y[:, None])).sum(1)

    def quantile(self, q: float) -> Tensor:
        low = (self.means - 12 * self.stds).min(1).values
        high = (self.means + 12 * self.stds).max(1).values
        for _ in range(BISECTION_STEPS):
            middle = (low + high) / 2
            below = self.cdf(middle) < q
            low, high = torch.where(below, middle, low), torch.where(below, high, middle)
        return (low + high) / 2

    def rescaled(self, loc: float, scale: float) -> GaussianMixture:
        return GaussianMixture(self.weights, loc + scale * self.means, scale * self.stds)


@dataclass(frozen=True)
class BinnedDensity:
    """Bin edges N × (K+1) (increasing) and bin probabilities N × K, uniform within each bin."""

    edges: Tensor
    probs: Tensor

    def centres(self) -> Tensor:
        return (self.edges[:, 1:] + self.edges[:, :-1]) / 2

    def widths(self) -> Tensor:
        return self.edges[:, 1:] - self.edges[:, :-1]

    def mean(self) -> Tensor:
        return (self.probs * self.centres()).sum(1)

    def centre_variance(self) -> Tensor:
        """Σ p_k (c_k − mean)²: the spread of the bin centres, CaR's uncertainty."""
        return (self.probs * (self.centres() - self.mean()[:, None]) ** 2).sum(1)

    def variance(self) -> Tensor:
        """The piecewise-uniform density's variance: the centres' spread plus Σ p_k w_k² / 12."""
        return self.centre_variance() + (self.probs * self.widths() ** 2).sum(1) / 12

    def aleatoric(self) -> Tensor:
        return self.variance()

    def epistemic(self) -> Tensor:
        return torch.zeros_like(self.mean())

    def log_prob(self, y: Tensor) -> Tensor:
        """log(p_k / w_k) in y's bin. A y beyond the edges gets its end bin's value, as training puts such
        targets in the end bins (strictly the density is zero there, which makes one test row's NLL ∞)."""
        index = self._bin(y)[:, None]
        return (self.probs.gather(1, index) / self.widths().gather(1, index))[:, 0].log()

    def cdf(self, y: Tensor) -> Tensor:
        index = self._bin(y)
        before = torch.cumsum(self.probs, 1) - self.probs
        left = self.edges.gather(1, index[:, None])[:, 0]
        width = self.widths().gather(1, index[:, None])[:, 0]
        share = ((y - left) / width).clamp(0, 1)
        inside = before.gather(1, index[:, None])[:, 0] + share * self.probs.gather(1, index[:, None])[:, 0]
        return torch.where(y < self.edges[:, 0], 0.0, torch.where(y > self.edges[:, -1], 1.0, inside))

    def quantile(self, q: float) -> Tensor:
        cumulative = torch.cumsum(self.probs, 1)
        index = torch.searchsorted(cumulative, torch.full_like(cumulative[:, :1], q)).clamp(
            max=self.probs.shape[1] - 1
        )
        before = (cumulative - self.probs).gather(1, index)[:, 0]
        mass = self.probs.gather(1, index)[:, 0].clamp_min(1e-12)
        left = self.edges.gather(1, index)[:, 0]
        return left + ((q - before) / mass).clamp(0, 1) * self.widths().gather(1, index)[:, 0]

    def rescaled(self, loc: float, scale: float) -> BinnedDensity:
        return BinnedDensity(loc + scale * self.edges, self.probs)

    def _bin(self, y: Tensor) -> Tensor:
        inner = self.edges[:, 1:-1].contiguous()
        return torch.searchsorted(inner, y[:, None].contiguous(), right=True)[:, 0]


Distribution = GaussianMixture | BinnedDensity


def concatenate(parts: list[Distribution]) -> Distribution:
    """Row-wise concatenation of distributions of one type (batches of one split)."""
    kind = type(parts[0])
    return kind(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(kind)})
