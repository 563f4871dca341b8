"""The runner: the durable queue of a sweep's runs, its workers, and their MLflow tracking."""
