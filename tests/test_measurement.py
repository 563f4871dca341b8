"""Measurement honesty (issue 9, items 5, 9, 10, 11): the excitation probe, per-run memory, where a run was
timed and whether it shared its device, and speed statistics that never mix devices."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import torch

from sesweep.spec import run_spec
from sesweep.training import train as train_module
from sesweep.training.data import ImageSet, load_data
from sesweep.training.train import train

TINY = {"recipe.dataset": "fake", "recipe.train_subset": 64, "recipe.test_subset": 200, "recipe.image_size": 16,
        "recipe.batch_size": 32, "recipe.eval_batch_size": 100, "recipe.epochs": 1, "recipe.precision": "fp32",
        "recipe.device": "cpu", "recipe.augment": "none"}


def tiny(**overrides):
    return run_spec({**TINY, **{k.replace("__", "."): v for k, v in overrides.items()}})


@pytest.fixture(autouse=True)
def private_registry(tmp_path, monkeypatch):
    """Each test sees its own registry of live trainers (other people's test runs share this machine)."""
    monkeypatch.setenv("SESWEEP_REGISTRY_DIR", str(tmp_path / "registry"))


@pytest.fixture(scope="module")
def sorted_splits():
    """The fake data with its 200 test images sorted by class, as an image folder's are."""
    splits = load_data(tiny().recipe)
    order = torch.sort(splits.test.labels, stable=True).indices
    test = ImageSet(splits.test.images[order].contiguous(), splits.test.labels[order].clone(), splits.test.classes)
    return replace(splits, test=test)


# -- item 5: the excitation probe ---------------------------------------------------------------------------

def test_probe_is_class_balanced_seeded_and_independent_of_the_run():
    from sesweep.training.measure import PROBE_SEED, excitation_probe

    labels = torch.arange(10).repeat_interleave(200)  # 2,000 images sorted by class
    index, info = excitation_probe(labels, images=1024, max_classes=10)
    assert len(index) == 1024 and len(set(index.tolist())) == 1024
    assert torch.equal(index, torch.sort(index).values)  # a deterministic order
    per_class = torch.bincount(labels[index], minlength=10).tolist()
    assert max(per_class) - min(per_class) <= 1 and info["per_class"] == per_class
    assert info["seed"] == PROBE_SEED and info["images"] == 1024
    again, _ = excitation_probe(labels, images=1024, max_classes=10)
    assert torch.equal(index, again)
    assert not torch.equal(index[:102], torch.arange(102))  # drawn, not the first images of each class

    # as balanced as the data allow: a rare class gives all it has, the others share the rest
    rare = torch.cat([torch.zeros(5, dtype=torch.long), torch.arange(1, 4).repeat_interleave(100)])
    index, info = excitation_probe(rare, images=100, max_classes=10)
    assert info["per_class"] == [5, 32, 32, 31] and len(index) == 100
    # only the classes the profile keeps are probed
    many = torch.arange(100).repeat_interleave(20)
    index, info = excitation_probe(many, images=1024, max_classes=10)
    assert set(many[index].tolist()) == set(range(10)) and info["per_class"] == [20] * 10


def test_training_probes_every_class_with_the_same_images_for_every_variant_and_seed(sorted_splits, monkeypatch):
    monkeypatch.setattr(train_module, "EXCITATION_IMAGES", 40)  # 40 of 200 class-sorted images: 4 per class
    monkeypatch.setattr(train_module, "EXCITATION_BATCH", 16)
    a = train(tiny(), data=sorted_splits, progress=False)
    b = train(tiny(model__attention__gate="tanh", seed=1), data=sorted_splits, progress=False)
    assert {row["class"] for row in a.excitation} == set(range(10))  # today: classes 0 and 1 only
    assert a.excitation_probe["per_class"] == [4] * 10 and a.excitation_probe["images"] == 40
    assert a.excitation_probe["indices"] == b.excitation_probe["indices"]
    assert a.excitation_probe["seed"] == b.excitation_probe["seed"]


# -- item 9: peak memory -------------------------------------------------------------------------------------

def test_peak_rss_is_reset_per_measurement():
    from sesweep.training.measure import peak_rss_mb, reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("this kernel cannot reset the resident-set high-water mark")
    # an anonymous mapping, touched and unmapped: the allocator cannot keep it resident after it is closed
    big = mmap.mmap(-1, 64 * 2**20)
    big.write(b"\x01" * len(big))
    high = peak_rss_mb()
    big.close()
    assert reset_peak_rss()
    low = peak_rss_mb()
    assert low is not None and high is not None and low < high - 40


def test_two_runs_in_one_process_do_not_both_report_the_first_ones_peak(monkeypatch):
    real_latency = train_module.latency_ms

    def hungry_latency(*args, **kwargs):  # the first run touches 256 MiB more than the second, then frees it
        ballast = torch.ones(256 * 2**20, dtype=torch.uint8)
        del ballast
        return real_latency(*args, **kwargs)

    monkeypatch.setattr(train_module, "latency_ms", hungry_latency)
    big = train(tiny(), progress=False)
    monkeypatch.setattr(train_module, "latency_ms", real_latency)
    small = train(tiny(), progress=False)
    # no process-lifetime figure under the name of a run's peak: CUDA-only, empty on the CPU
    assert big.metrics["peak_mem_mb"] is None and small.metrics["peak_mem_mb"] is None
    if big.metrics["peak_rss_mb"] is not None:  # Linux: the run's own resident-set high-water mark
        assert small.metrics["peak_rss_mb"] < big.metrics["peak_rss_mb"] - 128


# -- item 10: where a run was timed, and whether it shared the device ------------------------------------------

def test_device_registry_marks_overlapping_trainers_shared(tmp_path):
    from sesweep.training.hardware import device_slot

    cpu = torch.device("cpu")
    with device_slot(cpu) as alone:
        pass
    assert alone.shared() == (False, 0)
    with device_slot(cpu) as first:
        with device_slot(cpu) as second:  # starts while `first` trains: both know
            assert second.shared() == (True, 1)
        assert first.shared() == (True, 1)
    # a trainer that died without cleaning up is not counted, and its entry is removed
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    pid = int(dead.stdout)
    with device_slot(cpu) as probe:
        stale = probe.path.parent / f"{pid}-0-0"
        stale.mkdir()
    with device_slot(cpu) as later:
        assert later.shared() == (False, 0)
    assert not stale.exists()
    assert not list(probe.path.parent.iterdir())  # everybody cleaned up


def test_run_records_host_device_and_whether_its_timing_was_shared(tmp_path):
    from sesweep.training.hardware import device_slot

    alone = train(tiny(), progress=False).record()
    assert alone["host"] == os.uname().nodename and alone["device_name"]
    assert alone["timed_shared"] is False and alone["concurrent_workers"] == 0
    with device_slot(torch.device("cpu")):  # another worker training on the same CPU
        shared = train(tiny(), progress=False).record()
    assert shared["timed_shared"] is True and shared["concurrent_workers"] == 1


def _runs() -> pd.DataFrame:
    rows = []
    for seed, (host, device, shared, ms) in enumerate([
            ("a", "Xeon", False, 10.0), ("a", "Xeon", False, 12.0), ("a", "Xeon", True, 30.0),
            ("b", "H100", False, 1.0), ("b", "H100", "True", 9.0), ("b", "H100", "False", 2.0)]):
        rows.append({"variant": "se", "seed": seed, "status": "finished", "host": host, "device_name": device,
                     "timed_shared": shared, "infer_ms": ms, "train_img_per_s": 1000 / ms})
    rows.append({"variant": "se", "seed": 9, "status": "diverged", "host": "a", "device_name": "Xeon",
                 "timed_shared": False, "infer_ms": float("nan"), "train_img_per_s": 5.0})
    return pd.DataFrame(rows)


def test_speed_statistics_are_grouped_by_host_and_device_without_shared_timings():
    from sesweep.analysis.speed import speed_stats

    table, caveat = speed_stats(_runs())
    table = table.set_index(["host", "device_name"])
    xeon, h100 = table.loc[("a", "Xeon")], table.loc[("b", "H100")]
    assert (xeon["n_runs"], xeon["n_shared"], xeon["n"]) == (3, 1, 2)
    assert xeon["infer_ms_mean"] == pytest.approx(11.0) and h100["infer_ms_mean"] == pytest.approx(1.5)
    assert h100["train_img_per_s_mean"] == pytest.approx((1000 + 500) / 2)
    assert "\n" not in caveat and "2 host/device" in caveat and "2 runs" in caveat and "excluded" in caveat

    # runs.csv from before host and device were recorded: said so, not averaged silently
    old = _runs().drop(columns=["host", "device_name", "timed_shared"])
    table, caveat = speed_stats(old)
    assert table["n"].sum() == 6 and "not recorded" in caveat


def test_speed_module_does_not_import_torch():
    code = "import sys, sesweep.analysis.speed; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- item 11: what hardening the learnable SE is -------------------------------------------------------------

def _learnable_at(width: float):
    from sesweep.training.models.adaptive import LearnableSE

    torch.manual_seed(0)
    se = LearnableSE(32, 2, block="b")  # H = 16 hidden units, min width 1
    with torch.no_grad():  # the linear range of the width parametrisation: w = 1 + 15 (θ + 1)
        se.width_logit.fill_((width - 1) / 15 - 1)
    return se


def test_hardening_drops_units_whose_masks_reach_one_half_and_folds_the_kept_ones():
    from sesweep.training.models.adaptive import harden

    near_half = _learnable_at(10.47)  # measured on the smoke sweep's learned variant (seed 0, layer3.0)
    dropped, kept = near_half.hardening_masks()
    assert near_half.hardened_width() == 10
    assert 0.45 < dropped < 0.5 and 0.5 <= kept < 1  # not "exact": a dropped unit's mask can be near 1/2
    near_integer = _learnable_at(10.0)
    assert near_integer.hardening_masks()[0] == pytest.approx(0.0344, abs=1e-3)  # ε = sigmoid(-1/(2τ))

    # the hardened SE computes the soft one minus exactly the dropped units' share (kept masks folded in fc2)
    x = torch.randn(4, 32, 5, 5)
    k = near_half.hardened_width()
    mask = near_half.mask().detach().clone()
    mask[k:] = 0
    h = near_half.act(near_half.fc1(near_half.pool(x))) * mask.view(1, -1, 1, 1)
    expected = near_half.gate(near_half.fc2(h))
    with torch.no_grad():
        assert torch.allclose(harden(near_half).excitation(x), expected, atol=1e-6)
        assert not torch.allclose(near_half.excitation(x), expected, atol=1e-3)  # the soft block differs


def test_every_width_keeps_masks_of_at_least_one_half_and_drops_masks_of_at_most_about_one_half():
    worst_dropped, worst_kept = 0.0, 1.0
    for tenth in range(5, 170):
        dropped, kept = _learnable_at(tenth / 10 + 0.003).hardening_masks()
        worst_dropped, worst_kept = max(worst_dropped, dropped), min(worst_kept, kept)
    assert worst_kept >= 0.5 - 1e-6 and worst_dropped < 0.501  # the bounds the docstring and README state


def test_the_adaptive_log_says_how_much_each_hardened_block_drops():
    from sesweep.training.models import build_model
    from sesweep.training.models.adaptive import adaptive_state

    spec = tiny(model__attention__adaptive="learnable", model__attention__reduction=2)
    rows = adaptive_state(build_model(spec.model, 10, 3, 0))
    assert rows and all({"dropped_mask_max", "kept_mask_min"} <= set(r) for r in rows)
    assert all(r["dropped_mask_max"] == 0.0 and 0.96 < r["kept_mask_min"] < 1 for r in rows)  # init: all kept
