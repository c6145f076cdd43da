"""Lightning data for in-memory tensors: a seeded train/val split and loaders that batch by indexing.

Batches are ``(x[idx], y[idx])`` of whole tensors: no per-sample Python work and no worker processes,
which is the fastest way to feed datasets that fit in memory. The training order of epoch `e` is a
permutation drawn from a generator seeded by ``(seed, e)``; Lightning tells the loader the epoch through
``loader.sampler.set_epoch(e)``, so a run resumed from a checkpoint shuffles exactly like an
uninterrupted one. Under DDP (the runner sets ``use_distributed_sampler=False``) each rank takes every
`world_size`-th row of that permutation, padded by wrapping so all ranks get the same number of batches.
Evaluation loaders are neither shuffled nor sharded: every rank sees the whole set, in order.

Training batches can be augmented (``data.augment``, see :mod:`trustbench.data.augment`). Batch `b` of an
epoch, counted across ranks (``b = local index · world_size + rank``), is augmented with a generator
seeded from (seed, epoch, b), so augmentation too is the same in resumed and uninterrupted runs, and no two
ranks draw the same crops.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from trustbench.data.arrays import ArrayDataset
from trustbench.data.augment import BatchAugmentation
from trustbench.metrics.fairness import check_binary

# Training-batch transform: (inputs, generator seeded for this batch) -> augmented inputs.
BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class EpochSampler:
    """The `sampler` Lightning looks for on a loader; it only records the epoch Lightning sets."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def seeded_generator(seed: int, epoch: int, batch: int | None = None) -> torch.Generator:
    """A CPU generator for (`seed`, `epoch`), or for batch `batch` of that epoch, untouched by global RNGs.

    Batch `batch` gets the `batch`-th child (``spawn_key``) of the epoch's ``np.random.SeedSequence``,
    a stream independent of the epoch's own (appending the batch to the entropy would not be: SeedSequence
    pads entropy with zeros, so (seed, epoch, 0) would repeat (seed, epoch)).
    """
    sequence = np.random.SeedSequence((seed, epoch), spawn_key=() if batch is None else (batch,))
    return torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0]))


def named_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator for (`seed`, `name`): each derived data set or corruption draws its own stream."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    mixed = np.random.SeedSequence((seed, zlib.crc32(name.encode()))).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(mixed[0]))


def epoch_permutation(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of `size` rows for (`seed`, `epoch`), independent of any global RNG."""
    return torch.randperm(size, generator=seeded_generator(seed, epoch))


class TensorLoader:
    """Iterates ``(x[idx], y[idx])`` batches; shuffles per epoch when `seed` is given; shards by rank.

    `augment`, which needs `seed`, transforms each batch's inputs with a generator for (seed, epoch, batch).
    With `group` (a protected attribute aligned with the rows), batches are ``(x, y, group)``: what
    fairness-regularised methods train on.
    """

    batch_sampler = (
        None  # Lightning reads it whenever a loader has a `sampler`; None means "no batch sampler"
    )

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        augment: BatchTransform | None = None,
        group: torch.Tensor | None = None,
    ) -> None:
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}"
            )
        if augment is not None and seed is None:
            raise ValueError("augment needs a seed: augmented batches are drawn from (seed, epoch, batch)")
        self.x, self.y = x, y
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.augment = augment
        self.group = group
        self.sampler = EpochSampler()

    @property
    def rows_per_rank(self) -> int:
        return math.ceil(len(self.x) / self.world_size)

    def indices(self) -> torch.Tensor:
        """The rows this rank reads in the current epoch, in order."""
        size = len(self.x)
        order = (
            torch.arange(size)
            if self.seed is None
            else epoch_permutation(size, self.seed, self.sampler.epoch)
        )
        wrapped = torch.arange(self.rows_per_rank * self.world_size) % max(size, 1)  # pad by wrapping around
        return order[wrapped][self.rank :: self.world_size]

    def __len__(self) -> int:
        return math.ceil(self.rows_per_rank / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.indices()
        for batch, start in enumerate(range(0, len(order), self.batch_size)):
            rows = order[start : start + self.batch_size]
            if self.group is None:
                yield self._inputs(rows, batch), self.y[rows]
            else:
                yield self._inputs(rows, batch), self.y[rows], self.group[rows]

    def _inputs(self, rows: torch.Tensor, batch: int) -> torch.Tensor:
        if self.augment is None:
            return self.x[rows]
        across_ranks = batch * self.world_size + self.rank
        return self.augment(self.x[rows], seeded_generator(self.seed, self.sampler.epoch, across_ranks))


def _validation_rows(val_size: int | float, train_size: int) -> int:
    rows = round(val_size * train_size) if isinstance(val_size, float) else val_size
    if not 0 <= rows < train_size:
        raise ValueError(
            f"val_size={val_size} gives {rows} validation rows; it must leave training rows: "
            f"use a count in [0, {train_size}) or a fraction in [0, 1)"
        )
    return rows


def _channel_statistics(
    normalize: tuple[Sequence[float], Sequence[float]] | None, input_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Mean and std shaped to broadcast over one example: (C, 1, 1) for images, (D,) for rows."""
    if normalize is None:
        return None
    mean, std = (torch.as_tensor(list(values), dtype=torch.float32) for values in normalize)
    channels = input_shape[0]
    if mean.shape != (channels,) or std.shape != (channels,) or bool((std <= 0).any()):
        raise ValueError(
            f"data.normalize needs {channels} means and {channels} positive stds (per channel or column), "
            f"got mean={mean.tolist()} std={std.tolist()}"
        )
    if len(input_shape) == 3:
        return mean.view(-1, 1, 1), std.view(-1, 1, 1)
    return mean, std


_AUGMENT_OPTIONS = ("crop_padding", "horizontal_flip")


def _batch_augmentation(
    augment: Mapping[str, Any] | None,
    input_shape: tuple[int, ...],
    normalize_inputs: Callable[[torch.Tensor], torch.Tensor],
) -> BatchAugmentation | None:
    """The training augmentation `data.augment` asks for, or None when it asks for nothing.

    The border is a black pixel as the model sees it, ``normalize_inputs(0)``: torchvision pads the raw
    image with 0 before ``Normalize``, and the splits here are stored already normalised.
    """
    if not augment:
        return None
    unknown = sorted(set(augment) - set(_AUGMENT_OPTIONS))
    if unknown:
        raise ValueError(
            f"data.augment has unknown option(s) {unknown}; the options are {list(_AUGMENT_OPTIONS)}"
        )
    if len(input_shape) != 3:
        raise ValueError(
            f"data.augment crops and flips images (C×H×W), but the inputs have shape {input_shape}; "
            "remove data.augment for this dataset"
        )
    black = normalize_inputs(torch.zeros(input_shape[0], 1, 1)).flatten()
    augmentation = BatchAugmentation(**dict(augment), pad_value=black)
    return None if augmentation.is_identity else augmentation


class TensorDataModule(pl.LightningDataModule):
    """Train/val/test loaders over an :class:`ArrayDataset`, with a fixed validation split from `seed`.

    The split is made at construction, so `x_train`, `y_train`, `x_val`, `y_val`, `x_test`, `y_test` and
    `groups_train` / `groups_val` / `groups_test` can be used directly by evaluation code. `val_size` is a
    row count or a fraction of the official training split. `augment` (``crop_padding``,
    ``horizontal_flip``) turns on the standard image augmentation for training batches only; its border is
    the normalised black pixel, so it matches torchvision's pad-then-``Normalize``. `protected` names the
    group attribute that training batches carry as a third element (fairness methods); `annotated` makes
    them carry the dataset's per-pixel annotations instead (explanation-guided methods); neither keeps
    ``(x, y)`` batches.
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        val_size: int | float,
        batch_size: int,
        seed: int,
        eval_batch_size: int | None = None,
        normalize: tuple[Sequence[float], Sequence[float]] | None = None,
        augment: Mapping[str, Any] | None = None,
        protected: str | None = None,
        annotated: bool = False,
    ) -> None:
        super().__init__()
        self.normalization = _channel_statistics(normalize, dataset.input_shape)
        self.augmentation = _batch_augmentation(augment, dataset.input_shape, self.normalize_inputs)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        rows = len(dataset.x_train)
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed))
        n_val = _validation_rows(val_size, rows)
        self.val_rows = order[:n_val].sort().values
        self.train_rows = order[n_val:].sort().values
        self.x_train, self.y_train = (
            self.normalize_inputs(dataset.x_train[self.train_rows]),
            dataset.y_train[self.train_rows],
        )
        self.x_val, self.y_val = (
            self.normalize_inputs(dataset.x_train[self.val_rows]),
            dataset.y_train[self.val_rows],
        )
        self.x_test, self.y_test = self.normalize_inputs(dataset.x_test), dataset.y_test
        self.groups_train = {key: value[self.train_rows] for key, value in dataset.groups_train.items()}
        self.groups_val = {key: value[self.val_rows] for key, value in dataset.groups_train.items()}
        self.groups_test = dict(dataset.groups_test)
        if protected is not None and protected not in self.groups_train:
            raise ValueError(
                f"data.protected={protected!r} is not a group attribute of {dataset.name}; "
                f"its attributes are {sorted(self.groups_train) or 'none'}"
            )
        if protected is not None:  # once per dataset, so training steps need not check every batch's groups
            check_binary(f"data.protected={protected!r} of {dataset.name}", self.groups_train[protected])
        self.protected = protected
        if annotated and dataset.annotations_train is None:
            raise ValueError(
                f"this method trains on per-pixel annotations, but {dataset.name} has none; use "
                "data=decoy_mnist or data=decoy_fashion_mnist"
            )
        self.annotations_train = dataset.annotations_train[self.train_rows] if annotated else None

    def normalize_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(x − mean) / std per channel (images) or per column (rows), as the model sees its inputs.

        Every split here is already normalised; OOD and shifted inputs built elsewhere pass through this
        so the model sees them exactly as it saw its training data. Identity without `normalize`.
        """
        if self.normalization is None:
            return x
        mean, std = self.normalization
        return (x - mean) / std

    def _rank(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> TensorLoader:
        rank, world_size = self._rank()
        group = None if self.protected is None else self.groups_train[self.protected]
        if self.annotations_train is not None:
            group = self.annotations_train  # carried like a group: the third element of each batch
        return TensorLoader(
            self.x_train, self.y_train, self.batch_size, self.seed, rank, world_size, self.augmentation, group
        )

    def val_dataloader(self) -> TensorLoader:
        return TensorLoader(self.x_val, self.y_val, self.eval_batch_size)

    def test_dataloader(self) -> TensorLoader:
        return TensorLoader(self.x_test, self.y_test, self.eval_batch_size)
