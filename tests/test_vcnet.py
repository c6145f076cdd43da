"""VCNet trained for 8 epochs on real UCI Adult: a good classifier whose decoder flips its own predictions."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from real_data import real

from trustbench.backbones.linear import Linear
from trustbench.backbones.mlp import MLP
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import ExplanationData, build
from trustbench.methods.counterfactual.vcnet import VCNet, VCNetExplainer
from trustbench.methods.erm import ERM

EPOCHS, BATCH, EXPLAINED = 8, 256, 2000
ADAM = functools.partial(torch.optim.Adam, lr=1e-3)


@pytest.fixture(scope="module")
def adult(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Adult, a VCNet over a 64-64 MLP trained with Adam, and its explainer fitted on the training split."""
    data_dir = tmp_path_factory.mktemp("data")
    dataset = real("adult")
    torch.manual_seed(0)
    backbone = MLP(dataset.input_shape, dataset.num_classes, hidden_sizes=(64, 64))
    module = VCNet(
        backbone,
        dataset.num_classes,
        ADAM,
        input_shape=dataset.input_shape,
        categorical_groups=dataset.tabular.categorical_groups,
    )
    optimizer = module.configure_optimizers()
    for epoch in range(EPOCHS):
        module.train()
        order = torch.randperm(len(dataset.x_train), generator=torch.Generator().manual_seed(epoch))
        for batch in order.split(BATCH):
            optimizer.zero_grad()
            module.training_loss(dataset.x_train[batch], dataset.y_train[batch]).backward()
            optimizer.step()
    module.eval()
    constraints = Constraints.for_dataset(dataset, lambda x: x)
    data = ExplanationData(
        dataset.x_train, dataset.y_train, 2, constraints, module, "adult", data_dir, seed=0
    )
    x = dataset.x_test[:EXPLAINED]
    with torch.no_grad():
        target = 1 - module.predict(x).probs.argmax(dim=1)
    explainer = VCNetExplainer().fit(data)
    return {
        "dataset": dataset,
        "module": module,
        "constraints": constraints,
        "x": x,
        "target": target,
        "counterfactuals": explainer.explain(backbone, x, target, constraints),
    }


def test_vcnet_classifies_adult_nearly_as_well_as_a_plain_network(adult: dict) -> None:
    dataset = adult["dataset"]
    with torch.no_grad():
        predicted = adult["module"].predict(dataset.x_test).probs.argmax(dim=1)
    assert (
        predicted == dataset.y_test
    ).float().mean().item() >= 0.80  # measured 0.825 (the majority class alone gives 0.76)


def test_vcnet_predictions_are_probabilities_scored_by_their_maximum(adult: dict) -> None:
    with torch.no_grad():
        prediction = adult["module"].predict(adult["x"][:50])
    torch.testing.assert_close(prediction.probs.sum(dim=1), torch.ones(50))
    torch.testing.assert_close(prediction.uncertainty, -prediction.probs.max(dim=1).values)


def test_vcnet_counterfactuals_flip_the_prediction_for_nearly_every_row(adult: dict) -> None:
    with torch.no_grad():
        flipped = adult["module"].predict(adult["counterfactuals"]).probs.argmax(dim=1) == adult["target"]
    assert flipped.float().mean().item() >= 0.9  # measured 0.99 of 2000 test rows


def test_vcnet_counterfactual_one_hot_groups_are_one_hot(adult: dict) -> None:
    for group in adult["dataset"].tabular.categorical_groups:
        values = adult["counterfactuals"][:, list(group)]
        assert bool(((values == 0) | (values == 1)).all())
        assert bool((values.sum(dim=1) == 1).all())


def test_vcnet_counterfactuals_change_the_mutable_features_only(adult: dict) -> None:
    immutable = ~adult["constraints"].mutable
    raw = adult["module"].counterfactuals(adult["x"], adult["target"])
    assert not torch.equal(raw[:, immutable], adult["x"][:, immutable])  # the decoder alone changes them
    assert torch.equal(adult["counterfactuals"][:, immutable], adult["x"][:, immutable])  # snap restores them
    assert bool((adult["counterfactuals"] != adult["x"]).any(dim=1).float().mean() > 0.9)


def test_vcnet_counterfactuals_are_deterministic(adult: dict) -> None:
    x, target = adult["x"][:100], adult["target"][:100]
    torch.testing.assert_close(
        adult["module"].counterfactuals(x, target), adult["module"].counterfactuals(x, target)
    )


def test_vcnet_explainer_is_registered_and_refuses_other_methods(adult: dict, tmp_path: Path) -> None:
    dataset = adult["dataset"]
    erm = ERM(MLP(dataset.input_shape, 2), 2, optimizer=ADAM)
    data = ExplanationData(
        dataset.x_train, dataset.y_train, 2, adult["constraints"], erm, "adult", tmp_path, 0
    )
    with pytest.raises(ValueError, match="^vcnet explains the model it trains with; use method=vcnet$"):
        build("vcnet").fit(data)


def test_vcnet_rejects_groups_that_are_not_columns_of_its_input() -> None:
    with pytest.raises(ValueError, match="disjoint lists of column indices in 0..9"):
        VCNet(MLP((10,), 2), 2, ADAM, input_shape=(10,), categorical_groups=[[8, 9, 10]])
    with pytest.raises(ValueError, match="disjoint"):
        VCNet(MLP((10,), 2), 2, ADAM, input_shape=(10,), categorical_groups=[[1, 2], [2, 3]])


def test_vcnet_refuses_a_backbone_without_features() -> None:
    with pytest.raises(ValueError, match="feature_dim is None"):
        VCNet(Linear((10,), 2), 2, ADAM, input_shape=(10,))
