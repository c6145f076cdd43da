"""One-class novelty detection: Deep SVDD's bias-free network and centre, and both one-class methods
trained briefly on one real MNIST digit, scored against the other nine through `trustbench run`."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import result, trustbench
from real_data import real

from trustbench.backbones.one_class import OneClassLeNet
from trustbench.methods.novelty.deep_svdd import DeepSVDD


@pytest.mark.parametrize("decoder", [False, True])
def test_network_has_no_bias_terms(decoder: bool) -> None:
    net = OneClassLeNet((1, 28, 28), num_classes=1, decoder=decoder)
    assert not [name for name, _ in net.named_parameters() if "bias" in name]
    assert all(not m.affine for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    output = net(torch.zeros(2, 1, 28, 28))
    assert output.shape == ((2, 1, 28, 28) if decoder else (2, 32))


def test_centre_is_the_initial_mean_code_with_small_coordinates_pushed_to_eps() -> None:
    torch.manual_seed(0)
    digits = real("mnist").x_train[:256]
    module = DeepSVDD(OneClassLeNet((1, 28, 28), 1), 1, optimizer=partial(torch.optim.Adam), eps=0.02)
    center = module.initial_center([(digits[:128],), (digits[128:],)])
    with torch.no_grad():
        mean = module.backbone.eval().features(digits).mean(dim=0)
    # An untrained network's mean code is small (|c_j| < 0.08 here): eps 0.02 meets both cases.
    small = mean.abs() < 0.02
    assert small.any() and (~small).any()
    assert torch.allclose(center[~small], mean[~small], atol=1e-6)
    assert torch.equal(center[small], torch.where(mean[small] < 0, -0.02, 0.02))


@pytest.mark.parametrize("method", ["deep_svdd", "autoencoder"])
def test_briefly_trained_on_ones_the_other_digits_score_higher(method: str, tmp_path: Path) -> None:
    trustbench(
        "run",
        "data=novelty_mnist",
        "data.class_split=1",
        f"method={method}",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=20",
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    record = result(tmp_path / "run")
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["ood/unknown/auroc"] > 0.7  # chance 0.5; Deep SVDD: 0.998 after 3 full epochs
    assert "cls/acc" not in record["metrics"]
