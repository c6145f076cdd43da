"""The registry and the datasets it loads, including the real copies mirrored on this machine."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from trustbench.data import catalog, sources
from trustbench.data.arrays import ArrayDataset
from trustbench.data.names import DATASETS, REGRESSION_DATASETS, dataset_kind
from trustbench.data.tabular import feature_columns

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"


@pytest.fixture(scope="module")
def empty_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("empty-data-dir")


def load_mirrored(name: str, data_dir: Path) -> ArrayDataset:
    """Load from the offline mirror on this machine, or skip naming what to install."""
    if sources.dataset_status(name, data_dir).used in (None, "download"):
        pytest.skip(f"no offline copy of {name} here: {[s.label for s in sources.SOURCES[name].local]}")
    return catalog.load(name, data_dir)


def assert_image_set(dataset: ArrayDataset, train: int, test: int, shape: tuple[int, ...]) -> None:
    assert dataset.kind == "image"
    assert dataset.x_train.shape == (train, *shape) and dataset.x_test.shape == (test, *shape)
    assert dataset.x_train.dtype == torch.float32 and dataset.y_train.dtype == torch.int64
    assert 0.0 == dataset.x_train.min().item() and dataset.x_train.max().item() == 1.0
    assert set(dataset.y_train.tolist()) == set(range(dataset.num_classes)) == set(dataset.y_test.tolist())


def test_mnist_mirror_is_the_official_60k_10k_split(empty_data_dir):
    mnist = load_mirrored("mnist", empty_data_dir)
    assert_image_set(mnist, 60000, 10000, (1, 28, 28))
    assert mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert torch.bincount(mnist.y_train).tolist()[:3] == [5923, 6742, 5958]
    pixels = mnist.x_train[:100] * 255
    assert torch.equal(pixels, pixels.round())


def test_fashion_mnist_mirror_is_balanced_60k_10k(empty_data_dir):
    fashion = load_mirrored("fashion_mnist", empty_data_dir)
    assert_image_set(fashion, 60000, 10000, (1, 28, 28))
    assert torch.bincount(fashion.y_train).tolist() == [6000] * 10
    assert torch.bincount(fashion.y_test).tolist() == [1000] * 10


def test_animal_mnist_mirror_is_split_8k_2k_by_class(empty_data_dir):
    animals = load_mirrored("animal_mnist", empty_data_dir)
    assert_image_set(animals, 8000, 2000, (1, 28, 28))
    assert torch.bincount(animals.y_test).tolist() == [200] * 10
    assert animals.class_names[0] == "Bear" and animals.class_names[-1] == "Zebra"


def assert_tabular_encoding(dataset: ArrayDataset) -> None:
    meta = dataset.tabular
    assert dataset.x_train.shape[1] == len(meta.feature_names)
    for group in meta.categorical_groups:
        for x in (dataset.x_train, dataset.x_test):
            assert torch.equal(x[:, list(group)].sum(dim=1), torch.ones(len(x)))
    continuous = dataset.x_train[:, list(meta.continuous)]
    assert continuous.min().item() == 0.0 and continuous.max().item() == 1.0
    for name in (*meta.immutable, *meta.increase_only):
        assert feature_columns(meta, name), name
    for groups in (dataset.groups_train, dataset.groups_test):
        assert all(set(values.unique().tolist()) == {0, 1} for values in groups.values())


def test_adult_keeps_the_official_split_and_all_rows(empty_data_dir):
    adult = load_mirrored("adult", empty_data_dir)
    assert (len(adult.x_train), len(adult.x_test)) == (32561, 16281)
    assert set(adult.groups_train) == {"sex", "race"}
    assert_tabular_encoding(adult)
    assert adult.y_train.float().mean().item() == pytest.approx(7841 / 32561)
    assert adult.groups_train["sex"].sum().item() == 21790  # men in adult.data
    sex = feature_columns(adult.tabular, "sex")
    assert [adult.tabular.feature_names[i] for i in sex] == ["sex=Female", "sex=Male"]
    assert torch.equal(adult.x_train[:, sex[1]].long(), adult.groups_train["sex"])
    assert {"race", "sex"} <= set(adult.tabular.immutable) and "age" in adult.tabular.increase_only


def test_compas_uses_propublica_filtering_and_two_races(empty_data_dir):
    compas = load_mirrored("compas", empty_data_dir)
    assert len(compas.x_train) + len(compas.x_test) == 3175 + 2103
    assert len(compas.x_test) == round(0.2 * 5278)
    assert_tabular_encoding(compas)
    caucasian = torch.cat([compas.groups_train["race"], compas.groups_test["race"]]).sum().item()
    assert caucasian == 2103


def test_german_has_a_fixed_80_20_split(empty_data_dir):
    german = load_mirrored("german", empty_data_dir)
    assert (len(german.x_train), len(german.x_test)) == (800, 200)
    assert torch.cat([german.y_train, german.y_test]).sum().item() == 700  # 700 good, 300 bad credits
    assert_tabular_encoding(german)
    assert set(german.groups_train) == {"age", "sex"}
    assert german.tabular.immutable == ("personal_status_sex", "foreign_worker")


def test_seeded_split_is_the_same_after_reloading(empty_data_dir):
    first = load_mirrored("german", empty_data_dir)
    catalog.clear_cache()
    second = catalog.load("german", empty_data_dir)
    assert first is not second
    assert torch.equal(first.x_test, second.x_test) and torch.equal(first.y_train, second.y_train)


def test_images_from_a_data_dir_are_uint8_over_255_and_split_by_class(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(402, 28, 28), dtype=np.uint8)
    labels = np.repeat([0, 1], 201)
    folder = tmp_path / "animal_mnist"
    folder.mkdir()
    for name, array in zip(sources.ANIMAL_MNIST_FILES, (images, labels), strict=True):
        (folder / name).write_bytes(gzip.compress(pickle.dumps(array)))
    animals = catalog.load("animal_mnist", tmp_path)
    assert animals.y_train.tolist() == [0, 1] and len(animals.x_test) == 400
    assert torch.equal(animals.x_train[:, 0], torch.from_numpy(images[[0, 201]]).float() / 255)


def test_loading_twice_returns_the_cached_dataset(tmp_path):
    assert catalog.load("synthetic", tmp_path) is catalog.load("synthetic", str(tmp_path))


def test_unknown_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(
        ValueError, match="unknown dataset 'imagenet'; valid names: mnist, fashion_mnist, "
    ) as error:
        catalog.load("imagenet", tmp_path)
    assert "\n" not in str(error.value)


def test_synthetic_is_deterministic_tabular_with_a_binary_group(tmp_path):
    first = catalog.load("synthetic", tmp_path)
    catalog.clear_cache()
    second = catalog.load("synthetic", tmp_path)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(
        first.groups_test["group"], second.groups_test["group"]
    )
    assert first.x_train.shape == (400, 8) and first.num_classes == 4
    assert first.tabular.continuous == tuple(range(8)) and first.tabular.categorical_groups == ()
    group = first.groups_train["group"].float()
    assert group[first.y_train < 2].mean() > 0.6 > 0.4 > group[first.y_train >= 2].mean()


def test_synthetic_image_is_small_balanced_and_in_unit_range(tmp_path):
    images = catalog.load("synthetic_image", tmp_path)
    assert_image_set(images, 300, 150, (1, 12, 12))
    assert torch.bincount(images.y_train).tolist() == [100, 100, 100]


def test_dataset_kind_is_known_without_loading_and_matches_the_data(tmp_path):
    assert dataset_kind("cifar100") == "image" and dataset_kind("german") == "tabular"
    for name in ("synthetic", "synthetic_image"):
        assert dataset_kind(name) == catalog.load(name, tmp_path).kind
    with pytest.raises(ValueError, match="valid names"):
        dataset_kind("imagenet")


def test_every_dataset_has_sources_and_a_config():
    """Classification sets are the catalog's, regression sets regression_sets' (their own tests check
    their configs); every one of them has sources, and no source is for a set neither knows."""
    assert set(sources.SOURCES) == set(DATASETS) | set(REGRESSION_DATASETS)
    assert not set(DATASETS) & set(REGRESSION_DATASETS)
    for name, description in DATASETS.items():
        path = CONFIGS / f"{name}.yaml"
        config = yaml.safe_load(path.read_text())
        assert path.read_text().splitlines()[0] == f"# {description}"
        assert config["name"] == name and config["val_size"] > 0 and config["batch_size"] > 0
        assert set(config["ood"]) <= set(DATASETS) - {name}


@pytest.mark.parametrize(
    ("name", "ood"),
    [
        ("mnist", ["fashion_mnist", "animal_mnist"]),
        ("cifar10", ["svhn", "cifar100"]),
        ("svhn", ["cifar10"]),
        ("adult", []),
    ],
)
def test_configured_ood_sets(name, ood):
    assert yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["ood"] == ood
