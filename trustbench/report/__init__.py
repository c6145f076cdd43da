"""The HTML report of runs and sweeps on disk: `trustbench report PATH...` and the audit's report.html."""
