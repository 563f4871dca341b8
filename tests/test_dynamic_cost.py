"""The dynamic SE's budget and cost (issue 9, item 6): measured over the whole test set, compared at what it
really costs, and a truncated inference path that really skips the dropped units' arithmetic."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sesweep import results
from sesweep.analysis import equal_cost, factors, figures, tables
from sesweep.spec import run_spec
from sesweep.training import train as train_module
from sesweep.training.data import load_data
from sesweep.training.models.adaptive import (
    DynamicSE,
    adaptive_modules,
    budget_fraction,
    record_dynamic_widths,
    truncated,
)
from sesweep.training.models.init import generator_for
from tests.test_stats import ADAPTIVE_VARIANTS, adaptive_details, adaptive_outcome, write_sweep

# -- the budget over the whole test set --------------------------------------------------------------------

DYNAMIC_RUN = {"recipe.dataset": "fake", "recipe.train_subset": 64, "recipe.test_subset": 40, "recipe.image_size": 16,
               "recipe.batch_size": 32, "recipe.eval_batch_size": 8, "recipe.epochs": 1, "recipe.precision": "fp32",
               "recipe.augment": "none", "recipe.device": "cpu", "model.attention.adaptive": "dynamic",
               "model.attention.reduction": 2}


def _route(model: torch.nn.Module) -> None:
    """Give every router random weights, so widths differ between images (at init the router is zero)."""
    g = torch.Generator().manual_seed(7)
    for _, m in adaptive_modules(model):
        with torch.no_grad():
            m.router.weight.copy_(torch.randn(m.router.weight.shape, generator=g) * 2.0)
            m.router.bias.fill_(-0.4)


def test_budget_comes_from_every_test_image_not_the_last_batch(monkeypatch):
    spec = run_spec(DYNAMIC_RUN)
    splits = load_data(spec.recipe)
    order = torch.argsort(splits.test.labels, stable=True)  # class-sorted, as image folders are: last batch = 1 class
    test = dataclasses.replace(splits.test, images=splits.test.images[order], labels=splits.test.labels[order])
    splits = dataclasses.replace(splits, test=test)
    built = []
    real_build = train_module.build_model

    def routed_build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        _route(model)
        built.append(model)
        return model

    monkeypatch.setattr(train_module, "build_model", routed_build)
    result = train_module.train(spec, data=splits, progress=False)
    assert result.status == "finished"
    model = built[0]  # the trained net (a second build is the net at initialisation: the excitation reference)
    device, precision = torch.device("cpu"), "fp32"
    with record_dynamic_widths(model) as rec:  # the whole test set again, batch by batch
        train_module.evaluate(model, splits.test, splits, spec.recipe, device, precision)
    blocks = [m for _, m in adaptive_modules(model)]
    means = {m.width.block: torch.cat(rec[m.width.block]).mean() for m in blocks}
    assert all(len(torch.cat(rec[b])) == 40 for b in means)
    whole = sum(float(m._cost(means[m.width.block], "params")) for m in blocks) / sum(m.max_cost() for m in blocks)
    active = sum(float(means[m.width.block]) for m in blocks) / sum(m.max_hidden for m in blocks)
    last_batch = budget_fraction(model)  # the last forward: the 8 images of the last class
    assert abs(whole - last_batch) > 1e-3, (whole, last_batch)
    assert result.metrics["se_budget"] == pytest.approx(whole, rel=1e-6)
    assert result.curves[-1]["se_budget"] == pytest.approx(whole, rel=1e-6)
    assert budget_fraction(model, "params", rec) == pytest.approx(whole, rel=1e-6)
    assert result.metrics["se_active_width"] == pytest.approx(active, rel=1e-6)
    assert result.curves[-1]["se_active_width"] == pytest.approx(active, rel=1e-6)
    # the record says which path its errors come from: top1_err is the soft mask's, truncated_top1_err the other
    with truncated(model):
        hard = train_module.evaluate(model, splits.test, splits, spec.recipe, device, precision)
    assert result.metrics["truncated_top1_err"] == pytest.approx(hard["top1_err"])
    assert result.metrics["top1_err"] == pytest.approx(result.curves[-1]["top1_err"])


# -- the adaptive table and figure at real costs ---------------------------------------------------------------

def _outcome(variant: str, seed: int) -> dict[str, float]:
    out = adaptive_outcome(variant, seed)
    if variant.startswith("dynamic"):
        out |= {"se_budget": 0.02, "se_active_width": 0.5}  # a MAC share (cost_unit: macs) and a width share
    return out


@pytest.fixture(scope="module")
def macs_sweep(tmp_path_factory):
    """The adaptive sweep of tests/test_stats.py with the dynamic variant's cost term counted in MACs."""
    root = tmp_path_factory.mktemp("dynamic_cost")
    variants = {**ADAPTIVE_VARIANTS,
                "dynamic-w1": {**ADAPTIVE_VARIANTS["dynamic-w1"], "model.attention.cost_unit": "macs"}}
    spec = write_sweep(root, "adaptive", variants, [0, 1, 2], _outcome, details=adaptive_details, excitation=False)
    return factors.analyze(results.load_sweep(spec, root / "results"))


def test_dynamic_variant_sits_at_its_allocated_se_params(macs_sweep):
    (dyn,) = [c for c in equal_cost.adaptive_comparisons(macs_sweep) if c.kind == "dynamic"]
    assert dyn.se_params == 16_000                     # allocated: r=2's, never 0.02 × 16000 (MAC share × params)
    assert dyn.nearest == "se_r2" and dyn.fixed_at_cost == pytest.approx(8.0)
    assert dyn.active_width == pytest.approx(0.5)
    t = next(t for t in tables.build_tables(macs_sweep)[0] if t.choice.slug == "adaptive")
    nums = t.numbers.set_index("variant")
    assert nums.loc["dynamic-w1", "se_params"] == 16_000 and "se_params_expected" not in nums.columns
    assert nums.loc["dynamic-w1", "se_active_width"] == pytest.approx(0.5)
    assert math.isnan(nums.loc["learned-w1", "se_active_width"])
    shown = t.shown.set_index("variant")
    width_col = next(c for c in shown.columns if c.startswith("active width"))
    assert "not a cost" in width_col
    assert shown.loc["dynamic-w1", width_col] == "50%" and shown.loc["learned-w1", width_col] == "—"
    assert shown.loc["dynamic-w1", "SE params"] == shown.loc["dynamic-w1", "nearest fixed r (SE params)"][5:-1]
    text = t.shown.to_string() + t.caption
    assert "†" not in text and "se_budget ×" not in text and "expected SE params" not in text


def test_pareto_figure_places_dynamic_at_allocated_cost(macs_sweep, tmp_path, monkeypatch):
    xs: dict[str, list[float]] = {}
    real = figures.Axes.errorbar

    def spy(self, x, y, *args, **kwargs):
        xs.setdefault(self.get_xlabel() or str(id(self)), []).append(float(x[0]))
        return real(self, x, y, *args, **kwargs)

    monkeypatch.setattr(figures.Axes, "errorbar", spy)
    colors = figures.variant_colors(macs_sweep.order, macs_sweep.baseline)
    fig = figures.adaptive_pareto_figure(macs_sweep, colors, tmp_path)
    assert fig is not None
    assert "se_budget" not in fig.caption and "expected SE params" not in fig.caption
    assert "allocated" in fig.caption and "active width" in fig.caption
    first = next(iter(xs.values()))  # the SE-params panel: 4 fixed ratios, then learned-w1, learned-w4, dynamic-w1
    assert first[-1] == pytest.approx(first[first.index(max(first[:4]))])  # dynamic at r=2's SE params


# -- truncated inference --------------------------------------------------------------------------------------

def _dynamic(channels: int = 32, reduction: float = 2, temperature: float = 0.15, seed: int = 0) -> DynamicSE:
    m = DynamicSE(channels, reduction, block="blk", temperature=temperature)
    m.reset_parameters(lambda name: generator_for(seed, f"blk.{name}"))
    with torch.no_grad():
        m.router.weight.copy_(torch.randn(m.router.weight.shape, generator=torch.Generator().manual_seed(seed)))
    return m.eval()


def _x(n: int = 64, channels: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, channels, 4, 4, generator=torch.Generator().manual_seed(seed))


def test_truncated_path_keeps_each_samples_units_exactly():
    m, x = _dynamic(), _x()
    with torch.no_grad():
        soft = m(x)
        mask = m._widths_for(m.pool(x).flatten(1))
        k = m.hard_widths(mask.sum(-1))
        assert len(set(k.tolist())) > 3  # the widths really differ per sample
        keep = (torch.arange(m.max_hidden) < k[:, None]).to(mask.dtype)
        h = m.act(m.fc1(m.pool(x)))
        reference = x * m.gate(m.fc2(h * (mask * keep)[:, :, None, None]))
        with truncated(m):
            hard = m(x)
            one = m(x[:1])  # one width in the batch: the path without gather/scatter
    torch.testing.assert_close(hard, reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(one, reference[:1], atol=1e-6, rtol=1e-5)
    assert not torch.equal(hard, soft)  # the dropped units' small (< 1/2) mask values are gone
    assert m(x).equal(soft)             # the context restores the soft path


def test_truncated_equals_soft_where_the_mask_is_binary():
    m, x = _dynamic(temperature=0.01), _x()  # widths near integers, dropped mask values ≈ 0
    with torch.no_grad():
        soft = m(x)
        with truncated(m):
            hard = m(x)
    torch.testing.assert_close(hard, soft, atol=1e-5, rtol=1e-5)


def test_truncated_path_skips_the_dropped_units_arithmetic():
    m, x = _dynamic(), _x()
    with torch.no_grad():
        m(x)
        k = m.hard_widths(m.last_widths())
        j = 8
        assert (k <= j).any() and (k > j).any()
        m.fc1.weight[j:].fill_(float("nan"))  # units a sample does not keep are never touched …
        assert torch.isnan(m(x)).any()  # … by the soft path (0 · NaN = NaN) but are by neither fc here:
        with truncated(m):
            hard = m(x)
    finite = torch.isfinite(hard).flatten(1).all(1)
    assert finite.equal(k <= j) and finite.any() and not finite.all()


def test_truncated_path_is_off_while_training():
    m, x = _dynamic(), _x()
    m.train()
    soft = m(x)
    with truncated(m):
        assert m(x).equal(soft)
