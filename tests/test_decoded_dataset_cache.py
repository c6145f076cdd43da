"""The decoded-data cache of the image sets read at their stored size, keyed by the files' sha256."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from fake_datasets import write_mnist_idx

from trustbench.data import catalog, formats, sources


@pytest.fixture(autouse=True)
def fresh_process_cache():
    catalog.clear_cache()
    yield
    catalog.clear_cache()


def assert_same(a, b) -> None:
    for split in ("x_train", "y_train", "x_test", "y_test"):
        mine, theirs = getattr(a, split), getattr(b, split)
        assert torch.equal(mine, theirs) and mine.dtype == theirs.dtype
    assert a.class_names == b.class_names


def test_a_second_load_reads_the_cache_and_gives_the_decoded_tensors(tmp_path, monkeypatch):
    write_mnist_idx(tmp_path / "mnist")
    first = catalog.load("mnist", tmp_path)
    cache = tmp_path / "mnist" / "decoded_mnist.npz"
    assert cache.is_file()
    with np.load(cache, allow_pickle=False) as stored:  # plain arrays: readable without unpickling
        assert stored["x_train"].dtype == np.uint8 and stored["x_train"].shape == (20, 1, 28, 28)

    def no_decoding(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(catalog, "read_mnist_idx", no_decoding)
    catalog.clear_cache()
    assert_same(catalog.load("mnist", tmp_path), first)


def test_files_with_other_bytes_are_decoded_again_even_with_the_same_size_and_time(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    write_mnist_idx(folder, seed=0)
    catalog.load("mnist", tmp_path)
    files = [folder / name for name in formats.MNIST_IDX_FILES]
    stats = [path.stat() for path in files]
    write_mnist_idx(folder, seed=1)  # other pixels, same sizes; the modification times are put back
    for path, stat in zip(files, stats, strict=True):
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size
    decoded = []
    monkeypatch.setattr(
        catalog, "read_mnist_idx", lambda folder: decoded.append(folder) or formats.read_mnist_idx(folder)
    )
    catalog.clear_cache()
    reloaded = catalog.load("mnist", tmp_path)
    assert len(decoded) == 1
    expected = formats.read_mnist_idx(folder).x_train
    assert torch.equal(reloaded.x_train, torch.from_numpy(expected).float() / 255)


@pytest.mark.parametrize("damage", [lambda raw: raw[:100], lambda raw: b"not a zip at all", lambda raw: b""])
def test_a_damaged_cache_is_a_miss_and_is_replaced(tmp_path, damage):
    write_mnist_idx(tmp_path / "mnist")
    first = catalog.load("mnist", tmp_path)
    cache = tmp_path / "mnist" / "decoded_mnist.npz"
    healthy = cache.read_bytes()
    cache.write_bytes(damage(healthy))
    catalog.clear_cache()
    assert_same(catalog.load("mnist", tmp_path), first)
    assert cache.read_bytes() == healthy


def test_a_mirror_outside_the_data_dir_is_only_read_and_its_cache_goes_to_the_data_dir(tmp_path, monkeypatch):
    """A mirror in /usr/share or site-packages may be read-only (and is not ours): the decoded copy is
    written under <data_dir>/decoded/<name>/, and the mirror's folder gains no file."""
    mirror, data_dir = tmp_path / "usr_share_fashion", tmp_path / "data"
    write_mnist_idx(mirror)
    apt = sources.Source("apt mirror", "apt", str(mirror), formats.MNIST_IDX_FILES, "idx")
    monkeypatch.setitem(sources.SOURCES, "fashion_mnist", sources.DatasetSources((apt,)))
    before = sorted(mirror.iterdir())
    first = catalog.load("fashion_mnist", data_dir)
    assert sorted(mirror.iterdir()) == before
    assert (data_dir / "decoded" / "fashion_mnist" / "decoded_fashion_mnist.npz").is_file()
    monkeypatch.setattr(catalog, "read_mnist_idx", lambda folder: pytest.fail("the cache should be used"))
    catalog.clear_cache()
    assert_same(catalog.load("fashion_mnist", data_dir), first)
