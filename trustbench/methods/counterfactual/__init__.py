"""Counterfactual explainers: find a close input the classifier assigns to a target class.

Importing the package registers every explainer in :data:`EXPLAINERS` under its config name; :func:`build`
constructs one by name. Each explainer lives in the module named after it.
"""

from trustbench.methods.counterfactual.clue import Clue, DeltaClue, NablaClue
from trustbench.methods.counterfactual.deduce import DeDUCE
from trustbench.methods.counterfactual.dice import DiCE
from trustbench.methods.counterfactual.diffeomorphic import Diffeomorphic
from trustbench.methods.counterfactual.dive import DiVE
from trustbench.methods.counterfactual.explainer import EXPLAINERS, Explainer, ExplanationData, build
from trustbench.methods.counterfactual.glam_clue import GlamClue
from trustbench.methods.counterfactual.growing_spheres import GrowingSpheres
from trustbench.methods.counterfactual.latent_gradient import LatentGradient
from trustbench.methods.counterfactual.region_targeted import RegionTargeted
from trustbench.methods.counterfactual.revise import Revise
from trustbench.methods.counterfactual.sharpshooter import SharpShooter
from trustbench.methods.counterfactual.sparse_vce import SparseVCE
from trustbench.methods.counterfactual.vcnet import VCNetExplainer
from trustbench.methods.counterfactual.wachter import Wachter

__all__ = [
    "Clue",
    "EXPLAINERS",
    "RegionTargeted",
    "Revise",
    "DeDUCE",
    "DeltaClue",
    "DiCE",
    "Diffeomorphic",
    "DiVE",
    "Explainer",
    "ExplanationData",
    "GlamClue",
    "GrowingSpheres",
    "LatentGradient",
    "NablaClue",
    "SharpShooter",
    "SparseVCE",
    "VCNetExplainer",
    "Wachter",
    "build",
]
