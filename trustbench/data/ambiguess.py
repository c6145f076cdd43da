"""AmbiGuess: truly ambiguous images with probabilistic labels, decoded from the borders between classes.

Source: Weiss, García Gómez & Tonella, "Generating and detecting true ambiguity: a forgotten danger in DNN
supervision testing" (Empirical Software Engineering 2023, arXiv 2207.10495; reference code
``testingautomated-usi/ambguess-src``). Per class pair (c1, c2) a *regularised adversarial autoencoder*
(rAAE) is trained on the two classes' training images:

- encoder E: image → z ∈ R², decoder D: z → image (sigmoid pixels), trained by MSE(x, D(E(x)));
- the prior is one Gaussian per class, N((−3, 0), I) for c1 and N((3, 0), I) for c2; a discriminator
  Dsc(z ⊕ onehot(y)) → logit learns to tell prior draws with their class (real) from E(x) ⊕ onehot(y)
  (fake) by binary cross-entropy, and the encoder, as generator, learns to fool it: BCE(Dsc(E(x) ⊕ y), 1);
- the soft label of a latent point is softmax([Dsc(z ⊕ c1), Dsc(z ⊕ c2)]).

Sampling (the reference's ``DensityMap``): a grid of ``anchors_per_dim``² cells spans the latent space
between the two modes, x from −3 + 2 to 3 − 2 (each mode's mean plus or minus two standard deviations) and
y over ±5 standard deviations; each cell is weighted by ‖∇_z Σ D(z)²‖ at its anchor (where the decoded
image changes fast), cells whose anchor has a label gap |p1 − p2| above ``max_label_diff`` get weight 0,
cells are drawn by weight, a point is drawn uniformly in each, and points whose own gap is below
``max_label_diff`` are kept. Their decoded images carry the probabilistic label p1 on c1 and p2 on c2.

Departures from the reference, and why:

- the reference trains each pair up to 20 times and keeps a model only when the discriminator's real/fake
  accuracy lies in (0.4, 0.6) and its two-class accuracy on the training images is at least 0.9; here each
  pair is trained once (CPU budget) and both numbers are returned in :attr:`AmbiguousSet.quality`, so a
  run shows whether its autoencoders would have passed;
- the defaults train a few confusable pairs for 5 epochs of batch 128 (:class:`AmbiGuessSettings`); the
  paper's recipe (all 45 pairs, 80 epochs, batch 1000, Adam 1e-3, 128 hidden units, dropout 0.1, 50
  anchors per axis) is ``pairs: all, epochs: 80, batch_size: 1000``;
- images are any C×H×W in [0, 1] (the reference fixes 28×28×1); random draws come from torch generators
  seeded by (seed, pair), so a seed gives the same set in every process.

Trained weights are stored under ``cache_dir``, keyed by the settings, the dataset, a digest of the
training images and the seed, as the counterfactual family caches its VAEs: a sweep trains each pair once.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.config_blocks import checked_keys
from trustbench.data.loaders import named_generator
from trustbench.errors import ConfigError
from trustbench.fingerprint import fingerprint_config, fingerprint_tensors
from trustbench.progress import progress
from trustbench.results.model_store import load_weights, save_weights

log = logging.getLogger("trustbench")

MODE_DISTANCE = 3.0  # the class modes sit at (∓3, 0), unit standard deviation (the reference's prior)
BORDER_STDS = 2.0  # the grid's x range stops this many standard deviations inside each mode
FREE_AXIS_STDS = 5.0  # the grid's y range: ± this many standard deviations (the reference's STD_SCALER)
DRAWS_PER_ROUND = 256  # latent points drawn per round of rejection sampling
MAX_ATTEMPTS_PER_SAMPLE = 100  # the reference gives up after 100 draws per wanted sample
_KEYED_ROWS = 1024  # training rows digested into the cache key (as the counterfactual VAEs do)

Pair = tuple[int, int]


@dataclass(frozen=True)
class AmbiGuessSettings:
    """How many rAAEs, how they are trained and how their ambiguous images are drawn.

    `pairs` is a list of class pairs or ``"all"`` (every pair c1 < c2). The defaults are the CPU-scale
    recipe: three confusable MNIST pairs, 5 epochs of batch 128 (about 470 steps: at batch 1000, 10 epochs
    left the soft labels at chance on MNIST, two-class accuracy 0.50). The paper's recipe is
    ``pairs="all", epochs=80, batch_size=1000``.
    """

    pairs: tuple[Pair, ...] | str = ((3, 5), (4, 9), (1, 7))
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    hidden: int = 128
    dropout: float = 0.1
    anchors_per_dim: int = 50
    max_label_diff: float = 0.3
    samples_per_pair: int = 100

    @classmethod
    def from_config(cls, settings: Mapping[str, Any] | None, where: str = "ambiguess") -> AmbiGuessSettings:
        """The settings of a config block (None: the defaults); a wrong key or value is one line."""
        given = checked_keys(cls, settings, where)
        if "pairs" in given and given["pairs"] != "all":
            given["pairs"] = tuple((int(first), int(second)) for first, second in given["pairs"])
        chosen = cls(**given)
        if min(chosen.epochs, chosen.batch_size, chosen.hidden, chosen.samples_per_pair) < 1:
            raise ConfigError(f"{where}: epochs, batch_size, hidden and samples_per_pair must be >= 1")
        if chosen.anchors_per_dim < 2 or not 0 < chosen.max_label_diff <= 1:
            raise ConfigError(f"{where}: anchors_per_dim must be >= 2 and max_label_diff in (0, 1]")
        return chosen

    def class_pairs(self, num_classes: int) -> list[Pair]:
        """The pairs to generate for, checked against `num_classes`."""
        if self.pairs == "all":
            return list(itertools.combinations(range(num_classes), 2))
        if isinstance(self.pairs, str):
            raise ConfigError(f"ambiguess.pairs must be 'all' or a list of class pairs, got {self.pairs!r}")
        for first, second in self.pairs:
            if not 0 <= first < second < num_classes:
                raise ConfigError(
                    f"ambiguess.pairs: ({first}, {second}) is not a pair of classes c1 < c2 "
                    f"in 0..{num_classes - 1}"
                )
        return list(self.pairs)


def _mlp(inputs: int, hidden: int, outputs: int, dropout: float) -> list[nn.Module]:
    """Two hidden layers of LeakyReLU units with dropout, then a linear output (the reference's layout)."""
    return [
        nn.Linear(inputs, hidden),
        nn.LeakyReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, outputs),
    ]


class RegularisedAAE(nn.Module):
    """The rAAE of one class pair: 2-D latent space, one Gaussian mode per class (module docstring)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        pair: Pair,
        hidden: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        size = math.prod(input_shape)
        self.pair, self.num_classes = pair, num_classes
        self.encoder = nn.Sequential(nn.Flatten(), *_mlp(size, hidden, 2, dropout))
        self.decoder = nn.Sequential(
            *_mlp(2, hidden, size, dropout), nn.Sigmoid(), nn.Unflatten(1, input_shape)
        )
        self.discriminator = nn.Sequential(*_mlp(2 + num_classes, hidden, 1, dropout))
        self.register_buffer("modes", torch.tensor([[-MODE_DISTANCE, 0.0], [MODE_DISTANCE, 0.0]]))
        # kept with the weights: the last training epoch's real/fake accuracy (NaN until trained)
        self.register_buffer("real_fake_accuracy", torch.tensor(float("nan")))

    def critic(self, z: Tensor, labels: Tensor) -> Tensor:
        """The discriminator's logit (N,) that `z` (N×2) is a prior draw of class `labels` (N,)."""
        onehot = F.one_hot(labels, self.num_classes).to(z.dtype)
        return self.discriminator(torch.cat([z, onehot], dim=1)).squeeze(1)

    def soft_labels(self, z: Tensor) -> Tensor:
        """softmax over the critic's logits for c1 and c2 at each latent point: N×2, columns (c1, c2)."""
        logits = [self.critic(z, torch.full((len(z),), label, device=z.device)) for label in self.pair]
        return torch.stack(logits, dim=1).softmax(dim=1)

    def prior_sample(self, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Half the points from each class's mode (as the reference's ``create_fake``), with their classes."""
        side = torch.arange(count) >= count // 2
        z = self.modes[side.long()] + torch.randn(count, 2, generator=generator)
        labels = torch.tensor(self.pair)[side.long()]
        return z, labels


@dataclass(frozen=True)
class TrainingQuality:
    """The reference's acceptance numbers for one rAAE: discriminator real/fake accuracy in the last epoch
    (it keeps models within (0.4, 0.6)) and two-class accuracy of the soft labels of the encoded training
    images (it keeps models at 0.9 or more)."""

    real_fake_accuracy: float
    class_accuracy: float


def train_raae(model: RegularisedAAE, x: Tensor, y: Tensor, settings: AmbiGuessSettings, seed: int) -> float:
    """Train `model` on images `x` of its two classes `y`; returns the last epoch's real/fake accuracy.

    Each batch takes the reference's three steps, each with its own Adam: reconstruction (encoder and
    decoder), discriminator, then the encoder as generator.
    """
    optimisers = {
        "autoencoder": torch.optim.Adam(
            [*model.encoder.parameters(), *model.decoder.parameters()], lr=settings.lr
        ),
        "discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=settings.lr),
        "generator": torch.optim.Adam(model.encoder.parameters(), lr=settings.lr),
    }
    model.train()
    correct = seen = 0
    for epoch in progress(range(settings.epochs), f"training the {model.pair} rAAE"):
        generator = named_generator(seed, f"ambiguess/{model.pair}/{epoch}")
        correct = seen = 0
        for batch in torch.randperm(len(x), generator=generator).split(settings.batch_size):
            images, labels = x[batch], y[batch]
            _step(optimisers["autoencoder"], F.mse_loss(model.decoder(model.encoder(images)), images))
            prior, prior_labels = model.prior_sample(len(batch), generator)
            real = model.critic(prior, prior_labels)
            fake = model.critic(model.encoder(images).detach(), labels)
            _step(
                optimisers["discriminator"],
                F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)),
            )
            correct += int((real > 0).sum() + (fake <= 0).sum())
            seen += 2 * len(batch)
            fooled = model.critic(model.encoder(images), labels)
            _step(
                optimisers["generator"], F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
            )
    model.eval()
    return correct / max(seen, 1)


def _step(optimiser: torch.optim.Optimizer, loss: Tensor) -> None:
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()


@torch.no_grad()
def class_accuracy(model: RegularisedAAE, x: Tensor, y: Tensor) -> float:
    """Share of images whose encoding's soft label puts more mass on their own class (of the pair)."""
    model.eval()
    soft = model.soft_labels(model.encoder(x))
    return float(((soft[:, 1] > soft[:, 0]).long() == (y == model.pair[1]).long()).float().mean())


@dataclass(frozen=True)
class LatentGrid:
    """The anchors (A×2, row-major over x then y) of the sampling grid and its cells' width and height."""

    anchors: Tensor
    cell: Tensor

    @classmethod
    def between_modes(cls, anchors_per_dim: int) -> LatentGrid:
        """The reference's grid: x within two standard deviations inside each mode, y over ±5."""
        bounds = torch.tensor(
            [[-MODE_DISTANCE + BORDER_STDS, MODE_DISTANCE - BORDER_STDS], [-FREE_AXIS_STDS, FREE_AXIS_STDS]]
        )
        cell = (bounds[:, 1] - bounds[:, 0]) / anchors_per_dim
        axes = [
            torch.linspace(low + width / 2, high - width / 2, anchors_per_dim)
            for (low, high), width in zip(bounds.tolist(), cell.tolist(), strict=True)
        ]
        anchors = torch.cartesian_prod(*axes)
        return cls(anchors, cell)


def decoder_gradient_norms(model: RegularisedAAE, z: Tensor) -> Tensor:
    """‖∇_z Σ D(z)²‖ per latent point (N,): the decoder in eval mode treats points independently, so one
    backward pass through the summed batch gives every point's own gradient."""
    model.eval()
    points = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model.decoder(points).square().sum(), points)
    return grad.norm(dim=1)


@torch.no_grad()
def sample_ambiguous(
    model: RegularisedAAE, settings: AmbiGuessSettings, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Up to ``samples_per_pair`` ambiguous latent points of `model` (M×2) and their soft labels (M×2).

    Fewer (possibly none) come back when the label gap stays above ``max_label_diff`` in too many draws:
    the reference gives up after 100 draws per wanted sample, and so does this.
    """
    grid = LatentGrid.between_modes(settings.anchors_per_dim)
    gap = model.soft_labels(grid.anchors).diff(dim=1).abs().squeeze(1)
    weights = decoder_gradient_norms(model, grid.anchors) * (gap <= settings.max_label_diff)
    wanted = settings.samples_per_pair
    if not bool(weights.sum() > 0):
        return torch.zeros(0, 2), torch.zeros(0, 2)
    kept_points, kept_labels, kept, attempts = [], [], 0, 0
    while kept < wanted and attempts < wanted * MAX_ATTEMPTS_PER_SAMPLE:
        cells = torch.multinomial(weights, DRAWS_PER_ROUND, replacement=True, generator=generator)
        offsets = (torch.rand(DRAWS_PER_ROUND, 2, generator=generator) - 0.5) * grid.cell
        points = grid.anchors[cells] + offsets
        labels = model.soft_labels(points)
        ambiguous = (labels[:, 0] - labels[:, 1]).abs() < settings.max_label_diff
        kept_points.append(points[ambiguous])
        kept_labels.append(labels[ambiguous])
        kept += int(ambiguous.sum())
        attempts += DRAWS_PER_ROUND
    return torch.cat(kept_points)[:wanted], torch.cat(kept_labels)[:wanted]


@dataclass(frozen=True)
class AmbiguousSet:
    """Ambiguous images (N×C×H×W in [0, 1]), their probabilistic labels (N×K, mass on two classes), the
    pair each came from (N×2) and each pair's :class:`TrainingQuality`."""

    images: Tensor
    soft_labels: Tensor
    pairs: Tensor
    quality: dict[Pair, TrainingQuality]


def generate_ambiguous(
    x_train: Tensor,
    y_train: Tensor,
    num_classes: int,
    settings: AmbiGuessSettings,
    cache_dir: str | Path,
    dataset_name: str,
    seed: int = 0,
) -> AmbiguousSet:
    """AmbiGuess images for every configured pair, with rAAEs trained on raw `x_train` (in [0, 1])."""
    if x_train.ndim != 4 or (len(x_train) and (x_train.min() < 0 or x_train.max() > 1)):
        raise ValueError("AmbiGuess trains on raw images of shape (N, C, H, W) in [0, 1]")
    images, labels, pairs, quality = [], [], [], {}
    for pair in settings.class_pairs(num_classes):
        rows = (y_train == pair[0]) | (y_train == pair[1])
        if not bool(rows.any()):
            raise ValueError(f"classes {pair} have no training images in {dataset_name!r}")
        model, quality[pair] = trained_raae(
            x_train[rows], y_train[rows], num_classes, pair, settings, cache_dir, dataset_name, seed
        )
        points, soft = sample_ambiguous(model, settings, named_generator(seed, f"ambiguess/sample/{pair}"))
        if not len(points):
            log.warning("AmbiGuess found no ambiguous points for classes %s; raise max_label_diff", pair)
            continue
        with torch.no_grad():
            images.append(model.decoder(points))
        full = torch.zeros(len(points), num_classes)
        full[:, list(pair)] = soft
        labels.append(full)
        pairs.append(torch.tensor(pair).expand(len(points), 2))
    if not images:
        raise ValueError("AmbiGuess found no ambiguous points for any class pair; raise max_label_diff")
    return AmbiguousSet(torch.cat(images), torch.cat(labels), torch.cat(pairs), quality)


def trained_raae(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    pair: Pair,
    settings: AmbiGuessSettings,
    cache_dir: str | Path,
    dataset_name: str,
    seed: int,
) -> tuple[RegularisedAAE, TrainingQuality]:
    """The rAAE of `pair` on (`x`, `y`), loaded from `cache_dir` or trained and stored there, frozen.

    The real/fake accuracy of training is stored beside the weights (it cannot be recomputed later).
    """
    sampling_only = ("pairs", "anchors_per_dim", "max_label_diff", "samples_per_pair")
    training = {k: v for k, v in dataclasses.asdict(settings).items() if k not in sampling_only}
    key = fingerprint_config(
        {
            "settings": training,
            "pair": list(pair),
            "dataset": dataset_name,
            "rows": len(x),
            "data": fingerprint_tensors([("x", x[:: max(1, len(x) // _KEYED_ROWS)]), ("y", y)]),
            "seed": seed,
        }
    )
    path = Path(cache_dir) / f"{dataset_name}-raae-{pair[0]}-{pair[1]}-{key}.pt"
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator: seed it, then restore
        torch.manual_seed(seed)
        model = RegularisedAAE(tuple(x.shape[1:]), num_classes, pair, settings.hidden, settings.dropout)
        if path.exists():
            load_weights(model, path)
        else:
            model.real_fake_accuracy.fill_(train_raae(model, x, y, settings, seed))
            save_weights(model, path)
    model.eval().requires_grad_(False)
    return model, TrainingQuality(float(model.real_fake_accuracy), class_accuracy(model, x, y))
