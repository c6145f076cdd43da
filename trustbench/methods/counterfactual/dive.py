"""DiVE: diverse counterfactuals as masked perturbations of a β-TCVAE's latent code.

Rodriguez, Laradji, Drouin & Lacoste, "Beyond Trivial Counterfactual Explanations with Diverse Valuable
Explanations", ICCV 2021 (arXiv:2103.10226; reference code ServiceNow/beyond-trivial-explanations).
β-TCVAE: Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in VAEs", NeurIPS 2018.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from sklearn.cluster import SpectralClustering
from torch import Tensor
from torch.nn import functional as F

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier, ExplanationData
from trustbench.methods.counterfactual.generative import VAE, LatentExplainer, cached_generative
from trustbench.methods.counterfactual.search import SeededExplainer

MASKS = ("fisher_spectral", "fisher_top_removed", "none")
_FISHER_ROWS = 1000


def _log_normal(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mean).square() / logvar.exp())


class TCVAE(VAE):
    """A β-TCVAE: the ELBO's KL split into index-code MI + β·total correlation + dimension-wise KL.

    The aggregate posterior q(z) and its marginals are estimated on the batch (minibatch sampling, up to
    a constant that changes no gradient); β is ``config.kl_weight`` (which scales the whole KL in the
    plain VAE), so 1 gives back the plain VAE's objective in expectation.
    """

    def training_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        mean, logvar = self.posterior(x)
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        z = mean + (0.5 * logvar).exp() * noise
        reconstruction = self.space.negative_log_likelihood(self.decoder(z), x)
        # log q(z_i | x_j) for every pair of the batch, per dimension: (B, B, L)
        pairs = _log_normal(z[:, None], mean[None], logvar[None])
        log_batch = math.log(len(x))
        log_qz = torch.logsumexp(pairs.sum(dim=2), dim=1) - log_batch
        log_marginals = (torch.logsumexp(pairs, dim=1) - log_batch).sum(dim=1)
        log_conditional = _log_normal(z, mean, logvar).sum(dim=1)
        log_prior = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
        mutual_information = log_conditional - log_qz
        total_correlation = log_qz - log_marginals
        dimension_kl = log_marginals - log_prior
        kl = mutual_information + self.config.kl_weight * total_correlation + dimension_kl
        return (reconstruction + kl).mean()


class DiVE(LatentExplainer):
    """k perturbations z_i = z0 + ε_i ⊙ m_i of z0 = enc(x) in a β-TCVAE, each flipping the model.

    Loss per perturbation: CE(f(G(z_i)), target) (the paper's flip term, for a target class) +
    `sparsity_weight`·‖ε_i ⊙ m_i‖₁/|m_i| + `reconstruction_weight`·mean|x − G(z_i)| +
    `diversity_weight`·Σ_{j≠i}(ε̂_iᵀ ε̂_j)² with ε̂ the L2-normalised perturbations; ε_i starts at
    0.01·N(0, 1) (seeded) and takes `steps` Adam steps of size `lr`. Masks m_i (``mask``):

    - ``fisher_spectral``: the classifier's Fisher information in latent space, F = E[∇_z ℓ ∇_z ℓᵀ] with
      labels drawn from its own predictive distribution (on 1000 training codes), split by spectral
      clustering of |F| into k groups of latent dimensions, one per perturbation;
    - ``fisher_top_removed``: every perturbation may move all dimensions but the `top_removed` of largest
      Fisher information, the ones that give trivial explanations;
    - ``none``: no mask.

    Departures: the paper's sparsity and reconstruction terms are divided by the mask size and it stops
    at a success rate; here the reconstruction term is a mean over pixels, the search runs all steps, and
    the flip term is the multi-class cross-entropy to the target (the paper's BCE to 1 − ŷ for binary
    attributes). The β-TCVAE is :class:`TCVAE` (β = `generative.kl_weight`, default 4 here), with our
    small conv networks rather than the reference's.
    """

    name = "dive"
    returns_sets = True

    def __init__(
        self,
        k: int = 4,
        mask: str = "fisher_spectral",
        top_removed: int = 2,
        sparsity_weight: float = 0.1,
        reconstruction_weight: float = 1.0,
        diversity_weight: float = 1.0,
        steps: int = 200,
        lr: float = 0.05,
        generative: Mapping[str, Any] | None = None,
    ) -> None:
        if k < 1 or mask not in MASKS or top_removed < 0:
            raise ValueError(
                f"dive needs k >= 1, mask in {', '.join(MASKS)} and top_removed >= 0; got k={k}, "
                f"mask={mask!r}, top_removed={top_removed}"
            )
        super().__init__(steps=steps, lr=lr, generative={"kl_weight": 4.0, **(generative or {})})
        self.k, self.mask, self.top_removed = k, mask, top_removed
        self.sparsity_weight = sparsity_weight
        self.reconstruction_weight = reconstruction_weight
        self.diversity_weight = diversity_weight
        self.masks: Tensor | None = None

    def fit(self, data: ExplanationData) -> DiVE:
        SeededExplainer.fit(self, data)  # not LatentExplainer's: the plain VAE is not used
        self.vae = cached_generative(TCVAE, "tcvae", data, data.x_train, self.generative, None)
        latent = self.generative.latent_dim
        if self.mask == "none":
            self.masks = torch.ones(self.k, latent)
            return self
        fisher = self.fisher_information(data.module.backbone.eval(), data.x_train)
        if self.mask == "fisher_top_removed":
            kept = torch.ones(latent)
            kept[fisher.diagonal().argsort(descending=True)[: self.top_removed]] = 0.0
            self.masks = kept.expand(self.k, -1).clone()
        else:
            self.masks = self.spectral_groups(fisher)
        return self

    def fisher_information(self, model: Classifier, x_train: Tensor) -> Tensor:
        """E[∇_z ℓ ∇_z ℓᵀ] (L, L) over up to 1000 seeded training codes, labels drawn from the model."""
        generator = self.generator()
        rows = torch.randperm(len(x_train), generator=generator)[:_FISHER_ROWS]
        vae = self.fitted_vae(x_train.device)
        with torch.no_grad():
            z = vae.encode(x_train[rows.to(x_train.device)])
        z.requires_grad_(True)
        logits = model(vae.decode(z))
        labels = torch.multinomial(logits.softmax(dim=1).detach().cpu(), 1, generator=generator).squeeze(1)
        (gradients,) = torch.autograd.grad(F.cross_entropy(logits, labels.to(z.device), reduction="sum"), z)
        return (gradients.T @ gradients / len(z)).detach().cpu()

    def spectral_groups(self, fisher: Tensor) -> Tensor:
        """(k, L) 0/1 masks: the latent dimensions split into k groups by spectral clustering of |F|."""
        affinity = fisher.abs() / fisher.abs().max().clamp_min(1e-12)
        clustering = SpectralClustering(
            n_clusters=self.k, affinity="precomputed", random_state=self.seed
        ).fit(affinity.double().numpy())
        groups = torch.as_tensor(clustering.labels_)
        return torch.stack([(groups == group).float() for group in range(self.k)])

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        if self.masks is None:
            raise RuntimeError("the 'dive' explainer builds its masks in fit(data); call it first")
        vae = self.fitted_vae(x.device)
        k = self.k
        with torch.no_grad():
            centres = vae.encode(x).repeat_interleave(k, dim=0)
        masks = self.masks.to(x.device).repeat(len(x), 1)  # row n·k + i gets mask i
        originals = x.repeat_interleave(k, dim=0)
        targets = target.repeat_interleave(k, dim=0)
        noise = 0.01 * torch.randn(centres.shape, generator=self.generator()).to(x.device)
        mask_sizes = masks.sum(dim=1).clamp_min(1.0)

        def objective(z: Tensor, candidate: Tensor) -> Tensor:
            step = z - centres
            loss = F.cross_entropy(model(candidate), targets, reduction="none")
            loss = loss + self.sparsity_weight * step.abs().sum(dim=1) / mask_sizes
            loss = loss + self.reconstruction_weight * (candidate - originals).abs().flatten(1).mean(dim=1)
            if k > 1 and self.diversity_weight:
                unit = F.normalize(step, dim=1).view(-1, k, step.shape[1])
                cosines = (unit @ unit.transpose(1, 2)).square()
                off_diagonal = cosines.sum(dim=2) - cosines.diagonal(dim1=1, dim2=2)
                loss = loss + self.diversity_weight * off_diagonal.reshape(-1)
            return loss

        found = self.search(
            centres + noise * masks,
            originals,
            constraints,
            objective,
            keep_within=lambda z: centres + (z - centres) * masks,
        )
        return found.view(len(x), k, *x.shape[1:])
