"""`sesweep bench` (issue 12 part 5): every section in the JSON, ratios computed from the measured figures, a
reference loop that really trains, valid JPEG folders, and bad options refused before any work. Sizes are
tiny and nothing is timed: the speed goals live in the benchmark's output, not in tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sesweep.cli import main
from sesweep.spec import run_spec
from sesweep.training.bench_report import GOALS, format_suite, goals
from sesweep.training.reference_bench import ReferenceLoop, link_subset, write_digits_jpegs

#: a few tiny steps of everything: fake 16² data for the cifar section, resnet20 at 32² for imagenet,
#: 16 digit JPEGs for reference and epoch, loading in the training process
TINY = ["recipe.dataset=fake", "recipe.train_subset=32", "recipe.test_subset=16", "recipe.image_size=16",
        "recipe.batch_size=8", "recipe.device=cpu", "--precisions", "fp32", "--steps", "1", "--repeats", "1",
        "--imagenet-arch", "resnet20", "--imagenet-size", "32", "--imagenet-batch", "2", "--imagenet-steps", "1",
        "--imagenet-repeats", "1", "--images", "16", "--workers", "0", "--peak-size", "64", "--peak-repeats", "1"]


@pytest.fixture(scope="module")
def bench_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import contextlib
    import io

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            assert main(["bench", *TINY, "--json"]) == 0
    finally:
        torch.set_num_threads(before)
    return json.loads(out.getvalue())


def test_json_has_every_section_and_key(bench_doc: dict[str, Any]):
    doc = bench_doc
    assert set(doc) == {"device", "flops_convention", "peak", "cifar", "imagenet", "jpegs", "reference", "epoch",
                        "loader", "goals"}
    assert {"device", "name", "torch", "threads", "bf16_native", "auto_precision", "precisions"} <= set(doc["device"])
    assert doc["flops_convention"].startswith("training FLOP/s = 3 x 2 x forward MACs per image x images/s")
    assert doc["peak"]["gflops"]["fp32"]["gflops"] > 0 and doc["peak"]["gflops"]["fp32"]["size"] == 64
    for key, arch in (("cifar", "resnet20"), ("imagenet", "resnet20")):
        section = doc[key]
        assert section["arch"] == arch
        assert [(r["attention"], r["precision"]) for r in section["rows"]] == [("none", "fp32"), ("se", "fp32")]
        for r in section["rows"]:
            assert {"ms_per_step", "img_per_s", "infer_ms", "params", "macs", "train_gflops",
                    "peak_fraction"} <= set(r)
    assert doc["cifar"]["image_size"] == 16 and doc["imagenet"]["image_size"] == 32
    assert doc["imagenet"]["rows"][0]["params"] > doc["cifar"]["rows"][0]["params"]  # 1000 classes, not 10
    assert doc["jpegs"]["train_images"] == 16 and "digits" in doc["jpegs"]["source"]
    assert {"reference_img_per_s", "reference_ms_per_step", "reference_infer_ms", "sesweep_img_per_s",
            "sesweep_ms_per_step", "sesweep_infer_ms", "sesweep_precision", "speedup",
            "workers"} <= set(doc["reference"])
    epoch = doc["epoch"]
    for path in ("reference", "sesweep_cold", "sesweep_warm"):
        assert {"seconds", "images", "img_per_s"} <= set(epoch[path]) and epoch[path]["images"] == 16
    assert [g["goal"] for g in doc["goals"]] == [name for name, *_ in GOALS]
    # on whatever this host is: the goals are read at the precision auto picks here
    assert all(g["precision"] == doc["device"]["auto_precision"] for g in doc["goals"])
    assert all(g["met"] in (True, False, None) for g in doc["goals"])


def _at(doc: dict[str, Any], auto: str) -> dict[str, Any]:
    """The same measured figures as a host whose ``precision: auto`` resolves to ``auto`` would read them."""
    return {**doc, "device": {**doc["device"], "auto_precision": auto}}


#: the goals read off one SE row at the auto precision; the other two compare whole loops, any precision
PER_PRECISION = {"se_overhead_cifar", "se_overhead_imagenet", "peak_fraction"}


def test_goals_on_an_fp32_host_are_all_decided(bench_doc: dict[str, Any]):
    """The bench measured fp32: on an AVX2-only host (auto -> fp32) every goal has a value and a verdict."""
    assert all(g["met"] in (True, False) and g["precision"] == "fp32" for g in goals(_at(bench_doc, "fp32")))


def test_goals_on_a_bf16_host_say_not_measured(bench_doc: dict[str, Any]):
    """On a host with native bf16 (auto -> bf16) an fp32-only bench has no row at bf16: those goals say so
    (None, shown as '-') instead of borrowing the fp32 figures; the loop-level goals still have verdicts."""
    rows = {g["goal"]: g for g in goals(_at(bench_doc, "bf16"))}
    assert all(rows[name]["value"] is None and rows[name]["met"] is None for name in PER_PRECISION)
    assert all(rows[name]["met"] in (True, False) for name in set(rows) - PER_PRECISION)


def test_ratios_are_computed_from_the_measured_figures(bench_doc: dict[str, Any]):
    doc = bench_doc
    peak = doc["peak"]["gflops"]["fp32"]["gflops"]
    for key in ("cifar", "imagenet"):
        none, se = doc[key]["rows"]
        assert se["se_overhead"] == pytest.approx(se["ms_per_step"] / none["ms_per_step"])
        assert "se_overhead" not in none
        for r in (none, se):
            assert r["img_per_s"] == pytest.approx(r["batch_size"] / r["ms_per_step"] * 1e3)
            assert r["train_gflops"] == pytest.approx(6 * r["macs"] * r["img_per_s"] / 1e9)
            assert r["peak_fraction"] == pytest.approx(r["train_gflops"] / peak)
    ref = doc["reference"]
    assert ref["speedup"] == pytest.approx(ref["sesweep_img_per_s"] / ref["reference_img_per_s"])
    ep = doc["epoch"]
    assert ep["speedup_cold"] == pytest.approx(ep["sesweep_cold"]["img_per_s"] / ep["reference"]["img_per_s"])
    assert ep["speedup_warm"] == pytest.approx(ep["sesweep_warm"]["img_per_s"] / ep["reference"]["img_per_s"])
    values = {g["goal"]: g["value"] for g in goals(_at(doc, "fp32"))}  # the host may pick bf16: read fp32
    assert values == pytest.approx({"se_overhead_cifar": doc["cifar"]["rows"][1]["se_overhead"],
                                    "se_overhead_imagenet": doc["imagenet"]["rows"][1]["se_overhead"],
                                    "vs_reference": ref["speedup"],
                                    "peak_fraction": doc["cifar"]["rows"][1]["peak_fraction"],
                                    "epoch_vs_reference": ep["speedup_cold"]})
    table = format_suite(doc)
    for heading in ("matmul peak", "CIFAR shape", "ImageNet shape", "reference:", "end-to-end epoch",
                    "input pipeline", "goals"):
        assert heading in table


PIPELINES = [("stream", "standard"), ("reference", "standard"), ("stream", "imagenet"), ("reference", "imagenet"),
             ("memory", "standard")]


def check_loader_section(section: dict[str, Any], workers: int, images: int, batch: int) -> None:
    """Five pipelines, each with positive rates over whole epochs; the ratios are stream / reference."""
    assert section["workers"] == workers and section["batch_size"] == batch and section["train_images"] == images
    rows = section["rows"]
    assert [(r["loader"], r["augment"]) for r in rows] == PIPELINES
    for r in rows:
        assert r["images"] == images // batch * batch and r["batches"] == images // batch
        assert len(r["epochs"]) == section["repeats"] and r["first"]["img_per_s"] > 0
        assert r["img_per_s"] > 0 and r["setup_seconds"] >= 0
        assert r["ms_per_batch"] == pytest.approx(batch / r["img_per_s"] * 1e3)
        assert min(e["img_per_s"] for e in r["epochs"]) <= r["img_per_s"] <= max(e["img_per_s"] for e in r["epochs"])
    by = {(r["loader"], r["augment"]): r for r in rows}
    assert by[("stream", "standard")]["image_size"] == 32 and by[("reference", "standard")]["image_size"] == 32
    assert by[("stream", "imagenet")]["image_size"] == section["loader_size"]
    assert by[("memory", "standard")]["decode_seconds"] > 0
    for augment in ("standard", "imagenet"):
        assert section["ratios"][augment] == pytest.approx(
            by[("stream", augment)]["img_per_s"] / by[("reference", augment)]["img_per_s"])


def test_loader_section_in_the_full_run(bench_doc: dict[str, Any]):
    check_loader_section(bench_doc["loader"], workers=0, images=16, batch=8)


def test_loader_section_alone_with_a_worker(capsys: pytest.CaptureFixture[str]):
    args = ["recipe.batch_size=8", "recipe.device=cpu", "--sections", "loader", "--images", "24", "--workers", "1",
            "--loader-size", "16", "--repeats", "2"]
    assert main(["bench", *args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(doc[key] is None for key in ("peak", "cifar", "imagenet", "reference", "epoch"))
    assert doc["jpegs"]["train_images"] == 24 and doc["loader"]["loader_size"] == 16
    check_loader_section(doc["loader"], workers=1, images=24, batch=8)
    table = format_suite(doc)
    assert "input pipeline" in table and "stream / reference" in table


def test_goals_of_sections_not_measured_are_none():
    doc = {"device": {"auto_precision": "fp32"}, "cifar": None, "imagenet": None, "reference": None, "epoch": None}
    assert all(g["value"] is None and g["met"] is None for g in goals(doc))
    doc["reference"] = {"speedup": 2.5}
    doc["epoch"] = {"speedup_cold": 2.0}
    by_name = {g["goal"]: g["met"] for g in goals(doc)}
    assert by_name["vs_reference"] is True and by_name["epoch_vs_reference"] is False


def test_jpeg_writer_makes_a_valid_imagefolder(tmp_path: Path):
    from torchvision import datasets

    root = write_digits_jpegs(tmp_path / "jpegs", train_images=25, test_images=10)
    train = datasets.ImageFolder(str(root / "train"))
    assert len(train) == 25 and train.classes == [str(k) for k in range(10)]
    assert all(path.endswith(".jpg") for path, _ in train.samples)
    image, label = train[0]
    assert image.size == (32, 32) and image.mode == "RGB" and label == 0
    assert len(datasets.ImageFolder(str(root / "test"))) == 10
    counts = torch.bincount(torch.tensor(train.targets), minlength=10)
    assert counts.max() - counts.min() <= 1  # class-stratified

    linked = link_subset(root, tmp_path / "subset", train_images=10, test_images=10)
    sub = datasets.ImageFolder(str(linked / "train"))
    assert len(sub) == 10 and sorted(sub.targets) == list(range(10))
    assert all(Path(p).is_symlink() and Path(p).resolve().is_file() for p, _ in sub.samples)


def test_reference_loop_really_trains(tmp_path: Path, one_torch_thread: None):
    root = write_digits_jpegs(tmp_path / "jpegs", train_images=16, test_images=10)
    spec = run_spec({"model.attention.kind": "se", "recipe.lr": 0.05})
    loop = ReferenceLoop(spec, root, batch_size=8, workers=0)
    before = [p.detach().clone() for p in loop.model.parameters()]
    seconds, images = loop.run(3)  # epochs join end to end: 2 batches per epoch
    assert images == 24 and seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, loop.model.parameters(), strict=True))
    x, y = next(iter(loop.loader))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    losses = [loop.step(x, y) for _ in range(8)]  # the same batch again and again: it is learned
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(("option", "value", "named"), [
    ("--steps", "0", "--steps"), ("--steps", "x", "--steps"), ("--sections", "peak,nope", "--sections"),
    ("--kinds", "cbam", "--kinds"), ("--precisions", "fp16", "--precisions"), ("--workers", "-1", "--workers"),
    ("--jpeg-root", "/does/not/exist", "--jpeg-root"), ("--images", "3", "--images"),
    ("--loader-size", "4", "--loader-size"), ("--loader-size", "x", "--loader-size"),
    ("--imagenet-arch", "vgg16", "--imagenet-arch")])
def test_a_bad_option_is_one_line_exit_2_before_any_work(option: str, value: str, named: str,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch):
    import sesweep.training.bench_suite as suite

    monkeypatch.setattr(suite, "bench_suite", lambda *a, **k: pytest.fail("work started"))
    assert main(["bench", "recipe.device=cpu", option, value]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"sesweep bench: error: {named}: "), err


def test_every_option_is_explained_in_help(capsys: pytest.CaptureFixture[str]):
    import argparse

    from sesweep.training.arguments import add_bench_arguments

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) == 17
    for action in options:
        assert action.help and len(action.help) > 30, action.option_strings
        assert action.dest == "json" or "default" in action.help.lower(), action.option_strings
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "exit status" in capsys.readouterr().out
