"""What a sweep costs before anything runs: each variant's model cost, and the sweep's training compute.

Models are built on PyTorch's meta device (shapes only: no memory, no arithmetic), once per distinct model,
so an absurd width is measured rather than allocated and a 10^4-point grid over recipe keys costs one build.
The training compute of a sweep is ``Σ over its runs of 6 × MACs × train images × epochs`` FLOP (2 FLOP per
multiply-accumulate; the backward pass about twice the forward), and a sweep above ``max_train_flop`` (a
top-level key of the sweep file, default :data:`MAX_TRAIN_FLOP`) is refused by ``sesweep run`` and its
``--dry-run`` with the estimate and the key that allows it. torch is imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sesweep.datasets import dataset_image_size, dataset_num_classes, folder_classes, folder_files, folder_root
from sesweep.spec import SpecError
from sesweep.sweepfile import MAX_TRAIN_FLOP, load_yaml, train_flop_limit

if TYPE_CHECKING:
    from sesweep.plan import Plan

#: a yardstick for the message: FLOP/s one GPU sustains in training (about a third of an H100's bf16 peak)
GPU_FLOPS = 300e12
#: training images of the built-in data sets (digits: the 80 % train split of scikit-learn's 1,797 images)
TRAIN_IMAGES = {"fake": 1000, "digits": 1438, "cifar10": 50_000, "cifar100": 50_000,
                "imagenet32": 1_281_167, "imagenet64": 1_281_167}
#: what an image folder that is not on this machine is taken to hold (ImageNet-1k's train split)
ASSUMED_FOLDER_IMAGES = 1_281_167


def variant_costs(plan: Plan) -> dict[str, tuple[dict[str, Any], str]]:
    """Each variant's model cost (params, SE params, MACs at the recipe's input size) and "*" where estimated.

    Where the data are not on this machine (imagefolder, CIFAR not downloaded) the class count and input
    size cannot be read; the cost is then given at the architecture's design size and 10 classes, marked."""
    import torch

    from sesweep.training.measure import attention_params, count_macs, count_params
    from sesweep.training.models import ARCHS, build_model

    shapes: dict[Any, tuple[int, int, str]] = {}
    built: dict[Any, dict[str, Any]] = {}
    costs: dict[str, tuple[dict[str, Any], str]] = {}
    for v in plan.variants:
        recipe = v.spec.recipe
        where = (recipe.dataset, recipe.data_root, recipe.image_size, v.spec.model.arch)
        if where not in shapes:
            try:
                shapes[where] = dataset_num_classes(recipe), dataset_image_size(recipe), ""
            except (SpecError, OSError):
                shapes[where] = 10, ARCHS[v.spec.model.arch].input_size, "*"
        classes, size, note = shapes[where]
        probe = (v.spec.model, classes, size)
        if probe not in built:
            try:
                with torch.device("meta"):
                    model = build_model(v.spec.model, classes, 3, 0)
                    macs = count_macs(model, size, 3)
            except RuntimeError:  # a model that reads its own values as it runs (adaptive SE): built for real;
                model = build_model(v.spec.model, classes, 3, 0)  # its size was bounded by plan_checks
                macs = count_macs(model, size, 3)
            built[probe] = {"params": count_params(model), "se_params": attention_params(model), "macs": macs,
                            "input_size": size}
        costs[v.name] = built[probe], note
    return costs


def train_images(recipe: Any) -> tuple[int, bool]:
    """How many images one epoch of ``recipe`` trains on, and whether that number is assumed (an image folder
    that is not here or cannot be listed)."""
    if recipe.dataset == "imagefolder":
        try:
            root = folder_root(recipe)
            n = len(folder_files(root / "train", folder_classes(root))[0])
            assumed = False
        except (SpecError, OSError):
            n, assumed = ASSUMED_FOLDER_IMAGES, True
    else:
        n, assumed = TRAIN_IMAGES[recipe.dataset], False
    if recipe.train_subset is not None:
        return min(n, recipe.train_subset) if not assumed else recipe.train_subset, False
    return n, assumed


def train_flop(plan: Plan, costs: Mapping[str, tuple[dict[str, Any], str]] | None = None) -> tuple[int, bool]:
    """The sweep's training compute in FLOP (``Σ runs 6 × MACs × train images × epochs``), and whether an
    image count in it is assumed (:data:`ASSUMED_FOLDER_IMAGES`)."""
    costs = variant_costs(plan) if costs is None else costs
    images: dict[Any, tuple[int, bool]] = {}
    total, assumed = 0, False
    for run in plan.runs:
        recipe = run.spec.recipe
        config = (recipe.dataset, recipe.data_root, recipe.train_subset)
        if config not in images:
            images[config] = train_images(recipe)
        n, guess = images[config]
        assumed = assumed or guess
        total += 6 * int(costs[run.variant][0]["macs"]) * n * recipe.epochs
    return total, assumed


def flop_limit(plan: Plan) -> float:
    """The sweep file's ``max_train_flop`` (checked when it was loaded), else :data:`MAX_TRAIN_FLOP`."""
    if "max_train_flop" not in plan.spec_text:  # the common case: no second parse
        return MAX_TRAIN_FLOP
    data = load_yaml(plan.spec_text)
    return train_flop_limit(data) if isinstance(data, Mapping) else MAX_TRAIN_FLOP


def check_compute(plan: Plan, costs: Mapping[str, tuple[dict[str, Any], str]] | None = None) -> int:
    """Refuse a sweep whose training compute is above its ``max_train_flop``, with the estimate, the limit and
    the key that allows it; returns the estimate (FLOP)."""
    costs = variant_costs(plan) if costs is None else costs
    total, assumed = train_flop(plan, costs)
    limit = flop_limit(plan)
    if total > limit:
        days = total / GPU_FLOPS / 86400
        guess = f"; an image folder not here taken as {ASSUMED_FOLDER_IMAGES:,} images" if assumed else ""
        allow = f"{float(10 ** math.ceil(math.log10(total))):.1e}"  # 1.0e+22: YAML reads it as a number
        raise SpecError("max_train_flop", (
            f"this sweep would train for about {total:.2g} FLOP (sum over its {len(plan.runs):,} runs of 6 x MACs x "
            f"train images x epochs{guess}; {days:,.3g} days of one GPU at {GPU_FLOPS / 1e12:.0f} TFLOP/s), more "
            f"than the limit of {limit:.2g}; check recipe.epochs and the sizes, or if you mean it set "
            f"max_train_flop: {allow} in the sweep file")).in_source(plan.source)
    return total
