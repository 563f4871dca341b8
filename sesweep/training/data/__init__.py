"""Data sets as in-memory uint8 tensors, and batched augmentation on the training device.

Every data set is loaded once into ``uint8 [N, C, H, W]`` CPU tensors (:class:`ImageSet`); training moves the
whole train tensor to the device once and builds each batch there with a few tensor ops — no per-image
Python, no DataLoader workers (the airbench recipe). Modules: :mod:`.images` (containers, subsets, statistics,
resizing), :mod:`.sources` (which data set, loading, the data identity), :mod:`.imagefolder` (listing,
fingerprint, decode cache), :mod:`.batches` (the matched epoch order and augmentation).
"""

from sesweep.training.data.batches import CROP_PAD, TrainBatches, epoch_generator, eval_batches
from sesweep.training.data.imagefolder import cache_dir, folder_classes, folder_files, folder_fingerprint, folder_root
from sesweep.training.data.images import DataSplits, ImageSet, channel_stats, largest_remainder, resize, subset
from sesweep.training.data.sources import (
    DEFAULT_DATA_ROOT,
    DIGITS_SPLIT_SEED,
    DIGITS_TEST_FRACTION,
    NATIVE_SIZE,
    NUM_CLASSES,
    data_identity,
    dataset_channels,
    dataset_image_size,
    dataset_num_classes,
    load_data,
)

__all__ = [
    "CROP_PAD", "DEFAULT_DATA_ROOT", "DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "NATIVE_SIZE", "NUM_CLASSES",
    "DataSplits", "ImageSet", "TrainBatches", "cache_dir", "channel_stats", "data_identity", "dataset_channels",
    "dataset_image_size", "dataset_num_classes", "epoch_generator", "eval_batches", "folder_classes",
    "folder_files", "folder_fingerprint", "folder_root", "largest_remainder", "load_data", "resize", "subset",
]
