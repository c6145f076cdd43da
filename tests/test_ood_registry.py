"""The OOD detector contract: registry and build errors, hyperparameter grids, defaults and clear failures."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from trustbench.methods.ood import DETECTORS, KNN, Features, NetworkDetector, ViM, build
from trustbench.methods.ood.vim import default_principal_dim

NEEDS_TRAIN_LABELS = {"mahalanobis", "relative_mahalanobis"}


def train_features(n: int = 300, dim: int = 16, num_classes: int = 3) -> tuple[Features, nn.Linear]:
    torch.manual_seed(0)
    features = torch.rand(n, dim)
    head = nn.Linear(dim, num_classes).requires_grad_(False)
    labels = torch.arange(n) % num_classes
    return Features(logits=head(features), features=features, labels=labels), head


def test_unknown_detector_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="Unknown OOD detector 'mahalonobis'") as error:
        build("mahalonobis")
    message = str(error.value)
    assert "\n" not in message
    assert all(name in message for name in DETECTORS)


def test_unknown_hyperparameter_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="no hyperparameter K; allowed: k, "):
        build("knn", K=10)


@pytest.mark.parametrize(
    ("name", "defaults"),
    [
        ("energy", {"temperature": 1.0}),
        ("odin", {"temperature": 1000.0, "noise": 0.0014}),
        ("knn", {"k": 50}),
        ("vim", {"dim": None}),
        ("react", {"percentile": 90.0}),
        ("ash", {"percentile": 90.0, "variant": "s"}),
        ("gradnorm", {"temperature": 1.0}),
    ],
)
def test_default_hyperparameters_follow_the_papers_and_openood(name: str, defaults: dict) -> None:
    detector = build(name)
    assert {key: getattr(detector, key) for key in defaults} == defaults


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_grid_candidate_builds_a_detector(name: str) -> None:
    grid = DETECTORS[name].hparam_grid()
    for values in itertools.product(*grid.values()):
        build(name, **dict(zip(grid, values, strict=True)))


def test_grids_drop_candidates_the_training_data_cannot_support() -> None:
    train, _ = train_features(n=300, dim=16)
    assert KNN.hparam_grid() == {"k": [50, 100, 200, 500, 1000]}
    assert KNN.hparam_grid(train) == {"k": [50, 100, 200]}
    assert ViM.hparam_grid() == {"dim": [256, 1000]}
    assert ViM.hparam_grid(train) == {"dim": [2, 4, 8, 12]}  # N/8, N/4, N/2, 3N/4 of N = 16


@pytest.mark.parametrize(("feature_dim", "expected"), [(16, 8), (512, 256), (768, 512), (2048, 1000)])
def test_vim_default_principal_dim_follows_feature_dim(feature_dim: int, expected: int) -> None:
    assert default_principal_dim(feature_dim) == expected


def test_vim_refuses_a_principal_subspace_as_large_as_the_features() -> None:
    train, head = train_features(dim=16)
    with pytest.raises(ValueError, match="dim=16 must be below the feature dimension 16"):
        ViM(dim=16).fit(train, head=head)


def test_every_fittable_detector_works_on_its_declared_inputs() -> None:
    train, head = train_features()
    for name, cls in DETECTORS.items():
        if cls.needs_network:
            continue
        logits_only = Features(logits=train.logits, labels=train.labels)
        data = train if cls.needs_features else logits_only
        scores = build(name).fit(data, head=head if cls.needs_head else None).score(data)
        assert scores.shape == (len(train.logits),) and torch.isfinite(scores).all(), name


@pytest.mark.parametrize("name", sorted(n for n, c in DETECTORS.items() if c.needs_features))
def test_feature_detectors_refuse_a_backbone_without_features(name: str) -> None:
    train, head = train_features()
    with pytest.raises(ValueError, match="provides none"):
        build(name).fit(Features(logits=train.logits, labels=train.labels), head=head).score(
            Features(logits=train.logits)
        )


@pytest.mark.parametrize("name", sorted(n for n, c in DETECTORS.items() if c.needs_head))
def test_head_detectors_ask_for_the_head(name: str) -> None:
    train, _ = train_features()
    with pytest.raises(ValueError, match="head=backbone.head"):
        build(name).fit(train)


@pytest.mark.parametrize("name", sorted(NEEDS_TRAIN_LABELS))
def test_class_conditional_detectors_ask_for_training_labels(name: str) -> None:
    train, _ = train_features()
    with pytest.raises(ValueError, match="training labels are required"):
        build(name).fit(Features(logits=train.logits, features=train.features))


@pytest.mark.parametrize("name", ["mahalanobis", "relative_mahalanobis", "knn", "vim", "react", "ash"])
def test_scoring_before_fit_says_to_fit(name: str) -> None:
    train, _ = train_features()
    with pytest.raises(RuntimeError, match="not fitted; call fit"):
        build(name).score(train)


def test_network_detectors_refuse_cached_features_and_point_to_score_inputs() -> None:
    network = [name for name, cls in DETECTORS.items() if cls.needs_network]
    assert network == ["odin"]
    detector = build("odin")
    assert isinstance(detector, NetworkDetector)
    with pytest.raises(TypeError, match="score_inputs"):
        detector.score(train_features()[0])


def test_knn_refuses_more_neighbours_than_training_points() -> None:
    train, _ = train_features(n=20)
    with pytest.raises(ValueError, match="k=50 exceeds the 20 training examples"):
        KNN().fit(train)
