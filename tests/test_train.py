"""One training run: deterministic, matched across variants, honest about divergence, and it learns."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from sesweep.cli import main
from sesweep.results import METRICS
from sesweep.spec import run_spec
from sesweep.training import train as train_module
from sesweep.training.train import lr_factor, train

TINY = {"recipe.dataset": "fake", "recipe.train_subset": 256, "recipe.test_subset": 100, "recipe.batch_size": 64,
        "recipe.epochs": 2, "recipe.precision": "fp32", "recipe.device": "cpu"}


def tiny(**overrides):
    return run_spec({**TINY, **{k.replace("__", "."): v for k, v in overrides.items()}})


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_and_curves():
    a = train(tiny(), progress=False)
    b = train(tiny(), progress=False)
    assert a.status == b.status == "finished"
    for k in ("top1_err", "top5_err", "test_loss", "train_loss"):
        assert a.metrics[k] == b.metrics[k], k
    strip = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in a.curves]
    assert strip == [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in b.curves]
    c = train(tiny(seed=1), progress=False)
    assert c.metrics["train_loss"] != a.metrics["train_loss"]


def test_record_has_every_metric_and_spec_key():
    result = train(tiny(recipe__epochs=1), progress=False)
    record = result.record()
    assert set(METRICS) <= set(record)
    assert record["run_key"] == result.run_key and record["status"] == "finished"
    assert record["model.attention.reduction"] == 16 and record["recipe.dataset"] == "fake"
    assert record["epochs_done"] == 1 and record["diverged_epoch"] is None
    assert record["params"] > record["se_params"] > 0
    assert record["train_img_per_s"] > 0 and record["infer_ms"] > 0
    assert result.hidden_widths[0]["block"] == "layer1.0.attn_branch"
    # excitation profile: sigmoid gate values per channel, for each block and the classes seen
    assert result.excitation and all(0 < v < 1 for row in result.excitation for v in row["mean"])
    assert {row["stage"] for row in result.excitation} == {2, 3, 4}


def test_variants_see_identical_data_in_identical_order(monkeypatch):
    seen: dict[str, list[torch.Tensor]] = {}
    real_build = train_module.build_model

    def recording_build(spec, *args, **kwargs):
        model = real_build(spec, *args, **kwargs)
        inputs = seen.setdefault(spec.attention.kind + spec.attention.gate, [])
        model.conv1.register_forward_pre_hook(lambda _m, a: inputs.append(a[0].clone()) if _m.training else None)
        return model

    monkeypatch.setattr(train_module, "build_model", recording_build)
    train(tiny(model__attention__kind="none"), progress=False)
    train(tiny(model__attention__gate="tanh"), progress=False)
    base, se = seen["nonesigmoid"], seen["setanh"]
    assert len(base) == len(se) == 2 * 4  # 2 epochs x 256/64 batches
    assert all(torch.equal(a, b) for a, b in zip(base, se, strict=True))
    assert not torch.equal(base[0], base[4])  # a new epoch is a new order/augmentation


def test_a_huge_learning_rate_diverges_without_raising():
    result = train(tiny(recipe__lr=1e8, recipe__epochs=3), progress=False)
    assert result.status == "diverged"
    assert result.metrics["diverged_epoch"] == 1 and result.metrics["epochs_done"] == 0
    assert "epoch 1" in result.reason
    assert math.isnan(result.metrics["top1_err"])


def test_it_learns_the_fake_data():
    result = train(tiny(recipe__epochs=4, recipe__lr=0.05), progress=False)
    assert result.metrics["top1_err"] < 50  # chance is 90%


@pytest.mark.slow  # > 5 s: out of the fast tier
def test_bf16_autocast_runs_on_cpu():
    result = train(tiny(recipe__epochs=1, recipe__precision="bf16"), progress=False)
    assert result.status == "finished" and result.environment["resolved_precision"] == "bf16"
    assert math.isfinite(result.metrics["test_loss"])


def test_schedule_warmup_cosine_and_steps():
    recipe = tiny(recipe__warmup_epochs=1, recipe__epochs=10).recipe
    factors = [lr_factor(s, 100, recipe, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)  # linear warmup over 10 steps
    assert factors[10] == pytest.approx(1.0) and factors[-1] < 0.001  # cosine to 0
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    step = tiny(recipe__schedule="step", recipe__step_milestones=[0.5, 0.75]).recipe
    assert [lr_factor(s, 100, step, 10) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])


def test_cli_train_prints_json_record_and_rejects_bad_keys(capsys):
    args = [f"{k}={v}" for k, v in TINY.items()] + ["recipe.epochs=1"]
    assert main(["train", *args, "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["record"]["status"] == "finished" and len(out["curves"]) == 1
    assert main(["train", "recipe.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "recipe.epoch: unknown key (did you mean 'recipe.epochs'?)" in err
    assert main(["train", "recipe.precision=fp8"]) == 2
    assert "recipe.precision: 'fp8' is not allowed; allowed: fp32, bf16, fp16, auto" in capsys.readouterr().err


# -- adaptive SE inside the one training loop --------------------------------------------------------------

def _adaptive(kind: str, weight: float, **more):
    return tiny(model__attention__adaptive=kind, model__attention__reduction=2, model__attention__cost_weight=weight,
                recipe__train_subset=128, **more)


def test_learnable_run_logs_widths_per_epoch_and_records_the_hardened_net(tmp_path, capsys):
    fixed = train(tiny(model__attention__reduction=2, recipe__train_subset=128), progress=False)
    result = train(_adaptive("learnable", 5.0), progress=False)
    assert result.status == "finished"
    blocks = {w["block"] for w in result.hidden_widths}
    assert len(blocks) == 9 and {r["epoch"] for r in result.adaptive} == {1, 2}
    assert {r["block"] for r in result.adaptive} == blocks
    assert all(0 < r["effective_width"] <= r["max_hidden"] for r in result.adaptive)
    assert all(0 < row["se_budget"] <= 1 for row in result.curves)
    # a strong cost shrinks the net; the record describes the hardened plain SE, re-measured and re-evaluated
    assert result.metrics["se_params"] < fixed.metrics["se_params"]
    assert result.metrics["params"] == fixed.metrics["params"] - (
        fixed.metrics["se_params"] - result.metrics["se_params"])
    assert result.metrics["soft_top1_err"] is not None and result.metrics["se_budget"] < 1
    assert [w["hidden"] for w in result.hidden_widths] == [r["hardened_width"] for r in result.adaptive[-9:]]
    # `sesweep info --run` rebuilds that hardened structure from the run's JSON and reports the same cost
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"record": result.record(), "hidden_widths": result.hidden_widths}))
    assert main(["info", "--run", str(path), "--json", "--input-size", "16"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["params"], info["se_params"]) == (result.metrics["params"], result.metrics["se_params"])


def test_width_parameters_get_no_weight_decay():
    from sesweep.training.models import build_model
    from sesweep.training.models.adaptive import adaptive_parameters
    from sesweep.training.train import make_optimizer

    spec = _adaptive("learnable", 0.1)
    model = build_model(spec.model, 10, 3, 0)
    groups = make_optimizer(model, spec.recipe).param_groups
    assert [g["weight_decay"] for g in groups] == [spec.recipe.weight_decay, 0.0]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in adaptive_parameters(model)} != set()


def test_dynamic_run_logs_per_sample_ratio_statistics():
    result = train(_adaptive("dynamic", 0.5, recipe__epochs=1), progress=False)
    assert result.status == "finished" and result.metrics["soft_top1_err"] is None  # nothing to harden
    rows = result.adaptive
    assert len(rows) == 9 and all(r["sample_ratio_n"] == 100 for r in rows)  # the whole test subset
    assert all(r["sample_ratio_min"] <= r["sample_ratio_mean"] <= r["sample_ratio_max"] for r in rows)


def test_eval_every_evaluates_every_nth_and_the_last_epoch_and_trains_the_same():
    every = train(tiny(recipe__epochs=3), progress=False)
    sparse = train(tiny(recipe__epochs=3, recipe__eval_every=2), progress=False)
    assert [("top1_err" in row) for row in sparse.curves] == [False, True, True]
    for k in ("top1_err", "top5_err", "test_loss", "train_loss"):
        assert sparse.metrics[k] == every.metrics[k], k  # evaluating changes nothing in training
    assert [row["train_loss"] for row in sparse.curves] == [row["train_loss"] for row in every.curves]
    assert sparse.curves[1]["top1_err"] == every.curves[1]["top1_err"]
