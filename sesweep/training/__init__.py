"""Training: the only place that imports torch — data, models, the training loop, measurements, benchmarks."""
