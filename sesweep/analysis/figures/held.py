"""Which variants a factor or ratio figure shows (its factor's levels, the other attention factors held, one
panel per architecture/recipe group) and how its caption says so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sesweep.analysis.equal_cost import ADAPTIVE_KEYS, adaptive_variants
from sesweep.analysis.factors import Analysis, held_levels, is_attention_off
from sesweep.analysis.fmt import format_value
from sesweep.spec import ATTENTION_PREFIX
from sesweep.vocabulary import short_name


def held_groups(an: Analysis, key: str, min_levels: int = 1) -> dict[str, list[str]]:
    """The SE variants that differ from the held levels (:func:`.factors.held_levels`) in ``key``
    only, per group of the non-attention factors ("arch=resnet20"; "" without such factors), in sweep order;
    groups with fewer than ``min_levels`` levels of ``key`` are left out."""
    held = {k: format_value(h.value) for k, h in held_levels(an).items() if k != key}
    grouping = [k for k in an.factors if not k.startswith(ATTENTION_PREFIX) and k != key]
    out: dict[str, list[str]] = {}
    for v in an.order:
        row = an.configs.loc[v]
        if an.is_baseline(v) or is_attention_off(row) or any(format_value(row[k]) != lv for k, lv in held.items()):
            continue
        out.setdefault(", ".join(f"{short_name(k)}={format_value(row[k])}" for k in grouping), []).append(v)
    return {g: vs for g, vs in out.items() if len({format_value(an.configs.at[v, key]) for v in vs}) >= min_levels}


def held_text(an: Analysis, key: str, groups: Mapping[str, Sequence[str]]) -> str:
    """For a caption: what the other attention factors are held at and why, what that leaves out, the panels."""
    held = [(k, h) for k, h in held_levels(an).items() if k != key]
    if any(k == "model.attention.adaptive" and format_value(h.value) == "none" for k, h in held):
        held = [(k, h) for k, h in held if k not in ADAPTIVE_KEYS]  # fixed-ratio SE: its cost-term knobs are inert
    why = {"base": "the sweep's base value{s}", "default": "the schema default{s}, as the base value{s} {w} not run",
           "first level": "the first level{s}, as neither base value{s} nor default{s} {w} run"}
    parts = []
    for source, reason in why.items():
        items = [f"{short_name(k)}={format_value(h.value)}" for k, h in held if h.source == source]
        if items:
            many = len(items) > 1
            parts.append(f"{', '.join(items)} ({reason.format(s='s' if many else '', w='were' if many else 'was')})")
    text = f"; others held at {'; '.join(parts)}" if parts else ""
    shown = {v for vs in groups.values() for v in vs}
    left = [v for v in an.order if v not in shown and not an.is_baseline(v) and not is_attention_off(an.configs.loc[v])]
    if left:
        adaptive = " (the adaptive ones are in the adaptive figures)" if set(left) & set(adaptive_variants(an)) else ""
        text += f"; not shown, at other levels of the held factors: {', '.join(left)}{adaptive}"
    if len(groups) > 1:
        text += f"; one panel per {', '.join(short_name(k) for k in an.factors if not k.startswith(ATTENTION_PREFIX))}"
    return text


def dashed_note(groups: Mapping[str, Sequence[str]]) -> str:
    return "; dashed: the baseline" + (" of the panel's group, where it has one" if len(groups) > 1 else "")

