"""Every method accepts `method.checkpoint`, so one override works in a single run and in a `-m` sweep."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from trustbench.app import CONFIG_DIR
from trustbench.cli import config_choices


@pytest.mark.parametrize("name", config_choices("method"))
def test_every_method_accepts_a_checkpoint_override_without_plus(name: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        default = compose("config", overrides=[f"method={name}"]).method
        given = compose("config", overrides=[f"method={name}", "method.checkpoint=weights.ckpt"]).method
    assert default.checkpoint is None
    assert given.checkpoint == "weights.ckpt"
