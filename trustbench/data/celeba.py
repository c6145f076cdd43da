"""CelebA as a binary face-attribute task with protected groups, for the debiasing family.

CelebA (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015) is read from three files of
its official release, under the names torchvision's and TensorFlow Datasets' CelebA builders use:

- ``img_align_celeba.zip``: the 202,599 aligned and cropped 178×218 JPEGs, ``img_align_celeba/000001.jpg``
  and on (any folder inside the zip will do, as long as the file names are the official ones);
- ``list_attr_celeba.txt``: the image count, a line of the 40 attribute names, then one row per image, its
  file name and 40 values, 1 (has the attribute) or -1;
- ``list_eval_partition.txt``: one row per image, its file name and 0 (train), 1 (val) or 2 (test); the
  three partitions share no identity.

Choices:

- Images: the centred 178×178 square (rows 20–197) resized to 64×64 by :func:`decode_square`, a common
  CelebA preprocessing in face-generation and fair-representation work. All 202,599 images take 2.5 GB as
  uint8 (the cache) and 10 GB as the float32 tensors of a loaded dataset.
- Split: train = partitions 0 and 1 (162,770 + 19,867 images), test = partition 2 (19,962). The runner
  holds its validation rows out of train (``data.val_size``), as for DTD's train1 + val1.
- Task: Y = 1 for ``Attractive``. With protected ``Male`` it is one of the CelebA tasks of fairness
  benchmarks (e.g. Fair Mixup, Chuang & Mroueh, ICLR 2021), chosen because this annotator's judgement is
  given far more often to women than to men, which leaves debiasing something to remove; ``Smiling``, the
  other common target, depends much less on sex. :func:`attribute_task` takes any target.
- Groups: ``male`` (1 = Male) and ``young`` (1 = Young). For Attractive the male group is the one with the
  lower base rate, so the signed unprivileged-minus-privileged metrics come out positive.

The authors distribute the release through Google Drive and Baidu folders linked from the project page
(for non-commercial research). TensorFlow Datasets pins sha256 digests for its Drive links
(``url_checksums/celeb_a.txt``), but those links need a login or hit a daily quota (pytorch/vision#1920,
#5705), so trustbench never downloads CelebA: the user fetches it by hand, and can check the files against
the digests TFDS published:

- img_align_celeba.zip (1,443,490,838 bytes):
  46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74
- list_attr_celeba.txt (26,721,026 bytes): f0e5da289d5ccf75ffe8811132694922b60f2af59256ed362afa03fefba324d0
- list_eval_partition.txt (2,836,386 bytes): fc955bcb3ef8fbdf7d5640d9a8693a8431b5f2ee291a5c1449a1549e7e073fe7
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from trustbench.data.errors import DatasetFileError
from trustbench.data.formats import (
    ImageArrays,
    archive_files,
    check_format,
    decode_square,
    member_basename,
    name_index_pairs,
    read_bytes,
    text_lines,
)

SIDE = 64
TARGET = "Attractive"
GROUP_ATTRIBUTES = {"male": "Male", "young": "Young"}
"""Protected group name -> the attribute whose +1 makes it 1."""
TRAIN_PARTITIONS = (0, 1)
TEST_PARTITIONS = (2,)
_PARTITIONS = {0: "train", 1: "val", 2: "test"}


class AttributeTask(NamedTuple):
    """One attribute as binary labels (1 = has it) with the protected groups, arrays aligned with the rows."""

    arrays: ImageArrays
    class_names: tuple[str, str]
    groups_train: dict[str, np.ndarray]
    groups_test: dict[str, np.ndarray]


def _read_attributes(path: Path) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """Attribute names, file names and the N×40 int8 table of ±1 values of ``list_attr_celeba.txt``."""
    lines = text_lines(read_bytes(path))
    check_format(
        len(lines) >= 2 and lines[0].isdigit(),
        path,
        "expected the image count on line 1 and the attribute names on line 2",
    )
    names, rows = tuple(lines[1].split()), lines[2:]
    check_format(
        int(lines[0]) == len(rows), path, f"line 1 counts {lines[0]} images but {len(rows)} rows follow"
    )
    files = []
    values = np.empty((len(rows), len(names)), dtype=np.int8)
    for index, row in enumerate(rows):
        file, *fields = row.split()
        problem = f"the row of {file} needs {len(names)} values of 1 or -1"
        check_format(len(fields) == len(names), path, problem)
        try:
            values[index] = fields
        except (ValueError, OverflowError) as exc:
            raise DatasetFileError(f"{path}: {problem}") from exc
        files.append(file)
    invalid = np.flatnonzero(~np.isin(values, (-1, 1)).all(axis=1))
    if invalid.size:
        raise DatasetFileError(f"{path}: the row of {files[invalid[0]]} has values other than 1 and -1")
    return names, files, values


def _read_partitions(path: Path) -> list[tuple[str, int]]:
    """(file, partition) rows of ``list_eval_partition.txt``, in file order."""
    rows = name_index_pairs(text_lines(read_bytes(path)), str(path))
    unknown = sorted({partition for _, partition in rows} - set(_PARTITIONS))
    if unknown:
        allowed = ", ".join(f"{number} ({name})" for number, name in _PARTITIONS.items())
        raise DatasetFileError(f"{path}: partition {unknown[0]} is none of {allowed}")
    check_format(len({file for file, _ in rows}) == len(rows), path, "some image is listed twice")
    return rows


def _decode_listed(archive: Path, splits: tuple[list[str], ...], side: int) -> list[np.ndarray]:
    """Each split's images in list order, decoded in one pass over `archive` into one array per split.

    Each image goes straight to its row of a preallocated uint8 array, so decoding all of CelebA needs no
    more memory than its result.
    """
    outputs = [np.zeros((len(files), 3, side, side), dtype=np.uint8) for files in splits]
    slots = {
        file: (out, row) for out, files in zip(outputs, splits, strict=True) for row, file in enumerate(files)
    }
    pending = set(slots)
    for member, data in archive_files(archive, lambda name: member_basename(name) in slots):
        out, row = slots[member_basename(member)]
        out[row] = decode_square(data, side, f"{archive}[{member}]")
        pending.discard(member_basename(member))
    if pending:
        raise DatasetFileError(f"{archive}: {len(pending)} listed images are not in it, e.g. {min(pending)}")
    return outputs


def read_celeba(
    archive: Path, attributes_file: Path, partitions_file: Path, side: int = SIDE
) -> tuple[ImageArrays, tuple[str, ...]]:
    """Read CelebA's official split (see the module docstring) with all of its attributes.

    Returns images as uint8 N×3×side×side and, as labels, each image's attributes as an int64 N×40 table
    of 1 (has it) and 0, with the attribute names in the file's order: :func:`attribute_task` picks the
    task from them, so one decoded copy serves any target attribute.
    """
    names, files, values = _read_attributes(attributes_file)
    row_of = {file: row for row, file in enumerate(files)}
    partitions = _read_partitions(partitions_file)
    unlisted = [file for file, _ in partitions if file not in row_of]
    if unlisted:
        problem = f"{len(unlisted)} images have no row in {attributes_file.name}, e.g. {unlisted[0]}"
        raise DatasetFileError(f"{partitions_file}: {problem}")
    train = [file for file, partition in partitions if partition in TRAIN_PARTITIONS]
    test = [file for file, partition in partitions if partition in TEST_PARTITIONS]
    x_train, x_test = _decode_listed(archive, (train, test), side)
    present = (values == 1).astype(np.int64)
    y_train, y_test = (present[[row_of[file] for file in split]] for split in (train, test))
    return ImageArrays(x_train, y_train, x_test, y_test), names


def attribute_task(
    arrays: ImageArrays, attribute_names: tuple[str, ...], target: str = TARGET
) -> AttributeTask:
    """The binary task "has `target`" and the groups of :data:`GROUP_ATTRIBUTES`, from :func:`read_celeba`'s
    arrays and attribute names."""
    column = {name: index for index, name in enumerate(attribute_names)}
    missing = [name for name in (target, *GROUP_ATTRIBUTES.values()) if name not in column]
    if missing:
        raise ValueError(
            f"CelebA has no attribute {missing[0]!r}; its attributes are: {', '.join(attribute_names)}"
        )
    y_train, y_test = (table[:, column[target]].copy() for table in (arrays.y_train, arrays.y_test))
    groups_train, groups_test = (
        {group: table[:, column[name]].copy() for group, name in GROUP_ATTRIBUTES.items()}
        for table in (arrays.y_train, arrays.y_test)
    )
    task_arrays = ImageArrays(arrays.x_train, y_train, arrays.x_test, y_test)
    return AttributeTask(task_arrays, (f"not {target}", target), groups_train, groups_test)
