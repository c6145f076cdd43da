"""UQGAN: a one-vs-all classifier trained against generated out-of-class examples that shield each class.

Source: Oberdiek, Fink & Rottmann, "UQGAN: A Unified Model for Uncertainty Quantification of Deep
Classifiers trained via Conditional GANs", NeurIPS 2022 (reference code ``RonMcKay/UQGAN``, ``uqgan.py``,
``utils.py``). Three parts, trained in this order:

1. a conditional autoencoder E(x, y) → z, D(z, y) → x, trained by pixel-wise binary cross-entropy before
   anything else (the reference trains it in a separate run, ``train_cae.py``) and frozen after;
2. a conditional WGAN-GP in the cAE's latent space: the critic C(z, y) minimises
   E[C(G(y), y)] − E[C(E(x, y), y)] + λ_gp·GP (the gradient penalty of Gulrajani et al. 2017 on random
   interpolates of real and generated codes); the generator G(y) (noise drawn inside) minimises
   −E[C(z̃, y)] + λ_cl·BCE(s_y(D(z̃, y)), 0) + λ_reg·R(z, z̃): its codes decode to images the classifier
   must reject for class y, and R, the reference's class-wise log-cosine regulariser, spreads them in
   angle around every real code of the class, so they surround ("shield") it;
3. the classifier (the backbone, one sigmoid s_k per class) minimises
   Σ_i BCE(s_{y_i}(x_i), 1) / N + λ_real·mean_{k≠y} BCE(s_k(x), 0) + (1 − λ_real)·mean BCE(s_y(x̃_y), 0),
   x̃_y = D(G(y), y): real examples of the other classes and generated out-of-class examples are negatives.

Scores: each sigmoid is rescaled to p̃_k = s_k / ((2 − K)s_k + K − 1) (1/K at s_k = ½, 1 at s_k = 1); the
class probabilities are π_k p̃_k normalised, π the training class frequencies. ``aleatoric`` is their entropy
divided by ln K (the reference's ``entropy``, in [0, 1]); ``epistemic`` is 1 − Σ π_k p̃_k² / Σ π_k p̃_k,
high when no class's sigmoid claims the input. Higher = more uncertain for both.

Departures from the reference, and why (CPU scale):

- the cAE, generator and critic are two-layer MLPs (the reference's MNIST models are small conv nets);
  images must be in [0, 1] (decoded with a sigmoid, as there): MNIST-like configs do not normalise;
- one critic, one generator and one classifier step per training batch, with Adam at fixed learning rates
  (the reference: 5 critic and 5 classifier steps per iteration and linearly decaying rates over 2000
  iterations); ``critic_steps`` and ``classifier_steps`` set the counts;
- the real-negative term weighs every other class equally (the reference's ``neg_weight`` per class pair).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.data.loaders import TensorDataModule
from trustbench.errors import ConfigError
from trustbench.methods.base import OptimizerFactory, Prediction, SchedulerFactory, TrustModule

UQGAN_SCORES = ("epistemic", "aleatoric")
_ANGLE_EPS = 1e-6


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, outputs),
    )


class ConditionalAutoencoder(nn.Module):
    """E(x, y) → z and D(z, y) → pixel logits, each an MLP on the input concatenated with onehot(y)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, latent_dim: int, hidden: int) -> None:
        super().__init__()
        size = math.prod(input_shape)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.encoder = _mlp(size + num_classes, hidden, latent_dim)
        self.decoder = _mlp(latent_dim + num_classes, hidden, size)

    def encode(self, x: Tensor, y: Tensor) -> Tensor:
        return self.encoder(torch.cat([x.flatten(1), F.one_hot(y, self.num_classes).to(x.dtype)], dim=1))

    def decode_logits(self, z: Tensor, y: Tensor) -> Tensor:
        onehot = F.one_hot(y, self.num_classes).to(z.dtype)
        return self.decoder(torch.cat([z, onehot], dim=1)).view(-1, *self.input_shape)

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """Images in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, y))


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, condition: Tensor) -> Tensor:
    """WGAN-GP's E[(‖∇ C(ẑ, y)‖₂ − 1)²] at ẑ uniformly between paired real and generated codes."""
    mix = torch.rand(len(real), 1, device=real.device)
    points = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(
        critic(torch.cat([points, condition], dim=1)).sum(), points, create_graph=True
    )
    return (grad.norm(dim=1) - 1).square().mean()


def log_cosine_regulariser(real: Tensor, generated: Tensor, labels: Tensor) -> Tensor:
    """The reference's class-wise ``logcosine`` regulariser: for each class with two or more examples in
    the batch and each real code z_j of it, the directions from z_j to the class's generated codes; the
    mean over pairs of directions of −log(angle / π + ε); summed over j and divided by the examples of
    such classes. Small when generated codes spread in angle around every real code."""
    total, counted = real.new_zeros(()), 0
    for label in labels.unique():
        rows = labels == label
        count = int(rows.sum())
        if count < 2:
            continue
        counted += count
        fakes = generated[rows]
        directions = fakes[None, :, :] - real[rows][:, None, :]  # (count real) × (count generated) × D
        directions = directions / directions.norm(dim=2, keepdim=True)
        cosines = (directions @ directions.transpose(1, 2)).clamp(-1 + _ANGLE_EPS, 1 - _ANGLE_EPS)
        surprise = -torch.log(torch.acos(cosines) / math.pi + _ANGLE_EPS)
        pairs = torch.triu(torch.ones(count, count, dtype=torch.bool, device=real.device), diagonal=1)
        total = total + surprise[:, pairs].sum(dim=1).div(count * (count - 1) / 2).sum()
    return total / max(counted, 1)


def one_vs_all_scores(sigmoids: Tensor, prior: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Class probabilities, aleatoric and epistemic scores from one-vs-all sigmoids (module docstring)."""
    classes = sigmoids.shape[1]
    rescaled = sigmoids / ((2 - classes) * sigmoids + classes - 1)
    weighted = rescaled * prior
    probs = weighted / weighted.sum(dim=1, keepdim=True).clamp_min(1e-12)
    aleatoric = -torch.special.xlogy(probs, probs).sum(dim=1) / math.log(classes)
    epistemic = 1 - (weighted * rescaled).sum(dim=1) / weighted.sum(dim=1).clamp_min(1e-12)
    return probs, aleatoric, epistemic


class UQGAN(TrustModule):
    """The one-vs-all backbone, its cAE, generator and critic, trained as the module docstring says.

    `cae_epochs` train the cAE on the training split when fitting starts (skipped when resuming: its
    weights are in the checkpoint). `lambda_*` are the reference's MNIST weights.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: tuple[int, ...] = (1, 28, 28),
        latent_dim: int = 128,
        hidden: int = 512,
        noise_dim: int = 64,
        cae_epochs: int = 5,
        critic_steps: int = 1,
        classifier_steps: int = 1,
        gan_lr: float = 2e-4,
        lambda_gp: float = 10.0,
        lambda_cl: float = 2.0,
        lambda_reg: float = 32.0,
        lambda_real_ood: float = 0.6,
        score: str = "epistemic",
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        if score not in UQGAN_SCORES:
            raise ValueError(f"UQGAN score must be one of {', '.join(UQGAN_SCORES)}; got {score!r}.")
        if min(cae_epochs, critic_steps, classifier_steps) < 1 or not 0 <= lambda_real_ood <= 1:
            raise ValueError(
                "UQGAN needs cae_epochs, critic_steps, classifier_steps >= 1 and lambda_real_ood in [0, 1]"
            )
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"])
        self.automatic_optimization = False
        self.score = score
        self.cae = ConditionalAutoencoder(tuple(input_shape), num_classes, latent_dim, hidden)
        self.generator = _mlp(noise_dim + num_classes, hidden, latent_dim)
        self.critic = _mlp(latent_dim + num_classes, hidden, 1)
        self.register_buffer("prior", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("cae_trained", torch.tensor(False))

    def onehot(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.num_classes).float()

    def generate_codes(self, y: Tensor) -> Tensor:
        noise = torch.randn(len(y), self.hparams.noise_dim, device=y.device)
        return self.generator(torch.cat([noise, self.onehot(y)], dim=1))

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        labels = datamodule.y_train
        self.prior.copy_(torch.bincount(labels, minlength=self.num_classes).float() / len(labels))
        if not bool(self.cae_trained):
            self._train_cae(datamodule)

    def _train_cae(self, datamodule: TensorDataModule) -> None:
        x = datamodule.x_train
        if x.min() < 0 or x.max() > 1:
            raise ConfigError(
                "UQGAN decodes images with a sigmoid, so its inputs must be in [0, 1]; this data is "
                f"normalised to [{float(x.min()):.3g}, {float(x.max()):.3g}]: drop data.normalize"
            )
        optimizer = torch.optim.Adam(self.cae.parameters(), lr=1e-3)
        for _ in range(self.hparams.cae_epochs):
            for x_batch, y_batch in datamodule.train_dataloader():
                x_batch, y_batch = x_batch.to(self.device), y_batch.to(self.device)
                logits = self.cae.decode_logits(self.cae.encode(x_batch, y_batch), y_batch)
                loss = F.binary_cross_entropy_with_logits(logits, x_batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.cae.requires_grad_(False)
        self.cae_trained.fill_(True)

    def configure_optimizers(self) -> Any:
        adam = dict(lr=self.hparams.gan_lr, betas=(0.0, 0.9))
        return [
            self.optimizer_factory(params=self.backbone.parameters()),
            torch.optim.Adam(self.generator.parameters(), **adam),
            torch.optim.Adam(self.critic.parameters(), **adam),
        ]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        classifier_opt, generator_opt, critic_opt = self.optimizers()
        hp = self.hparams
        self.cae.eval()
        condition = self.onehot(y)
        with torch.no_grad():
            real = self.cae.encode(x, y)
        for _ in range(hp.critic_steps):
            with torch.no_grad():
                fake = self.generate_codes(y)
            critic_loss = (
                self.critic(torch.cat([fake, condition], dim=1)).mean()
                - self.critic(torch.cat([real, condition], dim=1)).mean()
                + hp.lambda_gp * gradient_penalty(self.critic, real, fake, condition)
            )
            self._step(critic_opt, critic_loss)

        fake = self.generate_codes(y)
        own = self.backbone(self.cae.decode(fake, y)).gather(1, y[:, None]).squeeze(1)
        generator_loss = (
            -self.critic(torch.cat([fake, condition], dim=1)).mean()
            + hp.lambda_cl * F.binary_cross_entropy_with_logits(own, torch.zeros_like(own))
            + hp.lambda_reg * log_cosine_regulariser(real, fake, y)
        )
        self._step(generator_opt, generator_loss)

        with torch.no_grad():
            generated = self.cae.decode(self.generate_codes(y), y)
        for _ in range(hp.classifier_steps):
            classifier_loss = self.classifier_loss(x, y, generated)
            self._step(classifier_opt, classifier_loss)
        self.record_training_loss(classifier_loss.detach())
        return classifier_loss.detach()

    def classifier_loss(self, x: Tensor, y: Tensor, generated: Tensor) -> Tensor:
        """The one-vs-all loss of the module docstring on real `x` and generated out-of-class `generated`."""
        logits = self.backbone(x)
        targets = self.onehot(y)
        losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        own = losses[targets.bool()].sum() / len(x)
        others = losses[~targets.bool()].mean()
        rejected = self.backbone(generated).gather(1, y[:, None]).squeeze(1)
        fake = F.binary_cross_entropy_with_logits(rejected, torch.zeros_like(rejected))
        lam = self.hparams.lambda_real_ood
        return own + lam * others + (1 - lam) * fake

    def _step(self, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            (scheduler[0] if isinstance(scheduler, list) else scheduler).step()

    def predict(self, x: Tensor) -> Prediction:
        probs, aleatoric, epistemic = one_vs_all_scores(torch.sigmoid(self.backbone(x)), self.prior)
        return Prediction(probs=probs, uncertainty=epistemic if self.score == "epistemic" else aleatoric)
