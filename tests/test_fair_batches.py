"""Fairness methods' training batches: groups checked once per dataset, and W2reg's unchecked penalty."""

from __future__ import annotations

import pytest
import torch

from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import TensorDataModule
from trustbench.methods.debiasing.wasserstein import W2Penalty


def rows_with_group(group: list[int]) -> ArrayDataset:
    n = len(group)
    return ArrayDataset(
        name="toy",
        kind="tabular",
        x_train=torch.arange(2.0 * n).reshape(n, 2),
        y_train=torch.tensor([i % 2 for i in range(n)]),
        x_test=torch.zeros(1, 2),
        y_test=torch.zeros(1, dtype=torch.long),
        num_classes=2,
        groups_train={"s": torch.tensor(group)},
    )


def test_a_protected_attribute_other_than_0_1_is_refused_when_the_data_module_is_built() -> None:
    with pytest.raises(
        ValueError, match=r"data.protected='s' of toy must hold only 0 and 1; got values \[0, 1, 2\]"
    ):
        TensorDataModule(rows_with_group([0, 1, 2, 1]), val_size=0, batch_size=2, seed=0, protected="s")


def test_batches_carry_the_checked_groups_of_their_rows() -> None:
    group = [0, 1, 1, 0, 1, 0]
    module = TensorDataModule(rows_with_group(group), val_size=0, batch_size=4, seed=0, protected="s")
    for x, _, batch_group in module.train_dataloader():
        assert batch_group.tolist() == [group[int(row[0]) // 2] for row in x]


@pytest.mark.parametrize("compare", ["predictions", "errors"])
def test_the_unchecked_penalty_equals_the_checked_one_and_its_gradient(compare: str) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(256, generator=generator, dtype=torch.float64)
    group = (torch.rand(256, generator=generator) < 0.67).long()
    y = (torch.rand(256, generator=generator) < 0.3).long()
    values, gradients = [], []
    for penalty in (W2Penalty(compare), W2Penalty(compare).unchecked):
        scores = logits.clone().requires_grad_()
        value = penalty(torch.sigmoid(scores), group, y)
        value.backward()
        values.append(value)
        gradients.append(scores.grad)
    assert values[0].item() == values[1].item() > 0
    assert torch.equal(gradients[0], gradients[1])
