"""Ways a file written by torch.save gets damaged on disk: cut short, or some of its bytes zeroed.

Zeroing a tensor's own bytes is the dangerous case: torch.load reads such a file without complaint and
returns other numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch


def truncate(path: Path, tensor: torch.Tensor | None = None) -> None:
    """Keep the first half of the file (a write cut short by a crash or a full disk)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def zero_tensor(path: Path, tensor: torch.Tensor) -> None:
    """Overwrite the bytes of `tensor`, as stored in the file, with zeros."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().contiguous().numpy().tobytes()
    start = data.find(raw)
    assert start >= 0, "the tensor's bytes are not in the file"
    data[start : start + len(raw)] = bytes(len(raw))
    path.write_bytes(bytes(data))


def zero_everything(path: Path, tensor: torch.Tensor | None = None) -> None:
    """Replace the whole file with zeros of the same length (what some file systems leave after a crash)."""
    path.write_bytes(bytes(path.stat().st_size))


DAMAGES: dict[str, Callable[[Path, torch.Tensor | None], None]] = {
    "truncated": truncate,
    "one tensor zeroed": zero_tensor,
    "all zeroed": zero_everything,
}
