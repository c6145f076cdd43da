"""What a reader needs beside a number: the family a metric key belongs to and what the metric means.

One table for the whole report, keyed by a key's first segment (the family) and last segment (the metric),
so `ood/mnist/auroc`, `ood/near/auroc` and an audit's `ood/knn/mnist/auroc` share one description. The
wording follows the metric functions' docstrings in trustbench/metrics/.
"""

from __future__ import annotations

from pathlib import PurePath

# (key prefix, section title), in the order the report shows them; unknown prefixes follow, titled by name.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("cls", "Classification"),
    ("cal", "Calibration"),
    ("sc", "Selective prediction"),
    ("ood", "Out-of-distribution detection"),
    ("fail", "Failure detection (errors of the classifier)"),
    ("shift", "Dataset shift"),
    ("fair", "Fairness"),
    ("stress", "Stress testing (shifted test populations)"),
    ("cf", "Counterfactual explanations"),
    ("xai", "Explanations: attribution maps"),
    ("val", "Validation split"),
    ("hp", "Chosen hyperparameters"),
)

# (family or "*", last key segment) -> convention. "↑" higher is better, "↓" lower is better.
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("*", "acc"): "accuracy: share of samples whose most probable class is the label ↑",
    ("*", "nll"): "negative log-likelihood, mean −ln p(label), natural log ↓",
    ("cls", "brier"): "multiclass Brier score, mean Σ_k (p_k − 1[k = y])², in [0, 2] ↓",
    ("*", "ece"): "expected calibration error, top label, 15 equal-width bins, L1 ↓",
    ("cal", "aece"): "adaptive ECE, 15 equal-mass bins ↓",
    ("cal", "mce"): "maximum calibration error, largest bin gap ↓",
    ("cal", "temperature"): "fitted softmax temperature (1 = unchanged logits)",
    ("sc", "aurc"): "area under the risk–coverage curve, rejecting least confident first ↓",
    ("ood", "auroc"): "AUROC, OOD is the positive class, score higher = more OOD ↑",
    ("ood", "aupr_in"): "average precision with in-distribution as positive ↑",
    ("ood", "aupr_out"): "average precision with OOD as positive ↑",
    ("ood", "fpr95"): "share of in-distribution samples flagged OOD at 95 % OOD recall ↓",
    ("fail", "auroc"): "AUROC of the uncertainty for the classifier's errors, errors positive ↑",
    ("fail", "aupr"): "average precision with the classifier's errors as positive ↑",
    ("fail", "fpr95"): "share of correct predictions flagged at 95 % error recall ↓",
    ("ood", "oscr"): "open-set classification rate: area under correct-classification rate vs FPR ↑",
    ("fair", "dpd"): "demographic parity difference: max − min of P(ŷ=1|G) over groups, unsigned ↓",
    ("fair", "eod"): "equalized odds difference: max(TPR spread, FPR spread) over groups, unsigned ↓",
    ("fair", "di"): "disparate impact P(ŷ=1|S=0) / P(ŷ=1|S=1); 1 is parity, < 0.8 fails the 80 % rule",
    ("fair", "spd"): "statistical parity difference P(ŷ=1|S=0) − P(ŷ=1|S=1), signed; 0 is parity",
    ("fair", "aod"): "average odds difference ½[(FPR₀ − FPR₁) + (TPR₀ − TPR₁)], signed; 0 is parity",
    ("fair", "eopd"): "equal opportunity difference TPR₀ − TPR₁, signed; 0 is parity",
    ("fair", "w2"): "Wasserstein-2 distance between the groups' score distributions ↓",
    ("fair", "acc"): "accuracy within the group ↑",
    ("fair", "tpr"): "true positive rate P(ŷ=1|Y=1) of the group",
    ("fair", "fpr"): "false positive rate P(ŷ=1|Y=0) of the group",
    ("fair", "sel"): "selection rate P(ŷ=1) of the group; class 1 is the favourable outcome",
    ("fair", "count"): "members of the group in the test split",
    ("fair", "constant_predictor"): "1 when the model predicts one class for all test points (moot parity)",
    ("cf", "validity"): "share of counterfactuals the model assigns to the target class ↑",
    ("cf", "n"): "counterfactuals asked for",
    ("cf", "n_valid"): "counterfactuals that reached the target class",
    ("cf", "l0"): "features changed per counterfactual (a one-hot category counts once) ↓",
    ("cf", "l1"): "Σ|x′ − x| per counterfactual, model input units ↓",
    ("cf", "l2"): "Euclidean distance √Σ(x′ − x)², not squared (CARLA reports it squared) ↓",
    ("cf", "mad_l1"): "Σ|x′ − x| / MAD, Wachter et al.'s distance ↓",
    ("cf", "ynn"): "share of the 5 nearest training neighbours predicted as the target class ↑",
    ("cf", "nearest_target_l2"): "L2 distance to the nearest training point of the target class ↓",
    ("cf", "immutable_violations"): "share of counterfactuals changing an immutable feature ↓",
    ("cf", "increase_violations"): "share decreasing an increase-only feature ↓",
    ("cf", "range_violations"): "share leaving a feature's observed range ↓",
    ("cf", "onehot_violations"): "share breaking a one-hot category ↓",
    ("cf", "diversity"): "mean pairwise distance within a set of counterfactuals ↑",
    ("cf", "count_diversity"): "share of features that differ between counterfactuals of a set ↑",
    ("cf", "im1"): "IM1 realism: target-class over original-class autoencoder error ↓",
    ("cf", "seconds_per_cf"): "wall time per counterfactual, seconds ↓",
    ("cf", "entropy_before"): "mean predictive entropy at the inputs, nats",
    ("cf", "entropy_after"): "mean predictive entropy at the counterfactuals, nats",
    ("xai", "deletion_auc"): "area under P(class) as the most relevant features are set to the baseline ↓",
    ("xai", "insertion_auc"): "area under P(class) as the most relevant features are restored ↑",
    ("xai", "randomisation_spearman"): "rank correlation of |map| with the top layers re-initialised ↓",
    ("xai", "max_sensitivity"): "max ‖Φ(x+δ) − Φ(x)‖ / ‖Φ(x)‖ over small uniform input noise δ ↓",
    ("xai", "lipschitz"): "max ‖Φ(x) − Φ(x′)‖₂ / ‖x − x′‖₂ over the same noisy inputs ↓",
    ("xai", "topk_intersection"): "share of the top-k features kept under small input noise ↑",
    ("xai", "spearman"): "rank correlation of the clean map and the map under small input noise ↑",
    ("xai", "seconds_per_map"): "wall time per attribution map, seconds ↓",
}

# Plot file stem prefix -> family, for the flat plots/ dir of a `trustbench run` (a nested plots/<family>/
# dir names its family itself).
PLOT_FAMILIES: tuple[tuple[str, str], ...] = (
    ("reliability", "cal"),
    ("uncertainty_hist", "ood"),
    ("ood_", "ood"),
    ("shift_", "shift"),
    ("fairness", "fair"),
    ("stress_", "stress"),
    ("tradeoff", "fair"),
    ("counterfactual", "cf"),
    ("xai_", "xai"),
)


def family_of_key(key: str) -> str:
    return key.split("/", 1)[0]


def family_title(family: str) -> str:
    return dict(FAMILIES).get(family, family)


def family_order(families: set[str]) -> list[str]:
    """Known families in report order, then the others alphabetically."""
    known = [name for name, _ in FAMILIES if name in families]
    return known + sorted(families - set(known))


def describe(key: str) -> str:
    """The convention of metric `key` ('' when the table has none)."""
    family, metric = family_of_key(key), key.rsplit("/", 1)[-1]
    return DESCRIPTIONS.get((family, metric)) or DESCRIPTIONS.get(("*", metric), "")


def family_of_plot(relative: PurePath) -> str:
    """The family a plot under plots/ belongs to: its folder, else its file name, else 'other'."""
    if len(relative.parts) > 1:
        return relative.parts[0]
    return next((family for prefix, family in PLOT_FAMILIES if relative.stem.startswith(prefix)), "other")
