"""Data sets, subsets, the imagefolder cache and batched augmentation (sesweep.training.data).

Every test makes its own small data (CIFAR pickles, PNG trees) in tmp_path; none touches the network
or /work/shared/data.
"""

from __future__ import annotations

import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sesweep.spec import RecipeSpec, SpecError
from sesweep.training import data as sd
from sesweep.training.data import (
    DataSplits,
    ImageSet,
    TrainBatches,
    channel_stats,
    dataset_channels,
    dataset_image_size,
    dataset_num_classes,
    eval_batches,
    largest_remainder,
    load_data,
    subset,
)
from sesweep.training.data import imagefolder as sd_folder
from sesweep.training.data import sources as sd_sources

# --------------------------------------------------------------------------------------------------
# helpers


def recipe(**kw: object) -> RecipeSpec:
    return RecipeSpec(**kw)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Any CIFAR download attempt fails at once (and is recorded) instead of touching the network."""
    import torchvision.datasets.cifar as tv_cifar

    calls: list[tuple] = []

    def offline(url: str, root: str, **kw: object) -> None:
        calls.append((url, root, kw))
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    return calls


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SESWEEP_CACHE", str(cache))
    return cache


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(root: Path, per_batch: int = 6, n_test: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-10's on-disk format: pickled dicts, rows of 3072 bytes (1024 R, 1024 G, 1024 B, row-major)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = [], []
    for b in range(1, 6):
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        _pickle(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "data": x,
                                             "labels": y, "filenames": [f"{b}_{i}.png" for i in range(per_batch)]})
        train_x.append(x)
        train_y += y
    tx = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    ty = rng.integers(0, 10, n_test).tolist()
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": tx, "labels": ty,
                                    "filenames": [f"t_{i}.png" for i in range(n_test)]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return {"train_x": np.concatenate(train_x), "train_y": np.array(train_y),
            "test_x": tx, "test_y": np.array(ty), "names": np.array(names)}


def write_cifar100(root: Path, n_train: int = 30, n_test: int = 9) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        _pickle(folder / split, {"data": x, "fine_labels": fine, "coarse_labels": [f // 5 for f in fine],
                                 "filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": split})
        out[f"{split}_x"], out[f"{split}_y"] = x, np.array(fine)
    names = [f"fine{k:02d}" for k in range(100)]
    _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": [f"c{k}" for k in range(20)]})
    out["names"] = np.array(names)
    return out


def nchw(rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rows.reshape(-1, 3, 32, 32))


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_folder(root: Path, size: int = 8) -> dict[str, list[np.ndarray]]:
    """train/{bird,cat,dog}/ and test/{bird,dog}/ PNGs, each image unique; plus files to be ignored."""
    rng = np.random.default_rng(2)
    written: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    counts = {"train": {"bird": 3, "cat": 2, "dog": 4}, "test": {"bird": 2, "dog": 1}}
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            for i in range(n):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                write_png(root / split / cls / f"img{i:02d}.png", img)
                written[split].append(img)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    write_png(root / "train" / "cat" / ".hidden.png", np.zeros((size, size, 3), np.uint8))
    return written


def stack_hwc(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------------
# built-in data sets


def test_digits_shapes_split_and_stratification() -> None:
    from sklearn.datasets import load_digits

    d = load_data(recipe(dataset="digits"))
    assert isinstance(d, DataSplits)
    assert d.name == "digits" and d.flip is False
    assert (d.num_classes, d.channels, d.image_size) == (10, 3, 32)
    assert d.train.classes == tuple(str(k) for k in range(10))
    assert d.train.images.shape == (1438, 3, 32, 32) and d.test.images.shape == (359, 3, 32, 32)
    assert torch.equal(d.train.images[:, 0], d.train.images[:, 2])  # grey, repeated to RGB
    assert d.train.images.dtype == torch.uint8 and d.train.labels.dtype == torch.int64
    assert d.train.images.is_contiguous() and d.test.images.is_contiguous()
    assert int(d.train.images.max()) == 255  # 16 → 255
    # stratified: each class's test share is its largest-remainder quota of 359
    full = np.bincount(load_digits().target, minlength=10)
    test_counts = torch.bincount(d.test.labels, minlength=10).numpy()
    assert test_counts.tolist() == largest_remainder(full.tolist(), 359)
    assert (test_counts + torch.bincount(d.train.labels, minlength=10).numpy()).tolist() == full.tolist()
    # fixed split: a second load is identical
    again = load_data(recipe(dataset="digits"))
    assert torch.equal(again.test.images, d.test.images) and torch.equal(again.train.labels, d.train.labels)
    assert (dataset_num_classes(recipe()), dataset_channels(recipe()), dataset_image_size(recipe())) == (10, 3, 32)


def test_digits_upsampling_is_bilinear_of_the_scaled_pixels() -> None:
    from sklearn.datasets import load_digits

    raw = torch.from_numpy(load_digits().images.astype(np.float32) * (255 / 16)).unsqueeze(1)
    ref = F.interpolate(raw, size=(32, 32), mode="bilinear", align_corners=False).round().clamp(0, 255)
    d = load_data(recipe(dataset="digits", image_size=32))
    all_images = {bytes(img.numpy()) for img in ref.to(torch.uint8)}
    assert all(bytes(img[:1].numpy()) in all_images for img in d.test.images[:50])


def test_fake_is_deterministic_balanced_and_measured() -> None:
    d = load_data(recipe(dataset="fake"))
    assert d.train.images.shape == (1000, 3, 32, 32) and d.test.images.shape == (200, 3, 32, 32)
    assert torch.bincount(d.train.labels).tolist() == [100] * 10
    assert d.flip is True and d.num_classes == 10
    again = load_data(recipe(dataset="fake"))
    assert torch.equal(again.train.images, d.train.images) and torch.equal(again.test.labels, d.test.labels)
    x = d.train.images.double() / 255
    assert np.allclose(d.mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-9)
    assert np.allclose(d.std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-9)
    assert not torch.equal(d.train.images[:200], d.test.images)

    # class-dependent patterns (phase is random): nearest class centroid of |FFT| generalises to test
    def spectrum(x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(x.double() - 128).abs().flatten(1)

    centroids = torch.stack([spectrum(d.train.images[d.train.labels == k]).mean(0) for k in range(10)])
    predicted = torch.cdist(spectrum(d.test.images), centroids).argmin(1)
    assert (predicted == d.test.labels).double().mean() > 0.9


def test_image_size_resizes_antialiased() -> None:
    d = load_data(recipe(dataset="fake", image_size=16, train_subset=20, test_subset=10))
    assert d.train.images.shape == (20, 3, 16, 16) and d.image_size == 16
    src = subset(sd_sources._fake_split(1000, seed=0), 20, "k", "train").images.float()
    ref = F.interpolate(src, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(d.train.images, ref.round().clamp(0, 255).to(torch.uint8))
    assert dataset_image_size(recipe(dataset="cifar10", image_size=40)) == 40
    assert dataset_image_size(recipe(dataset="fake")) == 32


# --------------------------------------------------------------------------------------------------
# CIFAR through torchvision, from files in CIFAR's own pickle format


def test_cifar10_reads_pickle_files(tmp_path: Path, no_network: list) -> None:
    ref = write_cifar10(tmp_path)
    d = load_data(recipe(dataset="cifar10", data_root=str(tmp_path)))
    assert no_network == []  # files present: no download attempted
    assert d.train.classes == tuple(ref["names"]) and d.num_classes == 10
    assert torch.equal(d.train.images, nchw(ref["train_x"]))  # batches 1..5 in order, CHW planes
    assert torch.equal(d.train.labels, torch.from_numpy(ref["train_y"]))
    assert torch.equal(d.test.images, nchw(ref["test_x"]))
    assert torch.equal(d.test.labels, torch.from_numpy(ref["test_y"]))
    # the R plane of row 0 holds bytes 0..31: the first pixel row, not a column
    assert torch.equal(d.train.images[0, 0, 0], torch.from_numpy(ref["train_x"][0, :32]))
    # pointing data_root at the extracted folder itself also works
    d2 = load_data(recipe(dataset="cifar10", data_root=str(tmp_path / "cifar-10-batches-py")))
    assert torch.equal(d2.test.images, d.test.images)


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    ref = write_cifar100(tmp_path)
    d = load_data(recipe(dataset="cifar100", data_root=str(tmp_path)))
    assert d.num_classes == 100 == dataset_num_classes(recipe(dataset="cifar100"))
    assert d.train.classes[7] == "fine07"
    assert torch.equal(d.train.images, nchw(ref["train_x"]))
    assert torch.equal(d.train.labels, torch.from_numpy(ref["train_y"]))
    assert torch.equal(d.test.labels, torch.from_numpy(ref["test_y"]))


def test_cifar_default_root_is_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_cifar10(tmp_path / ".cache" / "sesweep" / "data")
    assert len(load_data(recipe(dataset="cifar10")).train) == 30


def test_cifar_missing_files_is_a_clear_error(tmp_path: Path, no_network: list) -> None:
    with pytest.raises(SpecError) as err:
        load_data(recipe(dataset="cifar10", data_root=str(tmp_path / "nowhere")))
    assert err.value.key == "recipe.data_root"
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "download" in msg and "cifar-10-python.tar.gz" in msg
    assert "data_batch_1" in msg  # says what is missing
    # it did try torchvision's download, with the release archive's md5 still checked
    assert len(no_network) == 1 and no_network[0][2]["md5"] == "c58f30108f718f92721af3b95e74349a"


def test_cifar_download_path_loads_what_was_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    fetched: list[str] = []

    def fake_download(url: str, root: str, **kw: object) -> None:
        fetched.append(url)
        write_cifar100(Path(root))

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_download)
    d = load_data(recipe(dataset="cifar100", data_root=str(tmp_path)))
    assert fetched == ["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"]
    assert len(d.train) == 30 and len(d.test) == 9


def test_cifar_truncated_file_is_a_read_error(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(SpecError, match="cannot read") as err:
        load_data(recipe(dataset="cifar10", data_root=str(tmp_path)))
    assert err.value.key == "recipe.data_root"


# --------------------------------------------------------------------------------------------------
# imagefolder


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = sd_folder._decode_image

    def counting(path: str, image_size: int | None) -> torch.Tensor:
        seen.append(path)
        return real(path, image_size)

    monkeypatch.setattr(sd_folder, "_decode_image", counting)
    return seen


def test_imagefolder_loads_classes_labels_and_pixels(tmp_path: Path) -> None:
    ref = make_folder(tmp_path / "ds")
    r = recipe(dataset="imagefolder", data_root=str(tmp_path / "ds"))
    d = load_data(r)
    assert d.train.classes == ("bird", "cat", "dog") and d.test.classes == d.train.classes
    assert d.train.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert d.test.labels.tolist() == [0, 0, 2]  # test/ may lack a class; labels index train's list
    assert torch.equal(d.train.images, stack_hwc(ref["train"]))
    assert torch.equal(d.test.images, stack_hwc(ref["test"]))
    assert (dataset_num_classes(r), dataset_channels(r), dataset_image_size(r)) == (3, 3, 8)


def test_imagefolder_converts_grey_and_palette_to_rgb(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    write_png(root / "train" / "a" / "grey.png", grey)
    palette = Image.fromarray(np.full((8, 8, 3), (10, 200, 30), np.uint8)).quantize(colors=2)
    assert palette.mode == "P"
    palette.save(root / "train" / "a" / "p.png")
    (root / "test" / "a").mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 77, np.uint8)).save(root / "test" / "a" / "x.jpg")
    d = load_data(recipe(dataset="imagefolder", data_root=str(root)))
    assert torch.equal(d.train.images[0], torch.from_numpy(grey).expand(3, 8, 8))
    assert d.train.images[1, :, 0, 0].tolist() == [10, 200, 30]
    assert (d.test.images.int() - 77).abs().max() <= 2  # JPEG is lossy, but close


def test_imagefolder_second_load_reads_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 cache_in_tmp: Path) -> None:
    make_folder(tmp_path / "ds")
    r = recipe(dataset="imagefolder", data_root=str(tmp_path / "ds"))
    seen = count_decodes(monkeypatch)
    first = load_data(r)
    assert len(seen) == 12
    cached = list((cache_in_tmp / "imagefolder").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".pt"  # written atomically: no temp file left
    seen.clear()
    second = load_data(r)
    assert seen == []
    assert torch.equal(second.train.images, first.train.images)
    assert torch.equal(second.test.labels, first.test.labels)
    assert second.mean == first.mean


def test_imagefolder_changed_file_invalidates_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        cache_in_tmp: Path) -> None:
    make_folder(tmp_path / "ds")
    r = recipe(dataset="imagefolder", data_root=str(tmp_path / "ds"))
    load_data(r)
    seen = count_decodes(monkeypatch)
    changed = tmp_path / "ds" / "train" / "cat" / "img01.png"
    new = np.full((8, 8, 3), 123, np.uint8)
    write_png(changed, new)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a distinct mtime even on coarse clocks
    d = load_data(r)
    assert len(seen) == 12
    assert torch.equal(d.train.images[4], torch.from_numpy(new).permute(2, 0, 1))
    assert len(list((cache_in_tmp / "imagefolder").iterdir())) == 1  # the stale cache was dropped
    # touching a file (same bytes, new mtime) also counts as a change
    seen.clear()
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_data(r)
    assert len(seen) == 12
    # a different image_size is a different cache entry, decoded afresh
    seen.clear()
    assert load_data(recipe(dataset="imagefolder", data_root=str(tmp_path / "ds"), image_size=12)).image_size == 12
    assert len(seen) == 12


def test_imagefolder_damaged_cache_is_decoded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    cache_in_tmp: Path) -> None:
    make_folder(tmp_path / "ds")
    r = recipe(dataset="imagefolder", data_root=str(tmp_path / "ds"))
    first = load_data(r)
    (cache_file,) = (cache_in_tmp / "imagefolder").iterdir()
    cache_file.write_bytes(b"garbage")
    seen = count_decodes(monkeypatch)
    with pytest.warns(UserWarning, match="unreadable data cache"):
        again = load_data(r)
    assert len(seen) == 12 and torch.equal(again.train.images, first.train.images)


def test_imagefolder_thread_pool_keeps_order_and_reports_bad_files(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ref = make_folder(tmp_path / "ds")
    monkeypatch.setattr(sd_folder, "_POOL_MIN_SECONDS", 0.0)  # take the pool path even for tiny images
    monkeypatch.setattr(sd_folder, "_DECODE_CHUNK", 2)
    monkeypatch.setattr(sd_folder.os, "cpu_count", lambda: 2)
    seen = count_decodes(monkeypatch)
    d = load_data(recipe(dataset="imagefolder", data_root=str(tmp_path / "ds")))
    assert len(seen) == 12 and torch.equal(d.train.images, stack_hwc(ref["train"]))
    (tmp_path / "ds" / "train" / "dog" / "img03.png").write_bytes(b"not a png")
    with pytest.raises(SpecError, match=r"cannot read image .*img03\.png") as err:
        load_data(recipe(dataset="imagefolder", data_root=str(tmp_path / "ds")))
    assert err.value.key == "recipe.data_root"


def test_imagefolder_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_png(root / "train" / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    write_png(root / "train" / "b" / "0.png", np.full((10, 10, 3), 200, np.uint8))
    write_png(root / "test" / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SpecError, match="different sizes") as err:
        load_data(recipe(dataset="imagefolder", data_root=str(root)))
    assert err.value.key == "recipe.image_size"
    d = load_data(recipe(dataset="imagefolder", data_root=str(root), image_size=9))
    assert d.train.images.shape == (2, 3, 9, 9) and int(d.train.images[1].min()) == 200


def test_imagefolder_non_square_needs_image_size(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_png(root / "train" / "a" / "0.png", np.zeros((8, 12, 3), np.uint8))
    write_png(root / "test" / "a" / "0.png", np.zeros((8, 12, 3), np.uint8))
    r = recipe(dataset="imagefolder", data_root=str(root))
    for fn in (load_data, dataset_image_size):
        with pytest.raises(SpecError, match="not square") as err:
            fn(r)
        assert err.value.key == "recipe.image_size"


def test_imagefolder_layout_errors(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_png(root / "train" / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SpecError, match="no test/ folder"):
        load_data(recipe(dataset="imagefolder", data_root=str(root)))
    write_png(root / "test" / "zebra" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SpecError, match="zebra") as err:
        load_data(recipe(dataset="imagefolder", data_root=str(root)))
    assert err.value.key == "recipe.data_root"
    with pytest.raises(SpecError) as err:
        load_data(recipe(dataset="imagefolder"))
    assert err.value.key == "recipe.data_root"


# --------------------------------------------------------------------------------------------------
# stratified subsets


def toy_set(labels: list[int], classes: int = 3) -> ImageSet:
    n = len(labels)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageSet(images, torch.tensor(labels), tuple(str(k) for k in range(classes)))


def test_subset_exact_quotas_in_original_order() -> None:
    labels = [0, 1, 0, 2, 0, 1, 0, 0, 1, 0]  # counts 6, 3, 1
    s = subset(toy_set(labels), 5, "recipe.train_subset", "train")
    # exact shares 3, 1.5, 0.5 → floors 3, 1, 0; the tied remainders go to the lower class → 3, 2, 0
    assert s.images[:, 0, 0, 0].tolist() == [0, 1, 2, 4, 5]  # first 3 of class 0, first 2 of class 1
    assert s.labels.tolist() == [0, 1, 0, 0, 1]
    assert subset(toy_set(labels), 10, "k", "train").labels.tolist() == labels
    assert subset(toy_set(labels), None, "k", "train").labels.tolist() == labels


def test_largest_remainder_sums_exactly_and_is_proportional() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 50, rng.integers(1, 12)).tolist()
        if sum(counts) == 0:
            continue
        n = int(rng.integers(0, sum(counts) + 1))
        q = largest_remainder(counts, n)
        assert sum(q) == n
        assert all(abs(qk - n * ck / sum(counts)) < 1 for qk, ck in zip(q, counts, strict=True))
        assert all(0 <= qk <= ck for qk, ck in zip(q, counts, strict=True))


def test_subset_too_large_names_key_and_split_size() -> None:
    with pytest.raises(SpecError, match="1000 images of the train split") as err:
        load_data(recipe(dataset="fake", train_subset=1001))
    assert err.value.key == "recipe.train_subset"
    with pytest.raises(SpecError, match="200 images of the test split") as err:
        load_data(recipe(dataset="fake", test_subset=201))
    assert err.value.key == "recipe.test_subset"


def test_subset_through_load_data_measures_the_subset() -> None:
    full = sd_sources._fake_split(1000, seed=0)
    d = load_data(recipe(dataset="fake", train_subset=105, test_subset=30))
    assert len(d.train) == 105 and len(d.test) == 30
    assert sorted(torch.bincount(d.train.labels).tolist()) == [10] * 5 + [11] * 5
    per_class_first = torch.cat([torch.nonzero(full.labels == k).flatten()[: int((d.train.labels == k).sum())]
                                 for k in range(10)]).sort().values
    assert torch.equal(d.train.images, full.images[per_class_first])
    assert d.mean == channel_stats(d.train.images)[0]
    assert d.mean != channel_stats(full.images)[0]


# --------------------------------------------------------------------------------------------------
# batches and augmentation


def indexed_set(n: int = 24, size: int = 8, classes: int = 5) -> ImageSet:
    """Image k: red channel constant k + 1 (its id survives crops and flips), green/blue random but
    never 0, so zero padding is recognisable; labels k % classes."""
    g = torch.Generator().manual_seed(3)
    images = torch.randint(1, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    images[:, 0] = (torch.arange(n, dtype=torch.uint8) + 1).view(n, 1, 1)
    return ImageSet(images, torch.arange(n) % classes, tuple(str(k) for k in range(classes)))


MEAN, STD = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)


def batches(data: ImageSet, **kw: object) -> TrainBatches:
    args: dict = dict(batch_size=8, mean=MEAN, std=STD, augment="standard", flip=True, seed=0,
                      device=torch.device("cpu"), channels_last=False)
    args.update(kw)
    return TrainBatches(data, **args)


def denormalise(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(MEAN).view(1, -1, 1, 1)
    s = torch.tensor(STD).view(1, -1, 1, 1)
    return ((x * s + m) * 255).round().to(torch.int64)


def test_normalisation_uses_given_mean_std_and_no_augment_is_identity() -> None:
    data = indexed_set()
    tb = batches(data, augment="none")
    perm, _, _ = tb.draws(0)
    xs, ys = zip(*tb.epoch(0), strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    want = (data.images[perm].float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(x, want, atol=1e-5)
    assert torch.equal(y, data.labels[perm])


def test_crop_is_a_shift_of_the_zero_padded_image_and_flips_follow_the_coins() -> None:
    data = indexed_set()
    for flip in (True, False):
        tb = batches(data, flip=flip)
        perm, offsets, coins = tb.draws(5)
        got = denormalise(torch.cat([x for x, _ in tb.epoch(5)]))
        padded = F.pad(data.images, (4, 4, 4, 4)).to(torch.int64)
        for i in range(len(got)):
            dy, dx = offsets[i].tolist()
            want = padded[perm[i], :, dy : dy + 8, dx : dx + 8]
            if flip and coins[i]:
                want = want.flip(-1)
            assert torch.equal(got[i], want), (i, dy, dx, bool(coins[i]))
        # the draws really vary: shifts into the zero padding, and both coin faces
        assert (offsets[: len(got)] != 4).any() and coins[: len(got)].any() and (~coins[: len(got)]).any()
        assert (got == 0).any()


def test_crafted_image_shift_by_hand() -> None:
    img = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    img[:, 0, 0, 0] = 200  # a dot in the top-left corner
    data = ImageSet(img, torch.tensor([0, 1]), ("a", "b"))
    tb = TrainBatches(data, batch_size=2, mean=(0.0,), std=(1.0,), augment="standard", flip=False, seed=1,
                      device=torch.device("cpu"), channels_last=False)
    kinds = set()
    for epoch in range(10):
        _, offsets, _ = tb.draws(epoch)
        (x, _), = tb.epoch(epoch)
        for i in range(2):
            dy, dx = offsets[i].tolist()
            where = torch.nonzero(x[i, 0] > 0.5).tolist()
            # the dot, at (0, 0) of the image, is at (4 - dy, 4 - dx) of the crop, or out of view
            inside = 4 - dy >= 0 and 4 - dx >= 0
            assert where == ([[4 - dy, 4 - dx]] if inside else [])
            assert x[i, 0].sum() * 255 == pytest.approx(200 if inside else 0, abs=1e-3)
            kinds.add("moved" if inside and (dy, dx) != (4, 4) else "out" if not inside else "still")
    assert {"moved", "out"} <= kinds


def test_same_seed_and_epoch_give_identical_batches_else_different() -> None:
    data = indexed_set()

    def run(seed: int, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(batches(data, seed=seed).epoch(epoch))

    a, b = run(0, 3), run(0, 3)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True))
    for other in (run(0, 4), run(1, 3)):
        assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, other, strict=True))
    # the order does not depend on augment/flip/channels_last: only on (seed, epoch)
    plain = [y for _, y in batches(data, augment="none", flip=False, channels_last=True).epoch(3)]
    assert all(torch.equal(y1, y2) for (_, y1), y2 in zip(a, plain, strict=True))


def test_labels_follow_their_images_and_each_image_once_per_epoch() -> None:
    data = indexed_set(n=24)
    seen = []
    for x, y in batches(data).epoch(2):
        ids = denormalise(x)[:, 0].amax(dim=(1, 2)) - 1  # the red channel is the id (padding is 0)
        assert torch.equal(y, data.labels[ids])
        seen += ids.tolist()
    assert sorted(seen) == list(range(24))  # 24 / 8: every image exactly once


def test_batch_counts_drop_last_and_channels_last() -> None:
    data = indexed_set(n=10)
    tb = batches(data, batch_size=4, channels_last=True)
    shapes = [tuple(x.shape) for x, _ in tb.epoch(0)]
    assert len(tb) == 2 and shapes == [(4, 3, 8, 8)] * 2 and tb.samples_per_epoch == 8
    x, _ = next(iter(tb.epoch(0)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(iter(batches(data, batch_size=4).epoch(0)))
    assert x.is_contiguous()
    with pytest.raises(SpecError, match=r"recipe.batch_size: 8 is more than the 3 training images; allowed: at most 3"):
        batches(indexed_set(n=3), batch_size=8)  # refused, not silently shrunk to 3
    whole = batches(indexed_set(n=3), batch_size=3)
    assert len(whole) == 1 and [len(y) for _, y in whole.epoch(0)] == [3]
    with pytest.raises(ValueError, match="at least 2"):
        batches(indexed_set(n=1))


def test_eval_batches_keep_order_and_last_partial_batch() -> None:
    data = indexed_set(n=10)
    out = list(eval_batches(data, batch_size=4, mean=MEAN, std=STD, device=torch.device("cpu"),
                            channels_last=True))
    assert [len(y) for _, y in out] == [4, 4, 2]
    assert out[0][0].is_contiguous(memory_format=torch.channels_last)
    x = torch.cat([b for b, _ in out])
    assert torch.equal(denormalise(x), data.images.to(torch.int64))
    assert torch.equal(torch.cat([y for _, y in out]), data.labels)


def test_epoch_generator_streams_are_distinct() -> None:
    draws = {tuple(torch.randint(0, 10**6, (4,), generator=sd.epoch_generator(s, e)).tolist())
             for s in range(3) for e in range(3)}
    assert len(draws) == 9
