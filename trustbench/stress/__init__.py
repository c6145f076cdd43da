"""Stress transforms of a test sample: what a trained model does if its inputs were distributed differently.

Two ways to move one feature's distribution without retraining and without new data:

- :mod:`.tilting`: entropic variable projection (Bachoc, Gamboa, Halford, Loubes & Risser, Information and
  Inference 2023) reweights the rows, so the model's one prediction pass serves every stress level;
- :mod:`.transport`: quantile-constrained Wasserstein projection (Il Idrissi, Bousquet, Gamboa, Iooss &
  Loubes, 2022) moves the feature's values through their ranks, so the changed rows are predicted again.

:mod:`.grid` holds the stress levels both share: τ in [−1, 1], 0 unstressed, ±1 the feature pushed to its
α or 1 − α quantile.
"""
