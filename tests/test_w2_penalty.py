"""The differentiable W₂² estimate and the W2Penalty of Risser et al. (JMIV 2022)."""

from __future__ import annotations

import itertools

import pytest
import torch
from real_data import real

from trustbench.backbones.mlp import MLP
from trustbench.data.loaders import TensorDataModule
from trustbench.errors import ConfigError
from trustbench.methods.debiasing.w2reg import W2Reg
from trustbench.methods.debiasing.wasserstein import W2Penalty, w2_squared
from trustbench.metrics.fairness import wasserstein2_distance


def samples(n: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A standard normal sample of n and a skewed (exponential) sample of m, in float64."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, generator=generator, dtype=torch.float64)
    b = torch.empty(m, dtype=torch.float64).exponential_(generator=generator)
    return a, b


@pytest.mark.parametrize("n_quantiles", [None, 4, 11])
def test_gradient_matches_finite_differences_on_untied_unequal_samples(n_quantiles: int | None) -> None:
    a, b = samples(5, 7, seed=0)
    inputs = (a.requires_grad_(), b.requires_grad_())
    assert torch.autograd.gradcheck(lambda x, y: w2_squared(x, y, n_quantiles), inputs)


def test_gradients_reach_every_sample_of_both_groups() -> None:
    a, b = samples(6, 9, seed=1)
    a.requires_grad_()
    b.requires_grad_()
    w2_squared(a, b).backward()
    assert (a.grad != 0).all() and (b.grad != 0).all()


def test_identical_samples_give_zero_whatever_their_order() -> None:
    a, _ = samples(40, 1, seed=2)
    assert w2_squared(a, a[torch.randperm(40)]).item() == 0.0


def test_translating_a_sample_by_c_gives_c_squared() -> None:
    a, _ = samples(25, 1, seed=3)
    assert w2_squared(a, a - 0.4).item() == pytest.approx(0.16, abs=1e-12)
    assert w2_squared(a, a + 1.5, n_quantiles=99).item() == pytest.approx(2.25, abs=1e-12)


def relative_error_to_exact(a: torch.Tensor, b: torch.Tensor, n_quantiles: int | None) -> float:
    exact = wasserstein2_distance(a, b) ** 2
    return abs(w2_squared(a, b, n_quantiles).item() - exact) / exact


def test_default_grid_estimate_approaches_the_exact_w2_squared_as_samples_grow() -> None:
    sizes = [(30, 20), (3000, 2000), (60_000, 40_000)]
    errors = [relative_error_to_exact(*samples(n, m, seed=n), None) for n, m in sizes]
    # measured: 27%, 0.9%, 0.09% for a normal against an exponential sample
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.002


def test_paper_grid_of_99_levels_is_within_a_fraction_of_a_percent_on_probabilities() -> None:
    # a fixed grid keeps an integration error that does not shrink with n; for scores in [0, 1] it is small
    a, b = samples(60_000, 40_000, seed=6)
    probs_a, probs_b = torch.sigmoid(a), torch.sigmoid(2 * b - 1)
    assert relative_error_to_exact(probs_a, probs_b, 99) < 0.002


def test_estimate_is_a_nonnegative_scalar_in_the_input_dtype() -> None:
    a, b = samples(4, 3, seed=4)
    value = w2_squared(a.float(), b.float())
    assert value.shape == () and value.dtype == torch.float32 and value.item() >= 0


def test_empty_or_mismatched_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="scores_b must be a non-empty 1-D float tensor"):
        w2_squared(torch.rand(3), torch.rand(0))
    with pytest.raises(ValueError, match="cast them to one dtype"):
        w2_squared(torch.rand(3), torch.rand(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_quantiles must be a positive"):
        w2_squared(torch.rand(3), torch.rand(3), n_quantiles=0)


def test_prediction_penalty_is_w2_squared_between_unprivileged_and_privileged_probabilities() -> None:
    probs = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.7, 0.2])
    group = torch.tensor([0, 1, 0, 1, 1, 0])
    expected = w2_squared(probs[[0, 2, 5]], probs[[1, 3, 4]])
    assert W2Penalty()(probs, group).item() == pytest.approx(expected.item())
    # sorted groups: 0.1 0.2 0.3 vs 0.7 0.8 0.9, a translation by 0.6, so the penalty is 0.36
    assert expected.item() == pytest.approx(0.36)


def test_error_penalty_compares_absolute_errors_not_predictions() -> None:
    # group 0 predicts 0.2 for y = 0 and 0.8 for y = 1, group 1 predicts 0.8 for y = 0 and 0.2 for y = 1:
    # errors |p - y| are 0.2 0.2 in group 0 and 0.8 0.8 in group 1, predictions are the same set {0.2, 0.8}
    probs = torch.tensor([0.2, 0.8, 0.8, 0.2])
    y_true = torch.tensor([0, 1, 0, 1])
    group = torch.tensor([0, 0, 1, 1])
    assert W2Penalty("predictions")(probs, group).item() == pytest.approx(0.0)
    assert W2Penalty("errors")(probs, group, y_true).item() == pytest.approx(0.6**2)


def test_error_penalty_is_zero_when_both_groups_err_alike_despite_different_predictions() -> None:
    # group 0: y = 1 predicted 0.9 and y = 0 predicted 0.3; group 1: y = 0 predicted 0.1, y = 1 predicted 0.7
    probs = torch.tensor([0.9, 0.3, 0.1, 0.7])
    y_true = torch.tensor([1, 0, 0, 1])
    group = torch.tensor([0, 0, 1, 1])
    assert W2Penalty("errors")(probs, group, y_true).item() == pytest.approx(0.0, abs=1e-12)
    assert W2Penalty("predictions")(probs, group).item() > 0.01


def test_a_batch_with_one_group_gives_a_zero_penalty_that_still_backpropagates() -> None:
    probs = torch.tensor([0.2, 0.6, 0.9], requires_grad=True)
    penalty = W2Penalty()(probs, torch.tensor([1, 1, 1]))
    penalty.backward()
    assert penalty.item() == 0.0 and probs.grad.tolist() == [0.0, 0.0, 0.0]


def test_descending_the_penalty_brings_the_groups_predictions_together() -> None:
    generator = torch.Generator().manual_seed(5)
    logits = torch.cat([torch.randn(64, generator=generator) - 2, torch.randn(96, generator=generator) + 1])
    logits.requires_grad_()
    group = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(96, dtype=torch.long)])
    penalty = W2Penalty()
    optimizer = torch.optim.SGD([logits], lr=50.0)
    start = penalty(torch.sigmoid(logits), group).item()
    for _ in range(100):
        optimizer.zero_grad()
        penalty(torch.sigmoid(logits), group).backward()
        optimizer.step()
    assert penalty(torch.sigmoid(logits), group).item() < 0.01 * start


def test_penalty_rejects_logits_an_unknown_variant_and_errors_without_labels() -> None:
    group = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="Apply a sigmoid"):
        W2Penalty()(torch.tensor([-2.0, 3.0]), group)
    with pytest.raises(ValueError, match="compare must be 'predictions' or 'errors'"):
        W2Penalty("logits")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs y_true"):
        W2Penalty("errors")(torch.tensor([0.2, 0.7]), group)
    with pytest.raises(ValueError, match="group must hold only 0 and 1"):
        W2Penalty()(torch.tensor([0.2, 0.7]), torch.tensor([0, 2]))


@pytest.fixture(scope="module")
def adult_batches() -> list[tuple[torch.Tensor, ...]]:
    """Six real Adult training batches of 256 rows (x, y, sex) with the logits of a seeded MLP, scaled by 4
    so the probabilities spread over (0, 1) as after training rather than bunching near 0.5."""
    dataset = real("adult")
    datamodule = TensorDataModule(dataset, val_size=3000, batch_size=256, seed=0, protected="sex")
    torch.manual_seed(0)
    backbone = MLP(dataset.input_shape, 2, hidden_sizes=[32])
    batches = []
    for x, y, group in itertools.islice(datamodule.train_dataloader(), 6):
        with torch.no_grad():
            batches.append((4 * backbone(x), y, group))
    return batches


def brute_force_w2_squared(values: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """W₂² from each group's own ``torch.quantile`` at the levels (k − ½)/K, K the larger group."""
    a, b = values[group == 0], values[group == 1]
    k = max(len(a), len(b))
    levels = (torch.arange(k, dtype=values.dtype) + 0.5) / k
    return (torch.quantile(a, levels) - torch.quantile(b, levels)).square().mean()


def summed_over_ties(rows: torch.Tensor, group: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``rows`` summed over the rows of one group that share a value: where values tie, sorting is not
    differentiable and each implementation hands the tied rows' gradient out in its own order."""
    _, tie_class = torch.unique(torch.stack([group.to(values.dtype), values]), dim=1, return_inverse=True)
    return rows.new_zeros((int(tie_class.max()) + 1, *rows.shape[1:])).index_add_(0, tie_class, rows)


@pytest.mark.parametrize("compare", ["predictions", "errors"])
def test_w2reg_term_and_its_gradient_equal_brute_force_quantiles_on_real_adult_batches(
    adult_batches: list[tuple[torch.Tensor, ...]], compare: str
) -> None:
    """The training term against float64 ``torch.quantile`` of the same float32 values (so in the same
    order), with the chain rule by hand: d/dlogits = dW/dv · dv/dp · p(1 − p) · (−1, 1), dv/dp = 1 for
    predictions and sign(p − y) for errors."""
    module = W2Reg(MLP((1,), 2, hidden_sizes=[2]), 2, torch.optim.SGD, lam=3.0, compare=compare)
    for logits, y, group in adult_batches:
        assert 0 < group.sum() < len(group)  # both groups, so the penalty is defined
        ours = logits.clone().requires_grad_()
        value = module.fairness_term(ours, y, group)
        value.backward()
        probs = torch.sigmoid(logits[:, 1] - logits[:, 0])
        values = probs if compare == "predictions" else (probs - y).abs()
        exact = values.double().requires_grad_()
        expected = 3.0 * brute_force_w2_squared(exact, group)
        expected.backward()
        assert expected.item() > 1e-3  # the groups' values differ: a value worth comparing
        assert value.item() == pytest.approx(expected.item(), abs=1e-6)
        slope = 1.0 if compare == "predictions" else (probs - y).sign().double()
        by_hand = (exact.grad * slope * probs * (1 - probs))[:, None] * torch.tensor([-1.0, 1.0])
        torch.testing.assert_close(
            summed_over_ties(ours.grad.double(), group, exact.detach()),
            summed_over_ties(by_hand, group, exact.detach()),
            rtol=0,
            atol=1e-6,
        )


def test_w2reg_refuses_a_negative_weight() -> None:
    with pytest.raises(ConfigError, match="method.lam weighs the W2 penalty and must be >= 0; got -1.0"):
        W2Reg(MLP((1,), 2, hidden_sizes=[2]), 2, torch.optim.SGD, lam=-1.0)
