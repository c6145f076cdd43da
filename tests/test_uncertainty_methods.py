"""Uncertainty methods: DUQ, MC dropout, deep ensembles and temperature scaling, each against its definition.

Training is checked with a few plain-torch optimisation steps on separable Gaussian blobs; the Lightning
hooks (DUQ's centroid update, temperature fitting at the end of fit) are checked once with a real Trainer.
"""

from __future__ import annotations

import functools
import math
import socket
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.nn import functional as F
from toy_problems import DIM, NUM_CLASSES, SGD, blobs, mlp, train

from trustbench.backbones.cnn import CNN
from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import TensorDataModule
from trustbench.experiment import build_module
from trustbench.methods.uncertainty.duq import DUQ
from trustbench.methods.uncertainty.ensemble import DeepEnsemble
from trustbench.methods.uncertainty.mc_dropout import MCDropout
from trustbench.methods.uncertainty.temperature import TemperatureScaled, fit_temperature

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def quiet_trainer(**options: object) -> pl.Trainer:
    """A CPU Trainer that writes nothing: no logger, no checkpoints, no progress bar."""
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **options,
    )


# --- DUQ ---------------------------------------------------------------------------------------------


def duq(**hyperparameters: float) -> DUQ:
    """A small DUQ on the MLP; length scale 1 suits the blobs' scale (at 0.1 every kernel underflows)."""
    torch.manual_seed(0)
    return DUQ(mlp(), NUM_CLASSES, SGD, embedding_size=10, **{"length_scale": 1.0, **hyperparameters})


def _update_centroids_on_one_rank(
    rank: int, world: int, port: int, x: torch.Tensor, y: torch.Tensor, out: str
) -> None:
    """A DDP rank (gloo): update a fresh DUQ's centroids on this rank's half of the batch, save them."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        module = duq(gamma=0.5)
        rows = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        module.update_centroids(x[rows], y[rows])
        torch.save({"counts": module.centroid_counts, "sums": module.centroid_sums}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_duq_centroids_under_ddp_match_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    x, y = blobs(n_per_class=4)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # forked ranks: the all-reduce under test is the same; spawned ones spent 7 s each importing this module
    torch.multiprocessing.start_processes(
        _update_centroids_on_one_rank, args=(2, port, x, y, str(tmp_path)), nprocs=2, start_method="fork"
    )
    single = duq(gamma=0.5)
    single.update_centroids(x, y)
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(state["counts"], single.centroid_counts)
        torch.testing.assert_close(state["sums"], single.centroid_sums)


def test_duq_training_lowers_the_loss() -> None:
    x, y = blobs()
    first, *_, last = train(duq(), x, y, steps=30)
    assert last < 0.5 * first


def test_duq_loss_is_bce_plus_the_gradient_penalty_of_finite_differences() -> None:
    module = duq(gradient_penalty=0.5).double()
    module.train()  # the MLP has no batch norm or active dropout, so samples do not interact
    x, y = blobs(n_per_class=1)
    x = x.double()

    def kernel_total(rows: torch.Tensor) -> torch.Tensor:
        return module.kernel(rows).sum(dim=1)

    eps = 1e-6
    with torch.no_grad():
        grads = torch.stack(
            [
                (kernel_total(x + eps * e) - kernel_total(x - eps * e)) / (2 * eps)
                for e in torch.eye(DIM).double()
            ],
            dim=1,
        )
        penalty = ((grads.norm(dim=1) - 1) ** 2).mean()
        bce = F.binary_cross_entropy(module.kernel(x), F.one_hot(y, NUM_CLASSES).double())
    loss = module.training_loss(x, y)
    assert loss.item() == pytest.approx((bce + 0.5 * penalty).item(), rel=1e-6)


def test_duq_gradient_penalty_is_trained_through() -> None:
    module = duq()
    x, y = blobs(n_per_class=2)
    module.training_loss(x, y).backward()
    with_penalty = module.weight.grad.clone()
    module.zero_grad()
    module.gradient_penalty = 0.0
    module.training_loss(x, y).backward()
    assert not torch.allclose(with_penalty, module.weight.grad)


def test_duq_centroid_update_is_one_ema_step() -> None:
    module = duq(gamma=0.9)
    x, y = blobs(n_per_class=4)
    counts, sums = module.centroid_counts.clone(), module.centroid_sums.clone()
    module.eval()
    with torch.no_grad():
        embeddings = module.embed(x)
    module.train()
    expected_counts = torch.stack([0.9 * counts[c] + 0.1 * (y == c).sum() for c in range(NUM_CLASSES)])
    expected_sums = torch.stack(
        [0.9 * sums[:, c] + 0.1 * embeddings[y == c, :, c].sum(dim=0) for c in range(NUM_CLASSES)], dim=1
    )
    module.update_centroids(x, y)
    torch.testing.assert_close(module.centroid_counts, expected_counts)
    torch.testing.assert_close(module.centroid_sums, expected_sums)
    torch.testing.assert_close(module.centroids, expected_sums / expected_counts)
    assert module.training


def test_duq_centroids_start_as_the_reference() -> None:
    module = duq()
    assert torch.equal(module.centroid_counts, torch.full((NUM_CLASSES,), 12.0))
    assert {"centroid_counts", "centroid_sums"} <= set(module.state_dict())


def test_duq_kernel_is_rbf_of_mean_squared_distance_to_centroids() -> None:
    module = duq(length_scale=0.7).eval()
    x, _ = blobs(n_per_class=2)
    with torch.no_grad():
        features = module.backbone.features(x)
        expected = torch.tensor(
            [
                [
                    math.exp(
                        -((module.weight[:, c, :] @ f - module.centroids[:, c]) ** 2).mean() / (2 * 0.7**2)
                    )
                    for c in range(NUM_CLASSES)
                ]
                for f in features
            ]
        )
        torch.testing.assert_close(module.kernel(x), expected)


def test_duq_kernels_lie_in_unit_interval_and_uncertainty_is_minus_max_kernel() -> None:
    module = duq()
    x, y = blobs()
    train(module, x, y, steps=10)
    module.eval()
    with torch.no_grad():
        kernel = module.kernel(x)
        prediction = module.predict(x)
    assert (kernel > 0).all() and (kernel <= 1).all()
    torch.testing.assert_close(prediction.uncertainty, -kernel.max(dim=1).values)
    torch.testing.assert_close(prediction.probs, kernel / kernel.sum(dim=1, keepdim=True))


def test_duq_never_uses_the_backbone_head() -> None:
    module = duq()
    module.training_loss(*blobs(n_per_class=2)).backward()
    assert module.backbone.head.weight.grad is None


def test_duq_refuses_a_backbone_without_features() -> None:
    from trustbench.backbones.linear import Linear

    with pytest.raises(ValueError, match="feature_dim is None"):
        DUQ(Linear((DIM,), NUM_CLASSES), NUM_CLASSES, SGD)


# --- MC dropout --------------------------------------------------------------------------------------


def test_mc_dropout_training_lowers_the_loss() -> None:
    x, y = blobs()
    first, *_, last = train(MCDropout(mlp(dropout=0.2), NUM_CLASSES, SGD), x, y, steps=30)
    assert last < 0.5 * first


def test_mc_dropout_samples_dropout_only_and_keeps_batch_norm_in_eval_mode() -> None:
    torch.manual_seed(0)
    module = MCDropout(
        CNN((1, 16, 16), NUM_CLASSES, embedding_dim=32, dropout=0.5), NUM_CLASSES, SGD, num_samples=4
    )
    module.eval()
    batch_norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    running_means = [bn.running_mean.clone() for bn in batch_norms]
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        samples = module.sample_probs(x)
    assert not torch.allclose(samples[0], samples[1])
    assert all(
        torch.equal(bn.running_mean, mean) for bn, mean in zip(batch_norms, running_means, strict=True)
    )
    assert not any(m.training for m in module.modules())


def test_mc_dropout_mean_is_deterministic_given_a_seed() -> None:
    module = MCDropout(mlp(dropout=0.3), NUM_CLASSES, SGD)
    module.eval()
    x, _ = blobs(n_per_class=3)
    with torch.no_grad():
        torch.manual_seed(7)
        first = module.predict(x)
        torch.manual_seed(7)
        second = module.predict(x)
    assert torch.equal(first.probs, second.probs) and torch.equal(first.uncertainty, second.uncertainty)


def test_mc_dropout_mutual_information_is_between_zero_and_the_entropy() -> None:
    backbone = mlp(dropout=0.5)
    entropy = MCDropout(backbone, NUM_CLASSES, SGD, score="entropy").eval()
    information = MCDropout(backbone, NUM_CLASSES, SGD, score="mutual_information").eval()
    x = 2 * torch.randn(50, DIM, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.manual_seed(3)
        total = entropy.predict(x).uncertainty
        torch.manual_seed(3)
        epistemic = information.predict(x).uncertainty
    assert (epistemic >= 0).all() and (total >= epistemic).all()
    assert epistemic.max() > 1e-3


def test_mc_dropout_refuses_a_backbone_without_active_dropout() -> None:
    with pytest.raises(ValueError, match=r"backbone\.net\.dropout=0\.1"):
        MCDropout(mlp(dropout=0.0), NUM_CLASSES, SGD)


# --- Deep ensemble -----------------------------------------------------------------------------------


def test_ensemble_training_lowers_the_loss() -> None:
    x, y = blobs()
    first, *_, last = train(DeepEnsemble(mlp(), NUM_CLASSES, SGD, num_members=3), x, y, steps=30)
    assert last < 0.5 * first


def test_ensemble_members_start_with_different_weights() -> None:
    ensemble = DeepEnsemble(mlp(), NUM_CLASSES, SGD, num_members=4)
    weights = [member.body[0].weight for member in ensemble.members]
    assert all(not torch.equal(weights[i], weights[j]) for i in range(4) for j in range(i + 1, 4))
    assert ensemble.members[0] is ensemble.backbone


def test_ensemble_member_gradient_is_that_of_its_own_loss() -> None:
    ensemble = DeepEnsemble(mlp(), NUM_CLASSES, SGD, num_members=3)
    x, y = blobs(n_per_class=4)
    ensemble.training_loss(x, y).backward()
    joint = [[p.grad.clone() for p in member.parameters()] for member in ensemble.members]
    for member, joint_grads in zip(ensemble.members, joint, strict=True):
        ensemble.zero_grad()
        F.cross_entropy(member(x), y).backward()
        for param, joint_grad in zip(member.parameters(), joint_grads, strict=True):
            torch.testing.assert_close(joint_grad, param.grad)


def test_ensemble_per_member_backward_equals_the_summed_loss_backward() -> None:
    ensemble = DeepEnsemble(mlp(), NUM_CLASSES, SGD, num_members=3)
    x, y = blobs(n_per_class=4)
    summed = ensemble.training_loss(x, y)
    summed.backward()
    expected = [p.grad.clone() for p in ensemble.parameters()]
    ensemble.zero_grad()
    total = ensemble.backward_members(x, y)
    torch.testing.assert_close(total, summed.detach())
    for param, grad in zip(ensemble.parameters(), expected, strict=True):
        torch.testing.assert_close(param.grad, grad)


def test_ensemble_trains_and_steps_its_scheduler_under_lightning() -> None:
    x, y = blobs(n_per_class=20)
    dataset = ArrayDataset("blobs", "tabular", x, y, x[:10], y[:10], NUM_CLASSES)
    datamodule = TensorDataModule(dataset, val_size=0, batch_size=20, seed=0)
    scheduler = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    module = DeepEnsemble(mlp(), NUM_CLASSES, SGD, scheduler, num_members=2)
    before = [p.detach().clone() for p in module.parameters()]
    quiet_trainer(max_epochs=2).fit(module, datamodule=datamodule)
    assert module.global_step == 2 * 3  # one optimiser step per batch, 3 batches per epoch
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)
    assert all(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_ensemble_scores_follow_their_definitions() -> None:
    x = 2 * torch.randn(40, DIM, generator=torch.Generator().manual_seed(2))
    scores = {}
    for score in ("entropy", "mutual_information", "disagreement"):
        ensemble = DeepEnsemble(mlp(), NUM_CLASSES, SGD, num_members=4, score=score).eval()
        with torch.no_grad():
            scores[score] = ensemble.predict(x).uncertainty
            member_probs = ensemble.member_probs(x)
    mean = member_probs.mean(dim=0)
    expected_entropy = -(mean * mean.log()).sum(dim=1)
    votes_against = (member_probs.argmax(dim=2) != mean.argmax(dim=1)).float().sum(dim=0)
    torch.testing.assert_close(scores["entropy"], expected_entropy)
    torch.testing.assert_close(scores["disagreement"], votes_against / 4)
    assert (scores["mutual_information"] >= 0).all() and (
        scores["entropy"] >= scores["mutual_information"]
    ).all()


# --- Temperature scaling ------------------------------------------------------------------------------


def calibrated_logits(n: int, num_classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits), so temperature 1 is the calibrated one."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, num_classes, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_temperature_of_over_confident_logits_exceeds_one_and_lowers_nll() -> None:
    logits, labels = calibrated_logits(2000)
    over_confident = 2.0 * logits
    temperature = fit_temperature(over_confident, labels)
    assert temperature > 1
    assert F.cross_entropy(over_confident / temperature, labels) < F.cross_entropy(over_confident, labels)


def test_temperature_recovers_the_scale_of_sharpened_calibrated_logits() -> None:
    logits, labels = calibrated_logits(20000)
    assert fit_temperature(3.0 * logits, labels) == pytest.approx(3.0, rel=0.05)


def test_temperature_is_fitted_on_the_validation_split_after_training() -> None:
    x, y = blobs(n_per_class=40, spread=1.5)
    dataset = ArrayDataset("blobs", "tabular", x, y, x[:10], y[:10], NUM_CLASSES)
    datamodule = TensorDataModule(dataset, val_size=30, batch_size=30, seed=0)
    module = TemperatureScaled(mlp(), NUM_CLASSES, SGD)
    quiet_trainer(max_epochs=3).fit(module, datamodule=datamodule)
    assert module.temperature.item() == 1.0  # training alone leaves T alone
    reported = module.fit_posthoc(datamodule)
    module.eval()
    with torch.no_grad():
        expected = fit_temperature(module.backbone(datamodule.x_val), datamodule.y_val)
    assert module.temperature.item() == pytest.approx(expected, rel=1e-5)
    assert module.temperature.item() != 1.0
    assert reported == {"cal/temperature": pytest.approx(expected, rel=1e-5)}
    assert "temperature" in module.state_dict()


def test_duq_centroids_move_during_lightning_training() -> None:
    x, y = blobs(n_per_class=20)
    dataset = ArrayDataset("blobs", "tabular", x, y, x[:10], y[:10], NUM_CLASSES)
    datamodule = TensorDataModule(dataset, val_size=0, batch_size=20, seed=0)
    module = duq(gamma=0.5)
    before = module.centroid_counts.clone()
    quiet_trainer(max_epochs=1, limit_val_batches=0).fit(module, datamodule=datamodule)
    # three batches of 20 rows: N_c is pulled towards each batch's class count by gamma = 0.5 per step
    assert not torch.allclose(module.centroid_counts, before)
    assert module.centroid_counts.sum().item() == pytest.approx(before.sum().item() / 8 + 20 * (1 - 1 / 8))


# --- Config files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "cls"),
    [("duq", DUQ), ("mc_dropout", MCDropout), ("ensemble", DeepEnsemble), ("temperature", TemperatureScaled)],
)
def test_method_config_instantiates_the_method(method: str, cls: type) -> None:
    overrides = [f"method={method}", "data=synthetic", "backbone=mlp", "backbone.net.dropout=0.1"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    backbone = instantiate(cfg.backbone.net, input_shape=(DIM,), num_classes=NUM_CLASSES)
    module = build_module(cfg, backbone, NUM_CLASSES)
    assert type(module) is cls
    optimizers = module.configure_optimizers()
    assert isinstance(optimizers["optimizer"], torch.optim.SGD)
    assert math.isfinite(module.training_loss(*blobs(n_per_class=2)).item())
