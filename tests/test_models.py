"""The model family: published parameter counts, torchvision layout, matched init, every SE knob."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from sesweep.spec import SpecError, run_spec
from sesweep.training.measure import attention_params, count_macs, count_params, hidden_widths
from sesweep.training.models import SqueezeExcite, build_model, hidden_width
from sesweep.training.models.attention import Attention


def model(seed: int = 0, classes: int = 10, **overrides):
    spec = run_spec({f"model.{k.replace('__', '.')}": v for k, v in overrides.items()})
    return build_model(spec.model, classes, 3, seed)


# -- published parameter counts ---------------------------------------------------------------------

def test_resnet50_baseline_has_torchvision_parameter_count():
    assert count_params(model(arch="resnet50", attention__kind="none", classes=1000)) == 25_557_032


@pytest.mark.parametrize("r, paper_millions", [(2, 45.7), (4, 35.7), (8, 30.7), (16, 28.1)])
def test_se_resnet50_parameters_match_senet_table_10(r, paper_millions):
    got = count_params(model(arch="resnet50", attention__reduction=r, classes=1000)) / 1e6
    assert abs(got - paper_millions) < 0.1, got


@pytest.mark.parametrize("arch, paper_millions, places", [("resnet20", 0.27, 2), ("resnet56", 0.85, 2),
                                                          ("resnet110", 1.7, 1)])
def test_cifar_resnets_match_he_et_al(arch, paper_millions, places):
    got = count_params(model(arch=arch, attention__kind="none")) / 1e6
    assert round(got, places) == paper_millions, got


def test_se_params_are_the_attention_overhead():
    base = model(arch="resnet20", attention__kind="none")
    se = model(arch="resnet20", attention__reduction=4)
    assert attention_params(base) == 0
    assert count_params(se) - count_params(base) == attention_params(se) > 0
    # r=4 on 16/32/64 channels, 3 blocks each, FC biases on: 2*C*C/4 + C/4 + C per block
    assert attention_params(se) == sum(3 * (2 * c * c // 4 + c // 4 + c) for c in (16, 32, 64))


def test_macs_count_convolutions_and_linear_layers():
    # ResNet-20: He et al. report ~41M FLOPs (multiply-adds); torchvision reports 4.09 GMACs for ResNet-50
    assert 40e6 < count_macs(model(arch="resnet20", attention__kind="none"), 32) < 41.5e6
    macs50 = count_macs(model(arch="resnet50", attention__kind="none", classes=1000), 224)
    assert abs(macs50 / 1e9 - 4.09) < 0.01
    se50 = count_macs(model(arch="resnet50", attention__reduction=16, classes=1000), 224)
    assert 2.4e6 < se50 - macs50 < 2.6e6  # the SE FC layers only: 2*C^2/r per block, summed


# -- torchvision layout --------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_baseline_state_dict_matches_torchvision_and_loads_into_se(arch):
    tv = getattr(torchvision.models, arch)().eval()
    base = model(arch=arch, attention__kind="none", classes=1000).eval()
    tv_sd = tv.state_dict()
    assert {k: v.shape for k, v in base.state_dict().items()} == {k: v.shape for k, v in tv_sd.items()}
    assert list(base.state_dict()) == list(tv_sd)
    base.load_state_dict(tv_sd, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(base(x), tv(x), rtol=0, atol=0)

    se = model(arch=arch, attention__reduction=16, classes=1000)
    se_before = {k: v.clone() for k, v in se.state_dict().items() if ".attn_" in k}
    result = se.load_state_dict(tv_sd, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(se_before)
    for k, v in se_before.items():
        assert torch.equal(se.state_dict()[k], v)  # SE weights stay at their init


# -- matched by construction ---------------------------------------------------------------------------

VARIANTS = [
    {"attention__reduction": 2},
    {"attention__reduction": 16, "attention__pool": "max", "attention__gate": "tanh"},
    {"attention__placement": "pre"},
    {"attention__placement": "identity", "attention__stages": [3, 4]},
    {"attention__placement": "post", "attention__bias": False},
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_shared_layers_start_identical_across_variants(variant):
    base = model(seed=3, attention__kind="none").state_dict()
    se = model(seed=3, **variant).state_dict()
    shared = [k for k in base if "running" not in k and "num_batches" not in k]
    assert set(base) <= set(se)
    for k in shared:
        assert torch.equal(base[k], se[k]), k


def test_different_seeds_give_different_weights_and_se_has_its_own_draws():
    a = model(seed=0).state_dict()
    b = model(seed=1).state_dict()
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"])
    assert not torch.equal(a["layer1.0.attn_branch.fc1.weight"], b["layer1.0.attn_branch.fc1.weight"])
    # same SE weights whatever the pool or gate (only the knob differs)
    c = model(seed=0, attention__pool="max", attention__gate="relu").state_dict()
    assert torch.equal(a["layer1.0.attn_branch.fc1.weight"], c["layer1.0.attn_branch.fc1.weight"])


class GateOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)


@pytest.mark.parametrize("arch", ["resnet20", "resnet50"])
@pytest.mark.parametrize("placement", ["standard", "pre", "post", "identity"])
def test_gate_forced_to_one_computes_the_baseline_function(arch, placement):
    base = model(seed=5, arch=arch, attention__kind="none")
    se = model(seed=5, arch=arch, attention__placement=placement)
    for m in se.modules():
        if isinstance(m, SqueezeExcite):
            m.gate = GateOne()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(se.train()(x), base.train()(x))
        assert torch.equal(se.eval()(x), base.eval()(x))
        # and with its real gate the SE model does differ
        se_real = model(seed=5, arch=arch, attention__placement=placement).eval()
        assert not torch.allclose(se_real(x), base(x))


def test_placement_puts_se_at_the_named_site_with_the_right_channels():
    for placement, site in [("standard", "attn_branch"), ("pre", "attn_pre"), ("post", "attn_post"),
                            ("identity", "attn_identity")]:
        m = model(arch="resnet20", attention__placement=placement)
        first = m.layer2[0]
        se = getattr(first, site)
        assert isinstance(se, SqueezeExcite)
        # the first block of stage 3 takes 16 channels in and gives 32 out
        assert se.fc1.in_channels == (16 if placement == "pre" else 32)
        others = [s for s in ("attn_pre", "attn_branch", "attn_identity", "attn_post") if s != site]
        assert all(isinstance(getattr(first, s), nn.Identity) for s in others)


def test_stages_select_where_se_goes():
    m = model(arch="resnet50", attention__stages=[2, 4], classes=1000)
    blocks = {n.split(".")[0] for n, mod in m.named_modules() if isinstance(mod, Attention)}
    assert blocks == {"layer1", "layer3"}
    with pytest.raises(SpecError, match=r"model.attention.stages: stage 5 does not exist in resnet20; "
                                        r"allowed: all or a list from 2, 3, 4"):
        model(arch="resnet20", attention__stages=[2, 5])


# -- every knob changes what it should --------------------------------------------------------------------

def se_block(signs: tuple[float, ...] = (1, 1, 1, 1), **kw) -> SqueezeExcite:
    """fc1 = identity, fc2 = diag(signs), no bias: the gate sees ±relu(pooled descriptor)."""
    se = SqueezeExcite(4, reduction=1, **kw)
    with torch.no_grad():
        se.fc1.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        se.fc2.weight.copy_(torch.diag(torch.tensor(signs, dtype=torch.float)).view(4, 4, 1, 1))
        for fc in (se.fc1, se.fc2):
            if fc.bias is not None:
                fc.bias.zero_()
    return se


def test_max_and_avg_squeeze_differ_on_a_spike():
    x = torch.zeros(1, 4, 8, 8)
    x[0, :, 3, 3] = 64.0  # a single hot pixel per channel: mean 1, max 64
    s_avg = se_block(pool="avg", gate="identity").excitation(x).flatten()
    s_max = se_block(pool="max", gate="identity").excitation(x).flatten()
    s_both = se_block(pool="avgmax", gate="identity").excitation(x).flatten()
    torch.testing.assert_close(s_avg, torch.ones(4))
    torch.testing.assert_close(s_max, torch.full((4,), 64.0))
    torch.testing.assert_close(s_both, torch.full((4,), 32.5))


@pytest.mark.parametrize("gate, low, high, check", [
    ("sigmoid", 0.0, 1.0, lambda s: (s > 0).all() and (s < 1).all()),
    ("hard_sigmoid", 0.0, 1.0, lambda s: (s == 0).any() and (s == 1).any()),
    ("tanh", -1.0, 1.0, lambda s: (s < 0).any() and (s > -1).all() and (s < 1).all()),
    ("relu", 0.0, float("inf"), lambda s: (s == 0).any() and (s > 1).any()),
    ("identity", float("-inf"), float("inf"), lambda s: (s < 0).any() and (s > 1).any()),
])
def test_each_gate_has_its_output_range(gate, low, high, check):
    # descriptors spread over [-5, 5]; fc2 flips the sign of two channels so the gate sees both signs
    x = torch.linspace(-5, 5, 64).view(16, 4, 1, 1).expand(16, 4, 2, 2).contiguous()
    se = se_block(signs=(1, -1, 1, -1), gate=gate).excitation(x)
    assert se.min() >= low and se.max() <= high
    assert check(se)


def test_bias_knob_removes_fc_biases():
    assert se_block(bias=False).fc1.bias is None
    assert se_block(bias=True).fc1.bias is not None
    with_b = count_params(model(attention__bias=True))
    without = count_params(model(attention__bias=False))
    assert with_b - without == sum(3 * (c // 16 + c) for c in (16, 32, 64))


# -- the hidden width rule ------------------------------------------------------------------------------

def test_hidden_width_rule_is_explicit():
    assert hidden_width(64, 16).hidden == 4
    w = hidden_width(64, 3)  # 21.33 rounds to 21
    assert (w.hidden, w.rounded, w.raised) == (21, True, False)
    with pytest.raises(SpecError, match=r"block layer1\.0\.attn_branch: 64/32 = 2 rounds to 0"):
        hidden_width(64, 32, divisor=8, block="layer1.0.attn_branch")  # an error, not a clamp
    assert hidden_width(64, 16, divisor=8).hidden == 8   # 4 -> 8 (halves round up), flagged rounded
    assert hidden_width(64, 16, divisor=8).rounded
    w = hidden_width(64, 32, min_hidden=8)
    assert (w.hidden, w.raised) == (8, True)
    assert w.effective_reduction == 8


def test_rounding_with_divisor_8_is_visible_per_block():
    # timm's rd_divisor=8 hides that r=8,16,32 all give 8 on 64 channels; here it is visible
    m = model(arch="resnet20", attention__reduction=16, attention__divisor=8, attention__stages=[4])
    rows = hidden_widths(m)
    assert len(rows) == 3 and all(w["channels"] == 64 and w["hidden"] == 8 and w["rounded"] for w in rows)
    # on the 16-channel stage the same settings round to 0: an error naming the block
    with pytest.raises(SpecError, match=r"block layer1\.0\.attn_branch: 16/16 = 1 rounds to 0"):
        model(arch="resnet20", attention__reduction=16, attention__divisor=8)


def test_ratio_larger_than_channels_is_an_error_naming_the_block():
    with pytest.raises(SpecError, match=r"r=32 is larger than the 16 channels of block layer1\.0\.attn_"):
        model(arch="resnet20", attention__reduction=32)
