"""`method.checkpoint=` is accepted by every method, in a single run and in a sweep alike (issue 10, item 5).

A sweep composes each job with the plain override `method.checkpoint=...`; a method config without the key
used to fail there with "Key 'checkpoint' is not in struct" while a single run reached the runner. That
every method defaults to no checkpoint is checked with the other per-method keys in tests/test_configs.py.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from trustbench.cli import CONFIG_DIR, config_choices


@pytest.mark.parametrize("method", config_choices("method"))
def test_every_method_takes_a_checkpoint_override(method: str) -> None:
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=[f"method={method}", "method.checkpoint=weights/last.ckpt"])
    assert cfg.method.checkpoint == "weights/last.ckpt"
