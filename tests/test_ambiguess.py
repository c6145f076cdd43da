"""AmbiGuess on real MNIST digits: the latent grid, sampling and labels of an rAAE, its cache, settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from real_data import real

from trustbench.data.ambiguess import (
    AmbiGuessSettings,
    LatentGrid,
    RegularisedAAE,
    decoder_gradient_norms,
    generate_ambiguous,
)
from trustbench.errors import ConfigError

PAIR = (3, 5)
# 6 epochs of batch 64 on 3000 real 3s and 5s (280 steps, seconds of CPU): the fewest that separate the
# classes (at 1 epoch the two-class accuracy stays at chance)
QUICK = AmbiGuessSettings(pairs=(PAIR,), epochs=6, batch_size=64, samples_per_pair=40, anchors_per_dim=20)


@pytest.fixture(scope="module")
def threes_and_fives() -> tuple[torch.Tensor, torch.Tensor]:
    dataset = real("mnist")
    rows = ((dataset.y_train == 3) | (dataset.y_train == 5)).nonzero().squeeze(1)[:3000]
    return dataset.x_train[rows], dataset.y_train[rows]


@pytest.fixture(scope="module")
def generated(threes_and_fives, tmp_path_factory) -> tuple:
    cache = tmp_path_factory.mktemp("raae")
    x, y = threes_and_fives
    return generate_ambiguous(x, y, 10, QUICK, cache, "mnist", seed=0), cache


def test_the_grid_spans_the_border_between_the_modes_as_the_reference_lays_it():
    grid = LatentGrid.between_modes(2)
    # x from -3 + 2 to 3 - 2 in two cells of width 1, y from -5 to 5 in two cells of height 5
    assert grid.cell.tolist() == [1.0, 5.0]
    assert grid.anchors.tolist() == [[-0.5, -2.5], [-0.5, 2.5], [0.5, -2.5], [0.5, 2.5]]


def test_batched_decoder_gradients_equal_each_points_own_gradient():
    torch.manual_seed(0)
    model = RegularisedAAE((1, 28, 28), 10, PAIR, hidden=16).eval()
    z = torch.randn(5, 2)
    one_by_one = []
    for point in z:
        point = point[None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.decoder(point).square().sum(), point)
        one_by_one.append(grad.norm())
    torch.testing.assert_close(decoder_gradient_norms(model, z), torch.stack(one_by_one))


def test_trained_raae_separates_the_two_classes_and_fools_its_discriminator_halfway(generated):
    ambiguous, _ = generated
    quality = ambiguous.quality[PAIR]
    assert quality.class_accuracy > 0.7  # chance is 0.5; this seed reaches 0.80 (the default recipe 0.93)
    assert 0.3 < quality.real_fake_accuracy < 0.8


def test_ambiguous_images_carry_split_labels_on_their_pair_only(generated):
    ambiguous, _ = generated
    labels = ambiguous.soft_labels
    assert len(labels) == QUICK.samples_per_pair
    torch.testing.assert_close(labels.sum(dim=1), torch.ones(len(labels)))
    others = [c for c in range(10) if c not in PAIR]
    assert labels[:, others].abs().max() == 0
    assert (labels[:, 3] - labels[:, 5]).abs().max() < QUICK.max_label_diff
    assert ambiguous.images.shape == (len(labels), 1, 28, 28)
    assert 0 <= ambiguous.images.min() and ambiguous.images.max() <= 1
    assert (ambiguous.pairs == torch.tensor(PAIR)).all()


def test_the_second_call_loads_the_stored_raae_and_draws_the_same_images(generated, threes_and_fives):
    ambiguous, cache = generated
    stored = list(Path(cache).glob("mnist-raae-3-5-*.pt"))
    assert len(stored) == 1
    modified = stored[0].stat().st_mtime_ns
    x, y = threes_and_fives
    again = generate_ambiguous(x, y, 10, QUICK, cache, "mnist", seed=0)
    assert stored[0].stat().st_mtime_ns == modified
    assert torch.equal(again.images, ambiguous.images)
    assert again.quality == ambiguous.quality


def test_settings_name_the_wrong_key_and_the_wrong_pair():
    with pytest.raises(ConfigError, match="has no key epoch; its keys are"):
        AmbiGuessSettings.from_config({"epoch": 3})
    with pytest.raises(ConfigError, match=r"\(5, 3\) is not a pair of classes c1 < c2 in 0..9"):
        AmbiGuessSettings.from_config({"pairs": [[5, 3]]}).class_pairs(10)
    assert len(AmbiGuessSettings.from_config({"pairs": "all"}).class_pairs(10)) == 45
