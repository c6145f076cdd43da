"""What batching buys the gradient counterfactual explainers: one search over all inputs vs one per input.

On the configured Adult backbone (an MLP, 256-256) trained here for `--epochs` on the real Adult rows, the
first `--points` test rows are explained towards the other class by each explainer twice, in one process:
  * batched: one `explain` call on all rows;
  * looped: one `explain` call per row, with the same explainer, hyperparameters and number of steps;
and the table shows wall and CPU time (the fair measure on a busy machine), the speed-up (target >= 20x)
and the validity of each (for DiCE over all
k counterfactuals), so that equal validity is visible. Wachter draws nothing, so its two answers must also
agree; DiCE's random starts differ between the two ways, so only its validity and cost are compared.

    python scripts/bench_counterfactual.py [--points 1000] [--epochs 2] [--explainers wachter,dice]
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from trustbench.app import CONFIG_DIR
from trustbench.data.catalog import load
from trustbench.data.loaders import epoch_permutation
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import EXPLAINERS, Explainer, ExplanationData, build
from trustbench.methods.counterfactual.search import inverse_mad, weighted_l1
from trustbench.methods.erm import ERM

SEED = 0


def trained_erm(dataset, epochs: int) -> ERM:
    """The configured Adult backbone trained by Adam (lr 1e-3, batch 256) for `epochs` on all train rows."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=adult", "method=erm"])
    torch.manual_seed(SEED)
    backbone = instantiate(cfg.backbone.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    module = ERM(backbone, dataset.num_classes, optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
    optimizer = module.configure_optimizers()
    for epoch in range(epochs):
        for batch in epoch_permutation(len(dataset.x_train), SEED, epoch).split(cfg.data.batch_size):
            optimizer.zero_grad()
            module.training_loss(dataset.x_train[batch], dataset.y_train[batch]).backward()
            optimizer.step()
    return module.eval().requires_grad_(False)


def timed_explain(
    explainer: Explainer, model, x: torch.Tensor, target: torch.Tensor, constraints, one_at_a_time: bool
) -> tuple[torch.Tensor, float, float]:
    """The counterfactuals and the wall and CPU seconds they took (CPU time stays fair on a busy machine)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    if one_at_a_time:
        answer = torch.cat(
            [explainer.explain(model, x[i : i + 1], target[i : i + 1], constraints) for i in range(len(x))]
        )
    else:
        answer = explainer.explain(model, x, target, constraints)
    return answer, time.perf_counter() - start, time.process_time() - start_cpu


def quality(model, sets: torch.Tensor, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor):
    """Validity over all counterfactuals (N, k, D) and their mean MAD-weighted L1 distance to the input."""
    predicted = model(sets.flatten(0, 1)).argmax(dim=1).view(sets.shape[:2])
    validity = (predicted == target.unsqueeze(1)).float().mean()
    return float(validity), float(weighted_l1(sets, x.unsqueeze(1), weights).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--explainers", default="wachter,dice")
    args = parser.parse_args()

    dataset = load("adult", os.environ.get("TRUSTBENCH_DATA", Path.home() / ".cache" / "trustbench"))
    module = trained_erm(dataset, args.epochs)
    model = module.backbone
    accuracy = (model(dataset.x_test).argmax(dim=1) == dataset.y_test).float().mean()
    x = dataset.x_test[: args.points]
    target = 1 - model(x).argmax(dim=1)
    constraints = Constraints.for_dataset(dataset, lambda raw: raw)
    weights = inverse_mad(dataset.x_train)
    print(
        f"adult, mlp 256-256 ({args.epochs} epochs, test accuracy {accuracy:.3f}), {len(x)} test rows "
        f"({int(target.sum())} to >50K), {torch.get_num_threads()} threads"
    )
    print(
        f"{'explainer':<10} {'way':<8} {'wall s':>8} {'CPU s':>8} {'validity':>9} {'MAD-L1':>7}   "
        "speed-up wall / CPU (target >= 20x)"
    )
    with tempfile.TemporaryDirectory() as cache:
        data = ExplanationData(
            dataset.x_train, dataset.y_train, 2, constraints, module, "adult", Path(cache), SEED
        )
        for name in args.explainers.split(","):
            explainer = build(name).fit(data)
            batched, wall, cpu = timed_explain(explainer, model, x, target, constraints, one_at_a_time=False)
            looped, loop_wall, loop_cpu = timed_explain(
                explainer, model, x, target, constraints, one_at_a_time=True
            )
            speed_up = f"{loop_wall / wall:.1f}x / {loop_cpu / cpu:.1f}x"
            for way, answer, seconds, note in (
                ("batched", batched, (wall, cpu), speed_up),
                ("looped", looped, (loop_wall, loop_cpu), ""),
            ):
                sets = answer if EXPLAINERS[name].returns_sets else answer.unsqueeze(1)
                validity, cost = quality(model, sets, x, target, weights)
                print(
                    f"{name:<10} {way:<8} {seconds[0]:>8.2f} {seconds[1]:>8.2f} {validity:>9.3f} {cost:>7.3f}"
                    f"   {note}"
                )
            if not EXPLAINERS[name].returns_sets:
                gaps = (batched - looped).abs().flatten(1).amax(dim=1)
                print(
                    f"{name:<10} batched vs looped: largest element gap {gaps.max():.1e}; "
                    f"{int((gaps > 1e-4).sum())} of {len(gaps)} rows differ by more than 1e-4"
                )


if __name__ == "__main__":
    main()
