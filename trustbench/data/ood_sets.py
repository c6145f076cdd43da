"""Out-of-distribution inputs for an image dataset, shaped like its inputs: float32 N×C×H×W in [0, 1].

An OOD set is named either after a catalog dataset, whose TEST split is adapted to the in-distribution
(ID) input shape, or after one of :data:`DERIVED_OOD_SETS`, built from the ID data or from noise, or is the
user's own file written ``file:PATH`` (:data:`FILE_PREFIX`): a folder of PNG/JPEG images (every image
under it, any depth), a .npy array of images, or a .npz archive's ``x_test`` (or its only array), adapted
to the ID shape like a catalog set. In an override: ``data.ood=[svhn,file:/data/my_ood]``; metric keys
carry the name as written (``ood/file:/data/my_ood/auroc``).

Adapting a catalog set (OpenOOD v1.5 likewise resizes every OOD image to the ID size):

- channels: grayscale → RGB repeats the channel; RGB → grayscale is the ITU-R BT.601 luma
  Y = 0.299 R + 0.587 G + 0.114 B (the weights of Pillow's "L" conversion);
- size: bilinear ``torch.nn.functional.interpolate(..., antialias=True)`` straight to the ID height × width
  (aspect ratio not kept). Antialiasing widens the filter when shrinking, as Pillow does, so 32 → 28
  averages every source pixel instead of skipping some.

Derived sets, as many images as the ID test split unless said otherwise:

- ``noise_gaussian`` / ``noise_uniform``: the synthetic sets of ODIN (Liang, Li & Srikant, "Enhancing the
  reliability of out-of-distribution image detection in neural networks", ICLR 2018): every pixel of every
  channel i.i.d. N(0.5, 1) clipped to [0, 1], or i.i.d. U[0, 1].
- ``corrupted``: the ID test split under three of CIFAR-10-C's severity-5 corruptions in a row (Hendrycks
  & Dietterich, "Benchmarking neural network robustness to common corruptions and perturbations", ICLR
  2019, ``make_cifar_c.py``): Gaussian blur σ = 1 (kernel truncated at 4σ, edges replicated), contrast
  ×0.15 around each image's per-channel mean, additive Gaussian noise σ = 0.10; clipped to [0, 1] after
  each step, as there.
- ``permuted``: the ID TRAIN split's last N_test rows with each image's pixel positions shuffled by its
  own random permutation (channels move together). It is the OOD set for tuning detector hyperparameters:
  its images are not test images, and no test OOD set is derived from the train split. The rows overlap
  whatever random validation split a datamodule draws, which is harmless: only their permuted versions
  are used as OOD.

``unknown`` (:data:`UNKNOWN_SET`) is the open set of an open-set recognition split: the test images of the
classes ``data.known_classes`` leaves out (see :mod:`trustbench.data.class_subset`); only such a split
has it.

Random draws come from a torch generator seeded by (seed, set name), so a seed gives the same set in every
process and different sets get independent draws. A catalog set that already has the ID shape is the
catalog's cached test tensor itself: callers must not modify OOD inputs in place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from trustbench.data import catalog
from trustbench.data.arrays import ArrayDataset
from trustbench.data.class_subset import UNKNOWN_SET
from trustbench.data.errors import DatasetFileError
from trustbench.data.image_folder import image_files, read_images
from trustbench.data.loaders import named_generator
from trustbench.data.names import DATASETS, dataset_kind
from trustbench.data.user_files import read_image_file

DERIVED_OOD_SETS: dict[str, str] = {
    "noise_gaussian": "pixels i.i.d. N(0.5, 1) clipped to [0, 1] (ODIN), as many as the ID test split",
    "noise_uniform": "pixels i.i.d. U[0, 1] (ODIN), as many as the ID test split",
    "corrupted": "ID test split blurred (σ=1), contrast ×0.15, noise σ=0.1 (CIFAR-10-C severity 5)",
    "permuted": "last N_test ID train images, pixels shuffled per image; for validation, not testing",
}

FILE_PREFIX = "file:"
"""Marks an OOD set read from the user's file or folder, e.g. ``file:/data/crops.npz``."""

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G, B."""
BLUR_SIGMA = 1.0
BLUR_TRUNCATE = 4.0
CONTRAST_FACTOR = 0.15
NOISE_SIGMA = 0.10


def ood_set_names() -> list[str]:
    """Every name :func:`build_ood_inputs` accepts: image catalog datasets, then derived sets."""
    images = [name for name in DATASETS if dataset_kind(name) == "image"]
    return [*images, *DERIVED_OOD_SETS]


def read_ood_file(path: Path, shape: tuple[int, int, int]) -> Tensor:
    """The user's OOD images at `path` (folder, .npy or .npz; see the module doc), adapted to `shape`."""
    path = path.expanduser()
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise DatasetFileError(f"{path}: no .png, .jpg or .jpeg images in this folder or below")
        return adapt_to_shape(read_images(files, image_size=shape[1:]), shape)
    return adapt_to_shape(read_image_file(path), shape)


def _image_shape(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ValueError(f"{what} must be images of shape (1 or 3, H, W), got {shape}")
    return shape[0], shape[1], shape[2]


def adapt_to_shape(images: Tensor, shape: tuple[int, ...]) -> Tensor:
    """`images` (N×C×H×W in [0, 1], C = 1 or 3) converted to C'×H'×W' = `shape` (see the module doc).

    Channels are converted on the side with fewer channels, so the resize runs on one channel where it
    can (both steps are linear per pixel, so the order does not change the result). Returns `images`
    itself when it already has `shape`.
    """
    channels, height, width = _image_shape(tuple(shape), "the target shape")
    _image_shape(tuple(images.shape[1:]), "OOD inputs")
    if tuple(images.shape[1:]) == (channels, height, width):
        return images
    if images.shape[1] == 3 and channels == 1:
        weights = images.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
        images = (images * weights).sum(dim=1, keepdim=True)
    if tuple(images.shape[2:]) != (height, width):
        resized = F.interpolate(
            images, size=(height, width), mode="bilinear", antialias=True, align_corners=False
        )
        images = resized.clamp_(0.0, 1.0)
    if images.shape[1] == 1 and channels == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    return images


def permuted_pixels(images: Tensor, seed: int) -> Tensor:
    """Each N×C×H×W image with its H·W pixel positions shuffled by its own permutation, drawn from `seed`.

    A pixel's channels move together, so every image keeps its multiset of pixel values per channel.
    """
    if images.dim() != 4:
        raise ValueError(f"permuted_pixels needs N×C×H×W images, got shape {tuple(images.shape)}")
    count, channels, height, width = images.shape
    order = torch.rand(count, height * width, generator=named_generator(seed, "permuted")).argsort(dim=1)
    flat = images.reshape(count, channels, height * width)
    shuffled = flat.gather(2, order[:, None, :].expand(count, channels, height * width))
    return shuffled.reshape(images.shape)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of every channel, truncated at BLUR_TRUNCATE·σ, edges replicated (scipy's
    'nearest'), as skimage.filters.gaussian does in make_cifar_c.py."""
    radius = int(BLUR_TRUNCATE * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    planes = images.shape[0] * images.shape[1]
    if planes == 0:
        return images.clone()
    # Every image channel is its own group of a depthwise convolution: the fastest layout on CPU.
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    padded = padded.reshape(1, planes, *padded.shape[2:])
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(planes, 1, 1, -1).contiguous(), groups=planes)
    both = F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(planes, 1, -1, 1).contiguous(), groups=planes)
    return both.reshape(images.shape)


def corrupt(images: Tensor, seed: int) -> Tensor:
    """`images` under the ``corrupted`` recipe (blur, then contrast, then noise; see the module doc)."""
    blurred = gaussian_blur(images, BLUR_SIGMA).clamp_(0.0, 1.0)
    means = blurred.mean(dim=(2, 3), keepdim=True)
    flat = ((blurred - means) * CONTRAST_FACTOR + means).clamp_(0.0, 1.0)
    noise = torch.randn(flat.shape, generator=named_generator(seed, "corrupted"), dtype=flat.dtype)
    return (flat + NOISE_SIGMA * noise).clamp_(0.0, 1.0)


def _noise_gaussian(dataset: ArrayDataset, seed: int) -> Tensor:
    shape = dataset.x_test.shape
    return (torch.randn(shape, generator=named_generator(seed, "noise_gaussian")) + 0.5).clamp_(0.0, 1.0)


def _noise_uniform(dataset: ArrayDataset, seed: int) -> Tensor:
    return torch.rand(dataset.x_test.shape, generator=named_generator(seed, "noise_uniform"))


def _corrupted(dataset: ArrayDataset, seed: int) -> Tensor:
    return corrupt(dataset.x_test, seed)


def _permuted(dataset: ArrayDataset, seed: int) -> Tensor:
    start = max(len(dataset.x_train) - len(dataset.x_test), 0)
    return permuted_pixels(dataset.x_train[start:], seed)


_DERIVED: dict[str, Callable[[ArrayDataset, int], Tensor]] = {
    "noise_gaussian": _noise_gaussian,
    "noise_uniform": _noise_uniform,
    "corrupted": _corrupted,
    "permuted": _permuted,
}


def _unknown_classes(dataset: ArrayDataset) -> Tensor:
    if dataset.unknown_test is None:
        raise ValueError(
            f"OOD set {UNKNOWN_SET!r} is the held-out classes of an open-set split, but {dataset.name!r} "
            "holds none out; set data.known_classes (e.g. data=osr_mnist)"
        )
    return dataset.unknown_test


def build_ood_inputs(name: str, id_dataset: ArrayDataset, data_dir: str | Path, seed: int = 0) -> Tensor:
    """Inputs of OOD set `name` for `id_dataset`, float32 N×C×H×W in [0, 1] with the ID input shape.

    `name` is a catalog dataset (its test split, adapted to the ID shape; loaded from `data_dir`), a
    derived set (:func:`ood_set_names` lists both), ``file:PATH`` or, on an open-set split, ``unknown``.
    `seed` fixes the random draws of derived sets.
    """
    if name == UNKNOWN_SET:
        return _unknown_classes(id_dataset)
    is_file = name.startswith(FILE_PREFIX)
    if not is_file and name not in ood_set_names():
        valid = ", ".join(ood_set_names())
        raise ValueError(f"unknown OOD set {name!r}; valid names: {valid}, or file:PATH for your own images")
    if id_dataset.kind != "image":
        raise ValueError(
            f"{id_dataset.name!r} is {id_dataset.kind} data, but OOD sets are images; "
            "evaluate OOD detection on an image dataset such as mnist or cifar10"
        )
    shape = _image_shape(id_dataset.input_shape, f"{id_dataset.name!r} inputs")
    if is_file:
        return read_ood_file(Path(name.removeprefix(FILE_PREFIX)), shape)
    if name in _DERIVED:
        return _DERIVED[name](id_dataset, seed)
    if name == id_dataset.name:
        raise ValueError(f"{name!r} is the in-distribution dataset; choose a different OOD set")
    return adapt_to_shape(catalog.load(name, data_dir).x_test, shape)
