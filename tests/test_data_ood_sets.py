"""OOD inputs shaped like the in-distribution inputs: derived sets by their recipes, catalog sets adapted."""

from __future__ import annotations

import numpy as np
import pytest
import real_data
import scipy.ndimage
import torch

from trustbench.data import catalog, ood_sets, sources
from trustbench.data.arrays import ArrayDataset

MNIST_LIKE = (1, 28, 28)
CIFAR_LIKE = (3, 32, 32)
TRAIN, TEST = 40, 16


def image_dataset(
    shape: tuple[int, ...], name: str = "fake", train: int = TRAIN, test: int = TEST
) -> ArrayDataset:
    generator = torch.Generator().manual_seed(0)
    return ArrayDataset(
        name=name,
        kind="image",
        x_train=torch.rand(train, *shape, generator=generator),
        y_train=torch.zeros(train, dtype=torch.int64),
        x_test=torch.rand(test, *shape, generator=generator),
        y_test=torch.zeros(test, dtype=torch.int64),
        num_classes=1,
    )


@pytest.mark.parametrize("shape", [MNIST_LIKE, CIFAR_LIKE])
@pytest.mark.parametrize("name", list(ood_sets.DERIVED_OOD_SETS))
def test_every_derived_set_has_the_test_split_size_id_shape_and_unit_range(name, shape, tmp_path):
    x = ood_sets.build_ood_inputs(name, image_dataset(shape), tmp_path)
    assert x.shape == (TEST, *shape) and x.dtype == torch.float32
    assert 0.0 <= x.min().item() and x.max().item() <= 1.0


@pytest.mark.parametrize("name", list(ood_sets.DERIVED_OOD_SETS))
def test_derived_sets_are_fixed_by_the_seed(name, tmp_path):
    dataset = image_dataset(CIFAR_LIKE)
    first, again, other = (ood_sets.build_ood_inputs(name, dataset, tmp_path, seed=s) for s in (3, 3, 4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_gaussian_noise_is_odin_n_half_one_clipped(tmp_path):
    x = ood_sets.build_ood_inputs("noise_gaussian", image_dataset(CIFAR_LIKE, test=300), tmp_path)
    below_zero = 0.3085  # P(N(0.5, 1) < 0) = Φ(-0.5)
    assert (x == 0).float().mean().item() == pytest.approx(below_zero, abs=0.004)
    assert (x == 1).float().mean().item() == pytest.approx(below_zero, abs=0.004)
    assert x.mean().item() == pytest.approx(0.5, abs=0.003)


def test_uniform_noise_has_the_mean_and_variance_of_u01(tmp_path):
    x = ood_sets.build_ood_inputs("noise_uniform", image_dataset(CIFAR_LIKE, test=300), tmp_path)
    assert x.mean().item() == pytest.approx(0.5, abs=0.002)
    assert x.var().item() == pytest.approx(1 / 12, abs=0.001)


def test_gaussian_blur_matches_scipy_with_nearest_edges_truncated_at_4_sigma():
    images = torch.rand(3, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    expected = scipy.ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 1, 1), mode="nearest", truncate=4.0)
    np.testing.assert_allclose(ood_sets.gaussian_blur(images, 1.0).numpy(), expected, atol=1e-6)


def reference_blur_and_contrast(images: torch.Tensor) -> torch.Tensor:
    """make_cifar_c.py's severity-5 gaussian_blur then contrast, in scipy/numpy."""
    blurred = scipy.ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 1, 1), mode="nearest", truncate=4.0)
    blurred = np.clip(blurred, 0, 1)
    means = blurred.mean(axis=(2, 3), keepdims=True)
    return torch.from_numpy(np.clip((blurred - means) * 0.15 + means, 0, 1))


def test_corrupted_is_blur_then_contrast_then_the_seeds_noise_of_sigma_one_tenth():
    generator = torch.Generator().manual_seed(2)
    first, second = torch.rand(2, 20, 3, 32, 32, generator=generator)
    corrupted = [ood_sets.corrupt(x, seed=5) for x in (first, second)]
    noise = [c - reference_blur_and_contrast(x) for c, x in zip(corrupted, (first, second), strict=True)]
    unclipped = ((corrupted[0] > 0) & (corrupted[0] < 1)) & ((corrupted[1] > 0) & (corrupted[1] < 1))
    assert unclipped.float().mean() > 0.99  # contrast ×0.15 keeps values near each image's mean
    torch.testing.assert_close(noise[0][unclipped], noise[1][unclipped], atol=1e-5, rtol=0)
    assert noise[0][unclipped].std().item() == pytest.approx(0.10, abs=0.002)


def test_corrupted_changes_the_clean_test_images_and_keeps_their_shape(tmp_path):
    dataset = image_dataset(MNIST_LIKE)
    corrupted = ood_sets.build_ood_inputs("corrupted", dataset, tmp_path)
    assert corrupted.shape == dataset.x_test.shape
    assert (corrupted - dataset.x_test).abs().mean().item() > 0.1
    assert corrupted.std(dim=(2, 3)).mean() < 0.5 * dataset.x_test.std(dim=(2, 3)).mean()


def test_permuted_shuffles_each_of_the_last_n_test_train_images_keeping_its_pixel_values(tmp_path):
    dataset = image_dataset(CIFAR_LIKE)
    permuted = ood_sets.build_ood_inputs("permuted", dataset, tmp_path)
    source = dataset.x_train[-TEST:]
    assert torch.equal(permuted.flatten(2).sort(dim=2).values, source.flatten(2).sort(dim=2).values)
    changed = (permuted != source).flatten(1).any(dim=1)
    assert changed.all()


def test_permuted_pixels_moves_channels_together_with_a_different_order_per_image():
    base = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    images = torch.cat([base, 2 * base, base + 1], dim=1)
    shuffled = ood_sets.permuted_pixels(images, seed=0)
    assert torch.equal(shuffled[:, 1], 2 * shuffled[:, 0]) and torch.equal(shuffled[:, 2], shuffled[:, 0] + 1)
    identical = torch.cat([base[:1], base[:1]])
    once = ood_sets.permuted_pixels(identical, seed=0)
    assert not torch.equal(once[0], once[1])


def test_gray_to_rgb_repeats_the_channel_and_rgb_to_gray_is_bt601_luma():
    gray = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]]])
    rgb = ood_sets.adapt_to_shape(gray, (3, 2, 2))
    assert rgb.shape == (1, 3, 2, 2) and all(torch.equal(rgb[0, c], gray[0, 0]) for c in range(3))
    primaries = torch.tensor([[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.5]]).view(
        1, 3, 1, 4
    )
    luma = ood_sets.adapt_to_shape(primaries, (1, 1, 4))
    torch.testing.assert_close(luma.view(4), torch.tensor([0.299, 0.587, 0.114, 0.5]))


def test_resize_is_antialiased_bilinear():
    edge = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    shrunk = ood_sets.adapt_to_shape(edge, (1, 2, 2))
    # The triangle filter is 2 input pixels wide per side at scale 2: weights 3/4, 3/4, 1/4 (normalised).
    torch.testing.assert_close(shrunk[0, 0], torch.tensor([[1 / 7, 6 / 7], [1 / 7, 6 / 7]]))


def test_mnist_like_set_adapted_to_cifar_shape_and_back():
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    up = ood_sets.adapt_to_shape(images, CIFAR_LIKE)
    assert up.shape == (2, *CIFAR_LIKE)
    assert torch.equal(up[:, 0], up[:, 1]) and torch.equal(up[:, 0], up[:, 2])
    back = ood_sets.adapt_to_shape(up, MNIST_LIKE)
    assert back.shape == images.shape
    assert back.mean().item() == pytest.approx(images.mean().item(), abs=0.01)
    gray = torch.full((2, 1, 28, 28), 0.7)
    round_trip = ood_sets.adapt_to_shape(ood_sets.adapt_to_shape(gray, CIFAR_LIKE), MNIST_LIKE)
    torch.testing.assert_close(round_trip, gray)


def test_catalog_set_is_its_test_split_adapted_to_the_id_shape(tmp_path):
    ood = ood_sets.build_ood_inputs("synthetic_image", image_dataset(CIFAR_LIKE), tmp_path)
    test = catalog.load("synthetic_image", tmp_path).x_test
    assert ood.shape == (len(test), *CIFAR_LIKE)
    torch.testing.assert_close(ood, ood_sets.adapt_to_shape(test, CIFAR_LIKE))


def test_catalog_set_of_the_id_shape_is_its_test_split_unchanged(tmp_path):
    ood = ood_sets.build_ood_inputs("synthetic_image", image_dataset((1, 12, 12)), tmp_path)
    assert ood is catalog.load("synthetic_image", tmp_path).x_test


def test_unknown_name_lists_catalog_and_derived_names(tmp_path):
    with pytest.raises(ValueError, match="unknown OOD set 'gaussian'; valid names: mnist, ") as error:
        ood_sets.build_ood_inputs("gaussian", image_dataset(MNIST_LIKE), tmp_path)
    message = str(error.value)
    assert (
        "\n" not in message
        and "cifar10" in message
        and "noise_gaussian" in message
        and "adult" not in message
    )
    assert ood_sets.ood_set_names()[-4:] == list(ood_sets.DERIVED_OOD_SETS)


def test_tabular_id_data_has_no_image_ood_sets(tmp_path):
    german_like = catalog.load("synthetic", tmp_path)
    with pytest.raises(ValueError, match="'synthetic' is tabular data, but OOD sets are images") as error:
        ood_sets.build_ood_inputs("noise_uniform", german_like, tmp_path)
    assert "\n" not in str(error.value)


def test_the_id_dataset_is_not_its_own_ood_set(tmp_path):
    with pytest.raises(ValueError, match="in-distribution dataset"):
        ood_sets.build_ood_inputs("synthetic_image", catalog.load("synthetic_image", tmp_path), tmp_path)


def load_mirrored(name: str, data_dir) -> ArrayDataset:
    if sources.dataset_status(name, data_dir).used in (None, "download"):
        pytest.skip(f"no offline copy of {name} here: {[s.label for s in sources.SOURCES[name].local]}")
    return catalog.load(name, data_dir)


def test_real_mnist_gets_every_derived_set_and_fashion_mnist_as_is():
    data_dir = real_data.data_dir()
    mnist = load_mirrored("mnist", data_dir)
    for name in ood_sets.DERIVED_OOD_SETS:
        x = ood_sets.build_ood_inputs(name, mnist, data_dir, seed=1)
        assert x.shape == (10000, *MNIST_LIKE), name
        assert 0.0 <= x.min().item() and x.max().item() <= 1.0, name
    fashion = load_mirrored("fashion_mnist", data_dir)
    assert ood_sets.build_ood_inputs("fashion_mnist", mnist, data_dir) is fashion.x_test
