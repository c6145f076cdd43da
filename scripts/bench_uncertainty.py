"""Costs of the uncertainty methods' training, as ratios measured in one process on the same batches.

* trustbench's DUQ training step vs the authors' (`ReferenceDUQ`: train_duq_fm.py's step in plain eager
  PyTorch), first checked equal to 1e-5 after a few steps from identical weights on the same batches, then
  timed taking turns (target: trustbench <= 0.55 x the reference).
* Deep ensemble of M members vs M x one ERM model (target: ensemble epoch <= 1.1 x M x single).
* DUQ with its gradient penalty vs DUQ without it vs ERM (samples/s of a full training step).
* The ensemble's M members run one after another (as `DeepEnsemble` trains them) vs stacked into one
  module with torch.func (`stack_module_state` + `functional_call` under `vmap`, PyTorch's model-ensembling
  recipe), for a full training step (forward, loss, backward, SGD step) with the CNN and LeNet backbones.
  The stacked step is first checked against the sequential one: one step from identical weights must give
  the same parameters and BatchNorm running statistics to 1e-5.

Each measurement is the median over `--repeats` timed passes of `--steps` training steps on real
Fashion-MNIST batches (batch 128), with the DUQ CNN backbone unless said otherwise, after one warm-up pass.

    python scripts/bench_uncertainty.py [--steps 40] [--repeats 3] [--members 5]
        [--duq-only|--duq-profile|--stacking-only]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from trustbench.app import CONFIG_DIR
from trustbench.data.catalog import load
from trustbench.experiment import build_module
from trustbench.methods.base import TrustModule
from trustbench.methods.uncertainty.duq import DUQ
from trustbench.methods.uncertainty.ensemble import DeepEnsemble

BATCH_SIZE = 128
STACKING_BACKBONES = ("cnn", "lenet")
STACKING_TOLERANCE = 1e-5
DUQ_CHECKED_STEPS = 3
DUQ_TOLERANCE = 1e-5

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


class ReferenceDUQ(nn.Module):
    """DUQ's training step as the authors' code writes it, to time trustbench's DUQ against.

    github.com/y0ast/deterministic-uncertainty-quantification: the network of `Model.compute_features` in
    utils/cnn_duq.py (conv-BN-ReLU-maxpool three times, then a ReLU fully connected layer, in functional
    calls), `CNN_DUQ`'s per-class embedding by einsum, its RBF kernel and centroid update, and the step of
    train_duq_fm.py (`step` below). Plain eager PyTorch throughout. The layers, W and the centroid state are
    copied from a trustbench `DUQ`, so both start from the same weights.
    """

    def __init__(self, duq: DUQ) -> None:
        super().__init__()
        stages = duq.backbone.conv
        self.conv1, self.bn1 = copy.deepcopy(stages[0][0]), copy.deepcopy(stages[0][1])
        self.conv2, self.bn2 = copy.deepcopy(stages[1][0]), copy.deepcopy(stages[1][1])
        self.conv3, self.bn3 = copy.deepcopy(stages[2][0]), copy.deepcopy(stages[2][1])
        self.fc1 = copy.deepcopy(duq.backbone.embedding[0])
        self.W = nn.Parameter(duq.weight.detach().clone())
        self.register_buffer("N", duq.centroid_counts.clone())
        self.register_buffer("m", duq.centroid_sums.clone())
        self.sigma, self.gamma, self.num_classes = duq.length_scale, duq.gamma, duq.num_classes

    def compute_features(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.max_pool2d(F.relu(bn(conv(x))), 2, 2)
        return F.relu(self.fc1(x.flatten(1)))

    def last_layer(self, features: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,mnj->imn", features, self.W)

    def output_layer(self, z: torch.Tensor) -> torch.Tensor:
        centroids = self.m / self.N.unsqueeze(0)
        return (-((z - centroids.unsqueeze(0)) ** 2)).mean(1).div(2 * self.sigma**2).exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.last_layer(self.compute_features(x)))

    def update_embeddings(self, x: torch.Tensor, y_one_hot: torch.Tensor) -> None:
        z = self.last_layer(self.compute_features(x))
        self.N = self.gamma * self.N + (1 - self.gamma) * y_one_hot.sum(0)
        self.m = self.gamma * self.m + (1 - self.gamma) * torch.einsum("ijk,ik->jk", z, y_one_hot)

    def step(
        self, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, penalty: float
    ) -> None:
        """train_duq_fm.py's `step`: BCE + λ · two-sided penalty from autograd.grad(create_graph=True),
        SGD step, then the centroids' EMA in evaluation mode under no_grad."""
        self.train()
        optimizer.zero_grad()
        y_one_hot = F.one_hot(y, num_classes=self.num_classes).float()
        x = x.detach().requires_grad_(True)
        y_pred = self(x)
        loss = F.binary_cross_entropy(y_pred, y_one_hot)
        y_pred_sum = y_pred.sum(1)
        (gradients,) = torch.autograd.grad(
            outputs=y_pred_sum,
            inputs=x,
            grad_outputs=torch.ones_like(y_pred_sum),
            create_graph=True,
            retain_graph=True,
        )
        loss += penalty * ((gradients.flatten(start_dim=1).norm(2, dim=1) - 1) ** 2).mean()
        x.requires_grad_(False)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            self.eval()
            self.update_embeddings(x, y_one_hot)


def reference_state(reference: ReferenceDUQ) -> dict[str, torch.Tensor]:
    """The reference's weights and centroid state under trustbench's `DUQ` state-dict names."""
    names = {"W": "weight", "N": "centroid_counts", "m": "centroid_sums", "fc1": "backbone.embedding.0"}
    names |= {
        f"{layer}{i}": f"backbone.conv.{i - 1}.{index}"
        for i in (1, 2, 3)
        for layer, index in (("conv", 0), ("bn", 1))
    }
    state = {}
    for name, value in reference.state_dict().items():
        prefix, _, rest = name.partition(".")
        state[names[prefix] + (f".{rest}" if rest else "")] = value
    return state


def duq_against_reference(dataset, x: torch.Tensor, y: torch.Tensor, steps: int, repeats: int) -> None:
    """Check trustbench's DUQ step equal to the reference's on the same batches; then time both, in turns."""
    batches = split_batches(x, y, steps)
    duq = build("duq", dataset)
    reference = ReferenceDUQ(duq)
    duq_optimizer = duq.optimizer_factory(params=duq.parameters())
    reference_optimizer = duq.optimizer_factory(params=reference.parameters())
    for index, (xb, yb) in enumerate(batches[:DUQ_CHECKED_STEPS]):
        training_step(duq, duq_optimizer, xb, yb, index)
        reference.step(reference_optimizer, xb, yb, duq.gradient_penalty)
    ours = duq.state_dict()
    difference = max(
        (value - ours[name]).abs().max().item() for name, value in reference_state(reference).items()
    )
    print(
        f"DUQ vs the reference: after {DUQ_CHECKED_STEPS} steps from identical weights, max |difference| "
        f"over weights, BatchNorm statistics and centroids = {difference:.2e}"
    )
    if difference > DUQ_TOLERANCE:
        raise RuntimeError(
            f"trustbench's DUQ step differs from the reference's by {difference:.2e} "
            f"(allowed {DUQ_TOLERANCE:g}); timing them would compare different computations."
        )

    def ours_pass() -> None:
        for index, (xb, yb) in enumerate(batches):
            training_step(duq, duq_optimizer, xb, yb, index)

    def reference_pass() -> None:
        for xb, yb in batches:
            reference.step(reference_optimizer, xb, yb, duq.gradient_penalty)

    times = alternating_medians({"reference": reference_pass, "trustbench": ours_pass}, repeats)
    print(
        f"DUQ training step, batch {BATCH_SIZE}: reference {times['reference'] / steps:.4f} s, trustbench "
        f"{times['trustbench'] / steps:.4f} s; trustbench / reference = "
        f"{times['trustbench'] / times['reference']:.3f} (target <= 0.55)"
    )


def profile_duq_step(dataset, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """Where trustbench's DUQ step spends its time: torch.profiler's operators by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    batches = split_batches(x, y, steps)
    duq = build("duq", dataset)
    optimizer = duq.optimizer_factory(params=duq.parameters())
    training_step(duq, optimizer, *batches[0], 0)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for index, (xb, yb) in enumerate(batches):
            training_step(duq, optimizer, xb, yb, index)
    print(f"DUQ step profile over {steps} steps (self CPU time; a call count / {steps} is per step):")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def alternating_medians(passes: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median wall time of each pass over `repeats` rounds in which the passes take turns, after a warm-up."""
    samples: dict[str, list[float]] = {name: [] for name in passes}
    for round_index in range(repeats + 1):
        for name, one_pass in passes.items():
            start = time.perf_counter()
            one_pass()
            if round_index:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument(
        "--duq-only", action="store_true", help="only trustbench's DUQ step against the reference's"
    )
    parser.add_argument(
        "--duq-profile", action="store_true", help="only the operator profile of trustbench's DUQ step"
    )
    parser.add_argument(
        "--stacking-only",
        action="store_true",
        help="only the sequential vs torch.func-stacked ensemble comparison",
    )
    args = parser.parse_args()

    # the data dir the runner uses by default (decoded-data caches are written there, never in the cwd)
    dataset = load("fashion_mnist", os.environ.get("TRUSTBENCH_DATA", Path.home() / ".cache" / "trustbench"))
    x, y = dataset.x_train[: args.steps * BATCH_SIZE], dataset.y_train[: args.steps * BATCH_SIZE]
    samples = args.steps * BATCH_SIZE
    print(f"{torch.get_num_threads()} threads, {args.steps} steps of batch 128 on Fashion-MNIST")
    if args.duq_profile:
        profile_duq_step(dataset, x, y, min(args.steps, 5))
        return
    duq_against_reference(dataset, x, y, args.steps, args.repeats)
    if args.duq_only:
        return

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
