"""Your own model: `method.checkpoint=` takes a TorchScript file or a state dict, evaluated by post-hoc
methods with the numbers the model gives in-process; a damaged or mismatching file is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import result, trustbench
from real_data import real
from torch import nn

from trustbench.backbones.mlp import MLP
from trustbench.user_model import ModelFileError, load_user_checkpoint, read_state_dict

TRAIN, TEST = 600, 200


class UsersNet(nn.Module):
    """A model written by a user, not one of our backbones: exports `features` and has a `head`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 48), nn.Tanh())
        self.head = nn.Linear(48, 10)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor, torch.Tensor, torch.Tensor]:
    """600 train / 200 test real MNIST digits as a user's .npz, plus the train and test tensors."""
    mnist = real("mnist")
    x_train, y_train = mnist.x_train[:TRAIN], mnist.y_train[:TRAIN]
    x_test, y_test = mnist.x_test[:TEST], mnist.y_test[:TEST]
    path = tmp_path_factory.mktemp("user") / "digits.npz"
    as_uint8 = lambda x: (x[:, 0] * 255).round().byte().numpy()  # noqa: E731
    np.savez(
        path,
        x_train=as_uint8(x_train),
        y_train=y_train.numpy(),
        x_test=as_uint8(x_test),
        y_test=y_test.numpy(),
    )
    return path, x_train, y_train, x_test, y_test


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return float((model(x).argmax(dim=1) == y).float().mean())


def _run(digits, tmp_path: Path, checkpoint: Path, *overrides: str) -> dict[str, float]:
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "data=files_images",
        f"data.path={digits[0]}",
        "data.val_size=100",
        f"method.checkpoint={checkpoint}",
        *overrides,
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
    )
    return result(run_dir)["metrics"]


def test_a_state_dict_for_our_mlp_is_evaluated_as_trained(digits, tmp_path: Path) -> None:
    _, x_train, y_train, x_test, y_test = digits
    model = _fit(MLP((1, 28, 28), 10, hidden_sizes=(32,)), x_train, y_train)
    torch.save(model.state_dict(), tmp_path / "mlp.pt")
    metrics = _run(
        digits, tmp_path, tmp_path / "mlp.pt", "method=msp", "backbone=mlp", "backbone.net.hidden_sizes=[32]"
    )
    assert metrics["cls/acc"] == pytest.approx(_accuracy(model, x_test, y_test), abs=1e-6)
    assert metrics["cls/acc"] > 0.7  # real digits; chance is 0.1


def test_a_torchscript_model_serves_a_feature_based_detector(digits, tmp_path: Path) -> None:
    _, x_train, y_train, x_test, y_test = digits
    model = _fit(UsersNet(), x_train, y_train)
    torch.jit.save(torch.jit.script(model), tmp_path / "users_net.pt")
    metrics = _run(digits, tmp_path, tmp_path / "users_net.pt", "method=knn", "method.detector.tune=false")
    assert metrics["cls/acc"] == pytest.approx(_accuracy(model, x_test, y_test), abs=1e-6)
    assert 0.5 < metrics["ood/noise_uniform/auroc"] <= 1.0  # KNN on the user's 48-d features


def test_corrupted_checkpoints_are_one_line_naming_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save(MLP((4,), 2, hidden_sizes=(3,)).state_dict(), good)
    truncated, garbage, empty = tmp_path / "truncated.pt", tmp_path / "garbage.pt", tmp_path / "empty.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage.write_bytes(b"these bytes were never a checkpoint")
    empty.write_bytes(b"")
    for path in (truncated, garbage, empty):
        with pytest.raises(ModelFileError, match=rf"^{path}: not a readable PyTorch file") as caught:
            read_state_dict(path)
        assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)
    with pytest.raises(ModelFileError, match=r"empty\.pt: .*\(the file is empty\)"):
        read_state_dict(empty)


def test_a_pickled_model_is_refused_not_unpickled(tmp_path: Path) -> None:
    torch.save(MLP((4,), 2, hidden_sizes=(3,)), tmp_path / "whole.pt")
    with pytest.raises(
        ModelFileError, match=r"whole\.pt: holds Python objects .* save model\.state_dict\(\)"
    ):
        read_state_dict(tmp_path / "whole.pt")


def test_a_state_dict_that_does_not_fit_names_the_first_mismatch(tmp_path: Path) -> None:
    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = MLP((4,), 2, hidden_sizes=(3,))

    torch.save(MLP((4,), 2, hidden_sizes=(5,)).state_dict(), tmp_path / "wide.pt")
    with pytest.raises(
        ModelFileError,
        match=r"wide\.pt: does not fit backbone MLP: 'body\.0\.weight' has shape "
        r"\(5, 4\) in the file but \(3, 4\) in the model",
    ):
        load_user_checkpoint(Holder(), tmp_path / "wide.pt", (4,), 2)
    weights = MLP((4,), 2, hidden_sizes=(3,)).state_dict()
    torch.save({k: v for k, v in weights.items() if k != "head.bias"}, tmp_path / "short.pt")
    with pytest.raises(
        ModelFileError, match=r"short\.pt: does not fit backbone MLP: key 'head\.bias' is missing"
    ):
        load_user_checkpoint(Holder(), tmp_path / "short.pt", (4,), 2)
    holder = Holder()
    torch.save(weights, tmp_path / "fits.pt")
    load_user_checkpoint(holder, tmp_path / "fits.pt", (4,), 2)
    assert all((holder.backbone.state_dict()[k] == v).all() for k, v in weights.items())


def test_a_run_with_a_corrupted_checkpoint_stops_with_one_line(digits, tmp_path: Path) -> None:
    """Issue 11 item 9: no `OSError`, no advice to retry an untrusted file with weights_only=False."""
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 half of an archive")
    proc = trustbench(
        "run",
        "method=msp",
        "data=files_images",
        f"data.path={digits[0]}",
        "data.val_size=100",
        f"method.checkpoint={broken}",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    assert proc.returncode != 0
    errors = [
        line for line in proc.stderr.splitlines() if "[ERROR]" in line or line.startswith("trustbench:")
    ]
    assert errors and all(
        f"{broken}: not a readable PyTorch file, truncated or corrupted" in e for e in errors
    )
    assert "Traceback" not in proc.stderr and "weights_only" not in proc.stderr
