"""Spectral normalisation and the deterministic-uncertainty methods DDU, SNGP and LDU, against definitions.

Networks are tiny (an MLP on 8-D Gaussian blobs, a small CNN for the convolutions); the post-training fits
are run through `fit_posthoc` on a real datamodule, as the runner does.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn
from torch.nn import functional as F
from toy_problems import DIM, NUM_CLASSES, SGD, blobs, mlp, train

from trustbench.backbones.cnn import CNN
from trustbench.backbones.spectral import (
    SpectralResNet18,
    SpectralWideResNet,
    apply_spectral_norm,
    spectrally_normalised_layers,
)
from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import TensorDataModule
from trustbench.experiment import build_module
from trustbench.methods.uncertainty.ddu import DDU, class_gaussians, gaussian_log_densities
from trustbench.methods.uncertainty.ldu import LDU, negative_similarity_entropy, prototype_dissimilarity
from trustbench.methods.uncertainty.sngp import SNGP, dempster_shafer, mean_field_logits

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def blob_datamodule(n_per_class: int = 20) -> TensorDataModule:
    x, y = blobs(n_per_class=n_per_class)
    dataset = ArrayDataset("blobs", "tabular", x, y, x[:6], y[:6], NUM_CLASSES)
    return TensorDataModule(dataset, val_size=0, batch_size=16, seed=0)


def spectral_norm_of(weight: torch.Tensor) -> float:
    """Largest singular value of the weight read as out × rest (what the parametrization bounds)."""
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item()


# --- Spectral normalisation ----------------------------------------------------------------------------


def small_cnn(coeff: float, seed: int = 0) -> CNN:
    torch.manual_seed(seed)
    return apply_spectral_norm(CNN((1, 16, 16), NUM_CLASSES, embedding_dim=32), coeff=coeff)


def test_spectral_norm_wraps_every_conv_and_linear_but_the_head() -> None:
    net = small_cnn(coeff=3.0)
    wrapped = spectrally_normalised_layers(net)
    assert len(wrapped) == 4  # three convs and the embedding layer
    assert all(isinstance(layer, (nn.Conv2d, nn.Linear)) for layer in wrapped)
    assert net.head not in wrapped


def test_spectral_norm_wraps_the_head_when_asked() -> None:
    torch.manual_seed(0)
    net = apply_spectral_norm(CNN((1, 16, 16), NUM_CLASSES, embedding_dim=32), include_head=True)
    assert net.head in spectrally_normalised_layers(net)


def test_spectral_norm_bounds_large_weights_by_the_coefficient() -> None:
    coeff = 2.0
    net = small_cnn(coeff)
    layers = spectrally_normalised_layers(net)
    with torch.no_grad():
        for layer in layers:
            layer.parametrizations.weight.original.mul_(10)  # every raw norm is now above 2
    assert all(spectral_norm_of(layer.parametrizations.weight.original) > 2 * coeff for layer in layers)
    net.train()
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    for _ in range(20):
        net(x)
    norms = [spectral_norm_of(layer.weight) for layer in layers]
    # Power iteration never overestimates σ, so the bound is met from above, within its convergence error.
    assert all(coeff * (1 - 1e-4) <= norm <= coeff * 1.05 for norm in norms), norms


def test_spectral_norm_leaves_weights_below_the_coefficient_alone() -> None:
    net = small_cnn(coeff=50.0)
    for layer in spectrally_normalised_layers(net):
        torch.testing.assert_close(layer.weight, layer.parametrizations.weight.original)


def test_spectral_norm_power_iteration_runs_in_training_mode_only() -> None:
    net = small_cnn(coeff=3.0)
    layer = spectrally_normalised_layers(net)[1]
    u = layer.parametrizations.weight[0].u
    before = u.clone()
    net.eval()
    net(torch.randn(2, 1, 16, 16))
    assert torch.equal(u, before)
    net.train()
    net(torch.randn(2, 1, 16, 16))
    assert not torch.equal(u, before)


def test_spectral_norm_trains_the_raw_weight() -> None:
    net = small_cnn(coeff=0.5)  # small bound, so the rescaling is active and differentiated
    F.cross_entropy(net(torch.randn(4, 1, 16, 16)), torch.tensor([0, 1, 2, 0])).backward()
    assert all(
        layer.parametrizations.weight.original.grad.abs().sum() > 0
        for layer in spectrally_normalised_layers(net)
    )


def test_spectral_norm_state_survives_a_state_dict_round_trip() -> None:
    source, target = small_cnn(coeff=1.0, seed=0), small_cnn(coeff=1.0, seed=1)
    source.train()
    source(torch.randn(4, 1, 16, 16))
    assert any(key.endswith("parametrizations.weight.0.u") for key in source.state_dict())
    target.load_state_dict(source.state_dict())
    source.eval(), target.eval()
    x = torch.randn(3, 1, 16, 16)
    torch.testing.assert_close(target(x), source(x))


def test_spectral_norm_refuses_a_network_normalised_twice() -> None:
    with pytest.raises(ValueError, match="once"):
        apply_spectral_norm(small_cnn(coeff=3.0))


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_resnet18_sn_config_builds_a_normalised_resnet_with_its_coefficient() -> None:
    cfg = compose_config("backbone=resnet18_sn", "backbone.spectral_norm.coeff=2.5")
    net = instantiate(cfg.backbone.net, input_shape=(3, 8, 8), num_classes=NUM_CLASSES)
    layers = spectrally_normalised_layers(net)
    assert type(net) is SpectralResNet18 and net.feature_dim == 512
    assert len(layers) == 20  # stem, 16 block convs, 3 shortcut convs; not the head
    assert {layer.parametrizations.weight[0].coeff for layer in layers} == {2.5}
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, NUM_CLASSES)


def test_wrn28_10_sn_config_builds_a_normalised_wide_resnet() -> None:
    cfg = compose_config("backbone=wrn28_10_sn", "backbone.net.depth=10", "backbone.net.widen_factor=1")
    net = instantiate(cfg.backbone.net, input_shape=(3, 8, 8), num_classes=NUM_CLASSES)
    layers = spectrally_normalised_layers(net)
    assert type(net) is SpectralWideResNet and net.feature_dim == 64
    assert len(layers) == 9  # stem, 2 convs in each of 3 blocks, 2 projections; not the head
    assert {layer.parametrizations.weight[0].coeff for layer in layers} == {3.0}


# --- DDU -----------------------------------------------------------------------------------------------


def test_gaussian_log_densities_equal_torch_multivariate_normal() -> None:
    means = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.5]], dtype=torch.float64)
    factors = torch.tensor(
        [
            [[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [-0.3, 0.2, 0.7]],
            [[0.4, 0.0, 0.0], [0.0, 1.5, 0.0], [1.0, 1.0, 1.0]],
        ],
        dtype=torch.float64,
    )
    covariances = factors @ factors.transpose(1, 2)
    z = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, 0.0, 0.5], [-4.0, 1.0, 0.0]])
    expected = torch.distributions.MultivariateNormal(means, covariance_matrix=covariances).log_prob(
        z.double().unsqueeze(1)
    )
    scale_tril = torch.linalg.cholesky(covariances)
    torch.testing.assert_close(gaussian_log_densities(z, means, scale_tril), expected)


def test_class_gaussians_are_means_and_unbiased_covariances_without_jitter_when_full_rank() -> None:
    features, labels = blobs(n_per_class=10)
    means, scale_tril, jitter = class_gaussians(features, labels, NUM_CLASSES)
    assert jitter == 0.0
    for c in range(NUM_CLASSES):
        rows = features[labels == c].double()
        torch.testing.assert_close(means[c], rows.mean(dim=0))
        torch.testing.assert_close(scale_tril[c] @ scale_tril[c].T, torch.cov(rows.T))  # divides by n − 1


def test_class_gaussians_take_the_first_reference_jitter_above_the_rounding_floor() -> None:
    features, labels = blobs(n_per_class=10)
    features[:, -1] = 1.0  # a dead unit: every covariance is singular
    _, scale_tril, jitter = class_gaussians(features, labels, NUM_CLASSES)
    largest_variance = max(
        float(torch.cov(features[labels == c].T.double()).diagonal().max()) for c in range(3)
    )
    floor = DIM * 2.0**-53 * largest_variance  # about 1e-16: the reference's 2.2e-308 is skipped
    assert jitter == 10.0 ** math.ceil(math.log10(floor))
    assert bool((scale_tril.diagonal(dim1=1, dim2=2) > 0).all())


def test_class_gaussians_refuse_a_class_with_fewer_than_two_examples() -> None:
    features, labels = blobs(n_per_class=3)
    with pytest.raises(ValueError, match="at least 2 training examples"):
        class_gaussians(features[:7], labels[:7], NUM_CLASSES)


def fitted_ddu(score: str = "density") -> tuple[DDU, dict[str, float]]:
    module = DDU(mlp(), NUM_CLASSES, SGD, score=score)
    datamodule = blob_datamodule()
    train(module, datamodule.x_train, datamodule.y_train, steps=20)
    return module, module.fit_posthoc(datamodule)


def test_ddu_trains_by_cross_entropy_of_the_backbone() -> None:
    module = DDU(mlp(), NUM_CLASSES, SGD)
    x, y = blobs(n_per_class=4)
    torch.testing.assert_close(module.training_loss(x, y), F.cross_entropy(module.backbone(x), y))


def test_ddu_fit_posthoc_stores_the_training_gaussians_and_reports_the_jitter() -> None:
    module, reported = fitted_ddu()
    datamodule = blob_datamodule()
    module.eval()
    with torch.no_grad():
        features = module.backbone.features(datamodule.x_train)
    means, scale_tril, jitter = class_gaussians(features, datamodule.y_train, NUM_CLASSES)
    torch.testing.assert_close(module.class_means, means)
    torch.testing.assert_close(module.class_scale_tril, scale_tril)
    assert reported == {"ddu/jitter": jitter}
    assert {"class_means", "class_scale_tril", "jitter"} <= set(module.state_dict())


def test_ddu_density_uncertainty_is_minus_logsumexp_of_class_log_densities() -> None:
    module, _ = fitted_ddu()
    x, _ = blobs(n_per_class=3, seed=5)
    module.eval()
    with torch.no_grad():
        prediction = module.predict(x)
        features = module.backbone.features(x)
        logits = module.backbone.head(features)
    log_densities = gaussian_log_densities(features, module.class_means, module.class_scale_tril)
    torch.testing.assert_close(prediction.uncertainty, -log_densities.logsumexp(dim=1))
    torch.testing.assert_close(prediction.probs, logits.softmax(dim=1))


def test_ddu_far_away_inputs_are_more_uncertain_than_the_training_points() -> None:
    module, _ = fitted_ddu()
    x = blob_datamodule().x_train
    far = 30 * torch.ones(5, DIM) - 60 * torch.eye(5, DIM)
    module.eval()
    with torch.no_grad():
        inside, outside = module.predict(x).uncertainty, module.predict(far).uncertainty
    assert outside.min() > inside.max()


def test_ddu_entropy_score_is_the_softmax_entropy() -> None:
    module, _ = fitted_ddu(score="entropy")
    x, _ = blobs(n_per_class=3, seed=5)
    module.eval()
    with torch.no_grad():
        prediction = module.predict(x)
    expected = -(prediction.probs * prediction.probs.log()).sum(dim=1)
    torch.testing.assert_close(prediction.uncertainty, expected)


# --- SNGP ----------------------------------------------------------------------------------------------


def sngp(**options: object) -> SNGP:
    torch.manual_seed(0)
    return SNGP(mlp(), NUM_CLASSES, SGD, **{"num_random_features": 32, "projection_dim": 4, **options})


def test_mean_field_logits_divide_by_the_root_of_one_plus_lambda_variance() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [1.0, 1.0, 4.0]])
    variance = torch.tensor([[3.0], [0.0]], dtype=torch.float64)
    scale = math.sqrt(1 + math.pi / 8 * 3.0)
    expected = torch.tensor([[2.0 / scale, 0.0, -1.0 / scale], [1.0, 1.0, 4.0]])
    torch.testing.assert_close(mean_field_logits(logits, variance, math.pi / 8), expected)


def test_dempster_shafer_is_k_over_k_plus_sum_of_exp_logits_in_the_unit_interval() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-100.0, -100.0, -100.0], [60.0, 0.0, 0.0]])
    expected = torch.tensor([0.5, 3 / (3 + math.e + math.e**2 + math.e**3), 1.0, 3 / (3 + math.exp(60) + 2)])
    uncertainty = dempster_shafer(logits)
    torch.testing.assert_close(uncertainty, expected)
    assert bool(((uncertainty > 0) & (uncertainty <= 1)).all())


def random_features_of(module: SNGP, x: torch.Tensor) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        return module.gp.random_features(module.backbone.features(x)).double()


def test_sngp_gaussian_precision_is_gram_of_training_random_features_plus_ridge() -> None:
    module = sngp(ridge_penalty=0.5)
    datamodule = blob_datamodule(n_per_class=4)
    assert module.fit_posthoc(datamodule) == {}
    phi = random_features_of(module, datamodule.x_train)
    precision = phi.T @ phi + 0.5 * torch.eye(32, dtype=torch.float64)
    assert module.covariance.shape == (1, 32, 32)
    torch.testing.assert_close(module.covariance[0] @ precision, torch.eye(32, dtype=torch.float64))


def test_sngp_softmax_precision_is_the_papers_per_class_laplace_form() -> None:
    module = sngp(likelihood="softmax")
    datamodule = blob_datamodule(n_per_class=4)
    module.fit_posthoc(datamodule)
    phi = random_features_of(module, datamodule.x_train)
    with torch.no_grad():
        probs = module.gp.output(phi.float()).softmax(dim=1).double()
    assert module.covariance.shape == (NUM_CLASSES, 32, 32)
    for k in range(NUM_CLASSES):
        precision = phi.T @ torch.diag(probs[:, k] * (1 - probs[:, k])) @ phi + torch.eye(
            32, dtype=torch.float64
        )
        torch.testing.assert_close(module.covariance[k] @ precision, torch.eye(32, dtype=torch.float64))


def test_sngp_predicts_mean_field_softmax_with_the_fitted_variance() -> None:
    module = sngp(ridge_penalty=2.0, score="variance")
    datamodule = blob_datamodule(n_per_class=4)
    module.fit_posthoc(datamodule)
    x, _ = blobs(n_per_class=2, seed=3)
    phi = random_features_of(module, x)
    variance = 2.0 * ((phi @ module.covariance[0]) * phi).sum(dim=1)
    with torch.no_grad():
        logits = module.gp.output(phi.float())
        prediction = module.predict(x)
    expected_probs = (logits / torch.sqrt(1 + math.pi / 8 * variance[:, None]).float()).softmax(dim=1)
    torch.testing.assert_close(prediction.uncertainty, variance.float())
    torch.testing.assert_close(prediction.probs, expected_probs)


def test_sngp_variance_is_larger_far_from_the_training_data() -> None:
    module = sngp(projection_dim=None, normalize_input=False, length_scale=2.0, score="variance")
    x, y = blobs()
    train(module, x, y, steps=20)
    module.fit_covariance(x)
    far = 30 * torch.ones(5, DIM) - 60 * torch.eye(5, DIM)
    module.eval()
    with torch.no_grad():
        inside, outside = module.predict(x).uncertainty, module.predict(far).uncertainty
    assert outside.min() > inside.max()


def test_sngp_before_fitting_predicts_the_plain_softmax() -> None:
    module = sngp().eval()
    x, _ = blobs(n_per_class=2)
    with torch.no_grad():
        prediction = module.predict(x)
        logits = module.gp(module.backbone.features(x))
    torch.testing.assert_close(prediction.probs, logits.softmax(dim=1))
    torch.testing.assert_close(prediction.uncertainty, dempster_shafer(logits))


def test_sngp_training_lowers_the_loss_and_random_features_stay_fixed() -> None:
    module = sngp(num_random_features=64)
    frequencies = module.gp.frequencies.clone()
    losses = train(module, *blobs(), steps=30)
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(module.gp.frequencies, frequencies)
    assert {"gp.frequencies", "gp.phases", "gp.projection", "covariance"} <= set(module.state_dict())


# --- LDU -----------------------------------------------------------------------------------------------


def ldu(**options: object) -> LDU:
    torch.manual_seed(0)
    return LDU(mlp(), NUM_CLASSES, SGD, **{"num_prototypes": 6, **options})


def test_ldu_loss_is_cross_entropy_plus_weighted_regularisers() -> None:
    module = ldu(loss_weight=0.3, uncertainty_pos_weight=2.0)
    x, y = blobs(n_per_class=4)
    module.train()
    features = module.backbone.features(x)
    similarities = F.cosine_similarity(features[:, None, :], module.prototypes[None], dim=2)
    activations = module.activation_norm(torch.exp(-similarities))
    logits = module.task_head(activations)
    uncertainty_logits = module.uncertainty_head(activations)[:, 0]
    wrong = (logits.argmax(dim=1) != y).float()
    bce = -(2.0 * wrong * F.logsigmoid(uncertainty_logits) + (1 - wrong) * F.logsigmoid(-uncertainty_logits))
    q = similarities.softmax(dim=1)
    entropy_term = (q * q.log()).sum(dim=1).mean()
    distances = (module.prototypes[:, None, :] - module.prototypes[None, :, :]).norm(dim=2)
    expected = F.cross_entropy(logits, y) + 0.3 * (bce.mean() + entropy_term - distances.mean())
    torch.testing.assert_close(module.training_loss(x, y), expected)
    torch.testing.assert_close(negative_similarity_entropy(similarities), entropy_term)
    torch.testing.assert_close(prototype_dissimilarity(module.prototypes), -distances.mean())


def test_ldu_training_lowers_the_loss_and_classifies_the_blobs() -> None:
    module = ldu()
    x, y = blobs()
    losses = train(module, x, y, steps=40)
    assert losses[-1] < losses[0] - 0.5
    module.eval()
    with torch.no_grad():
        assert (module.predict(x).probs.argmax(dim=1) == y).float().mean() > 0.9


def test_ldu_uncertainty_is_the_uncertainty_heads_sigmoid_in_the_unit_interval() -> None:
    module = ldu()
    x, y = blobs()
    train(module, x, y, steps=10)
    module.eval()
    with torch.no_grad():
        prediction = module.predict(x)
        activations = module.activation_norm(torch.exp(-module.similarities(x)))
        expected = torch.sigmoid(module.uncertainty_head(activations)[:, 0])
    torch.testing.assert_close(prediction.uncertainty, expected)
    assert bool(((prediction.uncertainty > 0) & (prediction.uncertainty < 1)).all())


def test_ldu_and_sngp_never_use_the_backbone_head() -> None:
    for module in (ldu(), sngp()):
        module.training_loss(*blobs(n_per_class=2)).backward()
        assert module.backbone.head.weight.grad is None


@pytest.mark.parametrize("method", [DDU, SNGP, LDU])
def test_methods_refuse_a_backbone_without_features(method: type) -> None:
    from trustbench.backbones.linear import Linear

    with pytest.raises(ValueError, match="feature_dim is None"):
        method(Linear((DIM,), NUM_CLASSES), NUM_CLASSES, SGD)


# --- Config files --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "cls"), [("ddu", DDU), ("sngp", SNGP), ("ldu", LDU)])
def test_method_config_instantiates_the_method(method: str, cls: type) -> None:
    cfg = compose_config(f"method={method}", "data=synthetic", "backbone=mlp")
    assert cfg.method.evaluation == "uncertainty" and cfg.method.needs_features
    backbone = instantiate(cfg.backbone.net, input_shape=(DIM,), num_classes=NUM_CLASSES)
    module = build_module(cfg, backbone, NUM_CLASSES)
    assert type(module) is cls
    assert isinstance(module.configure_optimizers()["optimizer"], torch.optim.SGD)
    assert math.isfinite(module.training_loss(*blobs(n_per_class=2)).item())


def test_method_configs_start_with_a_one_line_description() -> None:
    for method in ("ddu", "sngp", "ldu"):
        first = (CONFIG_DIR / "method" / f"{method}.yaml").read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) > 20
