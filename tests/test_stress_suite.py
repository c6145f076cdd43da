"""The stress suite on a trained model: real Adult (features, a category's share) and real MNIST (patches).

The Adult model is an ERM MLP trained for one epoch (MNIST: LeNet, 5 batches), enough for a model that
predicts both classes; the suite runs in process on the full test split with few levels and resamples.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import trustbench
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from trustbench.app import CONFIG_DIR
from trustbench.config import check_choices
from trustbench.errors import ConfigError
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.stress import evaluate_stress
from trustbench.experiment import fit
from trustbench.methods.base import Prediction
from trustbench.metrics.classification import accuracy
from trustbench.metrics.stress import row_quantities, weighted_metrics
from trustbench.stress.curves import transport_curves, unstressed
from trustbench.stress.features import tabular_features
from trustbench.stress.grid import stress_levels
from trustbench.stress.settings import StressSettings
from trustbench.stress.transport import isotonic_transport, lower_quantile_index, rank_order


def trained_context(data: str, root: Path, batches: int, *overrides: str) -> EvaluationContext:
    """A model of `data` trained for `batches` batches, in an evaluation context under `root`."""
    quick = [
        "trainer.max_epochs=1",
        f"+trainer.limit_train_batches={batches}",
        "+trainer.limit_val_batches=1",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}", *quick, f"paths.output_dir={root}", *overrides])
    with open_dict(cfg):
        cfg.logger = {}  # the CSV logger needs a Hydra job; nothing here reads training curves
    fitted = fit(cfg, root / "run")
    return EvaluationContext(cfg, fitted.module, fitted.datamodule, fitted.dataset, root / "run")


@pytest.fixture(scope="module")
def adult(tmp_path_factory: pytest.TempPathFactory) -> EvaluationContext:
    stress = ["data.stress.features=[age,'sex=Female']", "data.stress.levels=5", "data.stress.bootstrap=5"]
    return trained_context("adult", tmp_path_factory.mktemp("adult"), 200, *stress)


def with_stress(context: EvaluationContext, run_dir: Path, **settings: object) -> EvaluationContext:
    """The same fitted model and one prediction pass, under other data.stress settings and run dir."""
    cfg = context.cfg.copy()
    with open_dict(cfg):
        cfg.data.stress.update(settings)
    return context.for_member(cfg, run_dir)


def count_model_calls(context: EvaluationContext) -> list[int]:
    """Count the module's predict calls from now on (the list's one entry)."""
    calls, predict = [0], context.module.predict

    def counted(x: torch.Tensor) -> Prediction:
        calls[0] += 1
        return predict(x)

    context.module.predict = counted
    return calls


@pytest.fixture(scope="module")
def adult_keys(adult: EvaluationContext) -> dict[str, float]:
    return evaluate_stress(adult)


def test_keys_follow_the_documented_scheme_and_match_the_curves_csv(
    adult: EvaluationContext, adult_keys: dict[str, float]
) -> None:
    curves = pd.read_csv(adult.run_dir / "stress_curves.csv")
    assert {
        "stress/age/acc/tilt/-1",
        "stress/age/di_sex/quantile_smooth/+1",
        "stress/sex=Female/eod_sex/tilt/+1",
    } <= set(adult_keys)
    assert len(adult_keys) == (3 + 1) * 5 * 2  # (age: 3 transforms, sex: tilt) × key metrics × τ = ±1
    for key, value in adult_keys.items():
        _, feature, metric, transform, tau = key.split("/")
        row = curves[
            (curves["feature"] == feature) & (curves["metric"] == metric)
            & (curves["transform"] == transform) & (curves["tau"] == float(tau))
        ]  # fmt: skip
        assert len(row) == 1 and row.value.iloc[0] == pytest.approx(value, nan_ok=True), key


def test_the_unstressed_level_reproduces_the_metrics_of_the_test_set(
    adult: EvaluationContext, adult_keys: dict[str, float]
) -> None:
    curves = pd.read_csv(adult.run_dir / "stress_curves.csv")
    test = adult.prediction("test", adult.datamodule.x_test)
    at_zero = curves[
        (curves["tau"] == 0) & (curves["metric"] == "acc") & curves["transform"].isin(["tilt", "quantile"])
    ]
    assert len(at_zero) == 3  # age tilted and transported, sex tilted
    assert at_zero.value.tolist() == pytest.approx(
        [accuracy(test.probs, adult.datamodule.y_test)] * 3, abs=1e-12
    )


def test_reweighting_by_sex_changes_accuracy_but_not_the_fairness_between_the_sexes(
    adult: EvaluationContext, adult_keys: dict[str, float]
) -> None:
    """Weights that depend on sex alone leave each sex's rates as they are: DI, SPD and EOD between the
    sexes stay put while the population's accuracy and positive rate move with its mix of women."""
    curves = pd.read_csv(adult.run_dir / "stress_curves.csv")
    sex = curves[(curves["feature"] == "sex=Female") & (curves["transform"] == "tilt")]
    for metric in ("di_sex", "spd_sex", "eod_sex"):
        values = sex[sex.metric == metric].value
        assert values.max() - values.min() < 1e-9, metric
    positive = sex[sex.metric == "pos_rate"].sort_values("tau").value.tolist()
    assert positive[0] > positive[-1]  # more women, fewer predicted >50K (Adult's women earn less)
    assert set(curves[curves["feature"] == "sex=Female"]["transform"]) == {
        "tilt"
    }  # immutable: never transported


def test_the_tilt_alone_reuses_the_one_prediction_pass(adult: EvaluationContext, tmp_path: Path) -> None:
    context = with_stress(adult, tmp_path, transforms=["tilt"], features="all", levels=3, bootstrap=0)
    context.prediction("test", context.datamodule.x_test)  # the run's pass, shared with the other suites
    calls = count_model_calls(context)
    try:
        keys = evaluate_stress(context)
    finally:
        del context.module.predict
    assert calls == [0]
    features = {key.split("/")[1] for key in keys}
    assert {"age", "capital_loss", "sex=Male", "race=White", "occupation=Sales"} <= features


def test_a_transport_predicts_only_moved_rows_and_scores_the_transported_test_set(
    adult: EvaluationContext,
) -> None:
    """The curve of the exact quantile transport equals the metrics of the explicitly transported test
    set, every row predicted, with a model whose prediction is a known function of age."""
    settings = StressSettings(levels=5, bootstrap=0)
    x, labels = adult.dataset.x_test, adult.datamodule.y_test
    age = tabular_features(adult.dataset.tabular, x, ("age",))[0]

    def by_age(rows: torch.Tensor) -> Prediction:
        p1 = torch.sigmoid(6 * rows[:, age.columns[0]] - 2.5 + rows[:, 1])  # age and education
        return Prediction(torch.stack([1 - p1, p1], dim=1), -torch.maximum(p1, 1 - p1))

    moved_rows = []

    def predict(rows: torch.Tensor) -> Prediction:
        moved_rows.append(len(rows))
        return by_age(rows)

    data = unstressed(x, labels, adult.datamodule.groups_test, by_age(x), predict, settings)
    taus = stress_levels(5)
    curves = transport_curves(age, taus, "quantile", settings, data)
    order = rank_order(age.values, torch.Generator().manual_seed(settings.seed))
    for level, target in enumerate(curves["target"].tolist()):
        transported = x.clone()
        transported[:, age.columns[0]] = isotonic_transport(age.values, [(0.5, target)], order).float()
        rows = row_quantities(*by_age(transported).__dict__.values(), labels, adult.datamodule.groups_test)
        expected = weighted_metrics(torch.ones(len(x)), rows)
        for metric in ("acc", "ece", "pos_rate", "di_sex", "eod_race"):
            assert float(curves[metric][level]) == pytest.approx(float(expected[metric]), abs=1e-6), metric
    median = float(age.values[order][lower_quantile_index(len(x), 0.5)])
    assert curves["target"][2] == median and max(moved_rows) < len(x)  # only rows that moved, never all


def test_plots_show_one_column_per_feature_for_each_family_of_transforms(
    adult: EvaluationContext, adult_keys: dict[str, float]
) -> None:
    for name in ("stress_tilt.png", "stress_quantile.png"):
        assert (adult.run_dir / "plots" / name).stat().st_size > 50_000


def test_an_unknown_feature_or_a_bare_categorical_is_one_line_naming_what_exists(
    adult: EvaluationContext, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="continuous features: age, education_num"):
        evaluate_stress(with_stress(adult, tmp_path, features=["salary"]))
    with pytest.raises(ConfigError, match="one of sex=Female, sex=Male"):
        evaluate_stress(with_stress(adult, tmp_path, features=["sex"]))
    with pytest.raises(ConfigError, match="not on the grid of 5 levels"):
        evaluate_stress(with_stress(adult, tmp_path, key_levels=[0.3]))


def test_mnist_patches_are_tilted_into_maps_and_summarised_by_the_extreme_patch(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    context = trained_context("mnist", tmp_path_factory.mktemp("mnist"), 5, "data.stress.patch=7")
    keys = evaluate_stress(context)
    assert set(keys) == {
        f"stress/pixels/{metric}/tilt/{tau}/{end}"
        for metric in ("acc", "ece", "uncertainty")
        for tau in ("-1", "+1")
        for end in ("min", "max")
    }
    assert all(keys[k.replace("/max", "/min")] <= keys[k] for k in keys if k.endswith("/max"))
    patches = pd.read_csv(context.run_dir / "stress_pixels.csv")
    assert set(zip(patches.row, patches.col, strict=True)) <= {(r, c) for r in range(4) for c in range(4)}
    classes = patches[(patches.metric.str.startswith("mean_prob_")) & (patches.tau == 0)]
    assert classes.groupby(["row", "col"]).value.sum().tolist() == pytest.approx([1.0] * 16, abs=1e-5)
    assert not math.isnan(keys["stress/pixels/acc/tilt/+1/min"])
    for name in ("stress_pixels.png", "stress_pixel_classes.png"):
        assert (context.run_dir / "plots" / name).stat().st_size > 20_000


def test_a_bad_stress_setting_stops_the_run_before_training_with_one_line(tmp_path: Path) -> None:
    proc = trustbench(
        "run", "data=adult", "data.suites=[fairness,stress]", "data.stress.levels=4",
        f"paths.output_dir={tmp_path}", check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "trustbench: data.stress.levels=4 is not allowed: it takes an odd integer >= 3"
    )
    assert not (tmp_path / "runs").exists()  # nothing trained, no run dir


def test_images_default_to_tilted_pixels_and_refuse_a_transport_before_any_work() -> None:
    overrides = ["data=fashion_mnist", "+data.suites=[stress]"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        plain = compose("config", overrides=overrides)
        moved = compose("config", overrides=[*overrides, "+data.stress.transforms=[quantile]"])
    check_choices(plain)  # no stress block: every pixel, tilted
    assert StressSettings.from_config(None, 0, images=True).transforms == ("tilt",)
    with pytest.raises(ConfigError, match=r"moves no image; set data.stress.transforms=\[tilt\]"):
        check_choices(moved)
