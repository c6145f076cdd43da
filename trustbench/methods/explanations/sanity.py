"""The model-randomisation sanity check's randomised model (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018): a copy of the classifier whose top layers are re-initialised.

Adebayo et al. randomise cascading from the logits down and plot the rank correlation layer by layer; we
report one point of that cascade, the top `layers` parameterised layers (the head first), so the check
costs one more set of maps. A map that barely changes (rank correlation near 1) does not depend on what
the network learnt there.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

PARAMETERISED = (nn.Linear, nn.Conv2d, nn.Conv1d)


def randomised_copy(model: nn.Module, layers: int, seed: int) -> nn.Module:
    """A deep copy of `model` with its last `layers` Linear/Conv layers (registration order, which is
    forward order for our backbones) re-initialised by their own ``reset_parameters``, from `seed`."""
    if layers < 1:
        raise ValueError(f"the randomisation check re-initialises at least one layer; got layers={layers}")
    randomised = copy.deepcopy(model)
    candidates = [m for m in randomised.modules() if isinstance(m, PARAMETERISED)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in candidates[-layers:]:
            module.reset_parameters()
    return randomised.eval()
