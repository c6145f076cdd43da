"""Regression uncertainty methods: the Gaussian head, MC dropout and ensembles over Gaussian heads, CaR, and
the post-hoc SLURP side learner and conformal intervals; all predict a distribution per row."""
