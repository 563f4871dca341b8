"""Adaptive SE: learned and input-dependent hidden widths, their cost term, hardening, matched init."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from sesweep.spec import AttentionSpec
from sesweep.training.measure import attention_params, count_macs, count_params, hidden_widths, model_cost
from sesweep.training.models.adaptive import (
    KNEE,
    TEMPERATURE,
    AdaptiveSEFactory,
    DynamicSE,
    LearnableSE,
    adaptive_parameters,
    adaptive_state,
    budget_fraction,
    cost_term,
    dynamic_width_stats,
    harden,
    harden_model,
    record_dynamic_widths,
    soft_width,
)
from sesweep.training.models.init import generator_for, init_weights
from sesweep.training.models.operators.mlp import SEFactory, SqueezeExcite
from sesweep.training.models.operators.pools import MaxPool
from sesweep.training.models.resnet import BasicBlock, ResNet


def gen(seed: int = 0, prefix: str = "blk"):
    return lambda name: generator_for(seed, f"{prefix}.{name}")


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def learnable(channels: int = 16, reduction: float = 2, seed: int = 0, **kw) -> LearnableSE:
    m = LearnableSE(channels, reduction, block="blk", **kw)
    m.reset_parameters(gen(seed))
    return m


def dynamic(channels: int = 16, reduction: float = 2, seed: int = 0, **kw) -> DynamicSE:
    m = DynamicSE(channels, reduction, block="blk", **kw)
    m.reset_parameters(gen(seed))
    return m


def resnet(attn_layer, seed: int = 0, layers: tuple[int, ...] = (1, 1, 1)) -> ResNet:
    model = ResNet(BasicBlock, list(layers), [16, 32, 64], "cifar", "pad", 10, 3, attn_layer)
    init_weights(model, seed)
    return model


# -- widths: range, init, parametrisation ------------------------------------------------------------------

def test_init_starts_at_the_maximum_width_within_the_documented_epsilon():
    m = learnable(64, 1)
    assert m.max_hidden == 64
    mask = m.mask().detach()
    eps = 1 / (1 + math.exp(0.5 / TEMPERATURE))  # top unit's 1 - mask at θ = 0 (w = H)
    assert abs(1 - mask[-1].item() - eps) < 1e-5 and eps < 0.05
    assert (1 - mask[:-1]).max() < 1e-4
    assert isinstance(m.effective_width(), float) and 64 - 0.05 < m.effective_width() < 64
    assert m.hardened_width() == 64 and isinstance(m.effective_ratio(), float)
    assert abs(m.effective_ratio() - 1) < 1e-3


def test_width_parametrisation_is_smooth_monotone_and_never_clamped():
    theta = torch.linspace(-1.05, 0.5, 501, dtype=torch.float64)
    w = soft_width(theta, 1.0, 32.0)
    assert bool((w > 1).all())
    assert bool((w.diff() > 0).all())  # strictly increasing: no flat (clamped) stretch anywhere
    at = soft_width(torch.tensor([-1.0, -0.75, -0.25, 0.0], dtype=torch.float64), 1.0, 32.0)
    expected = torch.tensor([1 + KNEE * math.log(2), 1 + 31 / 4, 1 + 31 * 3 / 4, 32], dtype=torch.float64)
    torch.testing.assert_close(at, expected)  # θ = 0 is the maximum, θ = -1 the minimum, linear between
    # above the maximum the mask saturates: the effective width approaches H but never reaches it
    m = learnable(32, 1)
    previous = 0.0
    for t in (-1.2, -0.6, 0.0, 0.2, 1.0):
        with torch.no_grad():
            m.width_logit.fill_(t)
        eff = m.effective_width()
        assert previous <= eff <= 32  # above θ = 0 it reaches 32.0 by float32 rounding only
        assert t > 0 or previous < eff < 32
        previous = eff


@pytest.mark.parametrize("min_hidden, floor", [(1, 1.0), (0, 0.0), (3, 3.0)])
def test_width_driven_far_negative_stays_positive_at_the_documented_minimum(min_hidden, floor):
    m = learnable(16, 1, min_hidden=min_hidden)
    with torch.no_grad():
        m.width_logit.fill_(-1e4)
    w = m.effective_width()
    assert isinstance(w, float) and 0 < w < 16 and math.isfinite(m.effective_ratio())
    assert abs(m.soft_width().item() - floor) < 1e-6  # w -> min_hidden from above (0+ with min_hidden=0)
    assert m.hardened_width() == max(1, min_hidden)
    (hw,) = m.hidden_widths()
    assert hw.hidden == max(1, min_hidden) and hw.raised == (min_hidden == 0)
    out = m(randn(2, 16, 3, 3))
    assert torch.isfinite(out).all()


# -- gradients ---------------------------------------------------------------------------------------------

def test_task_loss_and_cost_term_both_reach_the_width_parameter():
    m = learnable(16, 1)
    x, target = randn(8, 16, 4, 4), randn(8, 16, 4, 4, seed=1)
    nn.functional.mse_loss(m(x), target).backward()
    task_grad = m.width_logit.grad.clone()
    assert task_grad.abs() > 0 and torch.isfinite(task_grad)
    m.zero_grad()
    cost_term(m).backward()
    assert m.width_logit.grad > 0  # more width costs more
    assert m.fc1.weight.grad is None  # the cost depends on the width alone


def test_task_loss_and_cost_term_both_reach_the_router():
    m = dynamic(16, 1)
    x, target = randn(8, 16, 4, 4), randn(8, 16, 4, 4, seed=1)
    nn.functional.mse_loss(m(x), target).backward()
    assert m.router.weight.grad.abs().sum() > 0 and m.router.bias.grad.abs() > 0
    m.zero_grad()
    m(x)
    cost_term(m).backward()
    assert m.router.bias.grad > 0 and m.router.weight.grad.abs().sum() > 0


# -- the cost term moves widths ----------------------------------------------------------------------------

def fit_block(cost_weight: float, steps: int = 150) -> float:
    """A learnable SE (C=16, H=16) starting from a fixed SE teacher's weights, all parameters trained with
    SGD as in training: the task wants every unit, the cost term wants none, the width settles between.

    Measured (this seed): 0 → 15.98, 0.05 → 15.1, 0.07 → 8.2, 0.1 → 6.0, >= 0.13 → 1.0 (the minimum).
    """
    torch.manual_seed(0)
    teacher = SqueezeExcite(16, 1, block="teacher")
    teacher.reset_parameters(gen(1, "teacher"))
    student = learnable(16, 1, seed=2)
    student.load_state_dict(teacher.state_dict(), strict=False)
    x = randn(64, 16, 4, 4, seed=3)
    with torch.no_grad():
        y = teacher(x)
    opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(steps):
        loss = 100 * nn.functional.mse_loss(student(x), y) + cost_weight * cost_term(student)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student.effective_width()


def test_larger_cost_weight_gives_narrower_blocks():
    widths = [fit_block(w) for w in (0.0, 0.1, 1.0)]
    assert widths[0] >= widths[1] >= widths[2], widths
    assert widths[0] > 15, widths  # no pressure: stays (near) the maximum
    assert 2 < widths[1] < 14, widths  # medium pressure: in between
    assert widths[2] < 1.5, widths  # strong pressure: the minimum width (1 unit)


def test_cost_term_is_the_se_share_of_the_model_cost():
    model = resnet(AdaptiveSEFactory(2, adaptive="learnable"))
    blocks = [m for m in model.modules() if isinstance(m, LearnableSE)]
    for m in blocks:
        m.pin_width(m.max_hidden)
    se_params = attention_params(model) - len(blocks)  # every SE parameter but the width logits
    assert sum(m.expected_cost("params").item() for m in blocks) * 1e6 == pytest.approx(se_params)
    assert cost_term(model).item() == pytest.approx(se_params / count_params(model))
    macs = count_macs(model, 8)
    se_macs = macs - count_macs(resnet(None), 8)
    assert sum(m.expected_cost("macs").item() for m in blocks) * 1e6 == pytest.approx(se_macs)
    assert cost_term(model, "macs", macs / 1e6).item() == pytest.approx(se_macs / macs)
    with pytest.raises(ValueError, match="model_total"):
        cost_term(model, "macs")
    assert budget_fraction(model) == pytest.approx(1.0)
    with torch.no_grad():
        for m in blocks:
            m.pin_width(None)
            m.width_logit.fill_(-0.5)  # w = 1 + (H - 1)/2: about half of each block
    eff = {m.channels: m.effective_width() for m in blocks}
    expected = sum((2 * c + 1) * w + c for c, w in eff.items()) / sum((2 * c + 1) * c / 2 + c for c in eff)
    assert budget_fraction(model) == pytest.approx(expected, rel=1e-5) and 0.5 < expected < 0.55
    assert budget_fraction(model, "macs") == pytest.approx(
        sum(c * w for c, w in eff.items()) / sum(c * c / 2 for c in eff), rel=1e-5)
    assert cost_term(resnet(SEFactory(2))).item() == 0.0  # no adaptive block: no cost


def test_resnet20_cost_pressure_shrinks_widths_in_a_few_steps():
    """ResNet-20 through ResNet(..., attn_layer=AdaptiveSEFactory(...)): the training-loop contract."""
    def run(cost_weight: float) -> float:
        torch.manual_seed(0)
        model = resnet(AdaptiveSEFactory(2, adaptive="learnable"), layers=(3, 3, 3))
        ids = {id(p) for p in adaptive_parameters(model)}
        opt = torch.optim.SGD([{"params": [p for p in model.parameters() if id(p) not in ids]},
                               {"params": adaptive_parameters(model), "weight_decay": 0.0}],
                              lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        x, y = randn(32, 3, 8, 8, seed=4), torch.arange(32) % 10
        for _ in range(4):
            loss = nn.functional.cross_entropy(model(x), y) + cost_weight * cost_term(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return sum(row["effective_width"] for row in adaptive_state(model))

    total = [run(w) for w in (0.0, 1.0, 10.0)]  # measured: 167.7, 167.6, 158.6 of 168 units
    assert total[0] >= total[1] >= total[2], total
    assert total[2] < total[0] - 5, total


# -- pinned = fixed SE; matched init -----------------------------------------------------------------------

@pytest.mark.parametrize("knobs", [{}, {"pool": "max", "gate": "tanh", "bias": False},
                                   {"pool": "avgmax", "gate": "hard_sigmoid", "min_hidden": 4}])
def test_pinned_at_the_maximum_equals_the_fixed_se_exactly(knobs):
    fixed = SqueezeExcite(32, 4, block="blk", **knobs)
    fixed.reset_parameters(gen(7))
    m = LearnableSE(32, 4, block="blk", **knobs)
    m.reset_parameters(gen(7))  # same generator names → the same FC weights (matched init)
    for k, v in fixed.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    x = randn(4, 32, 5, 5)
    m.pin_width(m.max_hidden)
    assert torch.equal(m(x), fixed(x))
    m.pin_width(None)
    with torch.no_grad():  # soft init: the fixed SE up to each unit's (1 - m_i) share, gate slopes <= 1
        h = m.act(m.fc1(m.pool(x)))
        share = nn.functional.conv2d(h * (1 - m.mask()).view(1, -1, 1, 1), m.fc2.weight.abs()).abs()
        assert bool(((m(x) - fixed(x)).abs() <= x.abs() * share + 1e-6).all())
        assert share.max() < 0.05 * m.fc2(h).abs().max()
    # the weights of any fixed SE load into the learnable one (the width logit is the only extra key)
    other = SqueezeExcite(32, 4, block="blk", **knobs)
    missing, unexpected = m.load_state_dict(other.state_dict(), strict=False)
    assert missing == ["width_logit"] and unexpected == []
    m.pin_width(m.max_hidden)
    assert torch.equal(m(x), other(x))


def test_resnet_with_learnable_se_is_matched_to_the_fixed_se_resnet():
    fixed = resnet(SEFactory(2), seed=3)
    adaptive = resnet(AdaptiveSEFactory(2, adaptive="learnable"), seed=3)
    dyn = resnet(AdaptiveSEFactory(2, adaptive="dynamic"), seed=3)
    for k, v in fixed.state_dict().items():
        assert torch.equal(adaptive.state_dict()[k], v), k
        assert torch.equal(dyn.state_dict()[k], v), k
    for m in adaptive.modules():
        if isinstance(m, LearnableSE):
            m.pin_width(m.max_hidden)
    x = randn(2, 3, 8, 8)
    assert torch.equal(adaptive.eval()(x), fixed.eval()(x))


# -- hardening ---------------------------------------------------------------------------------------------

def test_hardening_keeps_the_first_k_units_folds_the_mask_and_drops_only_the_rest():
    m = learnable(32, 2)  # H = 16
    with torch.no_grad():
        m.width_logit.fill_(-0.37)  # w ≈ 10.45: k = 10, the dropped unit 10 has mask ≈ 0.42
    eff = m.effective_width()
    k = m.hardened_width()
    assert k == math.floor(eff + 0.5) == 10
    se = harden(m)
    assert type(se) is SqueezeExcite and se.fc1.out_channels == k
    assert se.width.hidden == k and se.width.exact == pytest.approx(eff) and se.width.rounded
    assert se.width.effective_reduction == 32 / k and se.width.reduction == pytest.approx(32 / eff)
    x = randn(6, 32, 4, 4)
    with torch.no_grad():
        h = m.act(m.fc1(m.pool(x)))
        mask = m.mask()
        dropped = nn.functional.conv2d(h[:, k:] * mask[k:].view(1, -1, 1, 1), m.fc2.weight[:, k:])
        soft_pre = m.fc2(h * mask.view(1, -1, 1, 1))
        hard_pre = se.fc2(se.act(se.fc1(se.pool(x))))
        # exact up to the dropped units' share: the kept units are reproduced, the mask folded into fc2
        torch.testing.assert_close(hard_pre, soft_pre - dropped, rtol=0, atol=1e-5)
        # the output moves by at most |x| · max|gate'| · |dropped share| (sigmoid: max slope 1/4)
        bound = x.abs() * 0.25 * dropped.abs()
        assert bool(((se(x) - m(x)).abs() <= bound + 1e-6).all())
    assert count_params(se) < count_params(m)


def test_hardening_near_an_integer_width_preserves_outputs():
    """Tolerance: with w within 0.1 of an integer the dropped mask is < 0.07; outputs agree to 2e-3."""
    m = learnable(64, 1)
    with torch.no_grad():
        m.width_logit.fill_(39 / 63 - 1)  # w = 1 + 63·(θ + 1) = 40 (min_hidden 1, H 64)
    assert abs(m.soft_width().item() - 40.0) < 1e-4
    x = randn(8, 64, 4, 4)
    se = harden(m)
    assert se.width.hidden == 40
    assert (se(x) - m(x)).abs().max() < 2e-3


def test_harden_model_replaces_every_learnable_block_and_lowers_params():
    model = resnet(AdaptiveSEFactory(2, adaptive="learnable"), seed=1).eval()
    blocks = [m for m in model.modules() if isinstance(m, LearnableSE)]
    with torch.no_grad():
        for i, m in enumerate(blocks):
            m.width_logit.fill_(-0.2 - 0.2 * i)
    x = randn(4, 3, 8, 8)
    with torch.no_grad():
        before = model(x)
    state = adaptive_state(model)
    params_before = count_params(model)
    hard = harden_model(model)
    assert hard is model and not any(isinstance(m, LearnableSE) for m in hard.modules())
    assert count_params(hard) < params_before
    assert [w["hidden"] for w in hidden_widths(hard)] == [row["hardened_width"] for row in state]
    with torch.no_grad():
        after = hard(x)
    assert (after - before).abs().max() < 0.05 * before.abs().max()
    assert torch.equal(after.argmax(1), before.argmax(1))


# -- dynamic widths ----------------------------------------------------------------------------------------

def test_dynamic_widths_depend_on_the_input():
    m = dynamic(16, 1)
    x = torch.cat([randn(8, 16, 4, 4), 3 + randn(8, 16, 4, 4, seed=1)])
    m(x)
    assert torch.equal(m.last_widths(), m.last_widths()[:1].expand(16))  # zero router: all start at max
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(5):  # the cost pulls every sample's width down, through its own descriptor
        m(x)
        loss = cost_term(m)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m(x)
    widths = m.last_widths()
    assert widths.shape == (16,) and widths.dtype == torch.float32
    assert (widths[:8].mean() - widths[8:].mean()).abs() > 0.5  # the two kinds of input get other widths
    assert bool(((widths > 0) & (widths <= 16)).all())
    (row,) = adaptive_state(m)
    assert row["kind"] == "dynamic" and row["width_min"] < row["width_max"]
    assert row["effective_width"] == pytest.approx(widths.mean().item())
    (stats,) = dynamic_width_stats(m)
    assert stats["min"] >= 1 and stats["std"] > 0 and stats["n"] == 16
    with record_dynamic_widths(m) as rec, torch.no_grad():  # a whole "test set", batch by batch
        m(x[:5])
        m(x[5:])
    (over_all,) = dynamic_width_stats(m, rec)
    assert over_all["n"] == 16 and over_all["mean"] == pytest.approx((16 / widths).mean().item(), rel=1e-5)
    assert not m._forward_hooks  # the recorder leaves no hook behind


def test_dynamic_se_starts_as_the_learnable_se():
    x = randn(4, 16, 3, 3)
    assert torch.equal(dynamic(16, 2, seed=5)(x), learnable(16, 2, seed=5)(x))


# -- reports, factory, cost accounting ---------------------------------------------------------------------

def test_adaptive_state_rows_are_floats_in_range():
    model = resnet(AdaptiveSEFactory(4, adaptive="learnable"))
    rows = adaptive_state(model)
    assert [r["channels"] for r in rows] == [16, 32, 64]
    assert [r["max_hidden"] for r in rows] == [4, 8, 16]
    for r in rows:
        assert isinstance(r["effective_width"], float) and 0 < r["effective_width"] <= r["max_hidden"]
        assert isinstance(r["effective_ratio"], float) and r["effective_ratio"] >= r["channels"] / r["max_hidden"]


def test_factory_has_the_se_factory_signature_and_reads_the_spec():
    spec = AttentionSpec(reduction=8, min_hidden=2, pool="max", gate="tanh", bias=False, adaptive="dynamic")
    factory = AdaptiveSEFactory.from_spec(spec)
    block = factory(64, "layer3.0.attn_branch")
    assert isinstance(block, DynamicSE) and block.max_hidden == 8 and block.fc1.bias is None
    assert isinstance(block.pool, MaxPool) and isinstance(block.gate, nn.Tanh)
    assert block.width.block == "layer3.0.attn_branch"
    assert isinstance(AdaptiveSEFactory(8, adaptive="learnable")(64, "b"), LearnableSE)
    with pytest.raises(ValueError):
        AdaptiveSEFactory(adaptive="none")


def test_model_cost_works_and_reports_the_rounded_widths():
    for kind in ("learnable", "dynamic"):
        model = resnet(AdaptiveSEFactory(2, adaptive=kind))
        cost = model_cost(model, 8)
        assert cost["macs"] == count_macs(model, 8) > 0  # counted on a deep copy on the meta device
        assert [w["hidden"] for w in cost["hidden_widths"]] == [8, 16, 32]
    model = resnet(AdaptiveSEFactory(2, adaptive="dynamic"))
    model(randn(2, 3, 8, 8))
    copy.deepcopy(model)  # the last forward's graph is not copied along
