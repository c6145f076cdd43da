"""Post-hoc OOD detectors working on cached logits/features (higher score = more OOD).

Importing the package registers every detector in :data:`DETECTORS` under its config name;
:func:`build` constructs one by name. Each detector lives in the module named after it.
"""

from trustbench.methods.ood.ash import ASH
from trustbench.methods.ood.deepgini import DeepGini
from trustbench.methods.ood.detector import DETECTORS, Detector, Features, NetworkDetector, build
from trustbench.methods.ood.energy import Energy
from trustbench.methods.ood.entropy import Entropy
from trustbench.methods.ood.gradnorm import GradNorm
from trustbench.methods.ood.kl_matching import KLMatching
from trustbench.methods.ood.knn import KNN
from trustbench.methods.ood.mahalanobis import Mahalanobis, RelativeMahalanobis
from trustbench.methods.ood.maxlogit import MaxLogit
from trustbench.methods.ood.msp import MSP
from trustbench.methods.ood.odin import ODIN
from trustbench.methods.ood.openmax import OpenMax
from trustbench.methods.ood.react import ReAct
from trustbench.methods.ood.surprise import DSA, LSA, MDSA
from trustbench.methods.ood.vim import ViM

__all__ = [
    "ASH",
    "DETECTORS",
    "DSA",
    "KNN",
    "LSA",
    "MDSA",
    "MSP",
    "ODIN",
    "DeepGini",
    "Detector",
    "Energy",
    "Entropy",
    "Features",
    "GradNorm",
    "KLMatching",
    "Mahalanobis",
    "MaxLogit",
    "NetworkDetector",
    "OpenMax",
    "ReAct",
    "RelativeMahalanobis",
    "ViM",
    "build",
]
