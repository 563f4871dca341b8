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


# -- pre-activation ResNets and Wide ResNets (SENet Tables 4 and 5) ---------------------------------------

PREACT_ARCHS = ["preresnet20", "preresnet32", "preresnet44", "preresnet56", "preresnet110", "preresnet164",
                "preresnet1001", "wrn16_4", "wrn16_8", "wrn16_10", "wrn22_8", "wrn28_10", "wrn40_4"]


@pytest.mark.parametrize("name", PREACT_ARCHS)
def test_preact_registry_entries_have_the_depth_and_width_their_names_say(name):
    from sesweep.training.models import ARCHS

    arch = ARCHS[name]
    n = arch.layers[0]
    assert arch.family == "preact" and arch.layers == (n, n, n) and arch.stem_width == 16
    if name.startswith("wrn"):
        depth, k = map(int, name.removeprefix("wrn").split("_"))
        assert arch.block.expansion == 1 and n == (depth - 4) // 6
        assert arch.widths == (16 * k, 32 * k, 64 * k) and arch.has_dropout
    else:
        depth = int(name.removeprefix("preresnet"))
        per_block = 2 if arch.block.expansion == 1 else 3
        assert depth == 3 * per_block * n + 2 and arch.widths == (16, 32, 64)
        assert arch.has_dropout == (arch.block.expansion == 1)


def small_preact_bottleneck_net(seed: int, placement: str | None, classes: int = 10) -> nn.Module:
    """A pre-activation bottleneck net of 2 blocks per stage (ResNet-164's blocks at a test's cost), built and
    initialised as build_model does."""
    from sesweep.training.models.init import init_weights
    from sesweep.training.models.operators.mlp import SEFactory
    from sesweep.training.models.preact import PreActBottleneck, PreActResNet

    net = PreActResNet(PreActBottleneck, [2, 2, 2], [16, 32, 64], 16, classes, 3,
                       SEFactory(4) if placement else None, placement or "standard")
    init_weights(net, seed)
    return net


def test_every_arch_of_the_registry_is_a_spec_value_and_back():
    import typing

    from sesweep.spec import ModelSpec
    from sesweep.training.models import ARCHS

    assert set(typing.get_args(typing.get_type_hints(ModelSpec)["arch"])) == set(ARCHS)


@pytest.mark.parametrize("arch, kind", [("preresnet20", "none"), ("preresnet20", "se"), ("bottleneck", "se"),
                                        ("wrn16_4", "none"), ("wrn16_4", "se")])
def test_preact_and_wide_nets_run_at_cifar_shape(arch, kind):
    if arch == "bottleneck":  # preresnet164's blocks, 2 per stage (its 164 layers cost a minute on a busy CPU)
        m = small_preact_bottleneck_net(0, "standard", classes=100).eval()
    else:
        m = model(arch=arch, attention__kind=kind, classes=100).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 3, 32, 32))
        assert m.features(torch.randn(1, 3, 32, 32)).shape == (1, m.fc.in_features, 8, 8)
    assert out.shape == (2, 100) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch, paper_millions", [("preresnet110", 1.7), ("preresnet164", 1.7), ("wrn16_8", 11.0),
                                                  ("wrn28_10", 36.5)])
def test_preact_and_wide_nets_match_published_parameter_counts(arch, paper_millions):
    # He et al. ECCV 2016 (pre-act ResNet-110/164: 1.7M), Zagoruyko & Komodakis 2016 (WRN-16-8 11.0M, WRN-28-10 36.5M)
    got = count_params(model(arch=arch, attention__kind="none")) / 1e6
    assert round(got, 1) == paper_millions, got


def test_preresnet1001_matches_its_published_count_in_weights():
    # the papers' 10.2M counts the weights of convolutions and fc (BN's γ, β add 0.15M more here)
    m = model(arch="preresnet1001", attention__kind="none")
    weights = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight") and p.dim() > 1)
    assert round(weights / 1e6, 1) == 10.2, weights


def test_preact_blocks_follow_the_papers_layout():
    m = model(arch="wrn16_8", attention__kind="none")
    names = dict(m.named_parameters())
    # stem: a 3x3 conv of 16 channels, no BN after it; final BN-ReLU before the pool
    assert names["conv1.weight"].shape == (16, 3, 3, 3)
    assert names["bn1.weight"].shape == (512,)
    # the first block widens 16 → 128 with a 1x1 projection (no BN), pre-activation BN on its input
    assert names["layer1.0.bn1.weight"].shape == (16,)
    assert names["layer1.0.conv1.weight"].shape == (128, 16, 3, 3)
    assert names["layer1.0.downsample.0.weight"].shape == (128, 16, 1, 1)
    assert "layer1.0.downsample.1.weight" not in names
    assert "layer1.1.downsample.0.weight" not in names  # same shape: identity shortcut
    assert names["layer3.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    b = model(arch="preresnet164", attention__kind="none")
    assert dict(b.named_parameters())["layer1.0.conv3.weight"].shape == (64, 16, 1, 1)
    assert b.fc.in_features == 256


@pytest.mark.parametrize("arch", ["preresnet20", "wrn16_4", "bottleneck"])
@pytest.mark.parametrize("placement", ["standard", "pre", "post", "identity"])
def test_preact_gate_forced_to_one_computes_the_baseline_function(arch, placement):
    def build(kind: str) -> nn.Module:
        if arch == "bottleneck":
            return small_preact_bottleneck_net(5, placement if kind == "se" else None)
        if kind == "none":
            return model(seed=5, arch=arch, attention__kind="none")
        return model(seed=5, arch=arch, attention__placement=placement, attention__reduction=4)

    base = build("none")
    se = build("se")
    assert sum(isinstance(m, SqueezeExcite) for m in se.modules()) > 0
    for m in se.modules():
        if isinstance(m, SqueezeExcite):
            m.gate = GateOne()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))  # any size shows it; 16² is cheap
    with torch.no_grad():
        assert torch.equal(se.train()(x), base.train()(x))
        assert torch.equal(se.eval()(x), base.eval()(x))
        se_real = build("se").eval()
        assert not torch.allclose(se_real(x), base(x))


def test_preact_join_has_no_relu_after_the_sum():
    # a pre-activation block is x + SE(F(x)): negative values survive the join (the fused relu join would clip)
    m = model(arch="preresnet20", attention__kind="se").eval()
    block = m.layer1[0]
    x = torch.randn(2, 16, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = block(x)
        branch = block.residual(block.relu(block.bn1(x)))
        expected = block.attn_branch(branch) + x
    assert torch.equal(out, expected)
    assert (out < 0).any()


@pytest.mark.parametrize("placement, site", [("standard", "attn_branch"), ("pre", "attn_pre"), ("post", "attn_post"),
                                             ("identity", "attn_identity")])
def test_preact_placement_puts_se_at_the_named_site_with_the_right_channels(placement, site):
    m = model(arch="wrn16_4", attention__placement=placement)
    first = m.layer2[0]  # 64 channels in, 128 out
    se = getattr(first, site)
    assert isinstance(se, SqueezeExcite)
    assert se.fc1.in_channels == (64 if placement == "pre" else 128)
    assert all(isinstance(getattr(first, s), nn.Identity)
               for s in ("attn_pre", "attn_branch", "attn_identity", "attn_post") if s != site)
    # stages 2..4 are layer1..3
    staged = model(arch="wrn16_4", attention__placement=placement, attention__stages=[3])
    assert {n.split(".")[0] for n, mod in staged.named_modules() if isinstance(mod, Attention)} == {"layer2"}


@pytest.mark.parametrize("arch", ["preresnet20", "wrn16_4"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_preact_shared_layers_start_identical_across_variants(arch, variant):
    base = model(seed=3, arch=arch, attention__kind="none").state_dict()
    se = model(seed=3, arch=arch, **variant).state_dict()
    assert set(base) <= set(se)
    for k in base:
        assert torch.equal(base[k], se[k]), k


@pytest.mark.parametrize("arch", ["preresnet20", "wrn16_4", "preresnet164"])
def test_model_cost_measures_preact_and_wide_nets(arch):  # MACs run on the meta device: cheap even for 164
    from sesweep.training.measure import model_cost

    base = model_cost(model(arch=arch, attention__kind="none"), 32)
    cost = model_cost(model(arch=arch, attention__reduction=4), 32)
    assert cost["params"] - base["params"] == cost["se_params"] > 0
    assert 0 < cost["macs"] - base["macs"] < 0.01 * base["macs"]
    blocks = sum(len(getattr(model(arch=arch, attention__kind="none"), f"layer{i}")) for i in (1, 2, 3))
    assert len(cost["hidden_widths"]) == blocks


def test_excitation_probe_reads_the_preact_gates():
    from sesweep.training.measure import excitation_profile

    m = model(arch="wrn16_4", attention__reduction=4)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 3])
    rows = excitation_profile(m, [(x, y)], "fp32")
    assert {r["stage"] for r in rows} == {2, 3, 4} and {r["class"] for r in rows} == {0, 1, 3}
    assert len(next(r for r in rows if r["block"] == "layer3.1.attn_branch")["mean"]) == 256


def test_analytic_se_width_check_knows_the_preact_nets():
    from sesweep.plan import check_model

    # pre placement: the first block of WRN-16-4 takes the 16 stem channels in, so r=32 is impossible there
    with pytest.raises(SpecError, match=r"r=32 is larger than the 16 channels of block layer1\.0\.attn_pre"):
        check_model(run_spec({"model.arch": "wrn16_4", "model.attention.placement": "pre",
                              "model.attention.reduction": 32}))
    check_model(run_spec({"model.arch": "wrn16_4", "model.attention.reduction": 32}))  # 64 channels: fine


# -- recipe.dropout (WRN's dropout between the convs) -------------------------------------------------------

def test_dropout_sits_between_the_convs_of_preact_basic_blocks():
    spec = run_spec({"model.arch": "wrn16_4"})
    m = build_model(spec.model, 10, 3, 0, dropout=0.3)
    drops = [(n, mod.p) for n, mod in m.named_modules() if isinstance(mod, nn.Dropout)]
    assert drops == [(f"layer{i}.{j}.dropout", 0.3) for i in (1, 2, 3) for j in (0, 1)]
    plain = build_model(spec.model, 10, 3, 0)
    # p = 0 builds the very same module tree and weights as no dropout at all
    assert not any(isinstance(mod, nn.Dropout) for mod in plain.modules())
    assert str(plain) == str(build_model(spec.model, 10, 3, 0, dropout=0.0))
    assert list(plain.state_dict()) == list(m.state_dict())
    for k, v in plain.state_dict().items():
        assert torch.equal(v, m.state_dict()[k]), k
    # in eval mode dropout is off: the same function
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(x), plain.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["resnet20", "resnet50", "preresnet164"])
def test_dropout_on_a_net_without_a_site_is_an_error_naming_the_nets_with_one(arch):
    from sesweep.plan import check_model

    spec = run_spec({"model.arch": arch, "recipe.dropout": 0.3})
    message = rf"recipe\.dropout: 0\.3 but {arch} has no dropout site; allowed: 0 for {arch}, or an arch with one: " \
              r"preresnet20, .*wrn16_8"
    with pytest.raises(SpecError, match=message):
        build_model(spec.model, 10, 3, 0, dropout=0.3)
    with pytest.raises(SpecError, match=message):
        check_model(spec)
    build_model(spec.model, 1000, 3, 0, dropout=0.0)


# -- SE initialisation: the knob, and draws independent of the placement ---------------------------------------

def se_weights(m: nn.Module) -> dict[str, torch.Tensor]:
    """Each block's SE parameters keyed without the site (``layer1.0.fc1.weight``)."""
    out = {}
    for name, mod in m.named_modules():
        if isinstance(mod, SqueezeExcite):
            block = name.rpartition(".")[0]
            out.update({f"{block}.{k}": v for k, v in mod.state_dict().items()})
    return out


@pytest.mark.parametrize("arch", ["resnet20", "preresnet20"])
@pytest.mark.parametrize("other", ["post", "identity"])
def test_se_weights_do_not_depend_on_the_placement(arch, other):
    standard = se_weights(model(seed=4, arch=arch, attention__placement="standard"))
    moved = se_weights(model(seed=4, arch=arch, attention__placement=other))
    assert standard.keys() == moved.keys() and standard
    for k in standard:  # same channels at these sites (block output), so the very same draws
        assert torch.equal(standard[k], moved[k]), k


def test_se_weights_still_differ_between_blocks_and_layers():
    w = se_weights(model(seed=4, arch="resnet20"))
    assert not torch.equal(w["layer1.0.fc1.weight"], w["layer1.1.fc1.weight"])


def test_se_init_normal_draws_small_weights_and_zero_biases():
    m = model(arch="resnet56", attention__init="normal", attention__init_std=0.01, attention__reduction=4)
    ses = [mod for mod in m.modules() if isinstance(mod, SqueezeExcite)]
    weights = torch.cat([p.flatten() for se in ses for p in (se.fc1.weight, se.fc2.weight)])
    assert abs(weights.std().item() - 0.01) < 0.0005 and abs(weights.mean().item()) < 0.0005
    assert all(torch.count_nonzero(fc.bias) == 0 for se in ses for fc in (se.fc1, se.fc2))
    default = model(arch="resnet56", attention__init="normal", attention__reduction=4)
    w = torch.cat([se.fc1.weight.flatten() for se in default.modules() if isinstance(se, SqueezeExcite)])
    assert abs(w.std().item() - 0.001) < 0.0001


def test_se_init_kaiming_is_fan_out_relu_with_zero_biases():
    m = model(arch="resnet56", attention__init="kaiming", attention__reduction=4)
    se = m.layer3[0].attn_branch  # 64 → 16 → 64
    # kaiming normal, fan_out: std = sqrt(2 / out_channels)
    for fc, fan_out in ((se.fc1, 16), (se.fc2, 64)):
        assert abs(fc.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.2
        assert torch.count_nonzero(fc.bias) == 0


def test_se_init_torch_is_pytorchs_default_uniform():
    m = model(arch="resnet56", attention__reduction=4)
    se = m.layer3[0].attn_branch
    for fc, fan_in in ((se.fc1, 64), (se.fc2, 16)):
        bound = 1 / fan_in ** 0.5
        assert fc.weight.abs().max() <= bound and fc.weight.abs().max() > 0.9 * bound
        assert fc.bias.abs().max() <= bound and torch.count_nonzero(fc.bias) == fc.bias.numel()
        assert abs(fc.weight.std().item() / (bound / 3 ** 0.5) - 1) < 0.2


def test_se_init_reaches_the_adaptive_ses():
    from sesweep.training.models import LearnableSE

    m = model(arch="resnet20", attention__adaptive="learnable", attention__init="normal", attention__init_std=0.05)
    ses = [mod for mod in m.modules() if isinstance(mod, LearnableSE)]
    assert ses and all(se.init == "normal" for se in ses)
    assert all(torch.count_nonzero(se.fc1.bias) == 0 for se in ses)
    fixed = model(arch="resnet20", attention__init="normal", attention__init_std=0.05)
    assert torch.equal(fixed.layer1[0].attn_branch.fc1.weight, ses[0].fc1.weight)
