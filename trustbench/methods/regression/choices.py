"""The allowed values of the regression methods' string settings, in a module free of torch.

The methods check their settings when built (for callers of the Python API) and the config check reads
the same tuples before any heavy import (:mod:`trustbench.methods.regression.checks`), so both name the
same choices and a wrong override fails in under a second.
"""

CAR_SPACINGS = ("uniform", "log")  # bin edges of classification-as-regression
CAR_SCORES = ("variance", "entropy")  # its uncertainty score
CONFORMAL_SCORES = ("residual", "normalized")  # nonconformity score of split conformal intervals
SIDE_LEARNER_LOSSES = ("bce", "nll")  # SLURP's side-learner loss
