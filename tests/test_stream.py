"""The stream loader and ImageNet augmentation: the same batches as the memory loader, on any worker count.

Every test makes its own small image folder (lossless PNGs) in tmp_path.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from sesweep.datasets import resolve_loader
from sesweep.spec import RecipeSpec, SpecError, run_spec
from sesweep.training.data import eval_batches, load_data, train_batches
from sesweep.training.data.augment import (
    CROP_RATIO,
    CROP_SCALE,
    center_resize,
    crop_box,
    epoch_draws,
    imagenet_draws,
    resized_crop,
)
from sesweep.training.train import learning_rate, train


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Decode caches and stream statistics go to this test's folder, not the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SESWEEP_CACHE", str(cache))
    return cache


def make_folder(root: Path, sizes: dict[str, int] | None = None, side: int = 12, classes: int = 3,
                per_class: tuple[int, int] = (8, 3)) -> Path:
    """``root/{train,test}/c{k}/NN.png`` with random pixels (seeded), ``side``² unless ``sizes`` names the file."""
    g = torch.Generator().manual_seed(7)
    for split, n in zip(("train", "test"), per_class, strict=True):
        for k in range(classes):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                name = f"{i:02d}.png"
                h = w = side
                if sizes and f"{split}/c{k}/{name}" in sizes:
                    h = w = sizes[f"{split}/c{k}/{name}"]
                pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / name)
    return root


def recipe(root: Path, **kw: object) -> RecipeSpec:
    base: dict = dict(dataset="imagefolder", data_root=str(root), batch_size=5, eval_batch_size=4,
                      device="cpu", precision="fp32", channels_last=False)
    base.update(kw)
    return RecipeSpec(**base)


def all_batches(r: RecipeSpec, epochs: tuple[int, ...] = (0, 1)) -> tuple[list[tuple[torch.Tensor, ...]], object]:
    splits = load_data(r)
    batches = train_batches(splits, r, seed=3, device=torch.device("cpu"))
    out = [(x, y) for e in epochs for x, y in batches.epoch(e)]
    return out, splits


def assert_same(a: list[tuple[torch.Tensor, ...]], b: list[tuple[torch.Tensor, ...]]) -> None:
    assert len(a) == len(b) and len(a) > 0
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(ya, yb)
        assert torch.equal(xa, xb)


# --------------------------------------------------------------------------------------------------
# the stream loader gives the memory loader's batches


@pytest.mark.parametrize("augment", ["standard", "none", "imagenet"])
def test_stream_batches_equal_memory_batches_on_any_worker_count(tmp_path: Path, augment: str) -> None:
    root = make_folder(tmp_path / "ds")
    extra = {"image_size": 10} if augment == "imagenet" else {}
    memory, msplits = all_batches(recipe(root, loader="memory", augment=augment, **extra))
    assert msplits.loader == "memory"
    for workers in (0, 2):
        streamed, ssplits = all_batches(recipe(root, loader="stream", augment=augment, loader_workers=workers,
                                               **extra))
        assert ssplits.loader == "stream"
        assert (ssplits.mean, ssplits.std) == (msplits.mean, msplits.std)
        assert_same(memory, streamed)
        kw = dict(batch_size=4, mean=msplits.mean, std=msplits.std, device="cpu", channels_last=False)
        assert_same(list(eval_batches(msplits.test, **kw)), list(eval_batches(ssplits.test, **kw)))
    size = 10 if augment == "imagenet" else 12
    assert memory[0][0].shape == (5, 3, size, size)


def test_stream_and_memory_runs_end_with_the_same_metrics(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds", side=16, per_class=(10, 4))
    results = []
    for loader, workers in (("memory", "auto"), ("stream", 2)):
        spec = run_spec({"model.arch": "resnet20", "model.attention.reduction": 4, "recipe.dataset": "imagefolder",
                         "recipe.data_root": str(root), "recipe.epochs": 2, "recipe.batch_size": 8,
                         "recipe.eval_batch_size": 8, "recipe.precision": "fp32", "recipe.device": "cpu",
                         "recipe.loader": loader, "recipe.loader_workers": workers})
        results.append(train(spec, progress=False))
    memory, stream = results
    assert stream.environment["resolved_loader"] == "stream" and memory.environment["resolved_loader"] == "memory"
    for key in ("top1_err", "top5_err", "test_loss", "train_loss"):
        assert memory.metrics[key] == stream.metrics[key], key
    assert [r["train_loss"] for r in memory.curves] == [r["train_loss"] for r in stream.curves]
    assert memory.excitation == stream.excitation
    assert memory.run_key != stream.run_key  # the loader is part of what a run is


def test_stream_subsets_match_memory_subsets(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds")
    memory, _ = all_batches(recipe(root, loader="memory", train_subset=12, test_subset=5), epochs=(0,))
    streamed, splits = all_batches(recipe(root, loader="stream", loader_workers=0, train_subset=12, test_subset=5),
                                   epochs=(0,))
    assert_same(memory, streamed)
    assert len(splits.train) == 12 and len(splits.test) == 5


def test_stream_reads_originals_of_any_size_under_imagenet_augmentation(tmp_path: Path) -> None:
    sizes = {"train/c0/00.png": 20, "train/c1/01.png": 9, "test/c2/00.png": 15}
    root = make_folder(tmp_path / "ds", sizes=sizes)
    with pytest.raises(SpecError, match=r"recipe.loader: .*different sizes.*recipe.loader=stream"):
        load_data(recipe(root, loader="memory", augment="imagenet", image_size=8))
    batches, splits = all_batches(recipe(root, loader="stream", augment="imagenet", image_size=8, loader_workers=2))
    assert all(x.shape == (5, 3, 8, 8) for x, _ in batches)
    x, _ = next(iter(eval_batches(splits.test, batch_size=9, mean=splits.mean, std=splits.std, device="cpu",
                                  channels_last=False)))
    assert x.shape == (9, 3, 8, 8)


# --------------------------------------------------------------------------------------------------
# which loader


def test_auto_picks_memory_within_the_budget_and_stream_beyond_it(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds")
    n_bytes = 33 * 3 * 12 * 12
    assert resolve_loader(recipe(root), 12) == "memory"
    assert resolve_loader(recipe(root, memory_budget_gb=n_bytes / 1024**3), 12) == "memory"
    assert resolve_loader(recipe(root, memory_budget_gb=(n_bytes - 1) / 1024**3), 12) == "stream"
    assert resolve_loader(recipe(root, augment="imagenet"), 12) == "stream"
    assert resolve_loader(recipe(root, loader="memory", augment="imagenet"), 12) == "memory"
    with pytest.raises(SpecError, match=r"recipe.loader: stream reads image folders, and fake .*auto, memory"):
        resolve_loader(RecipeSpec(dataset="fake", loader="stream"), 32)


def test_draws_depend_on_seed_epoch_and_position_only() -> None:
    a, b = epoch_draws(1, 2, 50, "standard"), epoch_draws(1, 2, 50, "standard")
    assert torch.equal(a.perm, b.perm) and torch.equal(a.offsets, b.offsets) and torch.equal(a.flips, b.flips)
    # the order is the same under every augmentation: variants that differ in augmentation see the same images
    assert torch.equal(epoch_draws(1, 2, 50, "imagenet").perm, a.perm)
    assert not torch.equal(epoch_draws(1, 3, 50, "standard").perm, a.perm)
    u1, f1 = imagenet_draws(1, 2, 4, 6)
    u2, f2 = imagenet_draws(1, 2, 4, 6)
    assert torch.equal(u1, u2) and torch.equal(f1, f2) and u1.shape == (6, 10, 4)
    assert not torch.equal(imagenet_draws(1, 2, 5, 6)[0], u1)


# --------------------------------------------------------------------------------------------------
# ImageNet transforms


def test_random_resized_crop_boxes_follow_torchvision_rule() -> None:
    g = torch.Generator().manual_seed(0)
    shares, aspects = [], []
    for _ in range(2000):
        h, w = int(torch.randint(20, 300, (1,), generator=g)), int(torch.randint(20, 300, (1,), generator=g))
        u = torch.rand(10, 4, generator=g, dtype=torch.float64).tolist()
        top, left, ch, cw = crop_box(u, h, w)
        assert top >= 0 and top + ch <= h and left >= 0 and left + cw <= w and ch > 0 and cw > 0
        shares.append(ch * cw / (h * w))
        aspects.append(cw / ch)
    # rounding to whole pixels moves the share and aspect a little past the nominal bounds on small images
    assert CROP_SCALE[0] * 0.8 <= min(shares) and max(shares) <= 1.0
    assert min(aspects) >= CROP_RATIO[0] * 0.85 and max(aspects) <= CROP_RATIO[1] / 0.85
    # the same distribution as torchvision's own (which draws from the global RNG): mean share and aspect
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    theirs_share, theirs_aspect = [], []
    for _ in range(2000):
        h, w = int(torch.randint(20, 300, (1,), generator=g)), int(torch.randint(20, 300, (1,), generator=g))
        torch.rand(10, 4, generator=g, dtype=torch.float64)  # keep the image sizes in step with the loop above
        _, _, ch, cw = RandomResizedCrop.get_params(torch.empty(1, h, w), list(CROP_SCALE), list(CROP_RATIO))
        theirs_share.append(ch * cw / (h * w))
        theirs_aspect.append(cw / ch)
    assert sum(shares) / 2000 == pytest.approx(sum(theirs_share) / 2000, abs=0.02)
    assert sum(aspects) / 2000 == pytest.approx(sum(theirs_aspect) / 2000, abs=0.02)
    # the first attempt that fits is taken: area share 0.08 + 0.92·u, aspect exp(lerp(log 3/4, log 4/3, u))
    top, left, ch, cw = crop_box([[0.5, 0.5, 0.0, 1.0 - 1e-9]], 100, 100)
    assert (ch, cw) == (round(math.sqrt(5400)),) * 2 and top == 0 and left == 100 - cw
    # none fits (a whole-area box in a 10:1 image): the central crop of the widest allowed aspect
    assert crop_box([[1.0, 1.0, 0.5, 0.5]] * 10, 10, 100) == (0, 43, 10, 13)


def test_resized_crop_is_the_crop_resized_and_flipped() -> None:
    img = torch.arange(3 * 40 * 30, dtype=torch.int64).remainder(251).to(torch.uint8).view(3, 40, 30)
    u = [[1.0 - 1e-12, 0.5, 0.0, 0.0]] * 10  # the largest square box that fits is not 1200 px: falls back
    top, left, h, w = crop_box(u, 40, 30)
    want = torch.nn.functional.interpolate(img[None, :, top:top + h, left:left + w].float(), size=(16, 16),
                                           mode="bilinear", antialias=True, align_corners=False)
    want = want.round().clamp(0, 255).to(torch.uint8)[0]
    assert torch.equal(resized_crop(img, u, 16, flip=False), want)
    assert torch.equal(resized_crop(img, u, 16, flip=True), want.flip(-1))


def test_center_resize_matches_torchvision_resize_then_center_crop() -> None:
    from torchvision.transforms import v2

    g = torch.Generator().manual_seed(1)
    for h, w in ((80, 120), (120, 80), (64, 64), (33, 47)):
        img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        ours = center_resize(img, 32)
        theirs = v2.CenterCrop(32)(v2.Resize(math.floor(32 * 256 / 224), antialias=True)(img))
        assert ours.shape == theirs.shape == (3, 32, 32)
        assert (ours.int() - theirs.int()).abs().max() <= 1  # the same resample; rounding may differ by one


def test_linear_scaling_of_the_learning_rate() -> None:
    assert learning_rate(RecipeSpec(lr=0.1, batch_size=1024, lr_scaling="linear")) == pytest.approx(0.4)
    assert learning_rate(RecipeSpec(lr=0.1, batch_size=64, lr_scaling="linear", lr_reference_batch=128)) == 0.05
    assert learning_rate(RecipeSpec(lr=0.1, batch_size=1024)) == 0.1


def test_a_sweep_that_streams_a_built_in_set_is_refused_before_any_run(make_sweep, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from sesweep.cli import main

    path = make_sweep(recipe={"loader": "stream"})
    assert main(["run", str(path), "--dry-run", "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recipe.loader: stream reads image folders, and fake" in err[0]
    assert not (tmp_path / "results").exists()


def test_stream_refuses_mixed_sizes_up_front_unless_something_resizes_them(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "ds", sizes={"train/c1/02.png": 16})
    for loader in ("memory", "stream"):
        with pytest.raises(SpecError, match=r"recipe.image_size: images under .* set recipe.image_size=N"):
            load_data(recipe(root, loader=loader, loader_workers=0))
    resized = recipe(root, loader="stream", loader_workers=0, image_size=12)
    x, _ = next(iter(train_batches(load_data(resized), resized, 0, torch.device("cpu")).epoch(0)))
    assert x.shape == (5, 3, 12, 12)


def test_stream_statistics_are_cached_by_the_folder_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sesweep.training.data import imagefolder

    root = make_folder(tmp_path / "ds")
    decoded: list[str] = []
    real = imagefolder._decode_image
    monkeypatch.setattr(imagefolder, "_decode_image", lambda path, size: decoded.append(path) or real(path, size))
    first = load_data(recipe(root, loader="stream", loader_workers=0))
    assert len(decoded) == 24  # the statistics pass decoded every train image once
    second = load_data(recipe(root, loader="stream", loader_workers=0))
    assert len(decoded) == 24 and (second.mean, second.std) == (first.mean, first.std)  # read from the cache
    Image.new("RGB", (12, 12), (255, 0, 0)).save(root / "train" / "c0" / "99.png")  # other files: measured anew
    third = load_data(recipe(root, loader="stream", loader_workers=0))
    assert len(decoded) == 24 + 25 and third.mean != first.mean


def test_the_run_key_holds_the_loader_auto_picks_not_the_budget(tmp_path: Path) -> None:
    """Issue 21.6: the budget only matters through the loader it picks, so that loader is keyed instead."""
    from sesweep.run_identity import run_key

    root = make_folder(tmp_path / "ds")
    fits = 33 * 3 * 12 * 12 / 1024**3  # every kept image decoded: the smallest budget that still picks memory

    def key(**recipe: object) -> str:
        over = {"recipe.dataset": "imagefolder", "recipe.data_root": str(root), "recipe.image_size": 12,
                **{f"recipe.{k}": v for k, v in recipe.items()}}
        return run_key(run_spec(over), data_id="d")

    assert key(memory_budget_gb=8) == key(memory_budget_gb=16) == key(memory_budget_gb=fits)  # memory each time
    assert key(memory_budget_gb=8) == key(loader="memory")         # auto that picks memory is the memory run
    assert key(memory_budget_gb=fits / 2) == key(loader="stream")  # ... and auto that picks stream the stream run
    assert key(memory_budget_gb=8) != key(loader="stream")         # the loader is part of what a run is
    assert key(augment="imagenet", memory_budget_gb=1) == key(augment="imagenet", memory_budget_gb=64)  # streams

    def builtin(**recipe: object) -> str:
        return run_key(run_spec({f"recipe.{k}": v for k, v in recipe.items()}), data_id="d")

    assert builtin(memory_budget_gb=1) == builtin(memory_budget_gb=2)  # digits: always in memory
    assert builtin(loader="memory") == builtin()                       # memory is what auto is there


def test_a_batch_larger_than_the_train_split_is_refused_before_any_run(make_sweep, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from sesweep.cli import main

    path = make_sweep(recipe={"batch_size": 33})  # the fake recipe keeps 32 train images
    assert main(["run", str(path), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recipe.batch_size: 33 is more than the 32 training images; allowed: at most 32" in err[0]
    assert not (tmp_path / "results").exists()
