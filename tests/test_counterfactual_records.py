"""Every counterfactual is saved: one record per counterfactual with its test row, target, predicted class,
validity and distances, in original units for tables (counterfactuals.csv) and as tensors for images
(counterfactuals.pt); on real Adult the file agrees with the run's cf/ metrics and with the raw data."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from trustbench.app import CONFIG_DIR
from trustbench.data.arrays import TabularMeta
from trustbench.data.sources import locate
from trustbench.data.tabular import ADULT_COLUMNS
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.counterfactual import evaluate_counterfactual
from trustbench.experiment import fit
from trustbench.plots.counterfactual import (
    RECORD_COLUMNS,
    counterfactual_records,
    decode_rows,
    save_counterfactuals,
    with_original_units,
)

# age in [20, 70] years, hours constant at 10 in training (scaled with width 1), job one-hot.
META = TabularMeta(
    feature_names=("age", "hours", "job=clerk", "job=nurse", "job=pilot"),
    continuous=(0, 1),
    categorical_groups=((2, 3, 4),),
    ranges={"age": (20.0, 70.0), "hours": (10.0, 10.0)},
)
ROWS = torch.tensor([[0.2, 0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 1.0, 0.0]])
# Row 0 gets 10 years older and becomes a pilot; row 1 works 0.25 more hours.
COUNTERFACTUALS = torch.tensor([[0.4, 0.0, 0.0, 0.0, 1.0], [0.5, 0.25, 0.0, 1.0, 0.0]])
TEST_ROWS = torch.tensor([7, 3])
TARGET = torch.tensor([1, 1])
PREDICTED = torch.tensor([1, 0])


def test_records_hold_ids_classes_validity_and_hand_computed_distances() -> None:
    records = counterfactual_records(TEST_ROWS, ROWS, COUNTERFACTUALS, TARGET, PREDICTED, ((2, 3, 4),))
    assert tuple(records.columns) == RECORD_COLUMNS
    assert records["test_row"].tolist() == [7, 3] and records["counterfactual"].tolist() == [0, 0]
    assert records["target"].tolist() == [1, 1] and records["predicted"].tolist() == [1, 0]
    assert records["valid"].tolist() == [True, False]
    assert records["l0"].tolist() == [2.0, 1.0]  # age and job (one feature); hours
    assert records["l1"].tolist() == pytest.approx([0.2 + 2.0, 0.25])
    assert records["l2"].tolist() == pytest.approx([math.sqrt(0.04 + 2.0), 0.25])


def test_sets_get_one_record_per_counterfactual_with_its_index_in_the_set() -> None:
    sets = torch.stack([COUNTERFACTUALS, ROWS], dim=1)  # (2, 2, 5): the second of each set is the input
    records = counterfactual_records(TEST_ROWS, ROWS, sets, TARGET, torch.tensor([[1, 0], [1, 1]]))
    assert records["test_row"].tolist() == [7, 7, 3, 3]
    assert records["counterfactual"].tolist() == [0, 1, 0, 1]
    assert records["valid"].tolist() == [True, False, True, True]
    assert records["l1"].tolist() == pytest.approx([2.2, 0.0, 0.25, 0.0])


def test_records_refuse_test_rows_that_do_not_match_the_inputs() -> None:
    with pytest.raises(ValueError, match="one test row and target per input"):
        counterfactual_records(TEST_ROWS[:1], ROWS, COUNTERFACTUALS, TARGET, PREDICTED)


def test_decoding_unscales_continuous_features_and_names_the_largest_category() -> None:
    relaxed = torch.tensor([[0.3, 0.5, 0.2, 0.7, 0.1]])  # a one-hot group not yet snapped
    decoded = decode_rows(torch.cat([ROWS, relaxed]), META)
    assert list(decoded.columns) == ["age", "hours", "job"]
    assert decoded["age"].tolist() == [30.0, 45.0, 35.0]
    assert decoded["hours"].tolist() == [10.0, 10.0, 10.5]  # constant feature: width 1
    assert decoded["job"].tolist() == ["clerk", "nurse", "nurse"]


def test_original_units_give_counterfactual_factual_and_model_columns() -> None:
    records = counterfactual_records(TEST_ROWS, ROWS, COUNTERFACTUALS, TARGET, PREDICTED)
    table = with_original_units(records, ROWS, COUNTERFACTUALS, COUNTERFACTUALS, META)
    assert table["age"].tolist() == [40.0, 45.0] and table["factual:age"].tolist() == [30.0, 45.0]
    assert table["job"].tolist() == ["pilot", "nurse"] and table["factual:job"].tolist() == ["clerk", "nurse"]
    assert table["hours"].tolist() == [10.0, 10.25]
    model = table[[f"model:{name}" for name in META.feature_names]].to_numpy()
    torch.testing.assert_close(torch.as_tensor(model), COUNTERFACTUALS)


def test_image_counterfactuals_are_saved_as_plain_tensors_and_a_csv(tmp_path: Path) -> None:
    images = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    sets = torch.stack([images + 0.1, images - 0.1], dim=1)
    predicted = torch.tensor([[1, 1], [0, 2]])
    records = counterfactual_records(TEST_ROWS, images, sets, torch.tensor([1, 2]), predicted)
    paths = save_counterfactuals(records, tmp_path, images, sets)
    assert [path.name for path in paths] == ["counterfactuals.csv", "counterfactuals.pt"]
    saved = torch.load(paths[1], weights_only=True)
    assert saved["test_row"].tolist() == [7, 7, 3, 3] and saved["counterfactual"].tolist() == [0, 1, 0, 1]
    assert saved["valid"].tolist() == [True, True, False, True]
    torch.testing.assert_close(saved["x_cf"], sets.flatten(0, 1))
    torch.testing.assert_close(saved["x"], images.repeat_interleave(2, dim=0))
    torch.testing.assert_close(saved["l2"], torch.full((4,), 0.4, dtype=torch.float64))  # 0.1 on 16 pixels
    pd.testing.assert_frame_equal(pd.read_csv(paths[0]), records)


@pytest.fixture(scope="module")
def adult_wachter(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvaluationContext, dict[str, float]]:
    """Wachter on 25 real Adult test points, explaining a 1-epoch ERM classifier, evaluated in-process."""
    outputs = tmp_path_factory.mktemp("records")
    overrides = ["method=wachter", "data=adult", "trainer.max_epochs=1", "method.explain.points=25"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"paths.output_dir={outputs}"])
    with open_dict(cfg):
        cfg.logger = {}  # the CSV logger needs a Hydra job; nothing here reads training curves
    fitted = fit(cfg, outputs / "run")
    context = EvaluationContext(cfg, fitted.module, fitted.datamodule, fitted.dataset, outputs / "run")
    return context, evaluate_counterfactual(context)


def test_adult_records_have_one_row_per_counterfactual_and_match_the_metrics(adult_wachter) -> None:
    context, metrics = adult_wachter
    table = pd.read_csv(context.run_dir / "counterfactuals.csv")
    assert len(table) == metrics["cf/n"] == 25 and table["test_row"].is_unique
    assert table["valid"].mean() == pytest.approx(metrics["cf/validity"])
    valid = table[table["valid"]]
    for distance in ("l0", "l1", "l2"):
        assert valid[distance].mean() == pytest.approx(metrics[f"cf/{distance}"], rel=1e-12)
    # the saved model-space counterfactuals are the ones scored: the model predicts the recorded class
    model = torch.tensor(table.filter(like="model:").to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        predicted = context.module.backbone.eval()(model).argmax(dim=1)
    assert predicted.tolist() == table["predicted"].tolist()


def test_adult_records_point_to_their_test_rows_in_original_units(adult_wachter) -> None:
    context, _ = adult_wachter
    table = pd.read_csv(context.run_dir / "counterfactuals.csv")
    meta = context.dataset.tabular
    raw = pd.read_csv(
        locate("adult", context.cfg.paths.data_dir).paths[1], header=None, names=list(ADULT_COLUMNS),
        skiprows=1, skipinitialspace=True, dtype=str, keep_default_na=False,
    ).replace("?", "unknown")  # fmt: skip
    rows = raw.iloc[table["test_row"]].reset_index(drop=True)
    decoded = decode_rows(context.datamodule.x_test[torch.as_tensor(table["test_row"].to_numpy())], meta)
    for feature in decoded.columns:  # factual columns: the raw test rows, exactly
        expected = rows[feature].astype(float) if feature in meta.ranges else rows[feature]
        assert table[f"factual:{feature}"].tolist() == expected.tolist(), feature
        assert decoded[feature].tolist() == expected.tolist(), feature
    for feature in meta.immutable:  # never changed, so the counterfactual's value is the raw one too
        assert table[feature].tolist() == rows[feature].tolist(), feature
    income = rows["income"].str.rstrip(".") == ">50K"
    assert income.tolist() == context.datamodule.y_test[table["test_row"].to_numpy()].bool().tolist()
