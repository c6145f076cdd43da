"""Generative models that counterfactual explainers search or score with, and the latent search itself.

Three pieces live here because every latent-space explainer (REVISE, the CLUE family, latent gradient,
SharpShooter, region-targeted) needs all three:

- :class:`VAE` and :class:`Autoencoder` over the model's inputs: MLP networks for tabular rows, a small
  conv network for images whose sides divide by 4 (1×28×28, 3×32×32), and the MLP as fallback for any
  other shape. Decoders produce values in *model-input space*: each element is a sigmoid (a softmax for
  each one-hot group) mapped affinely onto the element's ``[lower, upper]`` from :class:`Constraints`, so
  a decoded MNIST digit is standardised exactly like the classifier's inputs. Reconstruction is scored
  in the unit space ``(x − lower) / (upper − lower)``: binary cross-entropy on every element outside a
  one-hot group (a Bernoulli likelihood for pixels and binary columns, the usual soft-target one for
  min-max scaled numbers) and cross-entropy on each one-hot group.
- :func:`trained_vae`, :func:`trained_autoencoder` and :func:`train_class_autoencoders` (and
  :func:`cached_generative` for other architectures, such as the region-targeted per-cell VAE): train with
  seeded generators, or load the weights stored in ``data.cache_dir`` under a fingerprint of everything
  that determines them, so a sweep over explainers trains each model once.
- :class:`LatentExplainer`: the base of explainers that run gradient descent on latent codes, decode,
  project onto the constraints after every step and snap the final answer.

One-hot groups: :class:`ExplanationData` carries only the constraints' *mutable* one-hot groups, so by
default those are decoded with a softmax and every other column (immutable categorical columns included)
as an independent Bernoulli. Pass ``onehot_groups=meta.categorical_groups`` to decode all of them as
groups. Explainers never change immutable columns (``Constraints.project`` restores them), so the default
costs them nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.config_blocks import checked_keys
from trustbench.data.loaders import seeded_generator
from trustbench.fingerprint import fingerprint_config, fingerprint_tensors
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import ExplanationData
from trustbench.methods.counterfactual.search import SeededExplainer
from trustbench.progress import progress
from trustbench.results.model_store import load_weights, save_weights

OneHotGroups = tuple[tuple[int, ...], ...]
# log-variances beyond this range only occur when training diverges; clamping keeps exp() finite.
_LOGVAR_LIMIT = 10.0
# rows of the training data digested into the cache key: enough to tell splits and normalisations apart,
# few enough that looking a model up costs milliseconds (all 60,000 MNIST images take seconds to hash)
_KEYED_ROWS = 1024


@dataclass(frozen=True)
class GenerativeConfig:
    """Architecture and training recipe of a VAE or autoencoder; every field keys the cache.

    `hidden` is the width of the MLP layers (tabular rows, the image fallback, and the conv nets' dense
    layer); `channels` is the first conv stage's width (the second has twice as many). `kl_weight` scales
    the KL term of the VAE's ELBO (1 is the plain VAE; the autoencoder ignores it).
    """

    latent_dim: int = 16
    hidden: int = 128
    channels: int = 16
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    kl_weight: float = 1.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GenerativeConfig:
        """The config of an explainer's ``generative`` hyperparameter; unknown keys list the valid ones."""
        return cls(**checked_keys(cls, values, "the generative model block"))


class OutputSpace(nn.Module):
    """Maps decoder logits to model-input space and scores reconstructions, element by element.

    `lower`/`upper` are shaped like one example; `onehot_groups` are flat column indices of groups decoded
    with a softmax. Elements whose range is empty (lower == upper) decode to `lower`.
    """

    def __init__(self, lower: Tensor, upper: Tensor, onehot_groups: OneHotGroups = ()) -> None:
        super().__init__()
        span = upper - lower
        self.register_buffer("lower", lower.detach().clone().float(), persistent=False)
        self.register_buffer(
            "span", torch.where(span > 0, span, torch.ones_like(span)).float(), persistent=False
        )
        grouped = torch.zeros(lower.numel(), dtype=torch.bool)
        for group in onehot_groups:
            grouped[list(group)] = True
        self.register_buffer("independent", ~grouped, persistent=False)
        self.onehot_groups = tuple(tuple(int(column) for column in group) for group in onehot_groups)

    def values(self, logits: Tensor) -> Tensor:
        """Decoder logits (N, *shape) → inputs in [lower, upper], one-hot groups summing to their span."""
        flat = logits.flatten(1)
        unit = torch.sigmoid(flat)
        for group in self.onehot_groups:
            unit = unit.index_copy(1, self._columns(group), flat[:, list(group)].softmax(dim=1))
        return self.lower + unit.view_as(logits) * self.span

    def negative_log_likelihood(self, logits: Tensor, x: Tensor) -> Tensor:
        """Per-example reconstruction loss (N,): summed BCE on independent elements + CE per one-hot group."""
        flat = logits.flatten(1)
        target = ((x - self.lower) / self.span).clamp(0.0, 1.0).flatten(1)
        bce = F.binary_cross_entropy_with_logits(flat, target, reduction="none")
        loss = (bce * self.independent).sum(dim=1)
        for group in self.onehot_groups:
            columns = list(group)
            loss = loss - (target[:, columns] * flat[:, columns].log_softmax(dim=1)).sum(dim=1)
        return loss

    def _columns(self, group: tuple[int, ...]) -> Tensor:
        return torch.tensor(group, device=self.lower.device)


def _conv_fits(input_shape: tuple[int, ...]) -> bool:
    """Whether the two stride-2 conv stages apply: C×H×W images with H and W divisible by 4."""
    return len(input_shape) == 3 and input_shape[1] % 4 == 0 and input_shape[2] % 4 == 0


def _networks(
    input_shape: tuple[int, ...], config: GenerativeConfig, code_width: int
) -> tuple[nn.Module, ...]:
    """Encoder (inputs → `code_width`) and decoder (latent → logits shaped like inputs)."""
    hidden, latent = config.hidden, config.latent_dim
    if _conv_fits(input_shape):
        channels, height, width = input_shape
        wide = 2 * config.channels
        grid = (wide, height // 4, width // 4)
        encoder = nn.Sequential(
            nn.Conv2d(channels, config.channels, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(config.channels, wide, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(math.prod(grid), hidden),
            nn.ReLU(),
            nn.Linear(hidden, code_width),
        )
        decoder = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            nn.Linear(hidden, math.prod(grid)),
            nn.ReLU(),
            nn.Unflatten(1, grid),
            nn.ConvTranspose2d(wide, config.channels, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(config.channels, channels, kernel_size=4, stride=2, padding=1),
        )
        return encoder, decoder
    size = math.prod(input_shape)
    encoder = nn.Sequential(
        nn.Flatten(),
        nn.Linear(size, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, code_width),
    )
    decoder = nn.Sequential(
        nn.Linear(latent, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, size),
        nn.Unflatten(1, input_shape),
    )
    return encoder, decoder


class Autoencoder(nn.Module):
    """A deterministic autoencoder into `config.latent_dim` codes, decoding into model-input space.

    The realism metrics of Van Looveren & Klaise (ECML PKDD 2021, "Interpretable Counterfactual
    Explanations Guided by Prototypes": IM1, IM2) compare reconstruction errors of such autoencoders
    trained per class (:func:`train_class_autoencoders`).
    """

    # the encoder's output width per latent dimension (the VAE's encoder also outputs log-variances)
    code_multiplier: ClassVar[int] = 1

    def __init__(
        self,
        input_shape: tuple[int, ...],
        lower: Tensor,
        upper: Tensor,
        onehot_groups: OneHotGroups = (),
        config: GenerativeConfig = GenerativeConfig(),
    ) -> None:
        super().__init__()
        self.config = config
        self.space = OutputSpace(lower, upper, onehot_groups)
        self.encoder, self.decoder = self.networks(tuple(input_shape), config)

    def networks(self, input_shape: tuple[int, ...], config: GenerativeConfig) -> tuple[nn.Module, ...]:
        """Encoder (inputs → codes, `code_multiplier` values per latent dim) and decoder (codes → logits)."""
        return _networks(input_shape, config, self.code_multiplier * config.latent_dim)

    def encode(self, x: Tensor) -> Tensor:
        """Latent codes (N, latent_dim) of inputs (N, *shape)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Inputs (N, *shape) in model-input space decoded from codes (N, latent_dim)."""
        return self.space.values(self.decoder(z))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Mean per-example reconstruction loss of a batch (the generator is unused: nothing is drawn)."""
        return self.space.negative_log_likelihood(self.decoder(self.encode(x)), x).mean()


class VAE(Autoencoder):
    """A variational autoencoder (Kingma & Welling, ICLR 2014) with a standard normal prior.

    `encode` returns the posterior mean, the code latent-space explainers start from; training draws
    one reparameterised sample per example and minimises reconstruction loss + `kl_weight` · KL.
    """

    code_multiplier: ClassVar[int] = 2

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance (each N × latent_dim) of q(z | x)."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-_LOGVAR_LIMIT, _LOGVAR_LIMIT)

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Negative ELBO per example, averaged over the batch; the noise is drawn from `generator`."""
        mean, logvar = self.posterior(x)
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        z = mean + (0.5 * logvar).exp() * noise
        reconstruction = self.space.negative_log_likelihood(self.decoder(z), x)
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return (reconstruction + self.config.kl_weight * kl).mean()


def fit_generative(model: Autoencoder, x: Tensor, seed: int) -> list[float]:
    """Train `model` on `x` with Adam for ``model.config.epochs`` epochs; returns each epoch's mean loss.

    Epoch `e` shuffles and draws its noise from ``seeded_generator(seed, e)``, so the result depends on
    nothing but the arguments. Batches index the tensor directly (no DataLoader).
    """
    config = model.config
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    epoch_losses = []
    for epoch in progress(range(config.epochs), f"training {type(model).__name__}"):
        generator = seeded_generator(seed, epoch)
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for batch in order.split(config.batch_size):
            optimizer.zero_grad()
            loss = model.training_loss(x[batch], generator)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        epoch_losses.append(total / len(x))
    return epoch_losses


def trained_vae(
    data: ExplanationData,
    config: GenerativeConfig = GenerativeConfig(),
    onehot_groups: OneHotGroups | None = None,
) -> VAE:
    """The VAE of `config` on ``data.x_train``: loaded from ``data.cache_dir`` or trained and stored there.

    `onehot_groups` defaults to ``data.constraints.onehot_groups`` (see the module docstring).
    """
    return cached_generative(VAE, "vae", data, data.x_train, config, onehot_groups)


def trained_autoencoder(
    data: ExplanationData,
    config: GenerativeConfig = GenerativeConfig(),
    onehot_groups: OneHotGroups | None = None,
    label: int | None = None,
) -> Autoencoder:
    """The autoencoder of `config` on the training rows (only those of class `label` if given), cached."""
    if label is None:
        return cached_generative(Autoencoder, "ae", data, data.x_train, config, onehot_groups)
    rows = data.x_train[data.y_train == label]
    if len(rows) == 0:
        raise ValueError(
            f"class {label} has no training rows in {data.dataset_name!r}, so no autoencoder can be trained "
            "for it; use a training split that contains every class"
        )
    return cached_generative(Autoencoder, f"ae-class{label}", data, rows, config, onehot_groups)


def train_class_autoencoders(
    data: ExplanationData,
    config: GenerativeConfig = GenerativeConfig(),
    onehot_groups: OneHotGroups | None = None,
) -> list[Autoencoder]:
    """One autoencoder per class, trained on that class's training rows (item `c` is class `c`'s), cached."""
    return [trained_autoencoder(data, config, onehot_groups, label) for label in range(data.num_classes)]


def cached_generative(
    kind: type[Autoencoder],
    label: str,
    data: ExplanationData,
    x: Tensor,
    config: GenerativeConfig,
    onehot_groups: OneHotGroups | None,
) -> Autoencoder:
    """Build `kind` with weights from the cache, or train it on `x` and store them; eval mode, frozen.

    The key covers the config, the dataset name, the training rows (their number and a digest of up to
    1024 evenly spaced ones, so another split or normalisation does not reuse weights), the range decoded
    into, the one-hot groups and the seed.
    """
    chosen = data.constraints.onehot_groups if onehot_groups is None else onehot_groups
    groups = tuple(tuple(int(column) for column in group) for group in chosen)
    lower, upper = data.constraints.lower, data.constraints.upper
    key = fingerprint_config(
        {
            "kind": label,
            "config": dataclasses.asdict(config),
            "dataset": data.dataset_name,
            "rows": len(x),
            "data": fingerprint_tensors(
                [("x", x[:: max(1, len(x) // _KEYED_ROWS)]), ("lower", lower), ("upper", upper)]
            ),
            "onehot_groups": groups,
            "seed": data.seed,
        }
    )
    path = Path(data.cache_dir) / f"{data.dataset_name}-{label}-{key}.pt"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(data.seed)
        model = kind(tuple(x.shape[1:]), lower, upper, groups, config).to(x.device)
    if path.exists():
        _load(model, path, label)
    else:
        fit_generative(model, x, data.seed)
        save_weights(model, path)
    return model.eval().requires_grad_(False)


def _load(model: Autoencoder, path: Path, label: str) -> None:
    try:
        load_weights(model, path)
    except (RuntimeError, EOFError, ValueError) as error:
        raise ValueError(
            f"{path} does not hold weights of this {label} ({error}); delete it and it will be retrained"
        ) from None


def range_scaled_l1(candidate: Tensor, original: Tensor, constraints: Constraints) -> Tensor:
    """Per-row mean absolute change (N,), each element measured in units of its valid range.

    Averaging over elements (rather than summing) lets one distance weight serve 91 Adult columns and
    784 MNIST pixels alike; elements with an empty range count in raw units.
    """
    span = constraints.upper - constraints.lower
    span = torch.where(span > 0, span, torch.ones_like(span))
    return ((candidate - original).abs() / span).flatten(1).mean(dim=1)


def predictive_entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of the softmax over the last axis of `logits`: (N, K) gives (N,), (N, k, K) (N, k)."""
    return -(logits.softmax(dim=-1) * logits.log_softmax(dim=-1)).sum(dim=-1)


LatentObjective = Callable[[Tensor, Tensor], Tensor]
"""(latent codes (B, L), decoded and projected candidates (B, *shape)) → per-row loss (B,)."""


class LatentExplainer(SeededExplainer):
    """Base of explainers that search a VAE's latent space (REVISE, the CLUE family, SharpShooter, ...).

    ``fit`` gets the VAE of the `generative` settings (a mapping of :class:`GenerativeConfig` fields) from
    :func:`trained_vae`, so explainers sharing those settings share one trained model, and takes the run's
    seed for anything drawn. ``search`` runs Adam on latent codes for at most `steps` steps of size `lr`.
    """

    def __init__(self, steps: int, lr: float, generative: Mapping[str, Any] | None = None) -> None:
        if steps < 1 or lr <= 0:
            raise ValueError(f"{type(self).__name__} needs steps >= 1 and lr > 0; got steps={steps}, lr={lr}")
        super().__init__()
        self.steps = steps
        self.lr = lr
        self.generative = GenerativeConfig.from_mapping(generative)
        self.vae: VAE | None = None

    def fit(self, data: ExplanationData) -> LatentExplainer:
        super().fit(data)
        self.vae = trained_vae(data, self.generative)
        return self

    def fitted_vae(self, device: torch.device) -> VAE:
        """The VAE from ``fit``, on `device`; explaining before fitting is an error."""
        if self.vae is None:
            raise RuntimeError(
                f"the {self.name!r} explainer searches a VAE's latent space; call fit(data) before explain"
            )
        return self.vae.to(device)

    def latent_model(self, device: torch.device) -> nn.Module:
        """The model whose ``decode`` maps the search's codes to inputs: the fitted VAE, unless a subclass
        searches other coordinates (diffeomorphic counterfactuals search a normalising flow's)."""
        return self.fitted_vae(device)

    def search(
        self,
        start: Tensor,
        original: Tensor,
        constraints: Constraints,
        objective: LatentObjective,
        reached: Callable[[Tensor], Tensor] | None = None,
        keep_within: Callable[[Tensor], Tensor] | None = None,
        paste: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Minimise `objective` over latent codes from `start` (B, L); returns snapped candidates (B, *shape).

        Every step decodes the codes and projects the result onto `constraints` around `original`
        (B, *shape) before scoring it. A row stops as soon as `reached` (given the snapped candidates,
        returning (B,) bools) holds for it and keeps that candidate; rows that never reach it return the
        last one. `keep_within` maps codes back into an allowed region after each step (Δ-CLUE's ball).
        `paste` maps decoded inputs to candidates before the projection (region-targeted counterfactuals
        paste the decoded regions into the originals).
        Rows are independent: Adam's update is element-wise and the loss is a sum over rows.
        """
        vae = self.latent_model(original.device)
        z = start.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=self.lr)
        done = torch.zeros(len(z), dtype=torch.bool, device=z.device)
        answer = torch.empty_like(original)
        for step in range(self.steps + 1):
            decoded = vae.decode(z)
            candidate = constraints.project(decoded if paste is None else paste(decoded), original)
            if reached is not None:
                with torch.no_grad():
                    newly = reached(constraints.snap(candidate, original)) & ~done
                answer[newly] = candidate.detach()[newly]
                done |= newly
                if bool(done.all()):
                    break
            if step == self.steps:
                break
            loss = objective(z, candidate)[~done].sum()
            (gradient,) = torch.autograd.grad(loss, z)
            z.grad = gradient
            optimizer.step()
            if keep_within is not None:
                with torch.no_grad():
                    z.copy_(keep_within(z))
        answer = torch.where(_rows(done, answer), answer, candidate.detach())
        return constraints.snap(answer, original)


def _rows(mask: Tensor, like: Tensor) -> Tensor:
    """A (B,) row mask viewed to broadcast against `like` (B, *shape)."""
    return mask.view(-1, *([1] * (like.ndim - 1)))
