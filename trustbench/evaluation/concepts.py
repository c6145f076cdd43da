"""The concepts suite of Greybox XAI (``method=greybox``, ``data=digit_mosaic``): the classification
metrics of the combined model, how well its network recovers the concepts, and the rule its logistic
regression learnt.

- ``xai/concepts/acc`` ↑: mean over the test mosaics and the concepts of [p_c > 0.5] = true concept.
- ``xai/concepts/exact`` ↑: share of test mosaics whose whole description (all concepts) is right.
- ``xai/concepts/rule_acc`` ↑: accuracy of the logistic regression given the true concepts: whether it
  learnt the class rule itself, apart from the network's concept errors.

Artefacts: ``greybox_rule.csv`` (the regression's weight of each concept for each class, the model's
explanation) and ``plots/xai_greybox_rule.png``, the same as a heat map.
"""

from __future__ import annotations

import pandas as pd
import torch

from trustbench.evaluation.classification import evaluate_classification
from trustbench.evaluation.context import EvaluationContext
from trustbench.plots.explanations import rule_weights


@torch.no_grad()
def evaluate_concepts(context: EvaluationContext) -> dict[str, float]:
    """The metrics and artefacts of the module docstring."""
    module, datamodule, dataset = context.module.eval(), context.datamodule, context.dataset
    if not hasattr(module, "concept_logits") or dataset.annotations_test is None:
        raise ValueError("the concepts suite scores a concept model (method=greybox) on data=digit_mosaic")
    metrics = evaluate_classification(context)
    x, truth = datamodule.x_test.to(module.device), dataset.annotations_test.to(module.device).bool()
    size = datamodule.eval_batch_size
    predicted = torch.cat([module.concept_logits(x[i : i + size]) > 0 for i in range(0, len(x), size)])
    correct = predicted == truth
    rule = module.regression(truth.float()).argmax(dim=1).cpu()
    metrics |= {
        "xai/concepts/acc": correct.float().mean().item(),
        "xai/concepts/exact": correct.all(dim=1).float().mean().item(),
        "xai/concepts/rule_acc": (rule == datamodule.y_test).float().mean().item(),
    }
    weights = module.regression.weight.detach().cpu()
    concepts = [f"digit {c} present" for c in range(weights.shape[1])]
    classes = list(dataset.class_names or range(weights.shape[0]))
    table = pd.DataFrame(weights.numpy(), index=classes, columns=concepts)
    table.to_csv(context.run_dir / "greybox_rule.csv")
    path = context.run_dir / "plots" / "xai_greybox_rule.png"
    context.draw(lambda: {"xai/greybox_rule": rule_weights(weights, classes, concepts, path)})
    return metrics
