"""Datasets from the user's own files, so a run needs no code change to evaluate them.

``data=files_images data.path=FILE.npz`` reads one NumPy archive holding ``x_train``, ``y_train``,
``x_test`` and ``y_test``. Images may be N×H×W (grey), N×C×H×W or N×H×W×C with C in {1, 3}; uint8 pixels
are divided by 255 (as every built-in set is) and float pixels must already lie in [0, 1]. Labels are
integer class indices 0..K−1, K taken from ``data.num_classes`` when given, else from the largest label.
The archive is read with ``allow_pickle=False``: an object array is refused, never unpickled.
Every problem is one :class:`DatasetFileError` line naming the file and what is wrong.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from trustbench.data.arrays import ArrayDataset
from trustbench.data.errors import DatasetFileError

IMAGE_KEYS = ("x_train", "y_train", "x_test", "y_test")
CHANNELS = (1, 3)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if path.suffix != ".npz":
        raise DatasetFileError(f"{path}: expected a .npz archive holding {', '.join(IMAGE_KEYS)}")
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file (set data.path to a .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            missing = [key for key in IMAGE_KEYS if key not in stored.files]
            if missing:
                found = ", ".join(stored.files) or "none"
                raise DatasetFileError(f"{path}: missing array(s) {', '.join(missing)}; found {found}")
            return {key: stored[key] for key in IMAGE_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DatasetFileError):
            raise
        raise DatasetFileError(f"{path}: not a readable .npz archive ({' '.join(str(exc).split())})") from exc


def _images(path: Path, key: str, images: np.ndarray) -> torch.Tensor:
    """`images` as float32 N×C×H×W in [0, 1]."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DatasetFileError(f"{path}: {key} has shape {images.shape}; expected N×H×W, N×C×H×W or N×H×W×C")
    if images.shape[1] not in CHANNELS and images.shape[3] in CHANNELS:
        images = images.transpose(0, 3, 1, 2)
    if images.shape[1] not in CHANNELS:
        raise DatasetFileError(f"{path}: {key} has shape {images.shape}; images need 1 or 3 channels")
    if images.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    if not np.issubdtype(images.dtype, np.floating):
        raise DatasetFileError(f"{path}: {key} has dtype {images.dtype}; expected uint8 or float in [0, 1]")
    if images.size and (images.min() < 0 or images.max() > 1 or not np.isfinite(images).all()):
        raise DatasetFileError(f"{path}: {key} holds float pixels outside [0, 1]; scale them or store uint8")
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))


def _labels(path: Path, key: str, labels: np.ndarray, rows: int, num_classes: int) -> torch.Tensor:
    if labels.shape != (rows,):
        raise DatasetFileError(f"{path}: {key} has shape {labels.shape}; expected ({rows},), one per image")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFileError(f"{path}: {key} has dtype {labels.dtype}; expected integer class indices")
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if outside.size:
        raise DatasetFileError(
            f"{path}: {key} holds label {int(outside[0])}; labels must lie in 0..{num_classes - 1}"
        )
    return torch.from_numpy(labels.astype(np.int64))


def read_image_arrays(path: str | Path, num_classes: int | None = None, name: str = "files") -> ArrayDataset:
    """The image dataset stored in the .npz archive at `path` (see the module docstring for the format)."""
    path = Path(path).expanduser()
    arrays = _read_npz(path)
    x_train = _images(path, "x_train", arrays["x_train"])
    x_test = _images(path, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        shapes = f"x_train images are {tuple(x_train.shape[1:])} but x_test images {tuple(x_test.shape[1:])}"
        raise DatasetFileError(f"{path}: {shapes}")
    if num_classes is None:
        num_classes = int(max(arrays["y_train"].max(initial=0), arrays["y_test"].max(initial=0))) + 1
    return ArrayDataset(
        name=name,
        kind="image",
        x_train=x_train,
        y_train=_labels(path, "y_train", arrays["y_train"], len(x_train), num_classes),
        x_test=x_test,
        y_test=_labels(path, "y_test", arrays["y_test"], len(x_test), num_classes),
        num_classes=num_classes,
    )
