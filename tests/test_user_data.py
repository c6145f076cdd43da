"""Your own data: a .npz of images run end to end, and one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import result, trustbench

from trustbench.data import catalog
from trustbench.data.errors import DatasetFileError
from trustbench.data.user_files import read_image_arrays


@pytest.fixture(scope="module")
def mnist_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 train / 200 test real MNIST digits stored as uint8 N×H×W, as a user would save them."""
    mnist = catalog.load("mnist", tmp_path_factory.mktemp("empty_data_dir"))
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


def test_npz_images_read_as_the_catalog_reads_mnist(mnist_npz: Path, tmp_path: Path) -> None:
    dataset = read_image_arrays(mnist_npz)
    mnist = catalog.load("mnist", tmp_path)
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
    np.savez(path, x_train=np.zeros((4, 64)), y_train=np.zeros(4, dtype=np.int64), x_test=np.zeros((4, 64)),
             y_test=np.zeros(4, dtype=np.int64))
    with pytest.raises(DatasetFileError, match=r"flat\.npz: x_train has shape \(4, 64\)"):
        read_image_arrays(path)


def test_a_run_trains_and_evaluates_on_a_users_npz(mnist_npz: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trustbench(
        "run", "data=files_images", f"data.path={mnist_npz}", "data.val_size=100", "data.batch_size=32",
        "backbone=mlp", "trainer.max_epochs=5", f"hydra.run.dir={run_dir}",
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
