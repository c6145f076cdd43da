"""The fairness/counterfactual tabular datasets (UCI Adult, ProPublica COMPAS, UCI German credit), encoded.

Encoding is shared by all three (and the synthetic set): continuous features min-max scaled with the
training split's range (test values may fall slightly outside [0, 1]: they are not clipped), then every
categorical feature as a one-hot group over the categories seen in either split. Columns are named
``feature`` (continuous) or ``feature=category`` (one-hot); `TabularMeta.immutable` / `increase_only`
name features, and :func:`feature_columns` maps a feature to its columns.

Protected attributes are model inputs too, as in CARLA's Adult: removing them rarely removes the
information (proxies remain) and counterfactual methods need to see them to hold them fixed, so they are
kept as features, marked immutable, and also given as binary groups (1 = the usually privileged group).

COMPAS and German credit have no official split: a fixed permutation from :data:`SPLIT_SEED` puts 20% of
the rows in the test split, the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trustbench.data.arrays import ArrayDataset, TabularMeta
from trustbench.data.errors import DatasetFileError
from trustbench.data.formats import read_csv

SPLIT_SEED = 20240229
TEST_FRACTION = 0.2

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
)
GERMAN_COLUMNS = (
    "checking_status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "personal_status_sex",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "num_dependents",
    "telephone",
    "foreign_worker",
    "credit",
)
GERMAN_MALE_CODES = ("A91", "A93", "A94")  # personal_status_sex codes of men in the UCI documentation
COMPAS_RACES = ("African-American", "Caucasian")


@dataclass(frozen=True)
class TabularSpec:
    """Which columns of a raw table are features of which kind, and what they may not change."""

    continuous: tuple[str, ...]
    categorical: tuple[str, ...]
    immutable: tuple[str, ...] = ()
    increase_only: tuple[str, ...] = ()


ADULT_SPEC = TabularSpec(
    # fnlwgt is a census sampling weight, not a property of the person; education duplicates education_num
    continuous=("age", "education_num", "capital_gain", "capital_loss", "hours_per_week"),
    categorical=(
        "workclass",
        "marital_status",
        "occupation",
        "relationship",
        "race",
        "sex",
        "native_country",
    ),
    immutable=("race", "sex", "native_country"),
    increase_only=("age", "education_num"),
)
COMPAS_SPEC = TabularSpec(
    # decile_score / score_text are COMPAS's own predictions and are left out
    continuous=(
        "age",
        "priors_count",
        "juv_fel_count",
        "juv_misd_count",
        "juv_other_count",
        "length_of_stay",
    ),
    categorical=("c_charge_degree", "race", "sex"),
    immutable=("race", "sex"),
    increase_only=("age", "priors_count"),
)
GERMAN_SPEC = TabularSpec(
    continuous=(
        "duration",
        "credit_amount",
        "installment_rate",
        "residence_since",
        "age",
        "existing_credits",
        "num_dependents",
    ),
    categorical=(
        "checking_status",
        "credit_history",
        "purpose",
        "savings",
        "employment_since",
        "personal_status_sex",
        "other_debtors",
        "property",
        "other_installment_plans",
        "housing",
        "job",
        "telephone",
        "foreign_worker",
    ),
    immutable=("personal_status_sex", "foreign_worker"),
    increase_only=("age",),
)


def encode(
    train: pd.DataFrame, test: pd.DataFrame, spec: TabularSpec
) -> tuple[torch.Tensor, torch.Tensor, TabularMeta]:
    """Encode both splits as float32 rows: scaled continuous columns first, then one-hot groups."""
    names: list[str] = []
    train_columns: list[np.ndarray] = []
    test_columns: list[np.ndarray] = []
    ranges: dict[str, tuple[float, float]] = {}
    for feature in spec.continuous:
        low, high = float(train[feature].min()), float(train[feature].max())
        width = high - low if high > low else 1.0
        ranges[feature] = (low, high)
        names.append(feature)
        train_columns.append((train[feature].to_numpy(np.float64) - low) / width)
        test_columns.append((test[feature].to_numpy(np.float64) - low) / width)
    groups: list[tuple[int, ...]] = []
    for feature in spec.categorical:
        categories = sorted(set(train[feature].astype(str)) | set(test[feature].astype(str)))
        groups.append(tuple(range(len(names), len(names) + len(categories))))
        for category in categories:
            names.append(f"{feature}={category}")
            train_columns.append((train[feature].astype(str) == category).to_numpy(np.float64))
            test_columns.append((test[feature].astype(str) == category).to_numpy(np.float64))
    meta = TabularMeta(
        feature_names=tuple(names),
        continuous=tuple(range(len(spec.continuous))),
        categorical_groups=tuple(groups),
        ranges=ranges,
        immutable=spec.immutable,
        increase_only=spec.increase_only,
    )
    return _rows(train_columns), _rows(test_columns), meta


def _rows(columns: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(columns, axis=1).astype(np.float32))


def _ints(frame: pd.DataFrame, column: str) -> torch.Tensor:
    return torch.from_numpy(frame[column].to_numpy(np.int64))


def feature_columns(meta: TabularMeta, feature: str) -> tuple[int, ...]:
    """Indices of the encoded columns of `feature` (one for continuous, the one-hot group otherwise)."""
    return tuple(
        i for i, name in enumerate(meta.feature_names) if name == feature or name.startswith(f"{feature}=")
    )


def _numeric(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> pd.DataFrame:
    try:
        return frame.assign(**{column: pd.to_numeric(frame[column]) for column in columns})
    except (ValueError, TypeError) as exc:
        raise DatasetFileError(f"{path}: non-numeric value in {', '.join(columns)} ({exc})") from exc


def _binary(
    frame: pd.DataFrame, column: str, positive: Sequence[str], allowed: Sequence[str], path: Path
) -> np.ndarray:
    values = frame[column].astype(str)
    unexpected = sorted(set(values) - set(allowed))
    if unexpected:
        raise DatasetFileError(
            f"{path}: unexpected {column} values {unexpected[:5]}; expected {list(allowed)}"
        )
    return values.isin(positive).to_numpy()


def _seeded_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(frame))
    test_rows = np.sort(order[: round(TEST_FRACTION * len(frame))])
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[test_rows] = True
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def _dataset(
    name: str,
    spec: TabularSpec,
    splits: tuple[pd.DataFrame, pd.DataFrame],
    groups: Sequence[str],
    class_names: tuple[str, str],
) -> ArrayDataset:
    """Assemble a dataset from frames holding the features, a 0/1 `label` column and 0/1 group columns."""
    train, test = splits
    x_train, x_test, meta = encode(train, test, spec)
    return ArrayDataset(
        name=name,
        kind="tabular",
        x_train=x_train,
        y_train=_ints(train, "label"),
        x_test=x_test,
        y_test=_ints(test, "label"),
        num_classes=2,
        class_names=class_names,
        groups_train={group: _ints(train, f"group_{group}") for group in groups},
        groups_test={group: _ints(test, f"group_{group}") for group in groups},
        tabular=meta,
    )


def _adult_split(path: Path, skip_rows: int) -> pd.DataFrame:
    frame = read_csv(
        path,
        header=None,
        names=list(ADULT_COLUMNS),
        skipinitialspace=True,
        skiprows=skip_rows,
        dtype=str,
        keep_default_na=False,
    )
    frame = _numeric(frame.replace("?", "unknown"), ADULT_SPEC.continuous, path)
    income = frame["income"].str.rstrip(".")  # adult.test writes "<=50K." and ">50K."
    return frame.assign(
        label=_binary(frame.assign(income=income), "income", [">50K"], ["<=50K", ">50K"], path),
        group_sex=frame["sex"] == "Male",
        group_race=frame["race"] == "White",
    )


def read_adult(train_path: Path, test_path: Path) -> ArrayDataset:
    """UCI Adult (`adult.data`, `adult.test`), official split kept, all rows (missing values → "unknown").

    Label: income >50K = 1. Groups: sex (1 = Male), race (1 = White).
    """
    splits = (_adult_split(train_path, skip_rows=0), _adult_split(test_path, skip_rows=1))
    return _dataset("adult", ADULT_SPEC, splits, ("sex", "race"), ("<=50K", ">50K"))


def read_compas(path: Path) -> ArrayDataset:
    """ProPublica COMPAS (`compas-scores-two-years.csv`) with ProPublica's filtering, then two races only.

    Rows kept as in ProPublica's analysis: days_b_screening_arrest within ±30, is_recid != -1,
    c_charge_degree != "O", score_text != "N/A" (6,172 rows). Of these only African-American and Caucasian
    defendants are kept (5,278 rows; the other 894 are too few per race for group metrics), which makes race
    binary: group race 1 = Caucasian, 0 = African-American; sex 1 = Male. Label 1 = no recidivism within
    two years (two_year_recid = 0): class 1 is the favourable outcome in every fairness metric, as in
    AIF360's ``CompasDataset`` (favorable class 0 of two_year_recid).
    """
    frame = read_csv(path)
    needed = {
        "days_b_screening_arrest",
        "is_recid",
        "c_charge_degree",
        "score_text",
        "race",
        "sex",
        "c_jail_in",
        "c_jail_out",
        "two_year_recid",
        *COMPAS_SPEC.continuous,
    } - {"length_of_stay"}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise DatasetFileError(f"{path}: missing columns {missing}")
    frame = frame[
        frame["days_b_screening_arrest"].between(-30, 30)
        & (frame["is_recid"] != -1)
        & (frame["c_charge_degree"] != "O")
        & frame["score_text"].notna()
        & (frame["score_text"] != "N/A")
        & frame["race"].isin(COMPAS_RACES)
    ].reset_index(drop=True)
    stay = pd.to_datetime(frame["c_jail_out"]) - pd.to_datetime(frame["c_jail_in"])
    frame = _numeric(
        frame.assign(length_of_stay=stay.dt.total_seconds() / 86400), COMPAS_SPEC.continuous, path
    )
    frame = frame.assign(
        label=_binary(frame, "two_year_recid", ["0"], ["0", "1"], path),
        group_race=frame["race"] == "Caucasian",
        group_sex=frame["sex"] == "Male",
    )
    return _dataset(
        "compas", COMPAS_SPEC, _seeded_split(frame), ("race", "sex"), ("recidivism", "no recidivism")
    )


def read_german(path: Path) -> ArrayDataset:
    """UCI Statlog German credit (`german.data`, categorical codes as in the UCI documentation, e.g. A11).

    Label: good credit (code 1) = 1. Groups: age (1 = age ≥ 25), sex (1 = male, from personal_status_sex).
    """
    frame = read_csv(path, sep=" ", header=None, names=list(GERMAN_COLUMNS), dtype=str, keep_default_na=False)
    frame = _numeric(frame, GERMAN_SPEC.continuous, path)
    frame = frame.assign(
        label=_binary(frame, "credit", ["1"], ["1", "2"], path),
        group_age=frame["age"] >= 25,
        group_sex=frame["personal_status_sex"].isin(GERMAN_MALE_CODES),
    )
    return _dataset(
        "german", GERMAN_SPEC, _seeded_split(frame), ("age", "sex"), ("bad credit", "good credit")
    )
