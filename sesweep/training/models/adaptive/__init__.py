"""Squeeze-and-Excitation whose reduction ratio is learned (``model.attention.adaptive``: learnable or dynamic).

How it works and the measured calibration behind its constants: ``docs/adaptive.md``.
"""

from sesweep.training.models.adaptive.model import (
    active_width_fraction,
    adaptive_modules,
    adaptive_parameters,
    adaptive_state,
    budget_fraction,
    cost_millions,
    cost_term,
    dynamic_width_stats,
    harden,
    harden_model,
    harden_to_widths,
    record_dynamic_widths,
    set_temperature,
    truncated,
)
from sesweep.training.models.adaptive.modules import (
    COST_UNITS,
    KNEE,
    TEMPERATURE,
    AdaptiveSE,
    AdaptiveSEFactory,
    CostUnit,
    DynamicSE,
    LearnableSE,
    round_half_up,
    soft_width,
)

__all__ = [
    "COST_UNITS", "KNEE", "TEMPERATURE", "AdaptiveSE", "AdaptiveSEFactory", "CostUnit", "DynamicSE", "LearnableSE",
    "active_width_fraction", "adaptive_modules", "adaptive_parameters", "adaptive_state", "budget_fraction",
    "cost_millions", "cost_term", "dynamic_width_stats", "harden", "harden_model", "harden_to_widths",
    "record_dynamic_widths", "round_half_up", "set_temperature", "soft_width", "truncated",
]
