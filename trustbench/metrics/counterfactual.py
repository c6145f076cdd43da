"""Counterfactual-explanation metrics: validity, distances, plausibility, constraint violations, diversity,
closeness to the target class's prototype and agreement with an oracle.

Inputs live in model-input space (tabular rows min-max scaled, images as the model sees them):

- ``x`` (N, *shape) are the originals; ``x_cf`` is (N, *shape), one counterfactual per input, or
  (N, k, *shape), k counterfactuals per input from set methods (DiCE). Per-counterfactual results have the
  leading shape of ``x_cf``: (N,) or (N, k).
- ``target`` (N,) is the class each input's counterfactuals should be assigned; ``pred_cf`` holds the
  model's predicted class of every counterfactual, shaped (N,) or (N, k) like them.
- Element-wise comparisons use an absolute tolerance ``tol`` (1e-6 by default; CARLA uses 1e-5): an element
  has changed when |x'_j − x_j| > tol.

Which counterfactuals each number averages over (:func:`counterfactual_report`) follows CARLA (Pawelczyk et
al. 2021, ``carla/evaluation``): CARLA replaces every counterfactual the model does not assign to the target
class by NaN (``check_counterfactuals``) and drops those rows before computing distances and yNN, so
distances, yNN and plausibility are means over VALID counterfactuals only, and validity (CARLA's success
rate) says how many that is. Constraint violations are different: they test the explainer's contract,
which holds for every answer it returns, valid or not, so they are shares of ALL counterfactuals.

Definitions: Wachter, Mittelstadt & Russell 2017, "Counterfactual explanations without opening the black
box" (MAD-weighted L1); Mothilal, Sharma & Tan 2020, "Explaining machine learning classifiers through diverse
counterfactual explanations" (DiCE: validity, sparsity, diversity, count diversity); Pawelczyk et al. 2021,
"CARLA: a Python library to benchmark algorithmic recourse and counterfactual explanation algorithms"
(success rate, L0/L1/L2 distances, yNN); Van Looveren & Klaise 2021, "Interpretable counterfactual
explanations guided by prototypes" (IM1, and class prototypes in an autoencoder's latent space); Rodriguez et
al. 2021, "Beyond trivial counterfactual explanations with diverse valuable explanations" (oracle agreement).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from trustbench.methods.counterfactual.constraints import Constraints

TOLERANCE = 1e-6
CHUNK_ELEMENTS = 2**24
"""Most entries of one distance matrix block: queries are cut into chunks so that chunk × training rows
stays below this (64 MiB in float32), whatever the size of the training set."""

Groups = tuple[tuple[int, ...], ...]
"""Flat column indices of each one-hot group, as :attr:`Constraints.categorical_groups` and
:attr:`~trustbench.data.arrays.TabularMeta.categorical_groups` give them. Metrics that count features
take every categorical group of the dataset; the mutable subset (:attr:`Constraints.onehot_groups`) would
count each column of an immutable category (race, sex, country on Adult) as a feature of its own."""


def counterfactual_sets(x: Tensor, x_cf: Tensor) -> Tensor:
    """``x_cf`` as (N, k, *shape), with a set axis of size 1 added to one counterfactual per input.

    Checks that ``x`` is a float batch (N, *shape) and ``x_cf`` float counterfactuals of it, (N, *shape) or
    (N, k, *shape).
    """
    if x.ndim < 2 or not x.is_floating_point() or not x_cf.is_floating_point():
        raise ValueError(
            f"x must be a float batch (N, *shape) and x_cf float too; got x {x.dtype} of shape "
            f"{tuple(x.shape)} and x_cf {x_cf.dtype}."
        )
    if x_cf.shape == x.shape:
        return x_cf.detach().unsqueeze(1)
    if x_cf.ndim == x.ndim + 1 and x_cf.shape[0] == x.shape[0] and x_cf.shape[2:] == x.shape[1:]:
        return x_cf.detach()
    raise ValueError(
        f"counterfactuals of shape {tuple(x_cf.shape)} do not match inputs of shape {tuple(x.shape)}; give "
        "(N, *shape) or (N, k, *shape) for N inputs."
    )


def valid_mask(pred_cf: Tensor, target: Tensor) -> Tensor:
    """Per counterfactual, whether the model assigns it to its input's target class; shaped as ``pred_cf``."""
    target = _check_labels("target", target)
    pred_cf = _check_labels("pred_cf", pred_cf, allow_sets=True)
    if pred_cf.shape[0] != target.shape[0]:
        raise ValueError(
            f"pred_cf has {pred_cf.shape[0]} rows but target has {target.shape[0]}; give one predicted "
            "class per counterfactual, shaped (N,) or (N, k) for N inputs."
        )
    return pred_cf == _per_counterfactual(target, pred_cf.shape)


def validity(pred_cf: Tensor, target: Tensor) -> float:
    """Share of counterfactuals the model assigns to the target class (CARLA's success rate; DiCE's
    validity without its de-duplication), in [0, 1]; for sets, over all N·k counterfactuals."""
    return float(valid_mask(pred_cf, target).to(torch.float64).mean())


def l0_distance(x: Tensor, x_cf: Tensor, tol: float = TOLERANCE, groups: Groups = ()) -> Tensor:
    """Number of changed features, |x'_j − x_j| > ``tol``, per counterfactual (float64).

    Without ``groups`` every input element is a feature (CARLA's ``l0_distance``, which counts a changed
    category twice: one column drops to 0, another rises to 1). With ``groups`` each one-hot group is one
    feature, changed when any of its columns changed, so a new category counts once, as in the feature
    space of the raw table (DiCE's sparsity).
    """
    original, counterfactual = _flat_pair(x, x_cf)
    changed = (counterfactual - original).abs() > tol
    return _feature_changes(changed, groups).sum(dim=-1, dtype=torch.float64)


def l1_distance(x: Tensor, x_cf: Tensor) -> Tensor:
    """Σ_j |x'_j − x_j| per counterfactual (float64); CARLA's ``l1_distance``."""
    original, counterfactual = _flat_pair(x, x_cf)
    return (counterfactual - original).abs().sum(dim=-1)


def l2_distance(x: Tensor, x_cf: Tensor) -> Tensor:
    """Euclidean distance √(Σ_j (x'_j − x_j)²) per counterfactual (float64), NOT squared.

    CARLA's ``l2_distance`` (and the "L2_distance" column of its benchmark tables) reports the squared sum
    Σ_j (x'_j − x_j)²; square this value to compare with CARLA's numbers.
    """
    original, counterfactual = _flat_pair(x, x_cf)
    return torch.linalg.vector_norm(counterfactual - original, dim=-1)


def median_absolute_deviation(x_train: Tensor) -> Tensor:
    """MAD_j = median_i |x_ij − median_l x_lj| of every input element j over the rows of ``x_train``.

    Shaped like one example, float64. Medians of an even count average the two middle values, as numpy's
    ``median`` and scipy's ``median_abs_deviation`` with its default ``scale=1.0`` (``torch.median`` would
    take the lower one). Zero where more than half the rows share one value (most one-hot columns).
    """
    if x_train.ndim < 2 or x_train.shape[0] == 0 or not x_train.is_floating_point():
        raise ValueError(
            f"x_train must be a non-empty float batch (N, *shape); got {x_train.dtype} of shape "
            f"{tuple(x_train.shape)}."
        )
    columns = x_train.detach().flatten(1).T
    width = max(1, CHUNK_ELEMENTS // columns.shape[1])
    deviations = []
    for start in range(0, len(columns), width):
        chunk = columns[start : start + width].to(torch.float64).contiguous()
        deviations.append(_median_of_rows((chunk - _median_of_rows(chunk)[:, None]).abs()))
    return torch.cat(deviations).reshape(x_train.shape[1:])


def mad_l1_distance(x: Tensor, x_cf: Tensor, mad: Tensor) -> Tensor:
    """Σ_j |x'_j − x_j| / MAD_j per counterfactual (float64), Wachter et al. 2017's distance.

    ``mad`` is :func:`median_absolute_deviation` of the training inputs, shaped like one example. Elements
    with MAD_j = 0 get weight 1 (as DiCE's ``get_valid_mads``) rather than being dropped: dropping them
    would make changing a rare category free. In min-max scaled space a weight of 1 prices a change across
    a feature's whole training range at 1.
    """
    original, counterfactual = _flat_pair(x, x_cf)
    if tuple(mad.shape) != tuple(x.shape[1:]):
        raise ValueError(
            f"mad has shape {tuple(mad.shape)} but one example has shape {tuple(x.shape[1:])}; compute it "
            "with median_absolute_deviation(x_train) on inputs of the same space."
        )
    mad = mad.detach().flatten().to(torch.float64)
    if (mad < 0).any() or not mad.isfinite().all():
        raise ValueError("mad must be finite and non-negative; compute it with median_absolute_deviation.")
    scale = torch.where(mad > 0, mad, torch.ones_like(mad))
    return ((counterfactual - original).abs() / scale).sum(dim=-1)


def ynn(x_cf: Tensor, target: Tensor, x_train: Tensor, train_pred: Tensor, n_neighbours: int = 5) -> Tensor:
    """Per counterfactual, the share of its ``n_neighbours`` nearest training inputs (Euclidean) that the
    model labels with the counterfactual's target class (float64, in [0, 1]).

    yNN of Pawelczyk et al. 2021 (CARLA) is the mean of this over valid counterfactuals; CARLA compares the
    neighbours' labels with the counterfactual's predicted class, which equals the target on valid ones.
    ``train_pred`` are the model's predicted classes of ``x_train``. ``x_cf`` is (N, *shape) or
    (N, k, *shape) with ``target`` (N,) giving one class per input. Neighbours come from chunked
    ``torch.cdist`` (memory bounded by :data:`CHUNK_ELEMENTS`); ties in distance are broken arbitrarily.
    """
    train, train_pred = _check_training(x_train, train_pred, "train_pred")
    if not 1 <= n_neighbours <= len(train):
        raise ValueError(
            f"n_neighbours must be between 1 and the {len(train)} training rows; got {n_neighbours}."
        )
    queries, leading = _rows(x_cf, x_train.shape[1:])
    targets = _per_counterfactual(_check_labels("target", target), leading).reshape(-1)
    shares = torch.empty(len(queries), dtype=torch.float64, device=queries.device)
    for rows, neighbours in _nearest_neighbours(queries, train, n_neighbours):
        agree = train_pred[neighbours] == targets[rows].unsqueeze(1)
        shares[rows] = agree.to(torch.float64).mean(dim=1)
    return shares.reshape(leading)


def nearest_target_distance(x_cf: Tensor, target: Tensor, x_train: Tensor, y_train: Tensor) -> Tensor:
    """Per counterfactual, the Euclidean distance to the nearest training input of its target class.

    A plausibility measure (in the spirit of Van Looveren & Klaise 2021's prototypes): small means the
    counterfactual lies near real data of the class it claims. ``y_train`` are the training labels; NaN
    where the target class has no training row. The nearest row is found with chunked ``torch.cdist`` in
    the training inputs' dtype, and its distance then recomputed exactly in float64. Shapes as :func:`ynn`.
    """
    train, y_train = _check_training(x_train, y_train, "y_train")
    queries, leading = _rows(x_cf, x_train.shape[1:])
    targets = _per_counterfactual(_check_labels("target", target), leading).reshape(-1)
    distances = torch.full((len(queries),), math.nan, dtype=torch.float64, device=queries.device)
    for label in targets.unique().tolist():
        of_class = train[y_train == label]
        if len(of_class) == 0:
            continue
        asked = (targets == label).nonzero().squeeze(1)
        for rows, nearest in _nearest_neighbours(queries[asked], of_class, 1):
            gap = queries[asked[rows]].to(torch.float64) - of_class[nearest[:, 0]].to(torch.float64)
            distances[asked[rows]] = torch.linalg.vector_norm(gap, dim=-1)
    return distances.reshape(leading)


def violates_immutable(x: Tensor, x_cf: Tensor, constraints: Constraints, tol: float = TOLERANCE) -> Tensor:
    """Per counterfactual, whether it changes (by more than ``tol``) an element where ``mutable`` is False."""
    original, counterfactual = _flat_pair(x, x_cf)
    frozen = ~_flat_constraint(constraints.mutable, x)
    return (((counterfactual - original).abs() > tol) & frozen).any(dim=-1)


def violates_increase_only(
    x: Tensor, x_cf: Tensor, constraints: Constraints, tol: float = TOLERANCE
) -> Tensor:
    """Per counterfactual, whether it lowers (by more than ``tol``) an element marked ``increase_only``."""
    original, counterfactual = _flat_pair(x, x_cf)
    increase_only = _flat_constraint(constraints.increase_only, x)
    return ((counterfactual < original - tol) & increase_only).any(dim=-1)


def violates_range(x: Tensor, x_cf: Tensor, constraints: Constraints, tol: float = TOLERANCE) -> Tensor:
    """Per counterfactual, whether an element leaves [min(lower, x) − tol, max(upper, x) + tol].

    The bounds are those of :meth:`Constraints.project`: an original already outside the valid range may
    stay where it is, never move further out.
    """
    original, counterfactual = _flat_pair(x, x_cf)
    lower = torch.minimum(_flat_constraint(constraints.lower, x).to(torch.float64), original)
    upper = torch.maximum(_flat_constraint(constraints.upper, x).to(torch.float64), original)
    return ((counterfactual < lower - tol) | (counterfactual > upper + tol)).any(dim=-1)


def violates_onehot(x: Tensor, x_cf: Tensor, constraints: Constraints, tol: float = TOLERANCE) -> Tensor:
    """Per counterfactual, whether some group of ``constraints.onehot_groups`` is not exactly one-hot.

    Exactly one-hot: every column within ``tol`` of 0 or 1, and exactly one of them within ``tol`` of 1.
    Immutable categorical features are not among ``onehot_groups``; changing them is an immutable violation.
    """
    original, counterfactual = _flat_pair(x, x_cf)
    _check_groups(constraints.onehot_groups, original.shape[-1])
    broken = torch.zeros(counterfactual.shape[:-1], dtype=torch.bool, device=counterfactual.device)
    for group in constraints.onehot_groups:
        values = counterfactual[..., list(group)]
        near_one = (values - 1).abs() <= tol
        binary = near_one | (values.abs() <= tol)
        broken |= ~binary.all(dim=-1) | (near_one.sum(dim=-1) != 1)
    return broken


def diversity(x_cf: Tensor, valid: Tensor | None = None) -> Tensor:
    """Per input, the mean L1 distance Σ_j |c_a,j − c_b,j| over pairs a < b of its k counterfactuals.

    DiCE's diversity metric (Mothilal et al. 2020, with dist = L1) for ``x_cf`` (N, k, *shape), k ≥ 2. DiCE
    divides continuous features by their MAD and averages over features; here inputs are already min-max
    scaled, and the plain sum keeps the unit of :func:`l1_distance`. With ``valid`` (N, k) only pairs of
    two valid counterfactuals count, so invalid points cannot buy diversity; an input with fewer than two
    valid counterfactuals gets NaN. Float64, shape (N,).
    """
    return _mean_over_pairs(x_cf, valid, lambda gaps: gaps.abs().sum(dim=-1))


def count_diversity(
    x_cf: Tensor, valid: Tensor | None = None, tol: float = TOLERANCE, groups: Groups = ()
) -> Tensor:
    """Per input, the mean over pairs a < b of its counterfactuals of the share of features that differ.

    DiCE's count diversity (Mothilal et al. 2020): 1/(C(k, 2)·d) Σ_{a<b} Σ_l 1[c_a,l ≠ c_b,l], in [0, 1],
    over the d features of the raw table. ``groups`` makes each one-hot group a single feature that differs
    when any of its columns does (two counterfactuals name different categories); give every categorical
    group of the dataset (:attr:`Constraints.categorical_groups`, immutable ones too), else each column of
    a left-out group counts as a feature (Adult: 91 columns, 12 features). A continuous feature differs when
    |c_a,l − c_b,l| > ``tol``. DiCE's paper compares values exactly (its library returns counterfactuals
    rounded to the data's decimal precision, and ``dice_ml`` itself ships no count-diversity function);
    here values are unrounded floats in min-max scaled space, so ``tol`` (1e-6 of a feature's training
    range) stands in for that rounding and float noise does not count as diversity. ``valid`` and NaN as
    :func:`diversity`.
    """

    def share_differing(gaps: Tensor) -> Tensor:
        differing = _feature_changes(gaps.abs() > tol, groups)
        return differing.to(torch.float64).mean(dim=-1)

    return _mean_over_pairs(x_cf, valid, share_differing)


def reconstruction_error(autoencoder: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """‖x − AE(x)‖²₂ summed over the elements of each row of ``x`` (float64, shape (N,)); no gradients."""
    with torch.no_grad():
        reconstruction = autoencoder(x)
    if reconstruction.shape != x.shape:
        raise ValueError(
            f"the autoencoder returned shape {tuple(reconstruction.shape)} for inputs of shape "
            f"{tuple(x.shape)}; it must reconstruct its input."
        )
    return (x.detach().to(torch.float64) - reconstruction.to(torch.float64)).flatten(1).square().sum(dim=1)


def im1(
    x_cf: Tensor,
    target: Tensor,
    original: Tensor,
    autoencoders: Sequence[Callable[[Tensor], Tensor]],
    eps: float = 1e-8,
) -> Tensor:
    """IM1 = ‖x' − AE_t(x')‖²₂ / (‖x' − AE_o(x')‖²₂ + eps) per counterfactual (Van Looveren & Klaise 2021).

    Lower is more realistic: the counterfactual x' is reconstructed better by an autoencoder trained on its
    target class t than by one trained on the original class o. ``autoencoders[c]`` is the autoencoder
    trained on class c (trained elsewhere, called as given: put modules in eval mode); for a binary task
    pass both. Rows: ``x_cf`` (M, *shape) with ``target`` and ``original`` (M,); flatten sets to rows first.
    """
    target = _check_labels("target", target)
    original = _check_labels("original", original)
    if not len(x_cf) == len(target) == len(original):
        raise ValueError(
            f"x_cf, target and original have {len(x_cf)}, {len(target)} and {len(original)} rows; give one "
            "target and one original class per counterfactual row."
        )
    classes = torch.cat([target, original]).unique().tolist()
    if classes and (classes[0] < 0 or classes[-1] >= len(autoencoders)):
        raise ValueError(
            f"classes {classes} need autoencoders for each, but {len(autoencoders)} were given; pass one "
            "autoencoder per class, indexed by class."
        )
    to_target = _per_class_error(x_cf, target, autoencoders)
    return to_target / (_per_class_error(x_cf, original, autoencoders) + eps)


def class_prototypes(codes: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Each class's prototype: the mean latent code (K, L) of its rows; NaN for a class without rows.

    ``codes`` (M, L) are the rows' codes in an autoencoder's latent space, ``labels`` (M,) their classes.
    The prototype Van Looveren & Klaise (2021) guide counterfactuals toward, and the view of a user study
    of image counterfactuals in which people edit toward a prototype of the target class rather than
    minimally (reference notes of issue 15).
    """
    labels = _check_labels("labels", labels)
    if codes.ndim != 2 or len(codes) != len(labels):
        raise ValueError(
            f"codes must be (M, L) with one label each; got codes {tuple(codes.shape)}, {len(labels)} labels."
        )
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got {labels.min()}..{labels.max()}.")
    codes = codes.detach().to(torch.float64)
    sums = torch.zeros(num_classes, codes.shape[1], dtype=torch.float64).index_add_(
        0, labels.cpu(), codes.cpu()
    )
    counts = torch.bincount(labels.cpu(), minlength=num_classes).to(torch.float64)
    return sums / counts.unsqueeze(1)  # 0 / 0 = NaN for an empty class


def prototype_distance(codes: Tensor, target: Tensor, prototypes: Tensor) -> Tensor:
    """‖code − prototype[target]‖₂ per row (float64, (M,)): how far each counterfactual's latent code lies
    from its target class's prototype (:func:`class_prototypes`, same latent space)."""
    target = _check_labels("target", target)
    if codes.ndim != 2 or len(codes) != len(target) or codes.shape[1] != prototypes.shape[1]:
        raise ValueError(
            f"codes {tuple(codes.shape)} need one target each and the prototypes' width "
            f"{prototypes.shape[1]}; got {len(target)} targets."
        )
    gaps = codes.detach().to(torch.float64).cpu() - prototypes.to(torch.float64).cpu()[target.cpu()]
    return gaps.norm(dim=1)


def leakage(x: Tensor, x_cf: Tensor, regions: Tensor) -> Tensor:
    """Σ_j |x'_j − x_j| over the elements OUTSIDE `regions`, per counterfactual (float64, (N,) or (N, k)).

    `regions` (N, *shape, bool) marks what each input's counterfactuals were allowed to change (STEEX's
    region-targeted setting, Jacob et al. 2022); zero means nothing leaked. Same unit as :func:`l1_distance`.
    """
    original, counterfactual = _flat_pair(x, x_cf)
    if regions.shape != x.shape or regions.dtype != torch.bool:
        raise ValueError(
            f"regions must be a bool mask shaped like the inputs {tuple(x.shape)}; got {regions.dtype} of "
            f"shape {tuple(regions.shape)}."
        )
    outside = (~regions).flatten(1).to(torch.float64)
    if counterfactual.ndim == 3:
        outside = outside.unsqueeze(1)
    return ((counterfactual - original).abs() * outside).sum(dim=-1)


def oracle_agreement(oracle_pred: Tensor, pred_cf: Tensor, target: Tensor) -> float:
    """Among counterfactuals the model assigns to their target, the share the oracle assigns there too.

    DiVE's view (Rodriguez et al. 2021): a counterfactual that flips the model but not an independent
    oracle is a change only the model relies on (for them "non-trivial"; 1 − this share). Predicted
    classes are shaped (N,) or (N, k) like the counterfactuals; NaN when no counterfactual is valid.
    """
    valid = valid_mask(pred_cf, target)
    agrees = valid_mask(oracle_pred, target)
    if agrees.shape != valid.shape:
        raise ValueError(
            f"oracle_pred has shape {tuple(agrees.shape)} but pred_cf {tuple(valid.shape)}; give one oracle "
            "prediction per counterfactual."
        )
    return _mean(agrees[valid])


def counterfactual_report(
    x: Tensor,
    x_cf: Tensor,
    target: Tensor,
    pred_cf: Tensor,
    constraints: Constraints,
    x_train: Tensor,
    y_train: Tensor,
    train_pred: Tensor,
    *,
    mad: Tensor | None = None,
    groups: Groups | None = None,
    n_neighbours: int = 5,
    tol: float = TOLERANCE,
) -> dict[str, float]:
    """Every metric of this module under ``cf/`` keys, averaged as the module docstring says.

    Counts: ``cf/n`` counterfactuals (N or N·k) and ``cf/n_valid`` of them valid; ``cf/validity`` their
    ratio. Over valid counterfactuals (NaN when none is valid): ``cf/l0`` (with ``groups``, by default
    ``constraints.categorical_groups``: every category of the dataset is one feature), ``cf/l1``, ``cf/l2``
    (not squared), ``cf/mad_l1`` (``mad`` defaults to :func:`median_absolute_deviation` of ``x_train``),
    ``cf/ynn`` (neighbours labelled by ``train_pred``, the model's predictions on ``x_train``),
    ``cf/nearest_target_l2`` (class members by ``y_train``, the true labels). Over all counterfactuals:
    ``cf/immutable_violations``, ``cf/increase_violations``, ``cf/range_violations``,
    ``cf/onehot_violations``. For sets (N, k, *shape) also ``cf/diversity`` and
    ``cf/count_diversity`` (features counted by ``groups`` as ``cf/l0``), means over inputs with at least
    two valid counterfactuals.
    """
    _flat_pair(x, x_cf)
    valid = valid_mask(pred_cf, target)
    if tuple(valid.shape) != tuple(x_cf.shape[: x_cf.ndim - x.ndim + 1]):
        raise ValueError(
            f"pred_cf has shape {tuple(valid.shape)} for counterfactuals of shape {tuple(x_cf.shape)}; give "
            "one predicted class per counterfactual, shaped (N,) or (N, k)."
        )
    groups = constraints.categorical_groups if groups is None else groups
    mad = median_absolute_deviation(x_train) if mad is None else mad
    valid_rows, valid_targets = x_cf[valid], _per_counterfactual(target, valid.shape)[valid]
    report = {
        "cf/n": float(valid.numel()),
        "cf/n_valid": float(valid.sum()),
        "cf/validity": validity(pred_cf, target),
        "cf/l0": _mean(l0_distance(x, x_cf, tol, groups)[valid]),
        "cf/l1": _mean(l1_distance(x, x_cf)[valid]),
        "cf/l2": _mean(l2_distance(x, x_cf)[valid]),
        "cf/mad_l1": _mean(mad_l1_distance(x, x_cf, mad)[valid]),
        "cf/ynn": _mean(ynn(valid_rows, valid_targets, x_train, train_pred, n_neighbours)),
        "cf/nearest_target_l2": _mean(nearest_target_distance(valid_rows, valid_targets, x_train, y_train)),
        "cf/immutable_violations": _share(violates_immutable(x, x_cf, constraints, tol)),
        "cf/increase_violations": _share(violates_increase_only(x, x_cf, constraints, tol)),
        "cf/range_violations": _share(violates_range(x, x_cf, constraints, tol)),
        "cf/onehot_violations": _share(violates_onehot(x, x_cf, constraints, tol)),
    }
    if valid.ndim == 2:
        report["cf/diversity"] = _mean(_defined(diversity(x_cf, valid)))
        report["cf/count_diversity"] = _mean(_defined(count_diversity(x_cf, valid, tol, groups)))
    return report


def _flat_pair(x: Tensor, x_cf: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` as (N, D) or (N, 1, D) and ``x_cf`` as (N, D) or (N, k, D), in float64; D elements an example."""
    sets = counterfactual_sets(x, x_cf).flatten(2).to(torch.float64)
    original = x.detach().flatten(1).to(torch.float64)
    if x_cf.ndim == x.ndim:
        return original, sets.squeeze(1)
    return original.unsqueeze(1), sets


def _rows(x_cf: Tensor, element_shape: torch.Size) -> tuple[Tensor, torch.Size]:
    """``x_cf`` as (M, D) rows, and the leading shape ((N,) or (N, k)) those rows came from."""
    leading_ndim = x_cf.ndim - len(element_shape)
    if leading_ndim not in (1, 2) or x_cf.shape[leading_ndim:] != element_shape:
        raise ValueError(
            f"counterfactuals of shape {tuple(x_cf.shape)} do not match training inputs of shape "
            f"(M, {', '.join(map(str, element_shape))}); give (N, *shape) or (N, k, *shape)."
        )
    leading = x_cf.shape[:leading_ndim]
    return x_cf.detach().reshape(leading.numel(), element_shape.numel()), leading


def _per_counterfactual(target: Tensor, leading: torch.Size) -> Tensor:
    """One target per counterfactual: ``target`` (N,) repeated along the set axis when there is one."""
    if target.shape[0] != leading[0]:
        raise ValueError(
            f"target has {target.shape[0]} entries but there are {leading[0]} inputs; give one target class "
            "per input."
        )
    return target.reshape(-1, *([1] * (len(leading) - 1))).expand(leading)


def _check_labels(name: str, labels: Tensor, allow_sets: bool = False) -> Tensor:
    allowed = (1, 2) if allow_sets else (1,)
    if labels.is_floating_point() or labels.is_complex() or labels.ndim not in allowed:
        shapes = "(N,) or (N, k)" if allow_sets else "(N,)"
        raise ValueError(
            f"{name} must be an integer tensor of class indices shaped {shapes}; got {labels.dtype} of shape "
            f"{tuple(labels.shape)}. Take argmax of logits first."
        )
    return labels.to(torch.int64)


def _check_training(x_train: Tensor, labels: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """Training inputs as (M, D) rows and their labels as int64, checked to align."""
    if x_train.ndim < 2 or len(x_train) == 0 or not x_train.is_floating_point():
        raise ValueError(
            f"x_train must be a non-empty float batch (M, *shape); got {x_train.dtype} of shape "
            f"{tuple(x_train.shape)}."
        )
    labels = _check_labels(name, labels)
    if len(labels) != len(x_train):
        raise ValueError(f"{name} has {len(labels)} entries but x_train has {len(x_train)} rows.")
    return x_train.detach().flatten(1), labels


def _nearest_neighbours(queries: Tensor, reference: Tensor, n: int) -> list[tuple[slice, Tensor]]:
    """For consecutive chunks of ``queries``, the chunk and the indices (chunk, n) of its n nearest
    ``reference`` rows, nearest first; chunks keep each distance block under :data:`CHUNK_ELEMENTS`."""
    chunk = max(1, CHUNK_ELEMENTS // len(reference))
    queries = queries.to(reference.dtype)
    found = []
    for start in range(0, len(queries), chunk):
        rows = slice(start, start + chunk)
        distances = torch.cdist(queries[rows], reference)
        found.append((rows, distances.topk(n, dim=1, largest=False).indices))
    return found


def _flat_constraint(values: Tensor, x: Tensor) -> Tensor:
    if tuple(values.shape) != tuple(x.shape[1:]):
        raise ValueError(
            f"constraints are shaped {tuple(values.shape)} but one example is {tuple(x.shape[1:])}; build "
            "them with Constraints.for_dataset for this dataset."
        )
    return values.flatten()


def _check_groups(groups: Groups, width: int) -> None:
    columns = [column for group in groups for column in group]
    if any(not group for group in groups) or len(set(columns)) != len(columns):
        raise ValueError("one-hot groups must be non-empty and disjoint: each column belongs to one group.")
    if columns and not 0 <= min(columns) <= max(columns) < width:
        raise ValueError(
            f"one-hot group columns must lie in [0, {width}); got {min(columns)}..{max(columns)}."
        )


def _feature_changes(changed: Tensor, groups: Groups) -> Tensor:
    """Element-wise change flags (..., D) → feature-wise (..., F): each one-hot group is one feature."""
    if not groups:
        return changed
    _check_groups(groups, changed.shape[-1])
    single = torch.ones(changed.shape[-1], dtype=torch.bool)
    single[[column for group in groups for column in group]] = False
    grouped = [changed[..., list(group)].any(dim=-1, keepdim=True) for group in groups]
    return torch.cat([changed[..., single], *grouped], dim=-1)


def _mean_over_pairs(x_cf: Tensor, valid: Tensor | None, pair_value: Callable[[Tensor], Tensor]) -> Tensor:
    """Per input, the mean of ``pair_value(c_a − c_b)`` over pairs a < b of valid counterfactuals."""
    if x_cf.ndim < 3 or x_cf.shape[1] < 2 or not x_cf.is_floating_point():
        raise ValueError(
            "diversity needs sets of k >= 2 counterfactuals, a float tensor (N, k, *shape); got "
            f"{x_cf.dtype} of shape {tuple(x_cf.shape)}."
        )
    sets = x_cf.detach().flatten(2).to(torch.float64)
    first, second = torch.triu_indices(sets.shape[1], sets.shape[1], offset=1)
    values = pair_value(sets[:, first] - sets[:, second])
    if valid is None:
        return values.mean(dim=1)
    if valid.dtype != torch.bool or tuple(valid.shape) != tuple(sets.shape[:2]):
        raise ValueError(
            f"valid must be a bool tensor of shape {tuple(sets.shape[:2])}, one flag per counterfactual; "
            f"got {valid.dtype} of shape {tuple(valid.shape)}. Use valid_mask(pred_cf, target)."
        )
    counted = (valid[:, first] & valid[:, second]).to(torch.float64)
    return (values * counted).sum(dim=1) / counted.sum(dim=1)


def _per_class_error(
    x_cf: Tensor, labels: Tensor, autoencoders: Sequence[Callable[[Tensor], Tensor]]
) -> Tensor:
    errors = torch.empty(len(x_cf), dtype=torch.float64)
    for label in labels.unique().tolist():
        rows = labels == label
        errors[rows] = reconstruction_error(autoencoders[label], x_cf[rows]).cpu()
    return errors


def _median_of_rows(rows: Tensor) -> Tensor:
    """Median of each row; for an even count the mean of the two middle values (numpy's convention).
    Two selections (`kthvalue`) instead of a sort: a third of the time on MNIST's 60k × 784 pixels."""
    count = rows.shape[1]
    low = rows.kthvalue((count - 1) // 2 + 1, dim=1).values
    high = low if count % 2 else rows.kthvalue(count // 2 + 1, dim=1).values
    return (low + high) / 2


def _defined(values: Tensor) -> Tensor:
    return values[~values.isnan()]


def _mean(values: Tensor) -> float:
    """Mean as a python float; NaN for no values."""
    return float(values.to(torch.float64).mean()) if values.numel() else math.nan


def _share(flags: Tensor) -> float:
    return float(flags.to(torch.float64).mean())
