"""Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter 2017) as in-memory data sets ``imagenet32`` and
``imagenet64``: tiny fake npz files in the release's layout (10 train batches + val_data.npz, channel-planar rows,
1-based labels), the up-front data checks, the data identity, a real one-epoch training run, and the SENet
ImageNet sweep files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sesweep.analysis.published import DATASET_NAMES, Setting, imagenet_note
from sesweep.cli import main
from sesweep.plan import check_data, load_plan
from sesweep.spec import RecipeSpec, SpecError, run_spec
from sesweep.training.data import NATIVE_SIZE, NUM_CLASSES, data_identity, dataset_image_size, load_data
from sesweep.training.train import train

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 5  # labels 1..5 of the 1000
PER_BATCH = 4  # 10 batches -> 40 train images, 8 per class


def write_npz_set(root: Path, side: int = 32, layout: str = "official", per_batch: int = PER_BATCH,
                  n_val: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """The release's npz files with random pixels; ``layout``: ``official`` (the folders the zips unpack to)
    or ``flat`` (all 11 files in ``root``). Returns the rows and 1-based labels, train in batch order 1..10."""
    rng = np.random.default_rng(seed)
    n_train = 10 * per_batch
    train_x = rng.integers(0, 256, (n_train, 3 * side * side), dtype=np.uint8)
    train_y = np.arange(n_train) % CLASSES + 1
    rng.shuffle(train_y)
    val_x = rng.integers(0, 256, (n_val, 3 * side * side), dtype=np.uint8)
    val_y = np.arange(n_val) % CLASSES + 1
    name = f"Imagenet{side}"
    for b in range(1, 11):
        if layout == "flat":
            folder = root
        elif side == 64:
            folder = root / f"{name}_train_part{1 if b <= 5 else 2}_npz"
        else:
            folder = root / f"{name}_train_npz"
        folder.mkdir(parents=True, exist_ok=True)
        rows = slice((b - 1) * per_batch, b * per_batch)
        np.savez(folder / f"train_data_batch_{b}.npz", data=train_x[rows], labels=list(train_y[rows]),
                 mean=train_x.mean(axis=0))
    folder = root if layout == "flat" else root / f"{name}_val_npz"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "val_data.npz", data=val_x, labels=list(val_y))
    return {"train_x": train_x, "train_y": train_y, "val_x": val_x, "val_y": val_y}


def recipe(root: Path | None, dataset: str = "imagenet32", **kw: object) -> RecipeSpec:
    return RecipeSpec(dataset=dataset, data_root=None if root is None else str(root), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# loading


def test_imagenet32_pixels_are_the_planar_bytes_and_labels_are_zero_based(tmp_path: Path) -> None:
    raw = write_npz_set(tmp_path)
    splits = load_data(recipe(tmp_path))
    train, test = splits.train, splits.test
    assert train.images.dtype == torch.uint8 and tuple(train.images.shape) == (40, 3, 32, 32)
    assert tuple(test.images.shape) == (10, 3, 32, 32) and train.images.is_contiguous()
    # pixel (c, y, x) of image n is byte c·S² + y·S + x of row n (R plane, G plane, B plane, each row-major)
    for n, c, y, x in [(0, 0, 0, 0), (3, 1, 5, 30), (39, 2, 31, 31), (17, 2, 0, 31), (4, 0, 31, 0)]:
        assert int(train.images[n, c, y, x]) == int(raw["train_x"][n, c * 1024 + y * 32 + x])
    assert torch.equal(train.images.reshape(40, -1), torch.from_numpy(raw["train_x"]))  # batch order 1, 2, …, 10
    assert torch.equal(test.images.reshape(10, -1), torch.from_numpy(raw["val_x"]))
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == (raw["train_y"] - 1).tolist()
    assert test.labels.tolist() == (raw["val_y"] - 1).tolist()
    assert train.classes == tuple(str(k) for k in range(1, 1001)) and splits.num_classes == 1000
    assert NUM_CLASSES["imagenet32"] == NUM_CLASSES["imagenet64"] == 1000
    assert NATIVE_SIZE["imagenet32"] == 32 and NATIVE_SIZE["imagenet64"] == 64
    assert dataset_image_size(recipe(tmp_path)) == 32 and splits.flip


def test_imagenet64_reads_the_two_train_parts_a_flat_folder_and_a_pointed_at_subfolder_alike(tmp_path: Path) -> None:
    raw = write_npz_set(tmp_path / "official", side=64, per_batch=2, n_val=5)
    write_npz_set(tmp_path / "flat", side=64, per_batch=2, n_val=5, layout="flat")
    a = load_data(recipe(tmp_path / "official", "imagenet64"))
    b = load_data(recipe(tmp_path / "flat", "imagenet64"))
    c = load_data(recipe(tmp_path / "official" / "Imagenet64_val_npz", "imagenet64"))
    assert tuple(a.train.images.shape) == (20, 3, 64, 64)
    assert torch.equal(a.train.images.reshape(20, -1), torch.from_numpy(raw["train_x"]))
    for other in (b, c):
        assert torch.equal(other.train.images, a.train.images) and torch.equal(other.test.labels, a.test.labels)
    ids = {data_identity(recipe(tmp_path / p, "imagenet64")) for p in ("official", "flat")}
    assert len(ids) == 1 and next(iter(ids)).startswith("imagenet64:")


def test_subsets_are_stratified_prefixes_per_class(tmp_path: Path) -> None:
    raw = write_npz_set(tmp_path)
    splits = load_data(recipe(tmp_path, train_subset=20, test_subset=5))
    assert torch.bincount(splits.train.labels, minlength=CLASSES)[:CLASSES].tolist() == [4] * CLASSES
    assert torch.bincount(splits.test.labels, minlength=CLASSES)[:CLASSES].tolist() == [1] * CLASSES
    labels0 = raw["train_y"] - 1
    keep = sorted(i for k in range(CLASSES) for i in np.flatnonzero(labels0 == k)[:4])
    assert torch.equal(splits.train.images.reshape(20, -1), torch.from_numpy(raw["train_x"][keep]))


def test_data_identity_follows_file_sizes_not_the_folder(tmp_path: Path) -> None:
    write_npz_set(tmp_path / "a")
    first = data_identity(recipe(tmp_path / "a"))
    assert first.startswith("imagenet32:") and first == data_identity(recipe(tmp_path / "a"))
    shutil.move(tmp_path / "a", tmp_path / "moved")
    assert data_identity(recipe(tmp_path / "moved")) == first
    batch = tmp_path / "moved" / "Imagenet32_train_npz" / "train_data_batch_7.npz"
    with np.load(batch) as f:
        data, labels = f["data"], f["labels"]
    np.savez(batch, data=data[:-1], labels=labels[:-1])  # one image fewer: another size
    assert data_identity(recipe(tmp_path / "moved")) != first


# --------------------------------------------------------------------------------------------------
# errors: one line naming recipe.data_root, the folder, the files expected and the download page


def test_missing_folder_file_or_root_is_one_exact_line(tmp_path: Path) -> None:
    page = "https://image-net.org/download-images.php"
    with pytest.raises(SpecError) as err:
        load_data(recipe(tmp_path / "nope"))
    where = (tmp_path / "nope").resolve()
    assert str(err.value) == (
        f"recipe.data_root: no folder {where} (imagenet32 expects train_data_batch_1.npz … train_data_batch_10.npz "
        f"and val_data.npz there or in its Imagenet32_train_npz/ and Imagenet32_val_npz/, from {page})")
    write_npz_set(tmp_path / "set")
    (tmp_path / "set" / "Imagenet32_train_npz" / "train_data_batch_10.npz").unlink()
    (tmp_path / "set" / "Imagenet32_val_npz" / "val_data.npz").unlink()
    with pytest.raises(SpecError) as err:
        data_identity(recipe(tmp_path / "set"))
    where = (tmp_path / "set").resolve()
    assert str(err.value) == (
        f"recipe.data_root: imagenet32 under {where} lacks train_data_batch_10.npz, val_data.npz (expected "
        f"train_data_batch_1.npz … train_data_batch_10.npz and val_data.npz there or in its Imagenet32_train_npz/ "
        f"and Imagenet32_val_npz/, from {page})")
    with pytest.raises(SpecError) as err:
        load_data(recipe(None, "imagenet64"))
    assert str(err.value) == (
        "recipe.data_root: imagenet64 needs recipe.data_root: the folder holding Imagenet64_train_part1_npz/, "
        f"Imagenet64_train_part2_npz/ and Imagenet64_val_npz/ (or their 11 npz files), from {page}")
    assert "\n" not in str(err.value)


def test_a_file_twice_is_ambiguous(tmp_path: Path) -> None:
    write_npz_set(tmp_path)
    shutil.copy(tmp_path / "Imagenet32_val_npz" / "val_data.npz", tmp_path / "val_data.npz")
    with pytest.raises(SpecError, match=r"recipe.data_root: val_data.npz is both in .* and in .*: keep one"):
        data_identity(recipe(tmp_path))


@pytest.mark.parametrize("bad", ["side", "label0", "label1001", "count"])
def test_malformed_files_name_the_file(bad: str, tmp_path: Path) -> None:
    write_npz_set(tmp_path)
    path = tmp_path / "Imagenet32_train_npz" / "train_data_batch_2.npz"
    rows = np.zeros((4, 3 * 32 * 32), np.uint8)
    data, labels = {"side": (rows[:, :192], [1] * 4), "label0": (rows, [0, 1, 1, 1]),
                    "label1001": (rows, [1, 1, 1, 1001]), "count": (rows, [1] * 3)}[bad]
    np.savez(path, data=data, labels=labels)
    with pytest.raises(SpecError) as err:
        load_data(recipe(tmp_path))
    assert str(err.value).startswith("recipe.data_root: ") and str(path.resolve()) in str(err.value)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------------
# the plan's up-front checks and the command line


def write_sweep(path: Path, root: Path, **recipe_kw: object) -> Path:
    import yaml

    doc = {"name": "ds", "seeds": [0],
           "model": {"arch": "resnet20", "attention": {"kind": "se", "reduction": 4}},
           "recipe": {"dataset": "imagenet32", "data_root": str(root), "epochs": 1, "batch_size": 16,
                      "precision": "fp32", "device": "cpu", **recipe_kw},
           "variants": {"resnet": {"model.attention.kind": "none"}}, "baseline": "resnet"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_sesweep_run_refuses_a_missing_npz_folder_with_one_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_sweep(tmp_path / "s.yaml", tmp_path / "nope")
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--no-tracking", "--quiet"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sesweep run: error: recipe.data_root: no folder "), lines
    assert "Traceback" not in lines[0] and not results.exists()
    # --dry-run lists the runs under placeholder keys and says why, then refuses with run's line
    assert main(["run", str(spec), "--results", str(results), "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "run keys cannot be resolved (recipe.data_root: no folder " in out
    assert [line for line in err.splitlines() if line.strip()] == lines


def test_check_data_lists_without_decoding_and_checks_subset_sizes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_npz_set(tmp_path / "set")
    from sesweep.training.data import downsampled

    def no_decoding(*a: object, **k: object) -> None:
        raise AssertionError("check_data decoded the images")

    monkeypatch.setattr(downsampled, "_read_pixels", no_decoding)
    check_data(load_plan(write_sweep(tmp_path / "ok.yaml", tmp_path / "set", train_subset=40)))
    with pytest.raises(SpecError, match=r"recipe.train_subset: 41 is more than the 40 images of the train split"):
        check_data(load_plan(write_sweep(tmp_path / "big.yaml", tmp_path / "set", train_subset=41)))


def test_one_epoch_of_training_on_the_npz_files(tmp_path: Path) -> None:
    write_npz_set(tmp_path, per_batch=6)
    spec = run_spec({"recipe.dataset": "imagenet32", "recipe.data_root": str(tmp_path), "recipe.epochs": 1,
                     "recipe.batch_size": 16, "recipe.eval_batch_size": 16, "recipe.precision": "fp32",
                     "recipe.device": "cpu", "model.arch": "resnet20", "model.attention.reduction": 4})
    result = train(spec, progress=False)
    record = result.record()
    assert result.status == "finished" and record["epochs_done"] == 1
    assert record["recipe.dataset"] == "imagenet32" and 0.0 <= record["top1_err"] <= 100.0
    assert result.hidden_widths[0]["block"] == "layer1.0.attn_branch"


# --------------------------------------------------------------------------------------------------
# the SENet ImageNet sweep files and the published columns


SWEEPS = {"senet-imagenet-ratio": ("imagefolder", 224, "ratio"),
          "senet-imagenet-squeeze-excitation": ("imagefolder", 224, "squeeze"),
          "senet-imagenet-stages-placement": ("imagefolder", 224, "stages"),
          "senet-imagenet64-ratio": ("imagenet64", None, "ratio")}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_the_senet_imagenet_sweep_files_load(name: str) -> None:
    plan = load_plan(ROOT / "experiments" / f"{name}.yaml")  # data not here: placeholder keys, no error
    dataset, size, table = SWEEPS[name]
    r = plan.base.recipe
    assert plan.name == name and r.dataset == dataset and r.image_size == size and plan.seeds == (0, 1, 2)
    assert r.momentum == 0.9 and not r.nesterov and r.lr_scaling == "linear" and r.lr_reference_batch == 256
    assert r.weight_decay == 1.0e-4 and r.label_smoothing == 0.1
    assert plan.baseline is not None and any(t.startswith(table) for t in plan.tables), plan.tables
    assert plan.unresolved is not None and "recipe.data_root" in plan.unresolved
    if dataset == "imagefolder":
        assert (r.augment, r.loader, r.data_root, r.epochs) == ("imagenet", "stream", "data/imagenet", 100)
        assert (r.schedule, r.step_milestones, r.step_gamma, r.warmup_epochs) == ("step", (0.3, 0.6, 0.9), 0.1, 5)
        assert plan.base.model.arch == "resnet50"


def test_downsampled_imagenet_is_named_and_not_taken_for_full_resolution() -> None:
    assert DATASET_NAMES["imagenet32"] == "ImageNet 32×32" and DATASET_NAMES["imagenet64"] == "ImageNet 64×64"
    full = Setting(("resnet50",), "imagenet", 1000, (100,))
    small = Setting(("resnet50",), "imagenet64", 1000, (40,))
    assert full.is_imagenet_resnet50 and not small.is_imagenet_resnet50
    note = imagenet_note(10, small)
    assert "ImageNet 64×64" in note and "full-resolution" in note


def test_the_full_imagenet_sweeps_share_their_resnet50_runs_on_a_fake_folder(tmp_path: Path) -> None:
    """On an image folder (a tiny fake one named imagenet) the keys resolve, and the three full-resolution sweeps'
    ResNet-50 runs are the same runs: trained once, adopted by the other two sweeps."""
    from PIL import Image

    root = tmp_path / "imagenet"
    for split in ("train", "test"):
        for cls in ("n01440764", "n01443537"):
            (root / split / cls).mkdir(parents=True)
            Image.new("RGB", (16, 16), (200, 10, 10)).save(root / split / cls / "0.png")
    keys = []
    for name in ("senet-imagenet-ratio", "senet-imagenet-squeeze-excitation", "senet-imagenet-stages-placement"):
        plan = load_plan(ROOT / "experiments" / f"{name}.yaml").with_data_root(str(root))
        assert plan.unresolved is None and all(not k.startswith("?") for k in plan.keys)
        keys.append(sorted(r.key for r in plan.runs if r.variant == "resnet"))
    assert len(keys[0]) == 3 and keys[0] == keys[1] == keys[2]
    write_npz_set(tmp_path / "imagenet64", side=64, per_batch=1, n_val=2)
    plan = load_plan(ROOT / "experiments" / "senet-imagenet64-ratio.yaml").with_data_root(str(tmp_path / "imagenet64"))
    assert plan.unresolved is None and len(plan.runs) == 18
    assert {r.data_id for r in plan.runs} == {data_identity(recipe(tmp_path / "imagenet64", "imagenet64"))}
