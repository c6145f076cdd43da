"""Your own data: a .npz of images run end to end, and one-line errors naming the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import result, trustbench
from real_data import real

from trustbench.data import catalog
from trustbench.data.errors import DatasetFileError
from trustbench.data.image_folder import read_image_folder
from trustbench.data.user_files import read_image_arrays, read_npy_arrays


@pytest.fixture(scope="module")
def mnist_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 train / 200 test real MNIST digits stored as uint8 N×H×W, as a user would save them."""
    mnist = real("mnist")
    path = tmp_path_factory.mktemp("user") / "digits.npz"
    to_uint8 = lambda x: (x[:, 0] * 255).round().byte().numpy()  # noqa: E731
    np.savez(
        path,
        x_train=to_uint8(mnist.x_train[:600]),
        y_train=mnist.y_train[:600].numpy(),
        x_test=to_uint8(mnist.x_test[:200]),
        y_test=mnist.y_test[:200].numpy(),
    )
    return path


def test_npz_images_read_as_the_catalog_reads_mnist(mnist_npz: Path) -> None:
    dataset = read_image_arrays(mnist_npz)
    mnist = real("mnist")
    assert dataset.input_shape == (1, 28, 28) and dataset.num_classes == 10
    assert (dataset.x_train == mnist.x_train[:600]).all() and (dataset.y_test == mnist.y_test[:200]).all()


def test_labels_out_of_range_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    images = np.zeros((4, 8, 8), dtype=np.uint8)
    labels = {"y_train": np.array([0, 1, 2, 3]), "y_test": np.array([0, 1, 0, 1])}
    np.savez(path, x_train=images, x_test=images, **labels)
    with pytest.raises(DatasetFileError, match=r"bad\.npz: y_train holds label 3; labels must lie in 0\.\.2"):
        read_image_arrays(path, num_classes=3)


def test_wrong_shape_and_missing_array_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "flat.npz"
    np.savez(path, x_train=np.zeros((4, 64), dtype=np.uint8), y_train=np.zeros(4, dtype=np.int64))
    with pytest.raises(DatasetFileError, match=r"flat\.npz: missing array\(s\) x_test, y_test"):
        read_image_arrays(path)
    np.savez(
        path,
        x_train=np.zeros((4, 64)),
        y_train=np.zeros(4, dtype=np.int64),
        x_test=np.zeros((4, 64)),
        y_test=np.zeros(4, dtype=np.int64),
    )
    with pytest.raises(DatasetFileError, match=r"flat\.npz: x_train has shape \(4, 64\)"):
        read_image_arrays(path)


def test_a_run_trains_and_evaluates_on_a_users_npz(mnist_npz: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "data=files_images",
        f"data.path={mnist_npz}",
        "data.val_size=100",
        "data.batch_size=32",
        "backbone=mlp",
        "trainer.max_epochs=5",
        f"hydra.run.dir={run_dir}",
    )
    record = result(run_dir)
    assert record["status"] == "ok"
    assert record["metrics"]["cls/acc"] > 0.6  # 500 real digits, 5 epochs; chance is 0.1


def test_each_user_file_gets_its_own_stored_model(mnist_npz: Path, tmp_path: Path) -> None:
    """The model store keys a user's dataset by the file's contents, not only by the data config's name:
    a post-hoc method on a second file must never reuse weights trained on the first."""
    from hydra import compose, initialize_config_dir

    from trustbench.cli import CONFIG_DIR
    from trustbench.results.model_store import stored_model_path

    other = tmp_path / "other.npz"
    with np.load(mnist_npz) as stored:
        arrays = dict(stored)
    np.savez(other, **(arrays | {"y_train": (arrays["y_train"] + 1) % 10}))
    same_bytes = tmp_path / "copy.npz"
    same_bytes.write_bytes(mnist_npz.read_bytes())

    def store_path(path: Path) -> Path:
        with initialize_config_dir(str(CONFIG_DIR), version_base=None):
            cfg = compose("config", overrides=["method=msp", "data=files_images", f"data.path={path}"])
        return stored_model_path(cfg)

    assert store_path(mnist_npz) != store_path(other)
    assert store_path(mnist_npz) == store_path(same_bytes)


@pytest.fixture(scope="module")
def mnist_small(tmp_path_factory: pytest.TempPathFactory):
    """Real MNIST, the catalog's tensors (the reference every user-file reader must reproduce)."""
    return real("mnist")


def _uint8(images) -> np.ndarray:
    return (images[:, 0] * 255).round().byte().numpy()


def test_npy_files_read_as_the_catalog_reads_mnist(mnist_small, tmp_path: Path) -> None:
    arrays = {
        "x_train": _uint8(mnist_small.x_train[:300]),
        "y_train": mnist_small.y_train[:300].numpy(),
        "x_test": _uint8(mnist_small.x_test[:100]),
        "y_test": mnist_small.y_test[:100].numpy(),
    }
    paths = {key: tmp_path / f"{key}.npy" for key in arrays}
    for key, array in arrays.items():
        np.save(paths[key], array)
    dataset = read_npy_arrays(paths)
    assert dataset.input_shape == (1, 28, 28) and dataset.num_classes == 10
    assert (dataset.x_train == mnist_small.x_train[:300]).all()
    assert (dataset.y_test == mnist_small.y_test[:100]).all()
    np.save(paths["y_test"], arrays["y_test"] + 10)
    expected = r"y_test\.npy: y_test holds label 1\d; labels must lie in 0\.\.9"
    with pytest.raises(DatasetFileError, match=expected):
        read_npy_arrays(paths, num_classes=10)
    np.save(paths["x_test"], np.zeros((100, 5), dtype=np.uint8))
    with pytest.raises(DatasetFileError, match=r"x_test\.npy: x_test has shape \(100, 5\)"):
        read_npy_arrays(paths)


def _png_folder(root: Path, dataset, digits: tuple[int, ...], per_class: int) -> dict[int, list[int]]:
    """Write the first `per_class` training images of each digit as PNGs under root/<digit name>/."""
    from PIL import Image

    labels = dataset.y_train.numpy()
    rows = {digit: np.flatnonzero(labels == digit)[:per_class].tolist() for digit in digits}
    for digit, indices in rows.items():
        (root / f"digit_{digit}").mkdir(parents=True)
        for i in indices:
            image = Image.fromarray(_uint8(dataset.x_train[i : i + 1])[0])
            image.save(root / f"digit_{digit}" / f"{i:05d}.png")
    return rows


def test_image_folder_reads_pngs_with_class_names_and_a_fixed_split(mnist_small, tmp_path: Path) -> None:
    rows = _png_folder(tmp_path / "digits", mnist_small, (3, 7), per_class=20)
    dataset = read_image_folder(tmp_path / "digits", test_fraction=0.25)
    assert dataset.class_names == ("digit_3", "digit_7") and dataset.input_shape == (1, 28, 28)
    assert len(dataset.x_train) == 30 and len(dataset.x_test) == 10
    assert dataset.y_test.bincount().tolist() == [5, 5]  # 25% of each class
    expected = torch.cat([mnist_small.x_train[rows[3]], mnist_small.x_train[rows[7]]])
    found = torch.cat([dataset.x_train, dataset.x_test])
    # PNG is lossless: every image comes back bit for bit (compare as sets of rows, the split reorders them)
    assert sorted(map(bytes, (found * 255).round().byte().flatten(1).numpy())) == sorted(
        map(bytes, (expected * 255).round().byte().flatten(1).numpy())
    )
    again = read_image_folder(tmp_path / "digits", test_fraction=0.25)
    assert (again.x_test == dataset.x_test).all()  # the split is the same on every read


def test_image_folder_keeps_the_users_train_and_test_split(mnist_small, tmp_path: Path) -> None:
    _png_folder(tmp_path / "split" / "train", mnist_small, (0, 1, 2), per_class=4)
    _png_folder(tmp_path / "split" / "test", mnist_small, (0, 1), per_class=2)
    dataset = read_image_folder(tmp_path / "split")
    assert dataset.class_names == ("digit_0", "digit_1", "digit_2")
    assert dataset.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and dataset.y_test.tolist() == [0, 0, 1, 1]


def test_image_folder_errors_name_the_file(mnist_small, tmp_path: Path) -> None:
    from PIL import Image

    _png_folder(tmp_path / "bad", mnist_small, (0, 1), per_class=2)
    broken = tmp_path / "bad" / "digit_1" / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DatasetFileError, match=r"broken\.png: unreadable image"):
        read_image_folder(tmp_path / "bad")
    broken.unlink()
    Image.new("L", (32, 30)).save(tmp_path / "bad" / "digit_1" / "wide.png")
    with pytest.raises(DatasetFileError, match=r"wide\.png: image is 32×30 \(W×H\) but the first is 28×28"):
        read_image_folder(tmp_path / "bad")
    resized = read_image_folder(tmp_path / "bad", image_size=[16, 20], test_fraction=0.4)
    assert resized.input_shape == (1, 16, 20)
    Image.new("RGB", (28, 28), (255, 0, 0)).save(tmp_path / "bad" / "digit_0" / "red.png")
    coloured = read_image_folder(tmp_path / "bad", image_size=[28, 28], test_fraction=0.4)
    assert coloured.input_shape == (3, 28, 28)  # one RGB image makes every image RGB


def test_a_run_trains_on_a_folder_of_pngs(mnist_small, tmp_path: Path) -> None:
    _png_folder(tmp_path / "digits", mnist_small, (0, 1), per_class=60)
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "data=files_images",
        f"data.path={tmp_path / 'digits'}",
        "data.val_size=10",
        "data.batch_size=16",
        "backbone=mlp",
        "trainer.max_epochs=3",
        f"hydra.run.dir={run_dir}",
    )
    assert result(run_dir)["metrics"]["cls/acc"] > 0.9  # 0 versus 1 on 86 real digits; chance is 0.5


def test_a_folder_npy_or_npz_is_an_ood_set_adapted_to_the_id_shape(mnist_small, tmp_path: Path) -> None:
    from trustbench.data.ood_sets import adapt_to_shape, build_ood_inputs

    rows = _png_folder(tmp_path / "ood", mnist_small, (4,), per_class=6)
    pixels = _uint8(mnist_small.x_train[rows[4]])
    np.save(tmp_path / "ood.npy", pixels)
    np.savez(tmp_path / "ood.npz", x_test=pixels, labels=np.zeros(6))
    reference = adapt_to_shape(mnist_small.x_train[rows[4]], (3, 32, 32))
    id_dataset = catalog.load("synthetic_image", tmp_path)  # 1×12×12 images
    for spec in (f"file:{tmp_path / 'ood.npy'}", f"file:{tmp_path / 'ood.npz'}"):
        inputs = build_ood_inputs(spec, id_dataset, tmp_path)
        assert inputs.shape == (6, 1, 12, 12)
        assert torch.allclose(inputs, adapt_to_shape(mnist_small.x_train[rows[4]], (1, 12, 12)))
    rgb_id = dataclasses.replace(id_dataset, x_train=reference, x_test=reference)
    from_folder = build_ood_inputs(f"file:{tmp_path / 'ood'}", rgb_id, tmp_path)
    assert from_folder.shape == (6, 3, 32, 32)  # PNGs resized on reading, grey repeated to RGB
    with pytest.raises(DatasetFileError, match=r"ood\.npz: holds a, b; an OOD archive needs x_test"):
        np.savez(tmp_path / "ood.npz", a=pixels, b=pixels)
        build_ood_inputs(f"file:{tmp_path / 'ood.npz'}", id_dataset, tmp_path)


def test_a_run_evaluates_a_users_folder_as_an_ood_set(mnist_npz: Path, mnist_small, tmp_path: Path) -> None:
    _png_folder(tmp_path / "shoes", catalog.load("fashion_mnist", tmp_path), (7,), per_class=50)
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "method=msp",
        "data=files_images",
        f"data.path={mnist_npz}",
        "data.val_size=100",
        "backbone=mlp",
        "trainer.max_epochs=3",
        f"data.ood_benchmark.far=[noise_uniform,file:{tmp_path / 'shoes'}]",
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
    )
    metrics = result(run_dir)["metrics"]
    assert 0.5 < metrics[f"ood/file:{tmp_path / 'shoes'}/auroc"] <= 1.0  # real sneakers against digits
