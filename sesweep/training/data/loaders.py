"""Which loader serves a recipe (``recipe.loader``), the streamed splits, and the training batches of either.

``memory`` decodes a data set once into uint8 tensors that training keeps on its device (:mod:`.batches`);
``stream`` decodes image folders batch by batch in worker processes (:mod:`.stream`). Both give the same
batches for the same images; ``auto`` picks memory when the decoded splits fit ``recipe.memory_budget_gb``,
and stream for ImageNet augmentation on an image folder, whose random-resized crops are cut from the
originals (of any size).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from sesweep.cache import cache_dir
from sesweep.datasets import folder_classes, folder_files, folder_fingerprint, folder_root
from sesweep.spec import RecipeSpec, SpecError
from sesweep.training.data.batches import TrainBatches
from sesweep.training.data.imagefolder import check_sizes, decode_rules
from sesweep.training.data.images import (
    STATS_IMAGES,
    DataSplits,
    ImageSet,
    stats_from_histograms,
    stats_index,
    subset_index,
)
from sesweep.training.data.stream import FileSet, StreamBatches, file_set, stream_histograms, worker_count

#: bump when what the cached stream statistics depend on changes
_STATS_VERSION = 1


def load_stream(recipe: RecipeSpec, size: int) -> DataSplits:
    """An image folder's splits as :class:`.stream.FileSet` s: listed, subset, and measured (mean/std over the
    same images and with the same decoding as the memory loader would use)."""
    root = folder_root(recipe)
    classes = folder_classes(root)
    train_rule, test_rule = decode_rules(recipe, size)
    workers = worker_count(recipe.loader_workers)
    train = file_set(*folder_files(root / "train", classes), classes, train_rule, workers)
    test = file_set(*folder_files(root / "test", classes), classes, test_rule, workers)
    if recipe.train_subset is not None:
        train = train.subset(subset_index(train.labels, len(classes), recipe.train_subset, "recipe.train_subset",
                                          "train"))
    if recipe.test_subset is not None:
        test = test.subset(subset_index(test.labels, len(classes), recipe.test_subset, "recipe.test_subset", "test"))
    if len(train) < 2:
        key = "recipe.train_subset" if recipe.train_subset is not None else "recipe.data_root"
        raise SpecError(key, f"training needs at least 2 images (BatchNorm), got {len(train)}")
    if len(test) == 0:
        raise SpecError("recipe.data_root", f"no images in test/ under {root}")
    mean, std = _normalisation(recipe, root, train)
    return DataSplits(recipe.dataset, train, test, mean, std, flip=True, input_size=size, loader="stream")


def _normalisation(recipe: RecipeSpec, root: Path, train: FileSet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of a streamed train split: one decoding pass over up to 50,000 images, checked for one size
    where nothing resizes them, and cached (``cache_dir()/stream-stats``) under the folder's identity, the
    decoding and the subset — the pass costs about an epoch of decoding, every run of a sweep would repeat it."""
    what = json.dumps([folder_fingerprint(root), repr(train.decode), recipe.train_subset, STATS_IMAGES,
                       _STATS_VERSION])
    path = cache_dir() / "stream-stats" / f"{hashlib.sha256(what.encode()).hexdigest()[:24]}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        doc = json.loads(path.read_text())
        return tuple(map(float, doc["mean"])), tuple(map(float, doc["std"]))
    hists, sizes = stream_histograms(train, stats_index(train.labels, len(train.classes)))
    if recipe.augment != "imagenet":  # ImageNet crops come from images of any size; the others keep theirs
        check_sizes(sizes, str(root / "train"))
    mean, std = stats_from_histograms(hists)
    with contextlib.suppress(OSError):  # a read-only or full cache disk costs the next run this pass, nothing else
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"mean": mean, "std": std, "what": json.loads(what)}))
        os.replace(tmp, path)
    return mean, std


def train_batches(splits: DataSplits, recipe: RecipeSpec, seed: int, device: torch.device) -> Any:
    """The run's training batches: :class:`.TrainBatches` for splits in memory, :class:`.StreamBatches` for
    streamed ones — the same batches either way."""
    kwargs: dict[str, Any] = dict(batch_size=recipe.batch_size, mean=splits.mean, std=splits.std,
                                  augment=recipe.augment, flip=splits.flip, seed=seed, device=device,
                                  channels_last=recipe.channels_last, crop_size=splits.image_size)
    if isinstance(splits.train, ImageSet):
        return TrainBatches(splits.train, **kwargs)
    return StreamBatches(splits.train, **kwargs)
