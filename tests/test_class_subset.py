"""Open-set splits: K known classes relabelled 0..K-1, the other classes' test images as the `unknown` set."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO
from hydra import compose, initialize_config_dir
from real_data import real

from trustbench.data.arrays import ArrayDataset
from trustbench.data.catalog import load_configured
from trustbench.data.class_subset import configured_known_classes, keep_classes
from trustbench.data.ood_sets import build_ood_inputs
from trustbench.results.model_store import training_recipe

KNOWN = [2, 4, 5, 9, 8, 3]


@pytest.fixture(scope="module")
def mnist() -> ArrayDataset:
    return real("mnist")


def osr_config(*overrides: str):
    with initialize_config_dir(str(REPO / "configs"), version_base=None):
        return compose("config", overrides=["data=osr_mnist", *overrides])


def test_known_rows_are_relabelled_in_the_listed_order(mnist: ArrayDataset) -> None:
    subset = keep_classes(mnist, KNOWN)
    assert subset.num_classes == 6 and subset.class_names == ("2", "4", "5", "9", "8", "3")
    for new, old in enumerate(KNOWN):
        assert int((subset.y_train == new).sum()) == int((mnist.y_train == old).sum())
        assert torch.equal(subset.x_test[subset.y_test == new], mnist.x_test[mnist.y_test == old])


def test_unknown_set_is_every_held_out_test_image(mnist: ArrayDataset) -> None:
    subset = keep_classes(mnist, KNOWN)
    held_out = torch.isin(mnist.y_test, torch.tensor([0, 1, 6, 7]))
    assert torch.equal(build_ood_inputs("unknown", subset, "unused"), mnist.x_test[held_out])
    assert len(subset.x_test) + len(subset.unknown_test) == len(mnist.x_test)


def test_unknown_set_needs_an_open_set_split(mnist: ArrayDataset) -> None:
    with pytest.raises(ValueError, match="set data.known_classes"):
        build_ood_inputs("unknown", mnist, "unused")


@pytest.mark.parametrize("known", [[1, 1, 2], [0, 10], [], list(range(10))])
def test_bad_known_classes_are_one_clear_error(mnist: ArrayDataset, known: list[int]) -> None:
    with pytest.raises(ValueError, match=r"data\.known_classes="):
        keep_classes(mnist, known)


def test_class_split_picks_the_configured_classes_and_its_own_stored_model() -> None:
    split3 = osr_config("data.class_split=3")
    assert configured_known_classes(split3.data) == [5, 8, 3, 2, 4, 6]
    recipes = [training_recipe(osr_config(f"data.class_split={split}")) for split in (1, 2)]
    assert recipes[0]["data"]["known_classes"] == KNOWN and recipes[0] != recipes[1]
    explicit = osr_config("data.known_classes=[0,1]")
    assert configured_known_classes(explicit.data) == [0, 1]
    with pytest.raises(
        ValueError, match=r"data.class_split=6 is not one of this dataset's splits \[1, 2, 3, 4, 5\]"
    ):
        configured_known_classes(osr_config("data.class_split=6").data)


def test_osr_fashion_mnist_loads_six_classes() -> None:
    with initialize_config_dir(str(REPO / "configs"), version_base=None):
        cfg = compose("config", overrides=["data=osr_fashion_mnist", "data.class_split=2"])
    dataset = load_configured(cfg.data, cfg.paths.data_dir)
    assert dataset.num_classes == 6 and dataset.class_names[0] == "Dress"
    assert len(dataset.x_test) == 6000 and len(dataset.unknown_test) == 4000
