"""The feature cache: one inference pass per (model, inputs), reused by every detector and candidate.

An entry holds the logits and penultimate features of a model on one split (ID train/val/test or an
OOD set). It is keyed by the fingerprint of the model's weights and of the input tensor, so it survives
across runs and processes and is never reused once either changes. Statistics of the inputs alone (the
training split's median absolute deviation, which every counterfactual run scores with) are kept beside
them, keyed by the inputs' fingerprint only. Entries are written atomically; an
entry that fails its check (truncated, zeroed: trustbench/results/archives.py) is a miss and is rebuilt.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import torch

from trustbench.backbones.base import Backbone
from trustbench.fingerprint import fingerprint_tensors
from trustbench.methods.ood.detector import Features
from trustbench.progress import progress
from trustbench.results.archives import intact
from trustbench.results.record import write_bytes_atomically


@torch.inference_mode()
def extract_features(backbone: Backbone, x: torch.Tensor, batch_size: int) -> Features:
    """Logits and (when the backbone has them) penultimate features of `x`, in eval mode, on CPU."""
    backbone.eval()
    device = next(backbone.parameters()).device
    logits, features = [], []
    for start in progress(range(0, len(x), batch_size), "features"):
        batch = x[start : start + batch_size].to(device)
        if backbone.feature_dim is None:
            logits.append(backbone(batch).float().cpu())
            continue
        hidden = backbone.features(batch)
        features.append(hidden.float().cpu())
        logits.append(backbone.head(hidden).float().cpu())
    return Features(logits=torch.cat(logits), features=torch.cat(features) if features else None)


class FeatureCache:
    """One model's logits/features on disk under `root`, computed on first request.

    The model's fingerprint is taken once, at construction: the weights must not change while the cache
    is in use (evaluation only). An input's fingerprint is taken once per tensor and in-place version (the
    counterfactual suite, its explainer and the MAD all look up MNIST's training split, whose fingerprint
    is a second of CPU). `hits` and `misses` count lookups.
    """

    def __init__(self, root: str | Path, backbone: Backbone, batch_size: int = 512) -> None:
        self.root = Path(root)
        self.backbone = backbone
        self.batch_size = batch_size
        self.model_key = fingerprint_tensors(backbone.state_dict().items())
        self.hits = 0
        self.misses = 0
        self._input_keys: dict[int, tuple[torch.Tensor, int, str]] = {}

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Features:
        """The model's logits and features on `x` (with `labels` attached), from disk when cached."""
        path = self.root / f"{self.model_key}-{self._input_key(x)}.pt"
        stored = self._lookup(path)
        if stored is None:
            extracted = extract_features(self.backbone, x, self.batch_size)
            stored = {"logits": extracted.logits, "features": extracted.features}
            _store(path, stored)
        return Features(stored["logits"], stored["features"], labels)

    def statistic(
        self, name: str, x: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``compute(x)``, a statistic of the inputs alone (the model plays no part), from disk when cached
        under `name` and the fingerprint of `x`: every run and model on the same split shares it."""
        path = self.root / f"{name}-{self._input_key(x)}.pt"
        stored = self._lookup(path)
        if stored is None:
            stored = {"value": compute(x)}
            _store(path, stored)
        return stored["value"]

    def _input_key(self, x: torch.Tensor) -> str:
        """The fingerprint of `x`, computed again only for another tensor or after `x` changed in place
        (its version counter moved); the cache holds `x`, so its id is not reused while remembered."""
        remembered = self._input_keys.get(id(x))
        if remembered is not None and remembered[1] == x._version:
            return remembered[2]
        key = fingerprint_tensors([("x", x)])
        self._input_keys[id(x)] = (x, x._version, key)
        return key

    def _lookup(self, path: Path) -> dict[str, torch.Tensor] | None:
        """The entry at `path` (counted as a hit), or None for a miss (absent or damaged)."""
        if intact(path):
            self.hits += 1
            return torch.load(path, weights_only=True)
        self.misses += 1
        return None


def _store(path: Path, entry: dict[str, torch.Tensor | None]) -> None:
    buffer = io.BytesIO()
    torch.save(entry, buffer)
    write_bytes_atomically(path, buffer.getvalue())
