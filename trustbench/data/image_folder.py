"""A folder of PNG/JPEG images with one sub-folder per class, read with Pillow.

Two layouts are read:

- ``FOLDER/train/<class>/*`` and ``FOLDER/test/<class>/*``: the user's own split; the classes are the
  sorted names of the sub-folders of either split;
- ``FOLDER/<class>/*``: a fixed split (:func:`trustbench.data.user_files.seeded_test_rows`) puts
  `test_fraction` (default 0.2) of each class in the test split.

Class names are the sub-folder names, class indices their sorted order. Only files ending in .png, .jpg
or .jpeg (any case) are read. Images become grey (1 channel) when every image is stored grey, RGB
otherwise; they must all have one size unless `image_size` = [H, W] is given, in which case each is
resized with Pillow's bilinear filter. Pixels are uint8/255, as for every built-in set. An image Pillow
cannot read, or one of the wrong size, is one :class:`DatasetFileError` line naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from trustbench.data.arrays import ArrayDataset
from trustbench.data.errors import DatasetFileError
from trustbench.data.user_files import TEST_FRACTION, seeded_test_rows
from trustbench.progress import progress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_files(folder: Path) -> list[Path]:
    """The image files under `folder` (any depth), sorted."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _class_files(folder: Path) -> dict[str, list[Path]]:
    classes = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    if not classes:
        raise DatasetFileError(f"{folder}: no class sub-folders; put each class's images in FOLDER/<class>/")
    files = {child.name: image_files(child) for child in classes}
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DatasetFileError(f"{folder / empty[0]}: no .png, .jpg or .jpeg images in this class folder")
    return files


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetFileError(f"{path}: unreadable image ({' '.join(str(exc).split())})") from exc


def read_images(paths: Sequence[Path], image_size: Sequence[int] | None = None) -> torch.Tensor:
    """The images at `paths` as float32 N×C×H×W in [0, 1] (grey or RGB and sizes as the module doc says)."""
    grey = all(_mode(path) in GREY_MODES for path in paths)
    size = (int(image_size[1]), int(image_size[0])) if image_size else None
    pixels = []
    for path in progress(paths, "reading images", total=len(paths)):
        image = _open(path).convert("L" if grey else "RGB")
        if size is None:
            size = image.size
        if image.size != size:
            if image_size is None:
                raise DatasetFileError(
                    f"{path}: image is {image.size[0]}×{image.size[1]} (W×H) but the first is {size[0]}×"
                    f"{size[1]}; give every image one size or set data.image_size=[H,W] to resize"
                )
            image = image.resize(size, Image.Resampling.BILINEAR)
        pixels.append(np.asarray(image, dtype=np.uint8))
    stacked = np.stack(pixels)
    stacked = stacked[:, None] if grey else stacked.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(stacked)).float().div_(255.0)


def _mode(path: Path) -> str:
    try:
        with Image.open(path) as image:
            return image.mode
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetFileError(f"{path}: unreadable image ({' '.join(str(exc).split())})") from exc


def read_image_folder(
    folder: Path,
    image_size: Sequence[int] | None = None,
    test_fraction: float | None = None,
    name: str = "files",
) -> ArrayDataset:
    """The dataset in `folder`, laid out as the module docstring says."""
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        splits = {split: _class_files(folder / split) for split in ("train", "test")}
        class_names = tuple(sorted(set(splits["train"]) | set(splits["test"])))
        index = {class_name: i for i, class_name in enumerate(class_names)}
        rows = {
            split: [(path, index[c]) for c, paths in files.items() for path in paths]
            for split, files in splits.items()
        }
        paths = [path for split in ("train", "test") for path, _ in rows[split]]
        labels = np.array([label for split in ("train", "test") for _, label in rows[split]], dtype=np.int64)
        is_test = np.arange(len(paths)) >= len(rows["train"])
    else:
        files = _class_files(folder)
        class_names = tuple(files)
        paths = [path for c in class_names for path in files[c]]
        labels = np.repeat(np.arange(len(class_names)), [len(files[c]) for c in class_names])
        is_test = seeded_test_rows(labels, TEST_FRACTION if test_fraction is None else test_fraction)
    images = read_images(paths, image_size)
    mask = torch.from_numpy(is_test)
    targets = torch.from_numpy(labels.astype(np.int64))
    return ArrayDataset(
        name=name,
        kind="image",
        x_train=images[~mask],
        y_train=targets[~mask],
        x_test=images[mask],
        y_test=targets[mask],
        num_classes=len(class_names),
        class_names=class_names,
    )
