"""`trustbench audit`: one trained model, every evaluation family that applies to its data, one report.

The audit is the run path of `trustbench run` with several suites on one fitted model: :mod:`.plan` decides
which members (suites, detectors, explainers) apply, :mod:`.members` runs each one on a shared evaluation
context and keeps its outcome on disk, :mod:`.run` ties them to the fitted model and the record.
"""
