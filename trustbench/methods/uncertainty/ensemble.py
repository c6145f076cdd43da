"""Deep ensembles: M independently initialised networks trained side by side, their softmax averaged.

Source: Lakshminarayanan, Pritzel & Blundell, "Simple and Scalable Predictive Uncertainty Estimation using
Deep Ensembles", NeurIPS 2017. The members differ only by their random initialisation, as in the paper's
classification experiments; they see the same batches (the paper also shuffles per member) and the
optional adversarial training is not used. The prediction is p̄ = (1/M) Σ_m p_m.

Scores, higher = more uncertain: ``entropy`` H[p̄] and ``mutual_information`` H[p̄] − mean_m H[p_m] (both in
nats, as for MC dropout), and ``disagreement``: the share of members whose argmax differs from the
ensemble's, 1 − (1/M) Σ_m 1[argmax p_m = argmax p̄], in [0, 1 − 1/M].
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, Prediction, SchedulerFactory, TrustModule
from trustbench.methods.uncertainty.mc_dropout import SAMPLE_SCORES, require_score, sample_prediction

ENSEMBLE_SCORES = (*SAMPLE_SCORES, "disagreement")


def reinitialised_copy(backbone: Backbone) -> Backbone:
    """A deep copy of `backbone` with every layer re-drawn by its own `reset_parameters`.

    Each call draws from the global torch generator, so successive copies get different weights and a
    seeded run gets the same ones. A layer holding parameters without `reset_parameters` is refused,
    since it would silently stay identical across members.
    """
    member = copy.deepcopy(backbone)
    for name, module in member.named_modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(
                f"cannot re-initialise layer {name!r} ({type(module).__name__}) of {type(backbone).__name__} "
                "for a deep ensemble: it has parameters but no reset_parameters(); give it one."
            )
    return member


def disagreement(sample_probs: torch.Tensor) -> torch.Tensor:
    """Share of the M members (M × N × K) whose top class differs from that of their mean."""
    ensemble_class = sample_probs.mean(dim=0).argmax(dim=1)
    return 1 - (sample_probs.argmax(dim=2) == ensemble_class).to(sample_probs.dtype).mean(dim=0)


class DeepEnsemble(TrustModule):
    """`num_members` copies of the backbone, trained on the sum of their cross-entropies (module docstring).

    The sum gives each member exactly the gradient of its own loss, so one optimiser with one learning rate
    trains every member as if it were alone. Member 0 is the given backbone (so `self.backbone` stays
    meaningful for code that reads features); the others are re-initialised copies. Members run one after
    another.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_members: int = 5,
        score: str = "entropy",
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        if num_members < 2:
            raise ValueError(
                f"a deep ensemble needs num_members >= 2; got {num_members}. For one model use erm."
            )
        require_score("DeepEnsemble", score, ENSEMBLE_SCORES)
        self.score = score
        self.automatic_optimization = False  # see training_step: one backward per member
        self.members = nn.ModuleList(
            [backbone, *(reinitialised_copy(backbone) for _ in range(num_members - 1))]
        )

    def member_loss(self, member: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One member's training loss: cross-entropy here, the Gaussian NLL for regression ensembles."""
        return F.cross_entropy(member(x), y)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.member_loss(member, x, y) for member in self.members]).sum()

    def backward_members(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Back-propagate each member's loss on its own; returns the detached sum (= `training_loss`).

        The gradients equal those of `training_loss`, but only one member's activations are alive at a
        time: one summed backward kept all M graphs in memory and made an epoch 1.22 × M single models
        on CPU, against about 1.0 × M this way (scripts/bench_uncertainty.py).
        """
        total = torch.zeros((), device=self.device)
        for member in self.members:
            loss = self.member_loss(member, x, y)
            if self._trainer is None:  # outside a Trainer (benchmarks, tests): plain autograd
                loss.backward()
            else:
                self.manual_backward(loss)
            total = total + loss.detach()
        return total

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # Manual optimisation (set in __init__): one backward per member, then one optimiser step.
        x, y = batch
        optimizer = self.optimizers()
        optimizer.zero_grad()
        total = self.backward_members(x, y)
        self.record_training_loss(total)
        optimizer.step()
        return total

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        scheduler = self.lr_schedulers()
        if scheduler is not None:  # under manual optimisation Lightning leaves epoch schedulers to us
            scheduler.step()

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's softmax output: M × N × K."""
        return torch.stack([member(x).softmax(dim=1) for member in self.members])

    def predict(self, x: torch.Tensor) -> Prediction:
        member_probs = self.member_probs(x)
        if self.score == "disagreement":
            return Prediction(probs=member_probs.mean(dim=0), uncertainty=disagreement(member_probs))
        return sample_prediction(member_probs, self.score)
