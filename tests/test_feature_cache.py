"""The feature cache and the model store: reuse exactly when weights, inputs and recipe are the same."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from trustbench.app import CONFIG_DIR
from trustbench.backbones.mlp import MLP
from trustbench.fingerprint import fingerprint_tensors
from trustbench.methods.ood.cache import FeatureCache, extract_features
from trustbench.results.model_store import load_weights, save_weights, stored_model_path


def small_model(seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP((8,), 3, hidden_sizes=[16])


def test_features_are_logits_and_penultimate_activations() -> None:
    model, x = small_model(0), torch.randn(10, 8)
    extracted = extract_features(model, x, batch_size=4)
    with torch.no_grad():
        assert torch.allclose(extracted.features, model.features(x))
        assert torch.allclose(extracted.logits, model(x))


def test_second_lookup_is_a_hit_with_identical_tensors(tmp_path: Path) -> None:
    model, x, y = small_model(0), torch.randn(10, 8), torch.arange(10) % 3
    first = FeatureCache(tmp_path, model).features(x, y)
    cache = FeatureCache(tmp_path, model)
    second = cache.features(x, y)
    assert (cache.hits, cache.misses) == (1, 0)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.features, second.features)
    assert torch.equal(second.labels, y)


def test_changed_weights_or_inputs_miss(tmp_path: Path) -> None:
    x = torch.randn(10, 8)
    FeatureCache(tmp_path, small_model(0)).features(x)
    other_model = FeatureCache(tmp_path, small_model(1))
    other_model.features(x)
    same_model = FeatureCache(tmp_path, small_model(0))
    changed = x.clone()
    changed[3, 2] += 1e-3
    same_model.features(changed)
    assert (other_model.misses, same_model.misses) == (1, 1)
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_a_statistic_of_the_inputs_is_computed_once_for_every_model(tmp_path: Path) -> None:
    x, calls = torch.randn(10, 8), []

    def column_medians(inputs: torch.Tensor) -> torch.Tensor:
        calls.append(len(inputs))
        return inputs.median(dim=0).values

    first = FeatureCache(tmp_path, small_model(0)).statistic("medians", x, column_medians)
    other_model = FeatureCache(tmp_path, small_model(1))
    again = other_model.statistic("medians", x, column_medians)
    assert calls == [10] and (other_model.hits, other_model.misses) == (1, 0)
    assert torch.equal(first, again) and torch.equal(again, x.median(dim=0).values)
    other_model.statistic("medians", x[:5], column_medians)
    assert calls == [10, 5]


def test_an_input_is_fingerprinted_once_until_it_changes_in_place(tmp_path: Path, monkeypatch) -> None:
    taken = []

    def counting(tensors):
        tensors = list(tensors)
        taken.append([name for name, _ in tensors])
        return fingerprint_tensors(tensors)

    cache = FeatureCache(tmp_path, small_model(0))
    monkeypatch.setattr("trustbench.methods.ood.cache.fingerprint_tensors", counting)
    x = torch.randn(10, 8)
    first = cache.features(x)
    cache.features(x)
    cache.statistic("medians", x, lambda inputs: inputs.median(dim=0).values)
    assert taken == [["x"]] and cache.hits == 1
    x[0, 0] += 1.0  # in place: a new fingerprint, a new entry
    changed = cache.features(x)
    assert taken == [["x"], ["x"]] and cache.misses == 3
    assert not torch.equal(changed.logits[0], first.logits[0])


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/x", *overrides])


def test_every_detector_shares_one_stored_classifier_per_recipe_and_seed() -> None:
    paths = {stored_model_path(compose_config(f"method={m}")) for m in ("msp", "knn", "odin", "vim")}
    assert len(paths) == 1
    assert stored_model_path(compose_config("method=knn", "seed=1")) not in paths
    assert stored_model_path(compose_config("method=knn", "method.optimizer.lr=0.01")) not in paths
    assert stored_model_path(compose_config("method=knn", "trainer.max_epochs=7")) not in paths
    assert stored_model_path(compose_config("method=knn", "trainer.log_every_n_steps=7")) in paths
    normalised = compose_config("method=knn", "+data.normalize={mean:[0.5],std:[0.5]}")
    assert stored_model_path(normalised) not in paths
    assert stored_model_path(compose_config("method=knn", "+data.augment={crop_padding:2}")) not in paths
    assert stored_model_path(compose_config("method=knn", "data.ood=[]")) in paths


def test_stored_weights_round_trip(tmp_path: Path) -> None:
    saved, restored = small_model(0), small_model(1)
    save_weights(saved, tmp_path / "m.pt")
    load_weights(restored, tmp_path / "m.pt")
    for a, b in zip(saved.state_dict().values(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_fingerprints_cover_zero_dimensional_buffers_such_as_batchnorm_counters() -> None:
    from trustbench.fingerprint import fingerprint_tensors

    assert fingerprint_tensors([("n", torch.tensor(0))]) != fingerprint_tensors([("n", torch.tensor(1))])
    assert fingerprint_tensors(torch.nn.BatchNorm1d(3).state_dict().items())
