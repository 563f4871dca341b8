"""The spec schema: defaults, parsing, one-line errors naming the key, stable run keys."""

from __future__ import annotations

import re

import pytest

from sesweep.run_identity import run_key
from sesweep.spec import RunSpec, SpecError, build, flatten, nest, parse_assignments, run_spec, schema_keys


def test_defaults_follow_the_design_vocabulary():
    spec = run_spec()
    flat = flatten(spec)
    assert flat["model.arch"] == "resnet20"
    assert flat["model.attention.kind"] == "se"
    assert flat["model.attention.reduction"] == 16
    assert flat["model.attention.stages"] == "all"
    assert flat["recipe.dataset"] == "digits"
    assert flat["seed"] == 0
    assert set(schema_keys()) == set(flat)


def test_assignments_parse_as_yaml():
    got = parse_assignments(["model.attention.stages=[2, 3]", "recipe.data_root=null", "recipe.nesterov=false",
                             "recipe.lr=0.05", "model.arch=resnet50"])
    assert got == {"model.attention.stages": [2, 3], "recipe.data_root": None, "recipe.nesterov": False,
                   "recipe.lr": 0.05, "model.arch": "resnet50"}
    spec = run_spec(got)
    assert spec.model.attention.stages == (2, 3)
    assert spec.recipe.nesterov is False


@pytest.mark.parametrize("assignment, message", [
    ("model.attention.pool=mean", "model.attention.pool: 'mean' is not allowed; allowed: avg, max, avgmax"),
    ("model.attention.gate=swish",
     "model.attention.gate: 'swish' is not allowed; allowed: sigmoid, hard_sigmoid, tanh, relu, identity"),
    ("model.attention.reduction=0", "model.attention.reduction: 0 is out of range; allowed: > 0"),
    ("model.attention.reduction=-4", "model.attention.reduction: -4 is out of range; allowed: > 0"),
    ("recipe.epochs=2.5", "recipe.epochs: 2.5 is not an integer (nothing is rounded for you)"),
    ("recipe.epochs=0", "recipe.epochs: 0 is out of range; allowed: >= 1"),
    ("model.arch=resnet19", "model.arch: 'resnet19' is not allowed; allowed: resnet20, resnet32"),
    ("model.attention.stages=some", "model.attention.stages: 'some' is not allowed; allowed: all or a list of"),
    ("model.attention.stages=[2, x]", "model.attention.stages[1]: 'x' is not an integer"),
    ("model.attention.bias=maybe", "model.attention.bias: 'maybe' is not allowed; allowed: true, false"),
    ("model.num_classes=0", "model.num_classes: 0 is not allowed; allowed: 'auto' or an integer >= 1"),
    ("recipe.device=gpu", "recipe.device: 'gpu' is not allowed; allowed: auto, cpu, cuda or cuda:N"),
    ("recipe.lr=fast", "recipe.lr: 'fast' is not a number"),
    ("model.attention.poool=max", "model.attention.poool: unknown key (did you mean 'model.attention.pool'?); "
                                  "allowed keys under model.attention: kind, reduction"),
    ("modle.arch=resnet20", "modle.arch: unknown key (did you mean 'model.arch'?); allowed keys at all: model.arch"),
    ("model.attention=se", "model.attention: is a section; give one of its keys instead"),
])
def test_bad_values_name_the_key_and_the_allowed_values(assignment, message):
    with pytest.raises(SpecError) as err:
        run_spec(parse_assignments([assignment]))
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_not_key_value_is_an_error():
    with pytest.raises(SpecError, match=r"'model\.arch' is not KEY=VALUE"):
        parse_assignments(["model.arch"])


def test_numbers_convert_only_when_nothing_is_lost():
    spec = run_spec({"recipe.weight_decay": "5e-4", "model.attention.reduction": 16.0})
    assert spec.recipe.weight_decay == 5e-4
    assert spec.model.attention.reduction == 16 and isinstance(spec.model.attention.reduction, int)
    assert run_spec({"model.attention.reduction": 1.5}).model.attention.reduction == 1.5


def test_flatten_and_nest_round_trip():
    spec = run_spec({"model.attention.stages": [3, 4], "seed": 7})
    assert build(RunSpec, nest(flatten(spec))) == spec


def test_run_key_is_stable_and_canonical():
    a = run_spec({"model.attention.reduction": 8})
    assert run_key(a) == run_key(run_spec({"model.attention.reduction": 8.0}))
    assert re.fullmatch(r"[0-9a-f]{16}", run_key(a))
    assert run_key(a) != run_key(run_spec({"model.attention.reduction": 4}))
    assert run_key(a) != run_key(run_spec({"model.attention.reduction": 8, "seed": 1}))
    # where the data live does not change what is computed
    assert run_key(a) == run_key(run_spec({"model.attention.reduction": 8, "recipe.data_root": "/elsewhere"}))


@pytest.mark.parametrize("assignment, message", [
    ("recipe.dropout=1", "recipe.dropout: 1 is out of range; allowed: >= 0 and < 1"),
    ("recipe.dropout=-0.1", "recipe.dropout: -0.1 is out of range; allowed: >= 0 and < 1"),
    ("model.attention.init=xavier", "model.attention.init: 'xavier' is not allowed; allowed: torch, normal, kaiming"),
    ("model.attention.init_std=0", "model.attention.init_std: 0 is out of range; allowed: > 0"),
    ("model.arch=wrn16_9", "model.arch: 'wrn16_9' is not allowed; allowed: resnet20, "),
])
def test_dropout_and_se_init_keys_are_validated(assignment, message):
    with pytest.raises(SpecError) as err:
        run_spec(parse_assignments([assignment]))
    assert str(err.value).startswith(message), str(err.value)
    if message.startswith("model.arch"):  # the new nets are listed among the allowed values
        assert "preresnet164" in str(err.value) and "wrn28_10" in str(err.value)


def test_new_keys_default_to_todays_behaviour():
    spec = run_spec()
    assert spec.recipe.dropout == 0.0
    assert spec.model.attention.init == "torch" and spec.model.attention.init_std == 0.001


def test_init_std_is_in_the_run_key_only_where_the_normal_init_uses_it():
    def key(**kw):
        return run_key(run_spec({f"model.attention.{k}": v for k, v in kw.items()}), data_id="d")

    assert key(init="torch", init_std=0.01) == key(init="torch")
    assert key(init="kaiming", init_std=0.01) == key(init="kaiming")
    assert key(init="normal", init_std=0.01) != key(init="normal")
    assert key(init="normal") != key(init="torch") != key(init="kaiming")
    assert key(kind="none", init="normal", init_std=0.01) == key(kind="none")
