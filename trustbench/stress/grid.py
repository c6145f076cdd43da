"""The stress levels τ in [−1, 1] and the target value each one asks of a feature.

As in Bachoc et al. (2023) and their ``ethik`` package (``Query.target_from_tau``): τ = 0 leaves the feature
at its centre c (its mean for the entropic projection, a quantile of it for the quantile transport), τ = 1
asks for its 1 − α quantile and τ = −1 for its α quantile, linearly in between:

    t(τ) = c + τ · (hi − c) for τ ≥ 0,    t(τ) = c + τ · (c − lo) for τ < 0,

and a side without room (hi ≤ c, e.g. a feature that is 0 in 97 % of the rows, whose 95 % quantile is below
its mean) cannot be stressed: its targets are NaN, so every metric there is NaN rather than a copy of the
unstressed value that would pass for robustness (``ethik`` leaves t at c).

Where we also depart from ``ethik``: each end is kept a fraction α short of the feature's extremes,
lo ≥ min + α (c − min) and hi ≤ max − α (max − c). A one-hot share or a pixel with mass at 0 and 1 has
its α quantile at its minimum, and a mean at the minimum would need an infinite tilt (ethik's solver then
stops unconverged); with the cap a share p moves within [α p, 1 − α (1 − p)].
"""

from __future__ import annotations

import torch
from torch import Tensor


def stress_levels(count: int) -> Tensor:
    """``count`` evenly spaced τ from −1 to 1 (float64); an odd count ≥ 3, so that τ = 0 is one of them."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 3 or count % 2 == 0:
        raise ValueError(
            f"the number of stress levels must be an odd integer >= 3 (so the unstressed level 0 is on the "
            f"grid), e.g. 21; got {count!r}"
        )
    return torch.linspace(-1.0, 1.0, count, dtype=torch.float64).mul(1e9).round().div(1e9) + 0.0  # no −0


def stress_targets(values: Tensor, taus: Tensor, alpha: float, centre: float) -> Tensor:
    """t(τ) of the module docstring for each τ (NaN on a side without room), from the feature's ``values``
    (1-D) and its centre c.

    Quantiles are numpy's default (linear interpolation), as in ``ethik``.
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), e.g. 0.05 for the 5 % and 95 % quantiles; got {alpha}")
    values = values.to(torch.float64)
    low, high = float(values.min()), float(values.max())
    q_low, q_high = torch.quantile(values, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    lo = max(q_low, low + alpha * (centre - low))
    hi = min(q_high, high - alpha * (high - centre))
    taus = taus.to(torch.float64)
    up, down = (room if room > 0 else torch.nan for room in (hi - centre, centre - lo))
    return centre + torch.where(taus > 0, taus * up, torch.where(taus < 0, taus * down, 0.0))
