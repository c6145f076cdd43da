"""Costs of the uncertainty methods' training, as ratios measured in one process on the same batches.

* Deep ensemble of M members vs M x one ERM model (target: ensemble epoch <= 1.1 x M x single).
* DUQ with its gradient penalty vs DUQ without it vs ERM (samples/s of a full training step).
* The ensemble's M members run one after another (as `DeepEnsemble` trains them) vs stacked into one
  module with torch.func (`stack_module_state` + `functional_call` under `vmap`, PyTorch's model-ensembling
  recipe), for a full training step (forward, loss, backward, SGD step) with the CNN and LeNet backbones.
  The stacked step is first checked against the sequential one: one step from identical weights must give
  the same parameters and BatchNorm running statistics to 1e-5.

Each measurement is the median over `--repeats` timed passes of `--steps` training steps on real
Fashion-MNIST batches (batch 128), with the DUQ CNN backbone unless said otherwise, after one warm-up pass.

    python scripts/bench_uncertainty.py [--steps 40] [--repeats 3] [--members 5] [--stacking-only]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from trustbench.app import CONFIG_DIR
from trustbench.data.catalog import load
from trustbench.experiment import build_module
from trustbench.methods.base import TrustModule
from trustbench.methods.uncertainty.ensemble import DeepEnsemble

BATCH_SIZE = 128
STACKING_BACKBONES = ("cnn", "lenet")
STACKING_TOLERANCE = 1e-5

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def build(method: str, dataset, *overrides: str, backbone: str = "cnn") -> TrustModule:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "config", overrides=["data=fashion_mnist", f"backbone={backbone}", f"method={method}", *overrides]
        )
    torch.manual_seed(0)
    backbone_net = instantiate(
        cfg.backbone.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes
    )
    return build_module(cfg, backbone_net, dataset.num_classes)


def build_ensemble(dataset, backbone: str, members: int) -> DeepEnsemble:
    return build("ensemble", dataset, f"method.module.num_members={members}", backbone=backbone)


def split_batches(x: torch.Tensor, y: torch.Tensor, steps: int) -> Batches:
    return [
        (x[i * BATCH_SIZE : (i + 1) * BATCH_SIZE], y[i * BATCH_SIZE : (i + 1) * BATCH_SIZE])
        for i in range(steps)
    ]


def median_seconds(one_pass: Callable[[], None], repeats: int) -> float:
    """Median wall time of `repeats` calls of `one_pass`, after one untimed warm-up call."""

    def timed() -> float:
        start = time.perf_counter()
        one_pass()
        return time.perf_counter() - start

    timed()
    return statistics.median(timed() for _ in range(repeats))


def training_step(
    module: TrustModule, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor, index: int
) -> None:
    """One optimiser step of `module`: loss, backward, step, the method's batch-end hook."""
    optimizer.zero_grad(set_to_none=True)
    if isinstance(module, DeepEnsemble):  # its training step: one backward per member
        module.backward_members(xb, yb)
    else:
        module.training_loss(xb, yb).backward()
    optimizer.step()
    module.on_train_batch_end(None, (xb, yb), index)


def seconds_per_pass(
    module: TrustModule, x: torch.Tensor, y: torch.Tensor, steps: int, repeats: int
) -> float:
    """Median wall time of `steps` optimiser steps (loss, backward, step, the method's batch-end hook)."""
    optimizer = module.optimizer_factory(params=module.parameters())
    batches = split_batches(x, y, steps)

    def one_pass() -> None:
        module.train()
        for index, (xb, yb) in enumerate(batches):
            training_step(module, optimizer, xb, yb, index)

    return median_seconds(one_pass, repeats)


class StackedEnsemble:
    """The members of a `DeepEnsemble` as one module vectorised over a leading member axis with torch.func.

    `stack_module_state` copies the members' current parameters into new leaf tensors (M × the member's
    shape, requires_grad) trained by one optimiser built by the ensemble's own factory, so SGD's lr,
    momentum and weight decay are the config's. Every member sees the same batch (the ensemble's
    convention) and the loss is the sum of the members' mean cross-entropies, so each member's gradient is
    that of its own loss. BatchNorm running statistics are stacked buffers mapped along the member axis,
    so their in-place updates in training mode land in each member's own slice. Dropout draws an
    independent mask per member (`randomness="different"`). Unlike `DeepEnsemble.backward_members`, all M
    members' activations are alive at once.
    """

    def __init__(self, ensemble: DeepEnsemble) -> None:
        ensemble.train()
        self.params, self.buffers = stack_module_state(list(ensemble.members))
        self.skeleton = copy.deepcopy(ensemble.members[0]).to("meta")
        self.optimizer = ensemble.optimizer_factory(params=self.params.values())
        self.member_losses = vmap(self.member_loss, in_dims=(0, 0, None, None), randomness="different")

    def member_loss(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> torch.Tensor:
        return F.cross_entropy(functional_call(self.skeleton, (params, buffers), (x,)), y)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.member_losses(self.params, self.buffers, x, y).sum().backward()
        self.optimizer.step()


def max_difference(stacked: dict[str, torch.Tensor], members: dict[str, torch.Tensor]) -> float:
    return max(
        ((stacked[name].double() - members[name].double()).abs().max().item() for name in members),
        default=0.0,
    )


def check_stacked_step(ensemble: DeepEnsemble, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Largest |stacked − sequential| over parameters and over buffers after one step from equal weights."""
    stacked = StackedEnsemble(ensemble)
    stacked.step(x, y)
    optimizer = ensemble.optimizer_factory(params=ensemble.parameters())
    training_step(ensemble, optimizer, x, y, 0)
    params, buffers = stack_module_state(list(ensemble.members))
    return max_difference(stacked.params, params), max_difference(stacked.buffers, buffers)


def stacking_row(
    dataset, backbone: str, x: torch.Tensor, y: torch.Tensor, steps: int, repeats: int, members: int
) -> tuple[str, float, float]:
    """Seconds per step of the sequential and of the stacked ensemble, once the stacked step is checked."""
    batches = split_batches(x, y, steps)
    checked = build_ensemble(dataset, backbone, members)
    has_buffers = any(True for _ in checked.buffers())
    params_diff, buffers_diff = check_stacked_step(checked, *batches[0])
    print(
        f"{backbone}: one step from identical weights, max |stacked - sequential| = "
        f"{params_diff:.2e} over parameters, "
        + (f"{buffers_diff:.2e} over BatchNorm running statistics" if has_buffers else "no buffers")
    )
    if max(params_diff, buffers_diff) > STACKING_TOLERANCE:
        raise RuntimeError(
            f"the stacked ensemble's training step differs from the sequential one on {backbone} by "
            f"{max(params_diff, buffers_diff):.2e} (allowed {STACKING_TOLERANCE:g}); timing it would "
            "compare different computations. Fix StackedEnsemble before reading its timings."
        )
    sequential = seconds_per_pass(build_ensemble(dataset, backbone, members), x, y, steps, repeats)
    stacked = StackedEnsemble(build_ensemble(dataset, backbone, members))

    def stacked_pass() -> None:
        for xb, yb in batches:
            stacked.step(xb, yb)

    return backbone, sequential / steps, median_seconds(stacked_pass, repeats) / steps


def print_stacking_table(rows: list[tuple[str, float, float]], members: int) -> None:
    print(
        f"ensemble of {members}, full training step (forward, loss, backward, SGD step), batch {BATCH_SIZE}"
    )
    print(f"{'backbone':<9}  {'sequential s/step':>17}  {'stacked s/step':>14}  {'stacked/seq':>11}  faster")
    for backbone, sequential, stacked in rows:
        faster = "stacked" if stacked < sequential else "sequential"
        print(f"{backbone:<9}  {sequential:17.4f}  {stacked:14.4f}  {stacked / sequential:11.3f}  {faster}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument(
        "--stacking-only",
        action="store_true",
        help="only the sequential vs torch.func-stacked ensemble comparison",
    )
    args = parser.parse_args()

    dataset = load("fashion_mnist", "unused-data-dir-falls-back-to-mirrors")
    x, y = dataset.x_train[: args.steps * BATCH_SIZE], dataset.y_train[: args.steps * BATCH_SIZE]
    samples = args.steps * BATCH_SIZE

    if not args.stacking_only:
        erm = seconds_per_pass(build("erm", dataset), x, y, args.steps, args.repeats)
        ensemble = seconds_per_pass(
            build("ensemble", dataset, f"method.module.num_members={args.members}"),
            x,
            y,
            args.steps,
            args.repeats,
        )
        duq = seconds_per_pass(build("duq", dataset), x, y, args.steps, args.repeats)
        duq_no_penalty = seconds_per_pass(
            build("duq", dataset, "method.module.gradient_penalty=0"), x, y, args.steps, args.repeats
        )
        print(f"{torch.get_num_threads()} threads, {args.steps} steps of batch 128, DUQ CNN on Fashion-MNIST")
        print(f"ERM:                      {samples / erm:7.0f} samples/s")
        print(
            f"ensemble of {args.members}:           {samples / ensemble:7.0f} samples/s; "
            f"epoch time / ({args.members} x ERM) = {ensemble / (args.members * erm):.3f} (target <= 1.1)"
        )
        print(
            f"DUQ, no gradient penalty: {samples / duq_no_penalty:7.0f} samples/s "
            f"({duq_no_penalty / erm:.2f} x ERM time)"
        )
        print(
            f"DUQ, penalty 0.05:        {samples / duq:7.0f} samples/s ({duq / erm:.2f} x ERM time, "
            f"{duq / duq_no_penalty:.2f} x DUQ without it)"
        )
        print(
            f"full DUQ recipe (30 epochs x 55,000 images) at this rate: "
            f"{30 * 55_000 * duq / samples / 60:.0f} min"
        )
        print()

    print(f"{torch.get_num_threads()} threads, {args.steps} steps on Fashion-MNIST, sequential vs stacked")
    rows = [
        stacking_row(dataset, backbone, x, y, args.steps, args.repeats, args.members)
        for backbone in STACKING_BACKBONES
    ]
    print_stacking_table(rows, args.members)


if __name__ == "__main__":
    main()
