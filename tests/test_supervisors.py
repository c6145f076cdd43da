"""The supervisor benchmark's pieces: the MNIST-C and CIFAR-10-C corruption mixes, variation ratio, the
settings' errors and the table (the minimal-ε adversarial set: tests/test_attacks_minimal.py)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from real_data import real

from trustbench.data import mnist_c, shifts
from trustbench.errors import ConfigError
from trustbench.evaluation.supervisor_scores import variation_ratio
from trustbench.evaluation.supervisor_sets import SupervisorSettings, corruption_family, mixed_corruptions
from trustbench.results.supervisor_table import supervisor_table


def test_each_mnist_c_corruption_takes_every_fifteenth_image():
    images = real("mnist").x_test[:30]
    mixed = mixed_corruptions(images, "mnist_c", severity=3, seed=0)
    for index, name in enumerate(mnist_c.MNIST_C):
        torch.testing.assert_close(mixed[index::15], mnist_c.corrupt(images[index::15], name, 0))
    few = mixed_corruptions(images[:3], "mnist_c", severity=3, seed=0)  # fewer images than corruptions
    for index, name in enumerate(list(mnist_c.MNIST_C)[:3]):
        one = slice(index, index + 1)
        torch.testing.assert_close(few[one], mnist_c.corrupt(images[one], name, 0))


def test_each_corruption_of_the_shift_suite_takes_every_seventh_image():
    images = real("mnist").x_test[:21]
    mixed = mixed_corruptions(images, "cifar_c", severity=3, seed=0)
    for index, name in enumerate(shifts.CORRUPTIONS):
        torch.testing.assert_close(mixed[index::7], shifts.corrupt(images[index::7], name, 3, 0))
    assert not torch.equal(mixed, images)


def test_the_corruption_family_defaults_to_mnist_c_on_28x28_grayscale_only():
    default = SupervisorSettings.from_config({"invalid": "mnist"})
    assert corruption_family(default, (1, 28, 28)) == "mnist_c"
    assert corruption_family(default, (3, 32, 32)) == "cifar_c"
    chosen = SupervisorSettings.from_config({"invalid": "mnist", "corruptions": "cifar_c"})
    assert corruption_family(chosen, (1, 28, 28)) == "cifar_c"
    forced = SupervisorSettings.from_config({"invalid": "svhn", "corruptions": "mnist_c"})
    with pytest.raises(ConfigError, match="mnist_c needs 1x28x28 images.*are 3x32x32: use cifar_c"):
        corruption_family(forced, (3, 32, 32))
    with pytest.raises(ConfigError, match="corruptions must be one of mnist_c, cifar_c .*got 'imagenet_c'"):
        SupervisorSettings.from_config({"invalid": "mnist", "corruptions": "imagenet_c"})


def test_variation_ratio_counts_the_votes_against_the_most_voted_class():
    # four samples of two inputs: votes (0, 0, 1, 2) and (1, 1, 1, 1)
    votes = torch.tensor([[0, 1], [0, 1], [1, 1], [2, 1]])
    samples = torch.nn.functional.one_hot(votes, 3).float() * 0.6 + 0.1
    torch.testing.assert_close(variation_ratio(samples), torch.tensor([0.5, 0.0], dtype=torch.float64))


def test_settings_need_the_invalid_set_and_name_wrong_keys():
    with pytest.raises(ConfigError, match="data.supervisors.invalid must name the dataset"):
        SupervisorSettings.from_config({"points": 10})
    with pytest.raises(ConfigError, match="data.supervisors has no key point; its keys are"):
        SupervisorSettings.from_config({"invalid": "mnist", "point": 10})
    with pytest.raises(ConfigError, match="every eps > 0"):
        SupervisorSettings.from_config({"invalid": "mnist", "eps": [0.0, 0.1]})
    chosen = SupervisorSettings.from_config({"invalid": "mnist", "ambiguess": {"pairs": [[0, 6]]}})
    assert chosen.ambiguess.pairs == ((0, 6),)


def test_table_has_a_row_per_model_and_supervisor_with_mean_and_std_over_seeds():
    runs = pd.DataFrame(
        [
            {"method": "erm", "status": "ok", "sup/msp/ambiguous/auroc": 0.6, "sup/msp/invalid/auroc": 0.9},
            {"method": "erm", "status": "ok", "sup/msp/ambiguous/auroc": 0.8, "sup/msp/invalid/auroc": 0.9},
            {"method": "duq", "status": "ok", "sup/duq/adversarial/auroc": 0.75},
            {"method": "duq", "status": "failed", "sup/duq/adversarial/auroc": 0.1},
        ]
    )
    lines = supervisor_table(runs).splitlines()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert cells[0] == ["model", "supervisor", "ambiguous", "invalid", "corrupted", "adversarial"]
    assert cells[2] == ["duq", "duq", "–", "–", "–", "0.750"]
    assert cells[3] == ["erm", "msp", "0.700 ± 0.141", "0.900 ± 0.000", "–", "–"]
