"""Distribution shift: corruptions of raw images, the shift metrics of Postels et al. (ICML 2022), and the
uncertainty family's evaluation suite that combines them."""

from __future__ import annotations

import colorsys
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from trustbench.backbones.lenet import LeNet
from trustbench.data import catalog, ood_sets
from trustbench.data.loaders import TensorDataModule
from trustbench.data.shifts import CORRUPTIONS, SEVERITIES, box_resampling_matrix, corrupt, rotate
from trustbench.errors import ConfigError
from trustbench.evaluation import suite_function
from trustbench.evaluation.classification import evaluate_classification
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.uncertainty import SHIFT_METRICS, evaluate_uncertainty
from trustbench.methods.erm import ERM
from trustbench.metrics.shift import correct_vs_incorrect_auroc, uncertainty_accuracy_spearman

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Changes grow with severity for these; rotation of unstructured noise saturates at once.
MONOTONE = ["gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "brightness", "pixelate"]
RANDOM = ["gaussian_noise", "shot_noise"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tensors here are tiny: with several threads, start-up and contention cost more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def raw_images(count: int = 8, channels: int = 3, side: int = 32) -> torch.Tensor:
    """Random images in [0, 1] with exact 0s and 1s, as raw datasets have."""
    images = torch.rand(count, channels, side, side, generator=torch.Generator().manual_seed(0))
    images[:, :, 0, 0], images[:, :, -1, -1] = 0.0, 1.0
    return images


def mean_change(name: str, severity: int, images: torch.Tensor) -> float:
    return float((corrupt(images, name, severity, seed=0) - images).abs().mean())


# ---------------------------------------------------------------------------------------------- corruptions


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_keeps_shape_dtype_and_unit_range_at_every_severity(name: str) -> None:
    images = raw_images(channels=3)
    for severity in SEVERITIES:
        shifted = corrupt(images, name, severity, seed=0)
        assert shifted.shape == images.shape and shifted.dtype == images.dtype
        assert shifted.min() >= 0.0 and shifted.max() <= 1.0


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_work_on_grayscale_and_leave_their_input_unchanged(name: str) -> None:
    images = raw_images(channels=1, side=12)
    original = images.clone()
    shifted = corrupt(images, name, 3, seed=0)
    assert shifted.shape == (8, 1, 12, 12)
    assert torch.equal(images, original)


@pytest.mark.parametrize("name", MONOTONE)
def test_severity_one_already_changes_the_images_and_severity_five_changes_them_more(name: str) -> None:
    images = raw_images()
    assert mean_change(name, 1, images) > 1e-3
    assert mean_change(name, 5, images) > 1.5 * mean_change(name, 1, images)


def test_gaussian_noise_at_severity_five_has_the_cifar_10_c_standard_deviation() -> None:
    grey = torch.full((4, 3, 32, 32), 0.5)  # far from 0 and 1, so clipping never bites at σ = 0.1
    noise = corrupt(grey, "gaussian_noise", 5, seed=0) - grey
    assert abs(float(noise.std()) - 0.10) < 0.003
    assert abs(float(noise.mean())) < 0.003


def test_shot_noise_is_poisson_counts_over_the_photon_number() -> None:
    grey = torch.full((4, 1, 32, 32), 0.5)
    photons = CORRUPTIONS["shot_noise"].parameters[4]  # 50: counts ~ Poisson(25)
    counts = corrupt(grey, "shot_noise", 5, seed=0) * photons
    assert torch.allclose(counts, counts.round(), atol=1e-4)
    assert abs(float(counts.mean()) - 25.0) < 0.5
    assert abs(float(counts.var()) - 25.0) < 2.0


def test_contrast_scales_each_image_channel_about_its_own_mean() -> None:
    images = torch.tensor([[[[0.0, 1.0]], [[0.2, 0.4]]]])  # channel means 0.5 and 0.3
    shifted = corrupt(images, "contrast", 1, seed=0)  # factor 0.75
    expected = torch.tensor([[[[0.125, 0.875]], [[0.225, 0.375]]]])
    torch.testing.assert_close(shifted, expected)


def test_gaussian_blur_is_the_ood_sets_blur_with_the_cifar_10_c_sigmas() -> None:
    images = raw_images()
    for severity, sigma in zip(SEVERITIES, (0.4, 0.6, 0.7, 0.8, 1.0), strict=True):
        expected = ood_sets.gaussian_blur(images, sigma).clamp(0, 1)
        assert torch.equal(corrupt(images, "gaussian_blur", severity, seed=0), expected)


def test_brightness_is_the_hsv_value_shift_of_make_cifar_c() -> None:
    pixels = [(0.2, 0.5, 0.9), (0.0, 0.0, 0.0), (0.95, 0.3, 0.1), (0.4, 0.4, 0.4), (0.1, 0.9, 0.3)]
    images = torch.tensor(pixels, dtype=torch.float64).T.reshape(1, 3, 1, len(pixels))
    shift = CORRUPTIONS["brightness"].parameters[4]  # 0.3
    expected = []
    for red, green, blue in pixels:
        hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
        expected.append(colorsys.hsv_to_rgb(hue, saturation, min(value + shift, 1.0)))
    shifted = corrupt(images, "brightness", 5, seed=0).reshape(3, len(pixels)).T
    torch.testing.assert_close(shifted, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("height", "width", "severity"), [(32, 32, 1), (32, 32, 5), (12, 12, 3), (13, 17, 4)]
)
def test_pixelate_is_a_pillow_box_resize_down_and_back_up(height: int, width: int, severity: int) -> None:
    image = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ratio = CORRUPTIONS["pixelate"].parameters[severity - 1]
    pil = Image.fromarray(image[0, 0].numpy().astype(np.float32))  # mode "F": no 8-bit rounding
    small = pil.resize((int(width * ratio), int(height * ratio)), Image.Resampling.BOX)
    expected = np.asarray(small.resize((width, height), Image.Resampling.BOX), dtype=np.float64)
    shifted = corrupt(image, "pixelate", severity, seed=0)[0, 0].numpy()
    np.testing.assert_allclose(shifted, expected, rtol=0, atol=1e-6)


def test_box_resampling_rows_are_means_of_whole_pixels_when_shrinking_by_an_integer_factor() -> None:
    expected = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]], dtype=torch.float64)
    assert torch.equal(box_resampling_matrix(4, 2), expected)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3, -1])
def test_rotation_by_quarter_turns_is_rot90_including_the_borders(quarter_turns: int) -> None:
    images = raw_images(count=2, side=12).to(torch.float64)
    expected = torch.rot90(images, quarter_turns, dims=(2, 3))
    torch.testing.assert_close(rotate(images, 90 * quarter_turns), expected, rtol=0, atol=1e-12)


def test_rotation_severity_s_turns_the_images_by_15_degrees_times_s() -> None:
    images = raw_images()
    for severity in SEVERITIES:
        assert torch.equal(
            corrupt(images, "rotation", severity, seed=0), rotate(images, 15 * severity).clamp(0, 1)
        )


def test_rotation_keeps_the_centre_of_an_odd_sized_image_and_fills_the_outside_with_black() -> None:
    image = torch.ones(1, 1, 11, 11)
    turned = rotate(image, 45)
    assert float(turned[0, 0, 5, 5]) == pytest.approx(1.0)
    assert float(turned[0, 0, 0, 0]) == 0.0


@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_are_determined_by_the_seed(name: str) -> None:
    images = raw_images()
    assert torch.equal(corrupt(images, name, 3, seed=7), corrupt(images, name, 3, seed=7))
    assert not torch.equal(corrupt(images, name, 3, seed=7), corrupt(images, name, 3, seed=8))


def test_unknown_corruption_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown corruption 'fog'; valid names: gaussian_noise, shot_noise"):
        corrupt(raw_images(), "fog", 1, seed=0)


@pytest.mark.parametrize("severity", [0, 6, True, 2.0, "3"])
def test_severities_outside_one_to_five_are_rejected_with_the_valid_values(severity: object) -> None:
    with pytest.raises(ValueError, match="severity must be one of 1, 2, 3, 4, 5"):
        corrupt(raw_images(), "contrast", severity, seed=0)  # type: ignore[arg-type]


def test_normalised_images_are_rejected_because_corruptions_need_raw_pixels() -> None:
    with pytest.raises(ValueError, match=r"raw images in \[0, 1\]"):
        corrupt(raw_images() - 0.5, "contrast", 1, seed=0)


# -------------------------------------------------------------------------------------------------- metrics


def binned(accuracy_per_bin: list[float], per_bin: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Uncertainty 0, 1, 2, ... and correctness giving each block of `per_bin` samples its accuracy."""
    correct = torch.cat([torch.arange(per_bin) < round(a * per_bin) for a in accuracy_per_bin])
    return torch.arange(len(correct), dtype=torch.float64), correct


def test_spearman_is_minus_one_when_accuracy_falls_in_every_more_uncertain_bin() -> None:
    uncertainty, correct = binned([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert uncertainty_accuracy_spearman(uncertainty, correct, n_bins=10) == pytest.approx(-1.0)


def test_spearman_is_plus_one_when_the_uncertainty_is_inverted() -> None:
    uncertainty, correct = binned([0.1, 0.3, 0.5, 0.7, 0.9])
    assert uncertainty_accuracy_spearman(uncertainty, correct, n_bins=5) == pytest.approx(1.0)


def test_spearman_gives_tied_bin_accuracies_their_average_rank() -> None:
    # Bin accuracies [1, .5, .5, 0]: ranks 4, 2.5, 2.5, 1 against 1, 2, 3, 4 correlate at −3/√10.
    uncertainty, correct = binned([1.0, 0.5, 0.5, 0.0])
    assert uncertainty_accuracy_spearman(uncertainty, correct, n_bins=4) == pytest.approx(-3 / math.sqrt(10))


def test_spearman_keeps_tied_uncertainties_in_one_bin_whatever_the_sample_order() -> None:
    uncertainty = torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 4.0], dtype=torch.float64)
    correct = torch.tensor([True, True, False, True, False, True, False, False])
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    value = uncertainty_accuracy_spearman(uncertainty, correct, n_bins=4)
    assert uncertainty_accuracy_spearman(uncertainty[order], correct[order], n_bins=4) == value
    # Blocks of 2 sorted positions; the tie at 0 takes a third sample into the first bin, pushing 3 down:
    # bins {0, 0, 0} {1} {2, 3, 3} {4}, accuracies 2/3, 1, 1/3, 0, ranks 3, 4, 2, 1: ρ = 1 − 6·18/60.
    assert value == pytest.approx(-0.8)


def test_spearman_is_nan_when_every_bin_has_the_same_accuracy() -> None:
    uncertainty, correct = binned([1.0, 1.0, 1.0])
    assert math.isnan(uncertainty_accuracy_spearman(uncertainty, correct, n_bins=3))
    assert math.isnan(uncertainty_accuracy_spearman(torch.zeros(6), correct[:6], n_bins=3))


def test_correct_vs_incorrect_auroc_is_sklearns_with_errors_as_positives() -> None:
    generator = torch.Generator().manual_seed(0)
    uncertainty = torch.randint(0, 20, (300,), generator=generator).to(torch.float32)  # many ties
    correct = torch.rand(300, generator=generator) > uncertainty / 25
    expected = roc_auc_score((~correct).numpy(), uncertainty.numpy())
    assert correct_vs_incorrect_auroc(uncertainty, correct) == pytest.approx(expected, abs=1e-6)


def test_correct_vs_incorrect_auroc_is_one_when_every_error_is_more_uncertain_than_every_success() -> None:
    uncertainty = torch.tensor([0.1, 0.2, 0.3, 0.8, 0.9])
    correct = torch.tensor([True, True, True, False, False])
    assert correct_vs_incorrect_auroc(uncertainty, correct) == pytest.approx(1.0)
    assert correct_vs_incorrect_auroc(-uncertainty, correct) == pytest.approx(0.0)


def test_correct_vs_incorrect_auroc_is_nan_without_both_kinds_of_prediction() -> None:
    assert math.isnan(correct_vs_incorrect_auroc(torch.rand(5), torch.ones(5, dtype=torch.bool)))
    assert math.isnan(correct_vs_incorrect_auroc(torch.rand(5), torch.zeros(5, dtype=torch.bool)))


@pytest.mark.parametrize("metric", [uncertainty_accuracy_spearman, correct_vs_incorrect_auroc])
def test_shift_metrics_reject_correctness_that_is_not_a_matching_bool_tensor(metric) -> None:
    with pytest.raises(ValueError, match="probs.argmax"):
        metric(torch.rand(5), torch.ones(5))
    with pytest.raises(ValueError, match="probs.argmax"):
        metric(torch.rand(5), torch.ones(4, dtype=torch.bool))


# ---------------------------------------------------------------------------------------- evaluation suite

SHIFT = {"corruptions": ["gaussian_noise", "rotation", "gaussian_blur", "contrast"], "severities": [1, 3, 5]}


def tiny_context(tmp_path: Path, shift: dict | None = SHIFT, ood: tuple[str, ...] = ("noise_uniform",)):
    """An ERM LeNet fitted for a few full-batch steps on `synthetic_image`, normalised inputs."""
    torch.manual_seed(0)
    data = {"name": "synthetic_image", "ood": list(ood), "normalize": {"mean": [0.2], "std": [0.25]}}
    if shift is not None:
        data["shift"] = shift
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "data": data,
            "method": {"name": "erm"},
            "backbone": {"name": "lenet"},
            "paths": {"data_dir": str(tmp_path / "data")},
        }
    )
    dataset = catalog.load("synthetic_image", tmp_path / "data")
    datamodule = TensorDataModule(dataset, val_size=50, batch_size=32, seed=0, normalize=([0.2], [0.25]))
    module = ERM(LeNet((1, 12, 12), 3), 3, optimizer=partial(torch.optim.Adam, lr=0.01))
    optimizer = module.optimizer_factory(params=module.parameters())
    for _ in range(30):
        optimizer.zero_grad()
        F.cross_entropy(module.backbone(datamodule.x_train), datamodule.y_train).backward()
        optimizer.step()
    return EvaluationContext(cfg, module, datamodule, dataset, tmp_path / "run")


def test_uncertainty_suite_reports_every_metric_and_writes_every_plot(tmp_path: Path) -> None:
    context = tiny_context(tmp_path)
    metrics = evaluate_uncertainty(context)

    classification = evaluate_classification(context)
    assert {key: metrics[key] for key in classification} == pytest.approx(classification, nan_ok=True)
    for key in ("cal/aece", "cal/mce", "sc/aurc"):
        assert 0.0 <= metrics[key] <= 1.0
    names = [*SHIFT["corruptions"], "mean"]
    expected_shift = {f"shift/{c}/{s}/{m}" for c in names for s in SHIFT["severities"] for m in SHIFT_METRICS}
    assert {key for key in metrics if key.startswith("shift/")} == expected_shift
    for severity in SHIFT["severities"]:
        accuracies = [metrics[f"shift/{name}/{severity}/acc"] for name in SHIFT["corruptions"]]
        assert metrics[f"shift/mean/{severity}/acc"] == pytest.approx(sum(accuracies) / len(accuracies))
    for name in SHIFT["corruptions"]:
        for severity in SHIFT["severities"]:
            scores = {key: metrics[f"shift/{name}/{severity}/{key}"] for key in SHIFT_METRICS}
            assert 0.0 <= scores["acc"] <= 1.0 and 0.0 <= scores["ece"] <= 1.0
            if 0.0 < scores["acc"] < 1.0:
                assert 0.0 <= scores["auroc_err"] <= 1.0 and -1.0 <= scores["spearman"] <= 1.0
            else:  # no errors, or nothing but errors: neither is defined
                assert math.isnan(scores["auroc_err"]) and math.isnan(scores["spearman"])
    plots = context.run_dir / "plots"
    for file in ("reliability.png", "shift_accuracy.png", "shift_ece.png", "uncertainty_hist.png"):
        assert (plots / file).read_bytes().startswith(PNG_SIGNATURE), file


def test_uncertainty_suite_without_shift_or_ood_reports_no_shift_keys_and_draws_only_reliability(
    tmp_path: Path,
) -> None:
    context = tiny_context(tmp_path, shift=None, ood=())
    metrics = evaluate_uncertainty(context)
    assert not any(key.startswith("shift/") for key in metrics)
    assert sorted(path.name for path in (context.run_dir / "plots").iterdir()) == ["reliability.png"]


def test_an_unknown_corruption_in_data_shift_fails_before_any_evaluation(tmp_path: Path) -> None:
    context = tiny_context(tmp_path, shift={"corruptions": ["gaussian_noise", "fog"]})
    with pytest.raises(
        ConfigError, match="data.shift: unknown corruption 'fog'; valid names: gaussian_noise"
    ):
        evaluate_uncertainty(context)
    assert not (context.run_dir / "plots").exists()


def test_the_uncertainty_suite_is_registered() -> None:
    assert suite_function("uncertainty") is evaluate_uncertainty
