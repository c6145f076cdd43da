"""The explanations family: post-hoc attribution methods (captum), the model-randomisation sanity check,
attacks on explanations, adversarial training and explanation-guided training."""
