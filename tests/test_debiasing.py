"""The debiasing methods: their loss terms on hand-made batches, and their effect on real COMPAS data."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import real_data
import torch

from trustbench.backbones.mlp import MLP
from trustbench.data.catalog import load
from trustbench.data.loaders import TensorDataModule, TensorLoader
from trustbench.data.semi_random import semi_random_mnist
from trustbench.errors import ConfigError
from trustbench.evaluation.context import predict_all
from trustbench.methods.debiasing.adversarial import AdversarialDebiasing, GradientReversal
from trustbench.methods.debiasing.classifier import FairClassifier
from trustbench.methods.debiasing.dp_penalty import DemographicParityPenalty
from trustbench.methods.debiasing.reweighing import Reweighing, reweighing_weights
from trustbench.methods.debiasing.w2reg import W2Reg
from trustbench.methods.debiasing.wasserstein import w2_squared
from trustbench.metrics.fairness import fairness_report

ADAM = functools.partial(torch.optim.Adam, lr=1e-3)


def two_feature_module(cls: type[FairClassifier], **kwargs: object) -> FairClassifier:
    torch.manual_seed(0)
    return cls(MLP((2,), 2, hidden_sizes=[4]), 2, ADAM, **kwargs)


def test_reweighing_weights_on_a_hand_example() -> None:
    # n = 6; S=0 has labels (1, 1, 0), S=1 has (0, 0, 1): n_s = n_y = 3, cells (0,1) and (1,0) hold 2 rows.
    y = torch.tensor([1, 1, 0, 0, 0, 1])
    group = torch.tensor([0, 0, 0, 1, 1, 1])
    weights = reweighing_weights(y, group)
    assert torch.allclose(weights, torch.tensor([[1.5, 0.75], [0.75, 1.5]]))  # w[s, y] = 3·3 / (6·n_sy)
    per_row = weights[group, y]
    assert per_row.sum().item() == pytest.approx(6.0)
    # After weighting, P(Y = 1 | S) is the same in both groups: label and group look independent.
    for s in (0, 1):
        member = group == s
        assert (per_row[member] * y[member]).sum() / per_row[member].sum() == pytest.approx(0.5)


def test_reweighing_gives_zero_weight_to_an_empty_cell() -> None:
    weights = reweighing_weights(torch.tensor([1, 1, 0]), torch.tensor([0, 0, 1]))
    assert weights[0, 0] == 0 and weights[1, 1] == 0


def test_reweighing_task_loss_is_the_weighted_mean_cross_entropy() -> None:
    module = two_feature_module(Reweighing)
    module.cell_weights.copy_(torch.tensor([[2.0, 0.5], [1.0, 1.0]]))
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    y, group = torch.tensor([1, 0]), torch.tensor([0, 0])
    each = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    expected = (0.5 * each[0] + 2.0 * each[1]) / 2
    assert module.task_loss(logits, y, group).item() == pytest.approx(expected.item())


def test_dp_penalty_is_lam_times_the_squared_gap_of_group_means() -> None:
    module = two_feature_module(DemographicParityPenalty, lam=2.0)
    # P(Y=1|x) = sigmoid(l1 - l0): 0.5 and sigmoid(2) in S=0, sigmoid(-2) in S=1.
    logits = torch.tensor([[0.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    group = torch.tensor([0, 0, 1])
    s0 = (0.5 + torch.sigmoid(torch.tensor(2.0)).item()) / 2
    s1 = torch.sigmoid(torch.tensor(-2.0)).item()
    assert module.fairness_term(logits, torch.tensor([0, 1, 0]), group).item() == pytest.approx(
        2.0 * (s0 - s1) ** 2
    )


@pytest.mark.parametrize("cls", [DemographicParityPenalty, W2Reg])
def test_penalties_are_zero_on_a_batch_with_one_group(cls: type[FairClassifier]) -> None:
    module = two_feature_module(cls)
    logits = torch.randn(5, 2, requires_grad=True)
    term = module.fairness_term(logits, torch.ones(5, dtype=torch.long), torch.ones(5, dtype=torch.long))
    term.backward()
    assert term.item() == 0.0 and logits.grad is not None


def test_w2reg_term_is_lam_times_w2_squared_of_the_groups_probabilities() -> None:
    module = two_feature_module(W2Reg, lam=3.0)
    logits = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    group = torch.tensor([0, 1, 0, 1, 0, 1, 1, 1])
    probs = logits.softmax(dim=1)[:, 1]
    expected = 3.0 * w2_squared(probs[group == 0], probs[group == 1])
    assert module.fairness_term(logits, torch.zeros(8, dtype=torch.long), group).item() == pytest.approx(
        expected.item()
    )


def test_gradient_reversal_negates_and_scales_the_gradient() -> None:
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    (GradientReversal.apply(x, 0.5) * torch.tensor([3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [-1.5, -2.0]


def test_adversary_descends_its_loss_while_the_classifier_ascends_it() -> None:
    module = two_feature_module(AdversarialDebiasing, lam=1.0, goal="equalized_odds")
    logits = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), requires_grad=True)
    y = torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(3))
    group = torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(4))
    module.fairness_term(logits, y, group).backward()
    # The gradient the logits receive is the reversed gradient of the adversary's BCE.
    reversed_grad = logits.grad.clone()
    logits.grad = None
    module.zero_grad()
    margin = (logits[:, 1] - logits[:, 0]).detach().requires_grad_()
    soft = torch.sigmoid((1 + module.sharpness.abs()) * margin).unsqueeze(1)
    label = y.float().unsqueeze(1)
    inputs = torch.cat([soft, soft * label, soft * (1 - label)], dim=1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        module.adversary(inputs).squeeze(1), group.float()
    )
    bce.backward()
    assert torch.allclose(reversed_grad[:, 1], -margin.grad, atol=1e-6)


def test_debiasing_methods_refuse_a_multiclass_task() -> None:
    with pytest.raises(ConfigError, match="binary classifiers .* has 3 classes"):
        W2Reg(MLP((2,), 3, hidden_sizes=[4]), 3, ADAM)


def test_training_on_batches_without_groups_names_the_missing_setting() -> None:
    module = two_feature_module(W2Reg)
    with pytest.raises(ValueError, match="data.protected"):
        module.training_step((torch.zeros(2, 2), torch.zeros(2, dtype=torch.long)), 0)


def test_loader_carries_the_group_of_each_row() -> None:
    x = torch.arange(10.0).view(10, 1)
    loader = TensorLoader(x, torch.arange(10), batch_size=4, seed=0, group=torch.arange(10) % 2)
    for xb, yb, gb in loader:
        assert torch.equal(gb, xb.view(-1).long() % 2) and torch.equal(yb, xb.view(-1).long())


# --- real data: COMPAS, race (0 = African-American), label 1 = no recidivism (favourable) -----------------

METHODS = {
    "erm": (FairClassifier, {}),
    "w2reg": (W2Reg, {"lam": 10.0}),
    "dp_penalty": (DemographicParityPenalty, {"lam": 10.0}),
    "reweighing": (Reweighing, {}),
    "adversarial": (AdversarialDebiasing, {"lam": 0.3}),
}


@pytest.fixture(scope="module")
def compas_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    """Each method trained for 8 epochs on COMPAS (protected: race), and its test fairness report."""
    dataset = load("compas", tmp_path_factory.mktemp("data"))
    reports = {}
    for name, (cls, kwargs) in METHODS.items():
        datamodule = TensorDataModule(dataset, val_size=400, batch_size=256, seed=0, protected="race")
        torch.manual_seed(0)
        backbone = MLP(dataset.input_shape, 2, hidden_sizes=[64])
        module = cls(backbone, 2, functools.partial(torch.optim.Adam, lr=3e-3), **kwargs)
        trainer = pl.Trainer(
            max_epochs=8,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
        )
        trainer.fit(module, datamodule=datamodule)
        probs = predict_all(module, datamodule.x_test, 1024).probs
        reports[name] = fairness_report(
            datamodule.y_test, probs.argmax(dim=1), probs[:, 1], datamodule.groups_test
        ) | {"acc": (probs.argmax(dim=1) == datamodule.y_test).float().mean().item()}
    return reports


def test_erm_on_compas_is_accurate_and_biased_against_the_unprivileged_race(compas_reports) -> None:
    erm = compas_reports["erm"]
    assert erm["acc"] > 0.64
    assert erm["fair/race/spd"] < -0.1  # African-American defendants are predicted "no recidivism" less


@pytest.mark.parametrize("method", ["w2reg", "dp_penalty", "reweighing", "adversarial"])
def test_each_debiasing_method_narrows_the_race_gap_of_erm(compas_reports, method: str) -> None:
    erm, debiased = compas_reports["erm"], compas_reports[method]
    assert abs(debiased["fair/race/spd"]) < abs(erm["fair/race/spd"]) - 0.03
    assert debiased["fair/race/di"] > erm["fair/race/di"]
    assert debiased["acc"] > 0.6  # fairer, not useless


def test_w2reg_brings_the_groups_score_distributions_together(compas_reports) -> None:
    assert compas_reports["w2reg"]["fair/race/w2"] < 0.5 * compas_reports["erm"]["fair/race/w2"]


def test_semi_random_mnist_plants_the_papers_bias() -> None:
    data = load("mnist_semi_random", real_data.data_dir())
    mnist = real_data.real("mnist")
    s = data.groups_train["s"]
    assert 0.48 < s.float().mean().item() < 0.52
    rotated = s == 0
    assert torch.equal(data.x_train[rotated], mnist.x_train[rotated].rot90(1, dims=(2, 3)))
    assert torch.equal(data.x_train[~rotated], mnist.x_train[~rotated])
    sevens = mnist.y_train == 7
    relabelled = (data.y_train == 0) & sevens
    assert not relabelled[~rotated].any()  # only S = 0 sevens are touched
    share = relabelled[rotated].sum().item() / (sevens & rotated).sum().item()
    assert 0.62 < share < 0.71  # about 2/3
    assert torch.equal(data.y_test, (mnist.y_test >= 5).long())  # test labels are never relabelled
    assert torch.equal(
        semi_random_mnist(mnist).groups_test["s"], data.groups_test["s"]
    )  # seeded: again equal
