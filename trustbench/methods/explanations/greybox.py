"""Greybox XAI (Bennetot, Franchi, Del Ser, Chatila & Díaz-Rodríguez, "Greybox XAI: a Neural-Symbolic
learning framework to produce interpretable predictions for image classification", Knowledge-Based
Systems 2022): a network predicts a symbolic description of the image (which concepts are present), a
transparent model (multinomial logistic regression) predicts the class from that description, and the
explanation is the concepts that drove the decision.

Training batches are (x, y, concepts) (``needs_annotations``; ``data=digit_mosaic``). The loss is the
binary cross-entropy of the backbone's features → `concepts` sigmoid outputs (summed over concepts)
plus the cross-entropy of the logistic regression on the annotated concepts, so the network learns only
the concepts and the regression only the rule, from the symbolic descriptions themselves; at test time
the regression reads the network's concept probabilities. Departures: the paper trains the two stages
one after the other and its network detects object parts (here: which digits appear); fitting the
regression to the network's early, noisy predictions instead (we tried, 3 epochs) left it at 0.63-0.82
accuracy even on the true concepts. The backbone's own classification head is not used.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, Prediction, SchedulerFactory
from trustbench.methods.explanations.guided import AnnotatedTraining


class Greybox(AnnotatedTraining):
    """Backbone features → concept probabilities → logistic regression → class."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        concepts: int = 10,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        self.concept_head = nn.Linear(backbone.feature_dim, concepts)
        self.regression = nn.Linear(concepts, num_classes)

    def concept_logits(self, x: Tensor) -> Tensor:
        return self.concept_head(self.backbone.features(x))

    def guided_loss(self, x: Tensor, y: Tensor, annotation: Tensor) -> Tensor:
        concept_logits = self.concept_logits(x)
        bce = F.binary_cross_entropy_with_logits(concept_logits, annotation.float(), reduction="none")
        concept_loss = bce.sum(dim=1).mean()  # summed over concepts: a mean would shrink each one's gradient
        rule_loss = F.cross_entropy(self.regression(annotation.float()), y)
        return concept_loss + rule_loss

    def predict(self, x: Tensor) -> Prediction:
        probs = self.regression(self.concept_logits(x).sigmoid()).softmax(dim=1)
        return Prediction(probs=probs, uncertainty=-probs.max(dim=1).values)
