"""What one-class novelty methods share: a per-input objective that is both the training loss (its mean)
and the novelty score (higher = more novel), and validation that reports it instead of an accuracy."""

from __future__ import annotations

import torch

from trustbench.methods.base import Prediction, TrustModule


class OneClassModule(TrustModule):
    """Trained on one class (labels are ignored); predicts one class with the objective as uncertainty."""

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        """The per-input loss, shape N; higher = less like the training class."""
        raise NotImplementedError

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.objective(x).mean()

    def predict(self, x: torch.Tensor) -> Prediction:
        return Prediction(probs=torch.ones(len(x), 1, device=x.device), uncertainty=self.objective(x))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, _ = batch
        self.log("val/loss", self.objective(x).mean(), on_epoch=True, prog_bar=True, sync_dist=True)
