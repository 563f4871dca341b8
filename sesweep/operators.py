"""The channel-attention operators by name, and the spec keys each one reads: the torch-free half of the seam.

An attention module is a squeeze (``model.attention.pool``) feeding an excitation
(``model.attention.excitation``) whose output passes the gate. Each operator's module, cost and per-block widths
or kernels live in its own file under :mod:`sesweep.training.models.operators`; what sits here is only what the
spec layer needs without torch: the names (the spec's allowed values are these keys) and the keys each operator
reads. :func:`attention_reads` derives from them which attention keys a variant reads, so every other attention
key is inert (out of the run key) by construction — a new operator adds one entry here, naming what it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: every SE-like module reads these, whatever its operators (``kind`` switches attention on)
COMMON_READS = frozenset({"kind", "excitation", "pool", "gate", "placement", "stages"})
#: the keys of a module with weights: their init and whether its layers have biases
WEIGHTS = frozenset({"bias", "init", "init_std"})

#: excitation operator → the attention keys it reads (beyond :data:`COMMON_READS`)
EXCITATIONS: dict[str, frozenset[str]] = {
    # SENet's MLP: C -> C/r -> C, the only one with a ratio and an adaptive (learned) width
    "mlp": WEIGHTS | {"reduction", "min_hidden", "divisor", "adaptive", "cost_weight", "cost_unit"},
    "none": frozenset(),                      # ECA's SE-Var1: the gate on the pooled descriptor, 0 parameters
    "channelwise": WEIGHTS,                   # SE-Var2: one weight per channel (SRM's CFC with avgstd)
    "fc": WEIGHTS,                            # SE-Var3: one full FC, no reduction
    "eca": WEIGHTS | {"eca_kernel"},          # ECA: a 1-D convolution of size k across channels
}

#: squeeze (pool) operator → the attention keys it reads (beyond :data:`COMMON_READS`)
SQUEEZES: dict[str, frozenset[str]] = {
    "avg": frozenset(),                       # SENet: global average pooling
    "max": frozenset(),                       # SENet Table 11: global max pooling
    "avgmax": frozenset(),                    # timm's add_maxpool: the mean of both
    "avgstd": frozenset(),                    # SRM's style pooling: mean and standard deviation per channel
    "dct": frozenset({"dct_frequencies"}),    # FcaNet's multi-spectral DCT pooling
}

EXCITATION_NAMES = tuple(EXCITATIONS)
SQUEEZE_NAMES = tuple(SQUEEZES)

#: keys read only when another key of the same module says so (a knob of a knob)
WHEN: dict[str, Callable[[Any], bool]] = {
    "init_std": lambda att: att.init == "normal",          # only the normal init has a std
    "cost_weight": lambda att: att.adaptive != "none",     # the cost term of a learned width
    "cost_unit": lambda att: att.adaptive != "none",
}


def attention_reads(att: Any) -> frozenset[str]:
    """The attention keys (field names of :class:`sesweep.spec.AttentionSpec`) that ``att`` reads: none for
    ``kind: none``, else the common keys and what its excitation and squeeze declare, less knobs of knobs
    that are off (:data:`WHEN`)."""
    if att.kind == "none":
        return frozenset({"kind"})
    keys = COMMON_READS | EXCITATIONS[att.excitation] | SQUEEZES[att.pool]
    return frozenset(k for k in keys if k not in WHEN or WHEN[k](att))
