"""Entropic variable projection: the tilted weights hit each target mean, are the KL minimiser a generic
optimiser finds, and follow the stress grid of Bachoc et al.'s ethik package (on real Adult features)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from real_data import real
from scipy.optimize import brentq, minimize

from trustbench.data.arrays import ArrayDataset
from trustbench.stress.grid import stress_levels, stress_targets
from trustbench.stress.tilting import effective_sample_size, kl_to_base, tilt, tilt_distinct


@pytest.fixture(scope="module")
def adult() -> ArrayDataset:
    return real("adult")


def adult_feature(adult: ArrayDataset, name: str) -> torch.Tensor:
    """A continuous Adult test feature in its original units (age in years, ...), float64."""
    column = adult.tabular.feature_names.index(name)
    low, high = adult.tabular.ranges[name]
    return (low + adult.x_test[:, column].double() * (high - low)).round(decimals=4)


@pytest.mark.parametrize("name", ["age", "hours_per_week", "education_num", "capital_gain", "capital_loss"])
def test_tilted_weights_hit_every_target_mean_to_1e_8(adult: ArrayDataset, name: str) -> None:
    values = adult_feature(adult, name)
    targets = stress_targets(values, stress_levels(21), 0.05, float(values.mean()))
    targets = targets[targets.isfinite()]  # capital_loss: 95 % zeros, no room above its mean
    weights, xi = tilt(values, targets)
    assert (weights >= 0).all() and torch.allclose(
        weights.sum(dim=1), torch.ones(len(targets), dtype=torch.float64), atol=1e-12
    )
    assert (weights @ values - targets).abs().max() < 1e-8
    assert ((xi[1:] - xi[:-1]) > 0).all()  # a larger target needs a stronger tilt


def test_the_weights_are_the_kl_minimiser_a_generic_optimiser_finds() -> None:
    values = torch.tensor([1.0, 2.0, 2.0, 3.5, 5.0, 8.0, 9.0, 13.0], dtype=torch.float64)
    target = 7.0
    weights = tilt(values, torch.tensor([target])).weights[0].numpy()

    def kl(q: np.ndarray) -> float:
        return float(np.sum(q * np.log(q * len(q))))

    constraints = [
        {"type": "eq", "fun": lambda q: q.sum() - 1},
        {"type": "eq", "fun": lambda q: q @ values.numpy() - target},
    ]
    start = np.full(len(values), 1 / len(values))
    found = minimize(kl, start, bounds=[(1e-12, 1)] * len(values), constraints=constraints, method="SLSQP",
                     options={"ftol": 1e-15, "maxiter": 500})  # fmt: skip
    assert found.success
    np.testing.assert_allclose(weights, found.x, atol=1e-6)
    assert kl(weights) <= kl(found.x) + 1e-12
    assert float(kl_to_base(torch.from_numpy(weights)[None])) == pytest.approx(kl(weights), rel=1e-12)


def test_xi_is_the_root_scipy_finds_for_the_tilted_mean(adult: ArrayDataset) -> None:
    values = adult_feature(adult, "age")
    x = values.numpy()
    targets = torch.tensor([22.0, 30.0, 50.0, 60.0], dtype=torch.float64)
    _, xi = tilt(values, targets)

    def gap(t: float):
        def tilted_mean_minus_target(s: float) -> float:
            logits = s * (x - x.mean())
            w = np.exp(logits - logits.max())
            return float(w @ x / w.sum() - t)

        return tilted_mean_minus_target

    for target, ours in zip(targets.tolist(), xi.tolist(), strict=True):
        assert ours == pytest.approx(brentq(gap(target), -5, 5, xtol=1e-14), abs=1e-10)


def test_bootstrap_counts_weight_rows_as_if_they_were_repeated(adult: ArrayDataset) -> None:
    values = adult_feature(adult, "hours_per_week")[:500]
    counts = torch.randint(0, 4, (500,), generator=torch.Generator().manual_seed(0)).double()
    target = torch.tensor([45.0], dtype=torch.float64)
    weighted = tilt(values, target, counts).weights[0]
    repeated = tilt(values.repeat_interleave(counts.long()), target).weights[0]
    per_row = torch.zeros(500, dtype=torch.float64).index_add_(
        0, torch.arange(500).repeat_interleave(counts.long()), repeated
    )
    torch.testing.assert_close(weighted, per_row, rtol=1e-9, atol=1e-15)
    assert weighted[counts == 0].eq(0).all()


def test_a_target_outside_the_values_gives_nan_weights_not_a_false_answer() -> None:
    values = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    weights, xi = tilt(values, torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64))
    assert weights[0].isfinite().all() and float(weights[0] @ values) == pytest.approx(0.5, abs=1e-12)
    assert weights[1:].isnan().all() and xi[1:].isnan().all()


def test_effective_sample_size_counts_rows_that_carry_the_weight() -> None:
    weights = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    assert effective_sample_size(weights).tolist() == [4.0, 2.0]


def test_a_constant_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="constant feature"):
        tilt(torch.ones(10, dtype=torch.float64), torch.tensor([1.0]))


def test_targets_run_from_the_alpha_to_the_1_minus_alpha_quantile_through_the_mean(
    adult: ArrayDataset,
) -> None:
    values = adult_feature(adult, "age")
    taus = stress_levels(21)
    targets = stress_targets(values, taus, 0.05, float(values.mean()))
    q05, q95 = np.quantile(values.numpy(), [0.05, 0.95])
    assert targets[0] == pytest.approx(q05) and targets[-1] == pytest.approx(q95)
    assert targets[10] == pytest.approx(float(values.mean()))
    assert taus[[0, 5, 10, 15, 20]].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_a_side_without_room_has_no_target_and_shares_stay_short_of_0_and_1(adult: ArrayDataset) -> None:
    loss = adult_feature(
        adult, "capital_loss"
    )  # 0 for 95.3 % of the rows: its 95 % quantile is under its mean
    targets = stress_targets(loss, stress_levels(5), 0.05, float(loss.mean()))
    assert targets[3:].isnan().all() and targets[:3].isfinite().all()
    female = 1.0 - adult.groups_test["sex"].double()
    share = float(female.mean())
    shares = stress_targets(female, stress_levels(3), 0.05, share)
    assert shares.tolist() == pytest.approx([0.05 * share, share, 1 - 0.05 * (1 - share)])


def test_targets_and_weights_agree_with_the_ethik_package(adult: ArrayDataset) -> None:
    """The authors' ethik 0.0.4 (BFGS, stopped at its tolerance): the same τ grid of targets, and its tilt
    reaches the same weights to its own precision."""
    ethik_explainer = pytest.importorskip("ethik.base_explainer")
    query = pytest.importorskip("ethik.query").Query
    import pandas as pd

    values = adult_feature(adult, "age")
    frame = pd.DataFrame({"age": values.numpy()})
    taus = query.taus(21)
    q_min, q_max = frame["age"].quantile(0.05), frame["age"].quantile(0.95)
    theirs = [query.target_from_tau(q_min, q_max, frame["age"].mean(), tau) for tau in taus]
    ours = stress_targets(values, torch.tensor(taus, dtype=torch.float64), 0.05, float(values.mean()))
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-12)
    target = theirs[15]
    ((ksi, converged),) = ethik_explainer.compute_ksi(0, frame, np.array([target]), 15, 1e-10).values()
    assert converged
    scaled = (frame["age"] - frame["age"].mean()) / frame["age"].std()
    their_weights = np.exp(ksi * scaled - (ksi * scaled).max())
    their_weights /= their_weights.sum()
    np.testing.assert_allclose(
        tilt(values, torch.tensor([target])).weights[0].numpy(), their_weights, atol=1e-8
    )


def test_a_batch_of_resampled_masses_is_solved_as_each_would_be_alone(adult: ArrayDataset) -> None:
    values = adult_feature(adult, "education_num")
    support, row_value = torch.unique(values, return_inverse=True)
    counts = torch.randint(0, 3, (3, len(values)), generator=torch.Generator().manual_seed(3)).double()
    masses = torch.zeros(3, len(support), dtype=torch.float64).index_add_(1, row_value, counts)
    targets = torch.tensor([7.0, 10.0, 13.5], dtype=torch.float64)
    batched, _ = tilt_distinct(support, masses, targets)
    for mass, weights in zip(masses, batched, strict=True):
        torch.testing.assert_close(
            weights, tilt_distinct(support, mass, targets).weights, rtol=1e-9, atol=1e-12
        )
        assert (weights @ support - targets).abs().max() < 1e-8
