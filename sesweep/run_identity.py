"""What a run is: the spec keys its run key holds, and the key itself.

A run key hashes what a run computes (its resolved config, the identity of its data, the loader it reads them
with, :data:`RESULTS_VERSION`), so the same run is never trained twice and a result of other data or other
code semantics is never adopted. Which keys it leaves out is decided here and nowhere else: where the data
live (:data:`LOCATION_KEYS`), the keys a variant does not read (:func:`inert_keys`, derived from its attention
operators), and the loader's knobs (:data:`LOADER_KEYS`, whose effect is keyed as the loader they pick). What a
key promises is in the README ("Run keys"): the same experiment, not the same bits on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sesweep.datasets import data_identity, resolved_loader
from sesweep.operators import attention_reads
from sesweep.spec import ATTENTION_PREFIX, RecipeSpec, RunSpec, flatten

#: keys that say where or how fast a run happens, not what it computes; left out of the run key
LOCATION_KEYS = frozenset({"recipe.data_root", "recipe.loader_workers"})
#: keys that matter only through the loader they pick (:func:`key_loader`): the run key holds that loader
LOADER_KEYS = frozenset({"recipe.loader", "recipe.memory_budget_gb"})


def inert_keys(spec: RunSpec) -> frozenset[str]:
    """Keys that cannot change what a run computes: every attention key its operators do not read (every SE
    knob of a plain ResNet, the cost-term knobs of a fixed-width SE, ``init_std`` of an SE not initialised
    ``normal``), the reference batch of an unscaled learning rate, and the memory budget where no
    ``loader: auto`` on an image folder reads it. Neither keyed nor logged as a run's params."""
    r = spec.recipe
    recipe = {"recipe.lr_reference_batch"} if r.lr_scaling == "none" else set()
    if r.loader != "auto" or r.dataset != "imagefolder":
        recipe.add("recipe.memory_budget_gb")
    att = spec.model.attention
    reads = attention_reads(att)
    return frozenset(recipe) | frozenset(f"{ATTENTION_PREFIX}{f.name}" for f in dataclasses.fields(att)
                                         if f.name not in reads)


def _unkeyed_defaults(spec: RunSpec) -> frozenset[str]:
    """Attention keys added after run keys existed, while they hold their default (``unkeyed_default``): read,
    but left out so that every key from before they existed still means the same run."""
    att = spec.model.attention
    return frozenset(f"{ATTENTION_PREFIX}{f.name}" for f in dataclasses.fields(att)
                     if f.metadata.get("unkeyed_default") and getattr(att, f.name) == f.default)


def unkeyed_keys(spec: RunSpec) -> frozenset[str]:
    """Every spec key a run key leaves out: where the data live, the inert keys, the loader's knobs (the
    loader they pick is keyed instead), new keys at their default. A record shown in another sweep takes that
    sweep's values here (``runner.outputs.sweep_view``)."""
    return LOCATION_KEYS | LOADER_KEYS | inert_keys(spec) | _unkeyed_defaults(spec)


def key_loader(recipe: RecipeSpec) -> str:
    """The loader a run key holds: an image folder's resolved loader (``auto`` read through its budget, its
    augmentation and the folder's listing), so two budgets that pick one loader are one run; a built-in set is
    always loaded into memory, so its ``memory`` and ``auto`` are one run ("auto", as keys always had it)."""
    if recipe.dataset != "imagefolder":
        return "auto"
    if recipe.loader != "auto":
        return recipe.loader
    return resolved_loader(recipe)  # reads the folder's listing


#: What a run computes, beyond its config: part of every run key, so records of another version are never
#: adopted. BUMP IT whenever training or measurement semantics change (what a run trains on, how it trains,
#: what it measures or how), so every run is trained again; a change that computes the same numbers needs
#: no bump. Changelog:
#:   1  everything recorded before issue 9 (records without a ``results_version`` field)
#:   2  issue 9: run keys identify the data (:func:`sesweep.training.data.data_identity`) and records carry
#:      ``results_version``, ``code_version`` and ``data_id``; the other fixes of issue 9 (stratified
#:      excitation probe, the dynamic SE's budget over the whole test set, per-run measurements) change
#:      what runs compute
#:   3  issue 12: ``precision: auto`` is resolved once per sweep into the spec (so into the key; bf16 on CPUs
#:      with native bf16), ``recipe.eval_every``, resumable runs (``resumed_from_epoch``) and the time breakdown
#:      (``setup_seconds``, ``eval_seconds``, ``probe_seconds``) in every record
#:   4  issue 13: SE weights drawn under names without the placement site (placement contrasts start from the
#:      same SE weights), ``model.attention.init``, the stream loader and ImageNet augmentation (a data set
#:      over 50,000 train images is normalised with the statistics of a fixed 50,000-image sample),
#:      ``recipe.dropout``, ``recipe.lr_scaling``, ``resolved_loader`` in every record
RESULTS_VERSION = 4


def run_key(spec: RunSpec, data_id: str | None = None, loader: str | None = None) -> str:
    """A stable 16-hex-digit hash of what a run computes: the same run never trains twice.

    Covers the canonical resolved config minus the keys it leaves out (:func:`unkeyed_keys`), plus the
    identity of the data it reads (``data_id``; default: :func:`sesweep.datasets.data_identity` of its
    recipe, which reads an image folder's listing and raises :class:`SpecError` when it is not there), the
    loader it reads them with (``loader``; default: :func:`key_loader`) and :data:`RESULTS_VERSION`.
    What it promises: the same experiment (data, order, augmentation draws, initial weights, recipe), not the
    same bits on another CPU thread count, device or library version (README, "Run keys")."""
    if data_id is None:
        data_id = data_identity(spec.recipe)
    flat: dict[str, Any] = {k: v for k, v in flatten(spec).items() if k not in unkeyed_keys(spec)}
    flat["recipe.loader"] = key_loader(spec.recipe) if loader is None else loader
    flat["data_id"] = data_id  # not a spec key (those are dotted or `seed`): no collision
    flat["results_version"] = RESULTS_VERSION
    canonical = json.dumps(flat, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
