"""The oracle that judges counterfactuals (DiVE's view): an MLP trained on real MNIST rows, stored and
loaded from the explainers' cache."""

from __future__ import annotations

import pytest
import torch
from real_data import real

from trustbench.methods.counterfactual import oracle as oracle_module
from trustbench.methods.counterfactual.oracle import OracleConfig, trained_oracle

ROWS = 2000
CONFIG = OracleConfig(hidden=64, epochs=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    dataset, cache = real("mnist"), tmp_path_factory.mktemp("oracle")
    x, y = dataset.x_train[:ROWS], dataset.y_train[:ROWS]
    return trained_oracle(x, y, 10, CONFIG, cache, "mnist", seed=0), x, y, cache


def test_the_oracle_is_an_mlp_that_classifies_digits_far_above_chance(trained):
    oracle, _, _, _ = trained
    dataset = real("mnist")
    assert not any(isinstance(layer, torch.nn.Conv2d) for layer in oracle.modules())
    with torch.no_grad():
        accuracy = (oracle(dataset.x_test[:1000]).argmax(dim=1) == dataset.y_test[:1000]).float().mean()
    # measured: 0.815 on 1000 test digits after 5 epochs on 2000 training digits
    assert accuracy.item() > 0.75


def test_a_second_call_loads_the_stored_oracle_without_training(trained, monkeypatch):
    oracle, x, y, cache = trained
    monkeypatch.setattr(oracle_module, "_fit", lambda *args: pytest.fail("the oracle was trained again"))
    again = trained_oracle(x, y, 10, CONFIG, cache, "mnist", seed=0)
    stored, loaded = oracle.state_dict(), again.state_dict()
    assert stored.keys() == loaded.keys() and all(torch.equal(stored[k], loaded[k]) for k in stored)


def test_an_unknown_oracle_setting_lists_the_valid_ones():
    with pytest.raises(ValueError, match="has no key width; its keys are batch_size, epochs, hidden, lr"):
        OracleConfig.from_mapping({"width": 3})
