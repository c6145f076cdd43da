"""Your own table: a CSV of real Adult rows read into the catalog's encoding, run through fairness and
counterfactual suites, and one-line errors naming the file and the column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import result, trustbench
from omegaconf import OmegaConf

from trustbench.data import tabular
from trustbench.data.errors import DatasetFileError
from trustbench.data.sources import locate
from trustbench.data.user_tabular import read_tabular_csv

ROWS = 400
CONFIG = {
    "name": "files_tabular",
    "target": "income",
    "categorical": list(tabular.ADULT_SPEC.categorical),
    "continuous": list(tabular.ADULT_SPEC.continuous),
    "immutable": ["native_country"],
    "increase_only": ["age", "education_num"],
    "groups": {"sex": "Male", "race": "White"},
    "test_column": "split",
}


@pytest.fixture(scope="module")
def adult_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 400 rows of UCI adult.data and of adult.test, with a header and a split column, missing
    values ("?") written "unknown" as the catalog's reader does."""
    train_path, test_path = locate("adult", tmp_path_factory.mktemp("empty")).paths
    read = lambda path, skip: pd.read_csv(  # noqa: E731
        path,
        header=None,
        names=list(tabular.ADULT_COLUMNS),
        skipinitialspace=True,
        skiprows=skip,
        nrows=ROWS,
        dtype=str,
        keep_default_na=False,
    )
    train, test = read(train_path, 0), read(test_path, 1)
    test["income"] = test["income"].str.rstrip(".")
    frame = pd.concat([train.assign(split="train"), test.assign(split="test")]).replace("?", "unknown")
    path = tmp_path_factory.mktemp("user") / "adult.csv"
    frame.to_csv(path, index=False)
    return path


def _read(path: Path, **changes: object):
    return read_tabular_csv(OmegaConf.create({**CONFIG, "path": str(path), **changes}))


def test_a_csv_of_adult_rows_is_encoded_as_the_catalog_encodes_adult(adult_csv: Path) -> None:
    dataset = _read(adult_csv)
    train_path, test_path = locate("adult", adult_csv.parent).paths
    splits = tabular._adult_split(train_path, 0)[:ROWS], tabular._adult_split(test_path, 1)[:ROWS]
    x_train, x_test, meta = tabular.encode(*splits, tabular.ADULT_SPEC)
    assert dataset.tabular.feature_names == meta.feature_names
    assert dataset.tabular.categorical_groups == meta.categorical_groups
    assert dataset.tabular.ranges == meta.ranges
    assert set(dataset.tabular.immutable) == {"native_country", "sex", "race"}
    assert (dataset.x_train == x_train).all() and (dataset.x_test == x_test).all()
    assert dataset.class_names == ("<=50K", ">50K")
    assert dataset.y_train.tolist() == splits[0]["label"].astype(int).tolist()
    assert dataset.groups_test["sex"].tolist() == splits[1]["group_sex"].astype(int).tolist()


def test_missing_column_and_bad_number_name_the_file_and_column(adult_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetFileError, match=r"adult\.csv: no column 'gender' \(named in data\.groups\)"):
        _read(adult_csv, groups={"gender": "Male"})
    with pytest.raises(DatasetFileError, match=r"adult\.csv: no column 'salary' \(named in data\.target\)"):
        _read(adult_csv, target="salary")
    frame = pd.read_csv(adult_csv, dtype=str, keep_default_na=False)
    frame.loc[5, "age"] = "forty"
    frame.to_csv(tmp_path / "typo.csv", index=False)
    with pytest.raises(DatasetFileError, match=r"typo\.csv: column 'age' is continuous but row 7 holds"):
        _read(tmp_path / "typo.csv")


def test_without_a_split_column_a_fixed_fraction_of_each_class_is_held_out(adult_csv: Path) -> None:
    dataset = _read(
        adult_csv,
        test_column=None,
        test_fraction=0.25,
        continuous=None,
        categorical=[*tabular.ADULT_SPEC.categorical, "education", "split"],
    )
    counts = pd.read_csv(adult_csv)["income"].value_counts()
    assert dataset.y_test.bincount().tolist() == [round(0.25 * counts["<=50K"]), round(0.25 * counts[">50K"])]
    assert "fnlwgt" in dataset.tabular.feature_names  # continuous: null takes every other column


def test_a_run_on_the_csv_gives_fairness_and_counterfactual_numbers(adult_csv: Path, tmp_path: Path) -> None:
    overrides = [  # as a user types them (the README's example)
        f"data.path={adult_csv}",
        "data.target=income",
        "data.test_column=split",
        f"data.categorical=[{','.join(tabular.ADULT_SPEC.categorical)}]",
        f"data.continuous=[{','.join(tabular.ADULT_SPEC.continuous)}]",
        "data.immutable=[native_country]",
        "data.increase_only=[age,education_num]",
        "data.groups={sex:Male,race:White}",
        "data.protected=sex",
        "data.suites=[fairness]",
    ]
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "data=files_tabular",
        *overrides,
        "method=wachter",
        "method.explain.points=10",
        "trainer.max_epochs=3",
        "data.batch_size=32",
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
    )
    metrics = result(run_dir)["metrics"]
    assert 0.6 < metrics["cls/acc"] <= 1.0
    assert 0.0 <= metrics["fair/sex/dpd"] <= 1.0 and "fair/race/dpd" in metrics
    assert metrics["cf/n"] >= 10 and metrics["cf/immutable_violations"] == 0.0
