"""The user's own trained model, given as ``method.checkpoint=FILE``, for post-hoc methods to evaluate.

Three kinds of file are accepted, told apart by their contents, not their names:

- a TorchScript archive (``torch.jit.save``): loaded with ``torch.jit.load`` and used as the backbone.
  TorchScript is code and runs as such: load only files you trust. A module that exports
  ``features(x)`` (``@torch.jit.export``) and has a ``head`` submodule serves every detector and explainer;
  one with only ``forward`` gives logits, so feature-based detectors (knn, mahalanobis, ...) refuse it;
- a state dict (``torch.save(model.state_dict())``) of the configured backbone, keys as in
  ``backbone.state_dict()`` or prefixed ``backbone.`` as in our own weights;
- our own Lightning ``.ckpt`` or model-store ``.pt`` (a dict whose ``state_dict`` holds the weights).

Weights are read with ``torch.load(weights_only=True)``, which builds tensors and containers and never
runs code from the file: a file holding Python objects (a whole pickled model) is refused, never
unpickled. Every problem is one :class:`ModelFileError` line naming the file and what is wrong — unlike
torch's own messages, it never advises ``weights_only=False`` for a file that cannot be trusted.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from trustbench.backbones.base import Backbone
from trustbench.errors import TrustbenchError


class ModelFileError(TrustbenchError, ValueError):
    """A `method.checkpoint` file that cannot be read or does not fit the model (message names the file)."""


class ScriptedBackbone(Backbone):
    """A TorchScript model behind the backbone contract (`features`, `head`, `feature_dim`)."""

    input_kind = "image"

    def __init__(self, scripted: torch.jit.ScriptModule, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.scripted = scripted
        has_features = hasattr(scripted, "features") and isinstance(
            getattr(scripted, "head", None), nn.Module
        )
        self.head = scripted.head if has_features else nn.Identity()
        scripted.eval()
        with torch.inference_mode():
            probe = torch.zeros(2, *input_shape)
            self.feature_dim = int(scripted.features(probe).shape[1]) if has_features else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.scripted.features(x) if self.feature_dim is not None else self.scripted(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scripted(x)


def _reason(path: Path, exc: BaseException) -> str:
    if path.stat().st_size == 0:
        return "the file is empty"
    first = " ".join(str(exc).split()).split(". ")[0].rstrip(".")
    return first if len(first) > 3 else f"{type(exc).__name__} {first}".strip()


def is_torchscript(path: Path) -> bool:
    """Whether `path` is a TorchScript archive (a zip holding compiled code), judged from its contents."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _load_scripted(path: Path, input_shape: tuple[int, ...], num_classes: int) -> ScriptedBackbone:
    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
        backbone = ScriptedBackbone(scripted, input_shape)
        with torch.inference_mode():
            outputs = backbone(torch.zeros(2, *input_shape))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelFileError(
            f"{path}: TorchScript model fails on {input_shape} inputs ({_reason(path, exc)})"
        ) from exc
    if tuple(outputs.shape) != (2, num_classes):
        raise ModelFileError(
            f"{path}: TorchScript model outputs shape {tuple(outputs.shape[1:])} per input; the data "
            f"has {num_classes} classes, so it must give {num_classes} logits"
        )
    return backbone


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The weights in `path` (a state dict, or a checkpoint dict holding one), read without running code."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise ModelFileError(f"{path}: not a readable PyTorch file ({_reason(path, exc)})") from exc
        raise ModelFileError(
            f"{path}: holds Python objects beyond tensors (e.g. a whole pickled model), which are not "
            "unpickled from a file that cannot be trusted; save model.state_dict() or a TorchScript file"
        ) from exc
    except (
        Exception
    ) as exc:  # torch's unpickler fails on damaged bytes with any error (IndexError, KeyError, ...)
        raise ModelFileError(
            f"{path}: not a readable PyTorch file, truncated or corrupted ({_reason(path, exc)})"
        ) from exc
    weights = stored.get("state_dict", stored) if isinstance(stored, dict) else stored
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ModelFileError(
            f"{path}: holds a {type(weights).__name__}, not a state dict (parameter names mapped to tensors)"
        )
    return weights


def _first_mismatch(
    path: Path, weights: Mapping[str, torch.Tensor], model: nn.Module, name: str
) -> str | None:
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in weights:
            return f"{path}: does not fit {name}: key {key!r} is missing from the file"
        if tuple(weights[key].shape) != tuple(tensor.shape):
            return (
                f"{path}: does not fit {name}: {key!r} has shape {tuple(weights[key].shape)} in the file but "
                f"{tuple(tensor.shape)} in the model"
            )
    unexpected = [key for key in weights if key not in expected]
    return f"{path}: does not fit {name}: unexpected key {unexpected[0]!r}" if unexpected else None


def load_user_checkpoint(
    module: nn.Module, path: Path, input_shape: tuple[int, ...], num_classes: int
) -> None:
    """Put the model in `path` into `module` (a method's module with a `backbone`), as the module doc says."""
    if is_torchscript(path):
        module.backbone = _load_scripted(path, input_shape, num_classes)
        return
    weights = read_state_dict(path)
    target, name = module, f"method {type(module).__name__}"
    if not any(key.startswith("backbone.") for key in weights):
        target, name = module.backbone, f"backbone {type(module.backbone).__name__}"
    mismatch = _first_mismatch(path, weights, target, name)
    if mismatch:
        raise ModelFileError(mismatch)
    target.load_state_dict(weights)
