"""The runner: the durable queue of a sweep's runs, its workers, and their MLflow tracking.

config (SweepConfig) → sweep (run_sweep) → worker (run_worker, processes) → queue (study, lock, heartbeat,
claim/finish) and outputs (run JSONs, runs.csv, manifest through :mod:`sesweep.results`); status (where a sweep
stands); commands (``sesweep run``/``status``); tracking (MLflow: the sweep's run) and tracked_run (a run's).
"""
