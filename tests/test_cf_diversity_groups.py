"""cf/count_diversity and cf/l0 count the 12 features of Adult's raw table, immutable categories included
(issue 10 item 1): the report's values equal a brute-force count over decoded feature values."""

from __future__ import annotations

import itertools

import pytest
import torch
from real_data import real
from torch import Tensor

from trustbench.data.arrays import ArrayDataset, TabularMeta
from trustbench.data.tabular import feature_columns
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.metrics.counterfactual import TOLERANCE, counterfactual_report

INPUTS, SET_SIZE = 30, 4


@pytest.fixture(scope="module")
def adult() -> ArrayDataset:
    return real("adult")


def raw_features(meta: TabularMeta) -> list[str]:
    """Adult's original columns, in encoded order: 'workclass=Private' → 'workclass'."""
    return list(dict.fromkeys(name.partition("=")[0] for name in meta.feature_names))


def decoded(row: Tensor, meta: TabularMeta) -> dict[str, float | str]:
    """One encoded row as {feature: value}: the scaled number, or the name of the category set to 1."""
    values: dict[str, float | str] = {}
    for feature in raw_features(meta):
        columns = feature_columns(meta, feature)
        if len(columns) == 1 and "=" not in meta.feature_names[columns[0]]:
            values[feature] = float(row[columns[0]])
        else:
            values[feature] = meta.feature_names[columns[int(row[list(columns)].argmax())]].partition("=")[2]
    return values


def differ(first: dict[str, float | str], second: dict[str, float | str]) -> int:
    """How many features differ: categories by name, numbers by more than the metrics' tolerance."""
    return sum(
        a != b if isinstance(a, str) else abs(a - b) > TOLERANCE
        for a, b in zip(first.values(), second.values(), strict=True)
    )


def counterfactual_sets(adult: ArrayDataset) -> tuple[Tensor, Tensor]:
    """For 30 Adult test rows, 4 counterfactuals each: the row with a random subset of its mutable features
    (continuous or categorical) copied from random other test rows, as a set explainer could return them;
    the last input also changes its sex and race, so immutable groups differ too."""
    meta, generator = adult.tabular, torch.Generator().manual_seed(0)
    mutable = [feature for feature in raw_features(meta) if feature not in meta.immutable]
    x = adult.x_test[:INPUTS]
    x_cf = x.unsqueeze(1).repeat(1, SET_SIZE, 1)
    donors = adult.x_test[INPUTS:]
    for i, j in itertools.product(range(INPUTS), range(SET_SIZE)):
        donor = donors[int(torch.randint(len(donors), (1,), generator=generator))]
        for feature in mutable:
            if torch.rand(1, generator=generator) < 0.4:
                columns = list(feature_columns(meta, feature))
                x_cf[i, j, columns] = donor[columns]
    for j, feature in itertools.product(range(SET_SIZE), ("sex", "race")):
        columns = list(feature_columns(meta, feature))
        x_cf[-1, j, columns] = x_cf[-1, j, columns].roll(j)
    return x, x_cf


def test_adult_has_twelve_features_and_three_immutable_categories(adult: ArrayDataset) -> None:
    meta = adult.tabular
    constraints = Constraints.for_dataset(adult, lambda inputs: inputs)
    assert len(raw_features(meta)) == 12 and len(meta.feature_names) == 91
    assert constraints.categorical_groups == meta.categorical_groups
    assert len(constraints.onehot_groups) == len(meta.categorical_groups) - 3  # race, sex, country frozen


def test_report_counts_diversity_and_l0_over_the_raw_features(adult: ArrayDataset) -> None:
    meta, (x, x_cf) = adult.tabular, counterfactual_sets(adult)
    target = torch.ones(INPUTS, dtype=torch.int64)
    pred_cf = (torch.arange(INPUTS * SET_SIZE) % 5 != 0).to(torch.int64).view(INPUTS, SET_SIZE)
    constraints = Constraints.for_dataset(adult, lambda inputs: inputs)
    rows = adult.x_train[:2000]
    report = counterfactual_report(x, x_cf, target, pred_cf, constraints, rows, adult.y_train[:2000],
                                   adult.y_train[:2000])  # fmt: skip

    features = len(raw_features(meta))
    l0, diversities = [], []
    for i in range(INPUTS):
        original = decoded(x[i], meta)
        valid = [decoded(x_cf[i, j], meta) for j in range(SET_SIZE) if pred_cf[i, j] == 1]
        l0 += [differ(original, counterfactual) for counterfactual in valid]
        pairs = list(itertools.combinations(valid, 2))
        if pairs:
            diversities.append(sum(differ(a, b) for a, b in pairs) / (len(pairs) * features))
    assert report["cf/l0"] == pytest.approx(sum(l0) / len(l0), abs=1e-12)
    assert report["cf/count_diversity"] == pytest.approx(sum(diversities) / len(diversities), abs=1e-12)
    assert 0.2 < report["cf/count_diversity"] < 0.6  # the 58-"feature" count gave about a fifth of this
