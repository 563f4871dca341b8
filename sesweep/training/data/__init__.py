"""Data sets for training: in memory as uint8 tensors, or streamed from image folders, with matched batches.

By default a data set is loaded once into ``uint8 [N, C, H, W]`` CPU tensors (:class:`ImageSet`); training
moves the whole train tensor to the device once and builds each batch there with a few tensor ops — no
per-image Python, no DataLoader workers (the airbench recipe). Image folders too large for that are streamed
(``recipe.loader``), with the same batches. Modules, in pipeline order: :mod:`.sources` (which data set,
loading), :mod:`.imagefolder` (decoding, decode cache),
:mod:`.downsampled` (ImageNet 32×32 / 64×64 npz files), :mod:`.images` (containers, subsets, statistics,
resizing), :mod:`.loaders` (memory or stream), :mod:`.augment` (the matched draws and augmentations),
:mod:`.batches` (batches in memory), :mod:`.stream` (batches from worker processes). The listing of image
folders and npz files, the data identity and the loader a recipe resolves to are torch-free, in
:mod:`sesweep.datasets` (re-exported here).
"""

from sesweep.datasets import (
    DIGITS_SPLIT_SEED,
    DIGITS_TEST_FRACTION,
    NATIVE_SIZE,
    NUM_CLASSES,
    cache_dir,
    data_identity,
    dataset_channels,
    dataset_image_size,
    dataset_num_classes,
    folder_classes,
    folder_files,
    folder_fingerprint,
    folder_root,
    resolved_loader,
)
from sesweep.training.data.augment import CROP_PAD, epoch_generator
from sesweep.training.data.batches import TrainBatches, eval_batches
from sesweep.training.data.images import DataSplits, ImageSet, channel_stats, largest_remainder, resize, subset
from sesweep.training.data.loaders import train_batches
from sesweep.training.data.sources import DEFAULT_DATA_ROOT, load_data

__all__ = [
    "CROP_PAD", "DEFAULT_DATA_ROOT", "DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "NATIVE_SIZE", "NUM_CLASSES",
    "DataSplits", "ImageSet", "TrainBatches", "cache_dir", "channel_stats", "data_identity", "dataset_channels",
    "dataset_image_size", "dataset_num_classes", "epoch_generator", "eval_batches", "folder_classes",
    "folder_files", "folder_fingerprint", "folder_root", "largest_remainder", "load_data", "resize",
    "resolved_loader", "subset", "train_batches",
]
