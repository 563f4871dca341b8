"""sesweep: matched ablation sweeps of Squeeze-and-Excitation networks."""

__version__ = "0.1.0"
