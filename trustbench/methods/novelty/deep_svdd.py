"""One-class Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018; their
``lukasruff/Deep-SVDD-PyTorch``).

A bias-free network φ (backbone ``one_class_lenet``) maps the training class into a hypersphere of small
volume around a fixed centre c: the loss is the mean of ‖φ(x) − c‖² (weight decay, the paper's second
term, is the optimiser's). The centre is the mean code of the training data under the untrained network,
computed once in an initial forward pass in evaluation mode, with coordinates closer to 0 than `eps` pushed
to ±`eps` (a zero coordinate lets a dead unit sit at the centre trivially). An input's novelty score is
‖φ(x) − c‖².

**Departures** from the reference: no autoencoder pretraining of φ (the reference initialises φ with a
pretrained encoder's weights; here φ starts from torch's default initialisation), and a short CPU schedule
set by the config (the reference: Adam, lr 1e-4, 150 epochs, lr ×0.1 after 50, weight decay 5e-7).
"""

from __future__ import annotations

import torch

from trustbench.methods.novelty.one_class import OneClassModule


class DeepSVDD(OneClassModule):
    """One-class Deep SVDD: squared distance of the code to a centre fixed before training."""

    def __init__(self, *args, eps: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if eps <= 0:
            raise ValueError(f"method.module.eps must be > 0 (the reference uses 0.1), got {eps}")
        self.eps = eps
        self.register_buffer("center", torch.zeros(self.backbone.feature_dim))
        self.register_buffer("center_ready", torch.zeros((), dtype=torch.bool))

    def on_fit_start(self) -> None:
        if not bool(self.center_ready):  # a resumed run keeps the centre its checkpoint holds
            self.center.copy_(self.initial_center(self.trainer.datamodule.train_dataloader()))
            self.center_ready.fill_(True)

    @torch.no_grad()
    def initial_center(self, batches) -> torch.Tensor:
        """Mean code of the training batches under the current network, small coordinates pushed to ±eps."""
        was_training = self.backbone.training
        self.backbone.eval()
        total, count = torch.zeros_like(self.center), 0
        for x, *_ in batches:
            codes = self.backbone.features(x.to(self.device))
            total += codes.sum(dim=0)
            count += len(codes)
        self.backbone.train(was_training)
        center = total / count
        small = center.abs() < self.eps
        return torch.where(small & (center < 0), -self.eps, torch.where(small, self.eps, center))

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        return (self.backbone.features(x) - self.center).pow(2).sum(dim=1)
