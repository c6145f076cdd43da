"""A damaged model-store or feature-cache entry (truncated, zeroed) is a miss: rebuilt, with one warning
naming it, never loaded into other numbers (issue 11 item 8)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import result, trustbench
from damaged_files import DAMAGES, truncate, zero_tensor
from hydra import compose, initialize_config_dir

from trustbench.app import CONFIG_DIR
from trustbench.backbones.mlp import MLP
from trustbench.methods.ood.cache import FeatureCache, extract_features
from trustbench.results.archives import damage
from trustbench.results.model_store import save_weights, stored_model, stored_model_path

# A post-hoc method on a classifier that learns something in 3 epochs (acc ≈ 0.63), so damaged weights
# would show in the metrics.
POSTHOC = ["method=msp", "data=synthetic_image", "backbone=mlp", "trainer.max_epochs=3"]


def small_model(seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP((8,), 3, hidden_sizes=[16])


def largest_tensor(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return max(state.values(), key=torch.Tensor.numel)


def warnings_naming(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()
    ]


@pytest.mark.parametrize("damage_file", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_feature_cache_entry_is_recomputed_with_one_warning(
    tmp_path: Path, damage_file, caplog: pytest.LogCaptureFixture
) -> None:
    model, x = small_model(0), torch.randn(64, 8)
    FeatureCache(tmp_path, model).features(x)
    (entry,) = tmp_path.glob("*.pt")
    damage_file(entry, torch.load(entry, weights_only=True)["logits"])

    cache = FeatureCache(tmp_path, model)
    with caplog.at_level(logging.WARNING, logger="trustbench"):
        again = cache.features(x)

    expected = extract_features(model, x, batch_size=512)
    assert torch.equal(again.logits, expected.logits) and torch.equal(again.features, expected.features)
    assert (cache.hits, cache.misses) == (0, 1)
    assert len(warnings_naming(caplog, entry)) == 1
    assert damage(entry) is None  # rebuilt: the next run hits it


def compose_posthoc(model_store: Path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=[*POSTHOC, f"paths.model_store={model_store}"])


@pytest.mark.parametrize("damage_file", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_model_store_entry_counts_as_absent_with_one_warning(
    tmp_path: Path, damage_file, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose_posthoc(tmp_path)
    model = small_model(0)
    entry = stored_model_path(cfg)
    save_weights(model, entry)
    assert stored_model(cfg) == entry
    damage_file(entry, largest_tensor(model.state_dict()))
    with caplog.at_level(logging.WARNING, logger="trustbench"):
        assert stored_model(cfg) is None
    assert len(warnings_naming(caplog, entry)) == 1


@pytest.fixture(scope="module")
def first_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs dir of one post-hoc run: its run dir, the stored classifier and the feature cache."""
    outputs = tmp_path_factory.mktemp("outputs")
    trustbench(
        "run", *POSTHOC, f"hydra.run.dir={outputs / 'first'}", env={"TRUSTBENCH_OUTPUTS": str(outputs)}
    )
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("damage_file", [truncate, zero_tensor], ids=["truncated", "one tensor zeroed"])
def test_a_run_retrains_over_a_damaged_store_entry_to_the_same_metrics(
    first_outputs: Path, tmp_path: Path, damage_file
) -> None:
    outputs = tmp_path / "outputs"
    shutil.copytree(first_outputs, outputs)
    (entry,) = (outputs / ".models").glob("*.pt")
    damage_file(entry, largest_tensor(torch.load(entry, weights_only=True)))

    again = trustbench(
        "run", *POSTHOC, f"hydra.run.dir={tmp_path / 'again'}", env={"TRUSTBENCH_OUTPUTS": str(outputs)}
    )

    assert "Traceback" not in again.stderr
    (warning,) = [line for line in again.stderr.splitlines() if "damaged" in line]
    assert str(entry) in warning
    assert (tmp_path / "again" / "checkpoints" / "last.ckpt").is_file(), "the classifier was not retrained"
    assert result(tmp_path / "again")["metrics"] == result(first_outputs / "first")["metrics"]
    assert damage(entry) is None
