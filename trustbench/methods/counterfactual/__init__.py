"""Counterfactual explainers: find a close input the classifier assigns to a target class."""
