"""PGD adversarial training (Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018): minimise the cross-entropy at the worst point PGD finds in
the ε-ball around each training input, so there is a defence for the adversarial suite to evaluate.

The inner maximisation is :func:`trustbench.attacks.pgd.iterates` from one random start with
`steps` steps of 2.5·ε/steps (Madry et al. use 40 steps of 0.01 at ε = 0.3 on MNIST; the default
here, 7 steps at ε = 0.1, keeps an epoch to minutes on CPU). The attack runs with the network in
evaluation mode, so batch-norm statistics are not updated by adversarial inputs, and its random start
draws from the global generator, which checkpoints save, so a resumed run trains as an uninterrupted one.
`lower`/`upper` bound the inputs in model space ([0, 1] for the unnormalised MNIST-like sets).
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from trustbench.attacks.objective import Objective
from trustbench.attacks.pgd import Threat, default_step_size, iterates
from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, SchedulerFactory
from trustbench.methods.erm import ERM


class AdversarialTraining(ERM):
    """ERM on PGD adversarial examples; predicts (and is attacked) as ERM."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        epsilon: float = 0.1,
        steps: int = 7,
        norm: str = "linf",
        lower: float = 0.0,
        upper: float = 1.0,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        self.epsilon, self.steps, self.norm, self.lower, self.upper = epsilon, steps, norm, lower, upper

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        threat = Threat(self.norm, self.epsilon, x.new_tensor(self.lower), x.new_tensor(self.upper))
        objective = Objective(
            lambda inputs: self.backbone(inputs).softmax(dim=1), name="adversarial_training"
        )
        self.backbone.eval()
        size = default_step_size(threat, self.steps)
        *_, x_adv = iterates(objective, x, y, threat, self.steps, size, generator=None)
        self.backbone.train()
        return F.cross_entropy(self.backbone(x_adv), y)
