"""Gradient attacks on a model's whole prediction (PGD, APGD-CE), shared by the adversarial suite and
PGD adversarial training, and attacks on explanations (Ghorbani et al., Dombrowski et al.)."""
