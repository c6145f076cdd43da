"""Datasets from the user's own files, so a run needs no code change to evaluate them.

- ``data=files_images data.path=FILE.npz`` reads one NumPy archive holding ``x_train``, ``y_train``,
  ``x_test`` and ``y_test``;
- ``data=files_images data.path=FOLDER`` reads a folder of PNG/JPEG images, one sub-folder per class
  (see :mod:`trustbench.data.image_folder`);
- ``data=files_npy data.x_train=X.npy data.y_train=Y.npy data.x_test=... data.y_test=...`` reads four
  ``.npy`` files, one array each;
- ``data=files_tabular data.path=FILE.csv data.target=...`` reads a CSV (see
  :mod:`trustbench.data.user_tabular`).

Images may be N×H×W (grey), N×C×H×W or N×H×W×C with C in {1, 3}; uint8 pixels are divided by 255 (as
every built-in set is) and float pixels must already lie in [0, 1]. Labels are integer class indices
0..K−1, K taken from ``data.num_classes`` when given, else from the largest label. Arrays are read with
``allow_pickle=False``: an object array is refused, never unpickled. Every problem is one
:class:`DatasetFileError` line naming the file and what is wrong.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from trustbench.data.arrays import ArrayDataset
from trustbench.data.errors import DatasetFileError

IMAGE_KEYS = ("x_train", "y_train", "x_test", "y_test")
SPLIT_SEED = 20240229
"""Seed of the split drawn for user data that has none (the tabular catalog sets' seed)."""
TEST_FRACTION = 0.2
CHANNELS = (1, 3)


def _npz_arrays(path: Path, wanted: Callable[[list[str]], list[str]]) -> dict[str, np.ndarray]:
    """The arrays `wanted(names)` picks from the .npz archive at `path` (it raises if none fit)."""
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in wanted(stored.files)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DatasetFileError):
            raise
        raise DatasetFileError(f"{path}: not a readable .npz archive ({' '.join(str(exc).split())})") from exc


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if path.suffix != ".npz":
        raise DatasetFileError(f"{path}: expected a .npz archive holding {', '.join(IMAGE_KEYS)}")

    def dataset_keys(names: list[str]) -> list[str]:
        missing = [key for key in IMAGE_KEYS if key not in names]
        if missing:
            raise DatasetFileError(
                f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(names) or 'none'}"
            )
        return list(IMAGE_KEYS)

    return _npz_arrays(path, dataset_keys)


def _read_npy(path: Path) -> np.ndarray:
    if path.suffix != ".npy":
        raise DatasetFileError(f"{path}: expected a .npy file holding one array")
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetFileError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())})") from exc


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


def _image_dataset(
    paths: dict[str, Path], arrays: dict[str, np.ndarray], num_classes: int | None, name: str
) -> ArrayDataset:
    """Check and convert the four arrays; `paths[key]` is the file each came from (for error messages)."""
    x_train = _images(paths["x_train"], "x_train", arrays["x_train"])
    x_test = _images(paths["x_test"], "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        shapes = f"x_train images are {tuple(x_train.shape[1:])} but x_test images {tuple(x_test.shape[1:])}"
        raise DatasetFileError(f"{paths['x_test']}: {shapes}")
    if num_classes is None:
        num_classes = int(max(arrays["y_train"].max(initial=0), arrays["y_test"].max(initial=0))) + 1
    return ArrayDataset(
        name=name,
        kind="image",
        x_train=x_train,
        y_train=_labels(paths["y_train"], "y_train", arrays["y_train"], len(x_train), num_classes),
        x_test=x_test,
        y_test=_labels(paths["y_test"], "y_test", arrays["y_test"], len(x_test), num_classes),
        num_classes=num_classes,
    )


def read_image_arrays(path: str | Path, num_classes: int | None = None, name: str = "files") -> ArrayDataset:
    """The image dataset stored in the .npz archive at `path` (see the module docstring for the format)."""
    path = Path(path).expanduser()
    return _image_dataset(dict.fromkeys(IMAGE_KEYS, path), _read_npz(path), num_classes, name)


def read_npy_arrays(
    paths: Mapping[str, str | Path], num_classes: int | None = None, name: str = "files"
) -> ArrayDataset:
    """The image dataset in four .npy files: `paths` maps each of x_train, y_train, x_test, y_test to one."""
    files = {key: Path(paths[key]).expanduser() for key in IMAGE_KEYS}
    return _image_dataset(files, {key: _read_npy(files[key]) for key in IMAGE_KEYS}, num_classes, name)


def user_data_files(data: Mapping[str, Any]) -> list[Path]:
    """Every file a user-data config reads (a folder's image files included), for the model store's digest."""
    if data.get("x_train"):
        return [Path(data[key]).expanduser() for key in IMAGE_KEYS]
    path = Path(data["path"]).expanduser()
    if path.is_dir():
        return sorted(file for file in path.rglob("*") if file.is_file())
    return [path]


EVALUATION_ONLY_KEYS = ("ood", "ood_benchmark", "suites", "val_size", "batch_size", "normalize", "augment")
"""Data config keys that do not change what is read from the user's files (the model store keys the
training-only ones itself)."""


def user_data_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a user-data config that change the dataset read from its files (for the model store):
    every key but the file paths (the store digests the files' bytes, so a copy elsewhere is the same data)
    and :data:`EVALUATION_ONLY_KEYS`, as plain values."""
    settings = OmegaConf.to_container(data, resolve=True) if isinstance(data, DictConfig) else dict(data)
    skipped = {"path", *IMAGE_KEYS, *EVALUATION_ONLY_KEYS}
    return {key: value for key, value in settings.items() if key not in skipped}


def seeded_test_rows(labels: np.ndarray, fraction: float, seed: int = SPLIT_SEED) -> np.ndarray:
    """A fixed split for the user's data without one: a boolean mask putting round(`fraction`·n) rows of each
    label value in the test split, chosen by a permutation drawn from `seed` (the same on every machine)."""
    if not 0 < fraction < 1:
        raise DatasetFileError(f"test_fraction={fraction} must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        is_test[rng.permutation(rows)[: round(fraction * len(rows))]] = True
    return is_test


def read_image_file(path: Path) -> torch.Tensor:
    """The images in one .npy array, or in a .npz archive's ``x_test`` (or its only array), as float32
    N×C×H×W in [0, 1] (for an OOD set read from the user's file)."""
    if path.suffix == ".npy":
        return _images(path, "the array", _read_npy(path))
    if path.suffix != ".npz":
        raise DatasetFileError(f"{path}: an OOD file must be a .npy or .npz array of images, or a folder")

    def image_key(names: list[str]) -> list[str]:
        if "x_test" in names or len(names) == 1:
            return ["x_test" if "x_test" in names else names[0]]
        raise DatasetFileError(
            f"{path}: holds {', '.join(names) or 'none'}; an OOD archive needs x_test or one array"
        )

    ((key, images),) = _npz_arrays(path, image_key).items()
    return _images(path, key, images)
