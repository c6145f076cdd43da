"""OSCR against a brute-force sweep of every threshold, and its end points."""

from __future__ import annotations

import pytest
import torch

from trustbench.metrics.osr import oscr


def brute_force_oscr(known: list[float], correct: list[bool], unknown: list[float]) -> float:
    """Accept s <= t for t = -inf and every score, in increasing order; trapezoids between the points."""
    points = []
    for t in [float("-inf"), *sorted(set(known + unknown))]:
        ccr = sum(1 for s, ok in zip(known, correct, strict=True) if ok and s <= t) / len(known)
        fpr = sum(1 for s in unknown if s <= t) / len(unknown)
        points.append((fpr, ccr))
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(points, points[1:], strict=False))


def test_hand_computed_example() -> None:
    # Knowns 0.1 (correct), 0.3 (wrong), 0.5 (correct); unknowns 0.2, 0.6. Points (FPR, CCR): (0,0),
    # t=0.1 (0,1/3), t=0.2 (1/2,1/3), t=0.3 (1/2,1/3), t=0.5 (1/2,2/3), t=0.6 (1,2/3).
    # Area: 1/2 · 1/3 + 1/2 · 2/3 = 1/2.
    known, correct, unknown = (
        torch.tensor([0.1, 0.3, 0.5]),
        torch.tensor([True, False, True]),
        torch.tensor([0.2, 0.6]),
    )
    assert oscr(known, correct, unknown) == pytest.approx(0.5)


def test_matches_brute_force_with_ties() -> None:
    generator = torch.Generator().manual_seed(0)
    known = torch.randint(0, 12, (40,), generator=generator).double() / 4  # many ties, also across sets
    unknown = torch.randint(0, 12, (25,), generator=generator).double() / 4 + 0.5
    correct = torch.rand(40, generator=generator) < 0.8
    expected = brute_force_oscr(known.tolist(), correct.tolist(), unknown.tolist())
    assert oscr(known, correct, unknown) == pytest.approx(expected, abs=1e-12)


def test_perfect_separation_gives_the_closed_set_accuracy() -> None:
    correct = torch.tensor([True, True, False, True])
    assert oscr(torch.zeros(4), correct, torch.ones(3)) == pytest.approx(0.75)
    assert oscr(torch.ones(4), correct, torch.zeros(3)) == pytest.approx(0.0)


def test_mismatched_inputs_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match="bool `correct` shaped like score_known"):
        oscr(torch.zeros(3), torch.ones(2, dtype=torch.bool), torch.zeros(2))
