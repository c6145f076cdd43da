"""Counterfactual metrics: distances, validity, diversity, violations, IM1, class prototypes and oracle
agreement on hand-computed examples;
MAD against scipy, yNN and nearest-target distances against sklearn's NearestNeighbors; real Adult rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from real_data import real
from scipy.stats import median_abs_deviation
from sklearn.neighbors import NearestNeighbors
from torch import Tensor

from trustbench.data.arrays import ArrayDataset
from trustbench.data.tabular import feature_columns
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.metrics import counterfactual
from trustbench.metrics.counterfactual import (
    class_prototypes,
    count_diversity,
    counterfactual_report,
    diversity,
    im1,
    l0_distance,
    l1_distance,
    l2_distance,
    leakage,
    mad_l1_distance,
    median_absolute_deviation,
    nearest_target_distance,
    oracle_agreement,
    prototype_distance,
    valid_mask,
    validity,
    violates_immutable,
    violates_increase_only,
    violates_onehot,
    violates_range,
    ynn,
)

# Three features: Δ = x' − x = [0.3, 0, −0.4], so L0 = 2, L1 = 0.7, L2 = √(0.09 + 0.16) = 0.5.
X = torch.tensor([[0.2, 0.5, 0.9]])
X_CF = torch.tensor([[0.5, 0.5, 0.5]])

# Columns: age (increase-only), job=a, job=b (a mutable one-hot group), sex (immutable), income in [0, 1].
CONSTRAINTS = Constraints(
    lower=torch.zeros(5),
    upper=torch.ones(5),
    mutable=torch.tensor([True, True, True, False, True]),
    increase_only=torch.tensor([True, False, False, False, False]),
    onehot_groups=((1, 2),),
    categorical_groups=((1, 2),),
)
ORIGINAL = [0.3, 1.0, 0.0, 1.0, 1.5]  # income already above its range: it may stay there
CRAFTED = {  # (original, counterfactual, whether it violates (immutable, increase, range, onehot))
    "allowed": (ORIGINAL, [0.4, 0.0, 1.0, 1.0, 1.5], (False, False, False, False)),
    "sex changed": (ORIGINAL, [0.3, 1.0, 0.0, 0.0, 1.5], (True, False, False, False)),
    "age lowered": (ORIGINAL, [0.2, 1.0, 0.0, 1.0, 1.5], (False, True, False, False)),
    "income further out": (ORIGINAL, [0.3, 1.0, 0.0, 1.0, 1.6], (False, False, True, False)),
    "income below range": (ORIGINAL, [0.3, 1.0, 0.0, 1.0, -0.1], (False, False, True, False)),
    "age up, still below range": (
        [-0.6, 1, 0, 1, 0],
        [-0.5, 1.0, 0.0, 1.0, 0.0],
        (False, False, False, False),
    ),
    "job half-half": (ORIGINAL, [0.3, 0.5, 0.5, 1.0, 1.5], (False, False, False, True)),
    "job both": (ORIGINAL, [0.3, 1.0, 1.0, 1.0, 1.5], (False, False, False, True)),
    "job none": (ORIGINAL, [0.3, 0.0, 0.0, 1.0, 0.5], (False, False, False, True)),
}


def crafted() -> tuple[Tensor, Tensor, list[tuple[bool, ...]]]:
    """The CRAFTED originals and counterfactuals (M, 5), and the expected violation flags."""
    rows = list(CRAFTED.values())
    x = torch.tensor([original for original, _, _ in rows], dtype=torch.float32)
    x_cf = torch.tensor([counterfactual_row for _, counterfactual_row, _ in rows])
    return x, x_cf, [flags for _, _, flags in rows]


@pytest.fixture(scope="module")
def adult() -> ArrayDataset:
    return real("adult")


@pytest.fixture(scope="module")
def neighbours_problem() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """300 continuous training points (no distance ties) with 3 labels, 40 counterfactuals and targets."""
    generator = torch.Generator().manual_seed(0)
    x_train = torch.rand(300, 4, generator=generator)
    labels = torch.randint(0, 3, (300,), generator=generator)
    x_cf = torch.rand(40, 4, generator=generator)
    target = torch.randint(0, 3, (40,), generator=generator)
    return x_train, labels, x_cf, target


def test_distances_of_hand_example() -> None:
    assert l0_distance(X, X_CF).tolist() == [2.0]
    assert l1_distance(X, X_CF).item() == pytest.approx(0.7)
    assert l2_distance(X, X_CF).item() == pytest.approx(0.5)


def test_l2_distance_is_the_euclidean_norm_not_its_square() -> None:
    x, x_cf = torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])
    assert l2_distance(x, x_cf).item() == pytest.approx(math.sqrt(2))


def test_l0_ignores_changes_within_tolerance() -> None:
    x_cf = X + torch.tensor([[1e-7, 0.0, 0.01]])
    assert l0_distance(X, x_cf).tolist() == [1.0]
    assert l0_distance(X, x_cf, tol=0.1).tolist() == [0.0]
    assert l0_distance(X, x_cf, tol=0.0).tolist() == [2.0]


def test_l0_counts_a_changed_one_hot_group_once() -> None:
    # Columns age, job=a, job=b, job=c, hours: age changes and job goes from a to c.
    x = torch.tensor([[0.3, 1.0, 0.0, 0.0, 0.5]])
    x_cf = torch.tensor([[0.4, 0.0, 0.0, 1.0, 0.5]])
    assert l0_distance(x, x_cf).tolist() == [3.0]
    assert l0_distance(x, x_cf, groups=((1, 2, 3),)).tolist() == [2.0]


def test_l0_rejects_overlapping_groups() -> None:
    with pytest.raises(ValueError, match="disjoint"):
        l0_distance(X, X_CF, groups=((0, 1), (1, 2)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        l0_distance(X, X_CF, groups=((2, 3),))


def test_distances_of_sets_have_one_value_per_counterfactual() -> None:
    x_cf = torch.stack([X_CF, X, X + 1], dim=1)  # (1, 3, 3)
    assert l1_distance(X, x_cf).shape == (1, 3)
    assert l1_distance(X, x_cf)[0].tolist() == pytest.approx([0.7, 0.0, 3.0])
    assert l2_distance(X, x_cf)[0].tolist() == pytest.approx([0.5, 0.0, math.sqrt(3)])
    assert l0_distance(X, x_cf).tolist() == [[2.0, 0.0, 3.0]]


def test_distances_reject_counterfactuals_of_another_shape() -> None:
    with pytest.raises(ValueError, match=r"do not match inputs of shape \(1, 3\)"):
        l1_distance(X, torch.zeros(1, 4))


def test_median_absolute_deviation_matches_scipy_for_even_and_odd_counts() -> None:
    generator = torch.Generator().manual_seed(1)
    for rows in (50, 51):
        x_train = torch.rand(rows, 6, generator=generator)
        expected = median_abs_deviation(x_train.double().numpy(), axis=0)
        np.testing.assert_allclose(median_absolute_deviation(x_train).numpy(), expected)


def test_median_absolute_deviation_of_hand_example() -> None:
    # Column 0: 1 2 4 10, median (2 + 4) / 2 = 3, deviations 2 1 1 7 -> MAD (1 + 2) / 2 = 1.5; taking the
    # lower middle value (torch.median) would give median 2, deviations 1 0 2 8 and MAD 1.
    # Column 1: 0 0 0 1, median 0, deviations 0 0 0 1 -> MAD 0.
    x_train = torch.tensor([[1.0, 0.0], [2.0, 0.0], [4.0, 0.0], [10.0, 1.0]])
    assert median_absolute_deviation(x_train).tolist() == [1.5, 0.0]


def test_median_absolute_deviation_is_the_same_in_column_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    x_train = torch.rand(20, 2, 3, generator=torch.Generator().manual_seed(2))
    whole = median_absolute_deviation(x_train)
    monkeypatch.setattr(counterfactual, "CHUNK_ELEMENTS", 40)  # two columns per chunk
    torch.testing.assert_close(median_absolute_deviation(x_train), whole)
    assert whole.shape == (2, 3)


def test_mad_l1_divides_by_mad_and_weighs_zero_mad_by_one() -> None:
    mad = torch.tensor([0.1, 0.0, 0.2])
    # |Δ| = [0.3, 0, 0.4]: 0.3 / 0.1 + 0 + 0.4 / 0.2 = 5
    assert mad_l1_distance(X, X_CF, mad).item() == pytest.approx(5.0)
    # feature 1 (MAD 0) moved by 0.2 costs 0.2
    x_cf = X_CF + torch.tensor([[0.0, 0.2, 0.0]])
    assert mad_l1_distance(X, x_cf, mad).item() == pytest.approx(5.2)


def test_mad_l1_rejects_mad_of_another_shape() -> None:
    with pytest.raises(ValueError, match=r"mad has shape \(2,\) but one example has shape \(3,\)"):
        mad_l1_distance(X, X_CF, torch.ones(2))


def test_validity_is_the_share_assigned_to_the_target() -> None:
    assert validity(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 1, 1, 0])) == 0.5


def test_validity_of_sets_compares_each_counterfactual_with_its_inputs_target() -> None:
    pred_cf = torch.tensor([[1, 1, 0], [0, 2, 2]])
    target = torch.tensor([1, 2])
    assert valid_mask(pred_cf, target).tolist() == [[True, True, False], [False, True, True]]
    assert validity(pred_cf, target) == pytest.approx(4 / 6)


def test_validity_rejects_probabilities() -> None:
    with pytest.raises(ValueError, match="pred_cf must be an integer tensor"):
        validity(torch.tensor([0.9, 0.1]), torch.tensor([0, 1]))


def test_ynn_of_hand_example() -> None:
    x_train = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    train_pred = torch.tensor([0, 0, 1, 1, 1])
    # neighbours of 0.4 are 0, 1, 2 (labels 0 0 1); of 10.6 are 11, 10, 2 (labels 1 1 1)
    shares = ynn(torch.tensor([[0.4], [10.6]]), torch.tensor([1, 1]), x_train, train_pred, n_neighbours=3)
    assert shares.tolist() == pytest.approx([1 / 3, 1.0])


def test_ynn_matches_sklearn_nearest_neighbors(neighbours_problem: tuple[Tensor, ...]) -> None:
    x_train, labels, x_cf, target = neighbours_problem
    neighbours = NearestNeighbors(n_neighbors=5).fit(x_train.numpy()).kneighbors(x_cf.numpy())[1]
    expected = (labels.numpy()[neighbours] == target.numpy()[:, None]).mean(axis=1)
    np.testing.assert_allclose(ynn(x_cf, target, x_train, labels).numpy(), expected)


def test_ynn_is_the_same_in_small_chunks(
    neighbours_problem: tuple[Tensor, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    x_train, labels, x_cf, target = neighbours_problem
    whole = ynn(x_cf, target, x_train, labels)
    monkeypatch.setattr(counterfactual, "CHUNK_ELEMENTS", 900)  # three queries per chunk
    torch.testing.assert_close(ynn(x_cf, target, x_train, labels), whole)


def test_ynn_of_sets_uses_each_inputs_target(neighbours_problem: tuple[Tensor, ...]) -> None:
    x_train, labels, x_cf, target = neighbours_problem
    sets = ynn(x_cf.reshape(20, 2, 4), target[::2], x_train, labels)
    rows = ynn(x_cf, target[::2].repeat_interleave(2), x_train, labels)
    assert sets.shape == (20, 2)
    torch.testing.assert_close(sets.reshape(-1), rows)


def test_ynn_rejects_more_neighbours_than_training_rows() -> None:
    with pytest.raises(ValueError, match="n_neighbours must be between 1 and the 2 training rows"):
        ynn(torch.zeros(1, 1), torch.tensor([0]), torch.zeros(2, 1), torch.tensor([0, 1]))


def test_nearest_target_distance_matches_a_brute_force_loop(
    neighbours_problem: tuple[Tensor, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    x_train, labels, x_cf, target = neighbours_problem
    monkeypatch.setattr(counterfactual, "CHUNK_ELEMENTS", 500)
    expected = [
        min(math.dist(cf.tolist(), point.tolist()) for point in x_train[labels == t])
        for cf, t in zip(x_cf, target, strict=True)
    ]
    distances = nearest_target_distance(x_cf, target, x_train, labels)
    assert distances.dtype == torch.float64
    np.testing.assert_allclose(distances.numpy(), expected, rtol=1e-6)


def test_nearest_target_distance_is_nan_for_a_class_without_training_rows() -> None:
    x_train, y_train = torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([0, 0])
    distances = nearest_target_distance(
        torch.tensor([[3.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]), x_train, y_train
    )
    assert distances[0].item() == pytest.approx(3.0)
    assert math.isnan(distances[1].item())


def test_violations_of_crafted_counterfactuals() -> None:
    x, x_cf, expected = crafted()
    checks = (violates_immutable, violates_increase_only, violates_range, violates_onehot)
    found = torch.stack([check(x, x_cf, CONSTRAINTS) for check in checks], dim=1)
    assert dict(zip(CRAFTED, map(tuple, found.tolist()), strict=True)) == dict(
        zip(CRAFTED, expected, strict=True)
    )


def test_violations_tolerate_float_noise() -> None:
    x = torch.tensor([ORIGINAL])
    noisy = x + 1e-8
    noisy[0, 0] -= 2e-8  # age lowered by 1e-8
    assert not violates_immutable(x, noisy, CONSTRAINTS).item()
    assert not violates_increase_only(x, noisy, CONSTRAINTS).item()


def test_violations_of_sets_have_one_flag_per_counterfactual() -> None:
    x, x_cf, expected = crafted()
    sets = x_cf[:4].unsqueeze(0)  # (1, 4, 5): allowed, sex changed, age lowered, income further out
    assert violates_immutable(x[:1], sets, CONSTRAINTS).tolist() == [[flags[0] for flags in expected[:4]]]


def test_violations_reject_constraints_of_another_shape() -> None:
    with pytest.raises(ValueError, match=r"constraints are shaped \(5,\) but one example is \(3,\)"):
        violates_immutable(X, X_CF, CONSTRAINTS)


def test_diversity_of_hand_example() -> None:
    # pairs (0, 1) L1 1, (0, 2) L1 3, (1, 2) L1 2 -> mean 2
    sets = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]]])
    assert diversity(sets).tolist() == pytest.approx([2.0])
    # features differing: (0, 1) 1 of 2, (0, 2) 2 of 2, (1, 2) 1 of 2 -> mean 2/3
    assert count_diversity(sets).tolist() == pytest.approx([2 / 3])


def test_diversity_counts_only_pairs_of_valid_counterfactuals() -> None:
    sets = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]], [[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]]])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    assert diversity(sets, valid)[0].item() == pytest.approx(1.0)
    assert count_diversity(sets, valid)[0].item() == pytest.approx(0.5)
    assert math.isnan(diversity(sets, valid)[1].item())  # one valid counterfactual: no pair


def test_count_diversity_counts_a_one_hot_group_as_one_feature() -> None:
    # columns x, g=a, g=b: the two counterfactuals differ only in g
    sets = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    assert count_diversity(sets).item() == pytest.approx(2 / 3)
    assert count_diversity(sets, groups=((1, 2),)).item() == pytest.approx(1 / 2)


def test_diversity_needs_sets_of_at_least_two() -> None:
    with pytest.raises(ValueError, match="k >= 2"):
        diversity(torch.zeros(3, 1, 2))


def test_im1_is_the_ratio_of_target_to_original_reconstruction_errors() -> None:
    autoencoders = [lambda x: torch.zeros_like(x), lambda x: 0.5 * x]
    x_cf = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    # error under class 0's AE: ‖x'‖² = 4; under class 1's: ‖x' − x'/2‖² = 1
    scores = im1(x_cf, torch.tensor([1, 0]), torch.tensor([0, 1]), autoencoders, eps=0.0)
    assert scores.tolist() == pytest.approx([1 / 4, 4.0])


def test_im1_needs_an_autoencoder_for_every_class() -> None:
    with pytest.raises(ValueError, match="need autoencoders for each, but 2 were given"):
        im1(torch.zeros(1, 2), torch.tensor([2]), torch.tensor([0]), [torch.nn.Identity()] * 2)


def test_report_averages_distances_over_valid_counterfactuals_only() -> None:
    x = torch.tensor([[0.3, 1.0, 0.0, 1.0, 0.5], [0.3, 1.0, 0.0, 1.0, 0.5]])
    x_cf = torch.tensor([[0.6, 0.0, 1.0, 1.0, 0.1], [0.3, 1.0, 0.0, 0.0, 0.5]])  # 2nd changes sex
    x_train = torch.tensor([[0.6, 0.0, 1.0, 1.0, 0.1], [0.0, 1.0, 0.0, 1.0, 0.5], [1.0, 0.0, 1.0, 0.0, 0.0]])
    labels = torch.tensor([1, 0, 1])
    report = counterfactual_report(
        x,
        x_cf,
        torch.tensor([1, 1]),
        torch.tensor([1, 0]),
        CONSTRAINTS,
        x_train,
        labels,
        labels,
        mad=torch.ones(5),
        n_neighbours=2,
    )
    assert report["cf/n"] == 2 and report["cf/n_valid"] == 1 and report["cf/validity"] == 0.5
    # only the first: Δ = [0.3, −1, 1, 0, −0.4]; age and job (one group) and income changed
    assert report["cf/l0"] == 3.0
    assert report["cf/l1"] == pytest.approx(2.7)
    assert report["cf/l2"] == pytest.approx(math.sqrt(0.09 + 1 + 1 + 0.16))
    assert report["cf/mad_l1"] == pytest.approx(2.7)
    assert report["cf/nearest_target_l2"] == 0.0  # it is training row 0
    assert report["cf/ynn"] == 1.0  # rows 0 and 2, both labelled 1
    assert report["cf/immutable_violations"] == 0.5  # over all counterfactuals
    assert report["cf/increase_violations"] == 0.0
    assert "cf/diversity" not in report


def test_report_of_sets_has_every_key_and_nan_distances_without_valid_counterfactuals() -> None:
    x = torch.tensor([ORIGINAL])
    x_cf = torch.tensor([[ORIGINAL, ORIGINAL]])
    x_train = torch.rand(6, 5, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    report = counterfactual_report(
        x, x_cf, torch.tensor([1]), torch.tensor([[0, 0]]), CONSTRAINTS, x_train, labels, labels
    )
    keys = ["validity", "l0", "l1", "l2", "mad_l1", "ynn", "nearest_target_l2", "immutable_violations"]
    keys += ["increase_violations", "range_violations", "onehot_violations", "diversity", "count_diversity"]
    assert {f"cf/{key}" for key in keys} | {"cf/n", "cf/n_valid"} == set(report)
    assert report["cf/validity"] == 0.0 and report["cf/n"] == 2.0
    assert all(math.isnan(report[f"cf/{key}"]) for key in ("l1", "ynn", "nearest_target_l2", "diversity"))
    assert report["cf/range_violations"] == 0.0


def test_report_rejects_one_prediction_for_a_set() -> None:
    x, label = torch.tensor([ORIGINAL]), torch.tensor([1])
    x_cf = torch.tensor([[ORIGINAL, ORIGINAL]])
    with pytest.raises(
        ValueError, match=r"pred_cf has shape \(1,\) for counterfactuals of shape \(1, 2, 5\)"
    ):
        counterfactual_report(x, x_cf, label, label, CONSTRAINTS, x, label, label)


def edited_adult_rows(adult: ArrayDataset) -> tuple[Tensor, Tensor]:
    """Three Adult test rows and counterfactuals: older with another workclass; other sex; less education."""
    meta = adult.tabular
    x = adult.x_test[:3].clone()
    x_cf = x.clone()
    age, education = feature_columns(meta, "age")[0], feature_columns(meta, "education_num")[0]
    workclass, sex = feature_columns(meta, "workclass"), feature_columns(meta, "sex")
    x_cf[0, age] += 10 / (90 - 17)  # ten years older
    x_cf[0, list(workclass)] = x_cf[0, list(workclass)].roll(1)  # another workclass
    x_cf[1, list(sex)] = 1 - x_cf[1, list(sex)]  # the other sex
    x_cf[2, education] -= 1 / 15  # one year less education
    return x, x_cf


def test_adult_rows_count_feature_changes_and_violations(adult: ArrayDataset) -> None:
    meta, (x, x_cf) = adult.tabular, edited_adult_rows(adult)
    constraints = Constraints.for_dataset(adult, lambda inputs: inputs)
    assert l0_distance(x, x_cf).tolist() == [3.0, 2.0, 1.0]
    assert l0_distance(x, x_cf, groups=meta.categorical_groups).tolist() == [2.0, 1.0, 1.0]
    assert violates_immutable(x, x_cf, constraints).tolist() == [False, True, False]
    assert violates_increase_only(x, x_cf, constraints).tolist() == [False, False, True]
    assert violates_onehot(x, x_cf, constraints).tolist() == [False, False, False]
    assert violates_range(x, x_cf, constraints).tolist() == [False, False, False]
    assert len(constraints.onehot_groups) == len(meta.categorical_groups) - 3  # race, sex, country frozen


def test_adult_report_of_valid_counterfactuals(adult: ArrayDataset) -> None:
    x, x_cf = edited_adult_rows(adult)
    target = torch.tensor([1, 1, 0])
    constraints = Constraints.for_dataset(adult, lambda inputs: inputs)
    groups = adult.tabular.categorical_groups
    report = counterfactual_report(
        x, x_cf, target, target, constraints, adult.x_train, adult.y_train, adult.y_train, groups=groups
    )
    assert report["cf/validity"] == 1.0
    assert report["cf/l0"] == pytest.approx(4 / 3)
    assert report["cf/immutable_violations"] == pytest.approx(1 / 3)
    assert report["cf/increase_violations"] == pytest.approx(1 / 3)
    assert 0.0 <= report["cf/ynn"] <= 1.0 and report["cf/nearest_target_l2"] >= 0.0


def test_adult_mad_matches_scipy(adult: ArrayDataset) -> None:
    expected = median_abs_deviation(adult.x_train.double().numpy(), axis=0)
    mad = median_absolute_deviation(adult.x_train)
    np.testing.assert_allclose(mad.numpy(), expected)
    assert mad.shape == (len(adult.tabular.feature_names),) and (mad > 0).any()


def test_adult_nearest_target_distance_matches_sklearn(adult: ArrayDataset) -> None:
    x_cf, target = adult.x_test[:20], torch.arange(20) % 2
    distances = nearest_target_distance(x_cf, target, adult.x_train, adult.y_train)
    for label in (0, 1):
        members = adult.x_train[adult.y_train == label].numpy()
        asked = target == label
        nearest = NearestNeighbors(n_neighbors=1).fit(members).kneighbors(x_cf[asked].numpy())[0][:, 0]
        np.testing.assert_allclose(distances[asked].numpy(), nearest, atol=1e-6)


def test_class_prototypes_are_the_mean_codes_of_each_class_and_nan_for_an_empty_one():
    codes = torch.tensor([[0.0, 2.0], [2.0, 4.0], [5.0, -1.0]])
    prototypes = class_prototypes(codes, torch.tensor([0, 0, 2]), num_classes=3)
    assert prototypes[0].tolist() == [1.0, 3.0] and prototypes[2].tolist() == [5.0, -1.0]
    assert bool(prototypes[1].isnan().all())


def test_prototype_distance_is_the_l2_distance_to_the_target_class_prototype():
    prototypes = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    codes = torch.tensor([[3.0, 4.0], [4.0, 5.0]])
    # row 0 to class 0's prototype: √(9 + 16) = 5; row 1 to class 1's: √(9 + 16) = 5; row 1 to class 0: √41
    assert prototype_distance(codes, torch.tensor([0, 1]), prototypes).tolist() == [5.0, 5.0]
    assert prototype_distance(codes[1:], torch.tensor([0]), prototypes).item() == pytest.approx(math.sqrt(41))


def test_oracle_agreement_counts_only_counterfactuals_valid_for_the_model():
    target = torch.tensor([1, 0, 1, 1])
    model = torch.tensor([1, 0, 0, 1])  # valid: rows 0, 1, 3
    oracle = torch.tensor([1, 1, 1, 1])  # agrees on rows 0 and 3 of those (and row 2, which is not valid)
    assert oracle_agreement(oracle, model, target) == pytest.approx(2 / 3)
    sets = oracle_agreement(
        torch.tensor([[1, 0], [0, 0]]), torch.tensor([[1, 1], [1, 0]]), torch.tensor([1, 0])
    )
    # valid for the model: (0, 0), (0, 1) and (1, 1); the oracle agrees on (0, 0) and (1, 1)
    assert sets == pytest.approx(2 / 3)
    assert math.isnan(oracle_agreement(oracle, torch.tensor([0, 1, 0, 0]), target))


def test_prototype_and_oracle_metrics_name_what_was_wrong():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        class_prototypes(torch.zeros(2, 3), torch.tensor([0, 2]), num_classes=2)
    with pytest.raises(ValueError, match="prototypes' width 2"):
        prototype_distance(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="one oracle prediction per counterfactual"):
        oracle_agreement(torch.tensor([[1, 1]]), torch.tensor([1]), torch.tensor([1]))


def test_leakage_sums_the_change_outside_the_regions_for_single_counterfactuals_and_sets():
    x = torch.zeros(1, 4)
    regions = torch.tensor([[True, True, False, False]])
    single = torch.tensor([[5.0, -1.0, 0.5, -0.25]])  # outside: |0.5| + |−0.25| = 0.75
    assert leakage(x, single, regions).tolist() == [0.75]
    sets = torch.stack([single, torch.tensor([[1.0, 1.0, 0.0, 0.0]])], dim=1)  # the second leaks nothing
    assert leakage(x, sets, regions).tolist() == [[0.75, 0.0]]
    with pytest.raises(ValueError, match="bool mask shaped like the inputs"):
        leakage(x, single, regions.float())
