"""Workflows built on the training engine and on evaluation: launching a run (``launch``), sweeps,
replications (``replicate``), held-out checks, forgetting probes, run inspection and mechanism
activity, statistics, and the final model's export."""
