"""What an evaluation suite gets to work with: the fitted method, its data, the config and the run dir."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from omegaconf import DictConfig

from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import TensorDataModule
from trustbench.data.ood_sets import build_ood_inputs
from trustbench.methods.base import Prediction, TrustModule
from trustbench.plots.figures import log_to_wandb


@torch.inference_mode()
def predict_all(module: TrustModule, x: torch.Tensor, batch_size: int) -> Prediction:
    """The module's predictions on all of `x`, batch by batch, in evaluation mode, on the module's device.

    Probabilities come back as float32; the uncertainty as float32 or, when the method gives float64 (DDU's
    density spans many orders of magnitude), float64, so distinct scores stay distinct for the metrics.
    """
    module.eval()
    parts = [module.predict(x[i : i + batch_size].to(module.device)) for i in range(0, len(x), batch_size)]
    uncertainty = torch.cat([p.uncertainty for p in parts]).cpu()
    return Prediction(
        probs=torch.cat([p.probs for p in parts]).float().cpu(),
        uncertainty=uncertainty.to(torch.promote_types(uncertainty.dtype, torch.float32)),
    )


@dataclass
class EvaluationContext:
    """One run's fitted method and everything a suite may evaluate it on."""

    cfg: DictConfig
    module: TrustModule
    datamodule: TensorDataModule
    dataset: ArrayDataset
    run_dir: Path
    _ood_inputs: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _predictions: dict[str, Prediction] = field(default_factory=dict, init=False, repr=False)

    def ood_inputs(self, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Inputs of each named OOD set, shaped and normalised like the ID inputs (built once per run)."""
        for name in names:
            if name not in self._ood_inputs:
                raw = build_ood_inputs(name, self.dataset, self.cfg.paths.data_dir, seed=self.cfg.seed)
                self._ood_inputs[name] = self.datamodule.normalize_inputs(raw)
        return {name: self._ood_inputs[name] for name in names}

    def prediction(self, key: str, x: torch.Tensor) -> Prediction:
        """The module's predictions on `x`, computed once per `key` (e.g. "test", "ood/mnist") per run.

        Suites that share a split share its predictions: no second inference pass, and a stochastic method
        (MC dropout) is scored on the same samples by every metric.
        """
        if key not in self._predictions:
            self._predictions[key] = predict_all(self.module, x, self.datamodule.eval_batch_size)
        return self._predictions[key]

    def draw(self, figures: Callable[[], Mapping[str, Path]]) -> None:
        """Draw a suite's figures (`figures` saves its PNGs under plots/ and returns {key: path}) and log
        them to W&B, unless the run sets ``plots=false``: drawing is up to 40 % of a short run's time
        (matplotlib's text layout), so a sweep of many short runs may skip it and keep every metric."""
        if self.cfg.get("plots", True):
            log_to_wandb(figures())

    def for_member(self, cfg: DictConfig, run_dir: Path) -> EvaluationContext:
        """The same fitted method and data under another config and artefact directory (an audit member),
        sharing this context's OOD inputs and predictions, so every member reads one inference pass."""
        member = replace(self, cfg=cfg, run_dir=run_dir)
        member._ood_inputs = self._ood_inputs
        member._predictions = self._predictions
        return member
