"""Deep Deterministic Uncertainty: a softmax classifier plus a class-conditional Gaussian feature density.

Source: Mukhoti, Kirsch, van Amersfoort, Torr & Gal, "Deep Deterministic Uncertainty: A New Simple
Baseline", CVPR 2023 (arXiv:2102.11582). Details follow the reference implementation,
github.com/omegafragger/DDU (`gmm_fit` and `get_embeddings` in utils/gmm_utils.py, evaluate.py, train.py):

- training is plain softmax cross-entropy on a residual network with spectral normalisation (the
  `resnet18_sn` and `wrn28_10_sn` backbones, coefficient 3), which keeps the feature space distance aware;
- after training, Gaussian discriminant analysis (GDA) is fitted on the penultimate features of the whole
  training split, computed in evaluation mode and in float64: per class c the mean μ_c and the unbiased
  covariance Σ_c = Xᵀ X / (n_c − 1) of the centred features X;
- the covariances are made positive definite by the reference's jitter search: the first ε of
  0, the smallest normal float64, 1e-308, 1e-307, ..., 1e-1 for which every Σ_c + ε I has a Cholesky
  factor; the same ε serves all classes. **Departure:** positive candidates below the rounding floor
  δ = D · u · max_c,i Σ_c,ii (u the float64 unit roundoff, D the feature dimension) are skipped. Adding less
  than δ changes no variance that float64 can tell from zero, so such an ε only ever "succeeds" on
  directions of zero variance (ReLU units dead on a class, common in a barely trained network) and gives
  them a precision of up to 1/ε ≈ 1e308: one such unit, slightly active on a test point, sends −log q to
  1e302 or to float64 infinity. From δ up, precisions stay about 1/δ, so −log q is finite in float64 for
  every finite feature vector (an ε found this way is reported as ``ddu/jitter`` like any other);
- predictions are the softmax of the classifier head (aleatoric, and what accuracy and calibration see);
  the epistemic uncertainty is the negative log feature density −log q(z) = −logsumexp_c log N(z; μ_c, Σ_c),
  the reference's `logsumexp` of the per-class log densities. As there, classes are weighted equally (no
  log class prior is added), so this is the mixture density up to the constant log K.

Scores, higher = more uncertain: ``density`` (the default, −log q(z) in nats) and ``entropy`` (the softmax
entropy, the paper's aleatoric measure). The density is returned in float64 and stays float64 through the
metrics (`predict_all` keeps a method's float64): −log q ranges over many orders of magnitude, where
float32 would overflow to inf (it stops at 3.4e38) or merge distinct scores into ties that change the
AUROC. Before `fit_posthoc` the Gaussians are placeholders (μ_c = 0, Σ_c = I), so density scores are
meaningless until the runner has fitted them.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.data.loaders import TensorDataModule
from trustbench.methods.base import OptimizerFactory, Prediction, SchedulerFactory, TrustModule
from trustbench.methods.ood.cache import extract_features
from trustbench.methods.uncertainty.mc_dropout import require_score
from trustbench.metrics.ood import entropy_score

DDU_SCORES = ("density", "entropy")
_FLOAT64 = torch.finfo(torch.float64)
# The reference's candidates, smallest first: 0, the smallest normal float64, then 1e-308 ... 1e-1.
JITTERS = (0.0, _FLOAT64.tiny, *(10.0**exponent for exponent in range(-308, 0)))


def class_gaussians(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Class means (K×D), Cholesky factors of the jittered class covariances (K×D×D) and the jitter ε.

    Computed in float64; ε is the first of :data:`JITTERS` that is 0 or at least :func:`jitter_floor` and
    gives every class a Cholesky factor. Raises ValueError when a class has fewer than two examples (its
    unbiased covariance is undefined) or when no such jitter exists.
    """
    features = features.to(torch.float64)
    counts = torch.bincount(labels, minlength=num_classes)
    if counts.numel() > num_classes or bool((counts < 2).any()):
        raise ValueError(
            f"DDU fits one Gaussian per class and needs at least 2 training examples of each of the "
            f"{num_classes} classes (labels 0..{num_classes - 1}); got counts {counts.tolist()}."
        )
    means = torch.stack([features[labels == c].mean(dim=0) for c in range(num_classes)])
    centred = [features[labels == c] - means[c] for c in range(num_classes)]
    covariances = torch.stack([x.T @ x / (len(x) - 1) for x in centred])
    identity = torch.eye(features.shape[1], dtype=torch.float64, device=features.device)
    floor = jitter_floor(covariances)
    for jitter in (0.0, *(candidate for candidate in JITTERS if candidate >= floor > 0)):
        scale_tril, info = torch.linalg.cholesky_ex(covariances + jitter * identity)
        if not bool(info.any()):
            return means, scale_tril, jitter
    raise ValueError(
        f"no jitter up to {JITTERS[-1]} makes DDU's class covariances positive definite; the features are "
        "degenerate (e.g. non-finite or constant), so check the training run."
    )


def jitter_floor(covariances: torch.Tensor) -> float:
    """δ = D · u · (largest variance of any class), u the float64 unit roundoff: the smallest positive
    jitter worth trying (module docstring). 0 when every variance is 0 or one is not finite, so that only
    ε = 0 is tried and such degenerate features are refused."""
    largest_variance = covariances.diagonal(dim1=1, dim2=2).max().item()
    if not math.isfinite(largest_variance):
        return 0.0
    return covariances.shape[-1] * torch.finfo(torch.float64).eps / 2 * largest_variance


def gaussian_log_densities(z: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log N(z_i; μ_c, L_c L_cᵀ) for every row z_i and class c: N×K, in the dtype of `means`.

    One class at a time, so memory stays at one N×D block whatever the number of classes.
    """
    z = z.to(means.dtype)
    squared_distances = torch.stack(
        [
            torch.linalg.solve_triangular(factor, (z - mean).T, upper=False).square().sum(dim=0)
            for mean, factor in zip(means, scale_tril, strict=True)
        ],
        dim=1,
    )
    half_log_determinants = scale_tril.diagonal(dim1=1, dim2=2).log().sum(dim=1)
    return -0.5 * (squared_distances + means.shape[1] * math.log(2 * math.pi)) - half_log_determinants


class DDU(TrustModule):
    """Softmax classifier scored by the GDA feature density fitted after training (module docstring).

    The Gaussian parameters are buffers (`class_means`, `class_scale_tril`, and the `jitter` used), so a
    checkpoint written after `fit_posthoc` carries them.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        score: str = "density",
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        if backbone.feature_dim is None:
            raise ValueError(
                f"DDU fits a density on penultimate features, but backbone {type(backbone).__name__} has "
                "none (feature_dim is None); choose a backbone with features such as resnet18_sn."
            )
        require_score("DDU", score, DDU_SCORES)
        self.score = score
        dim = backbone.feature_dim
        self.register_buffer("class_means", torch.zeros(num_classes, dim, dtype=torch.float64))
        self.register_buffer(
            "class_scale_tril", torch.eye(dim, dtype=torch.float64).expand(num_classes, dim, dim).clone()
        )
        self.register_buffer("jitter", torch.zeros((), dtype=torch.float64))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.backbone(x), y)

    def log_density(self, features: torch.Tensor) -> torch.Tensor:
        """log q(z) = logsumexp_c log N(z; μ_c, Σ_c) of penultimate features (N), in float64."""
        return gaussian_log_densities(features, self.class_means, self.class_scale_tril).logsumexp(dim=1)

    def predict(self, x: torch.Tensor) -> Prediction:
        features = self.backbone.features(x)
        probs = self.backbone.head(features).softmax(dim=1)
        if self.score == "density":
            return Prediction(probs=probs, uncertainty=-self.log_density(features))
        return Prediction(probs=probs, uncertainty=entropy_score(probs).to(probs.dtype))

    @torch.no_grad()
    def fit_gaussians(self, x_train: torch.Tensor, y_train: torch.Tensor, batch_size: int = 1024) -> float:
        """Fit the class Gaussians on the features of (x_train, y_train) in evaluation mode; returns ε."""
        was_training = self.training
        self.eval()
        features = extract_features(self.backbone, x_train, batch_size).features.to(self.device)
        self.train(was_training)
        means, scale_tril, jitter = class_gaussians(features, y_train.to(self.device), self.num_classes)
        self.class_means.copy_(means)
        self.class_scale_tril.copy_(scale_tril)
        self.jitter.fill_(jitter)
        return jitter

    def fit_posthoc(self, datamodule: TensorDataModule) -> dict[str, float]:
        """Fit GDA on the training split once training is over; reports the jitter as ``ddu/jitter``."""
        jitter = self.fit_gaussians(datamodule.x_train, datamodule.y_train, datamodule.eval_batch_size)
        return {"ddu/jitter": jitter}
