"""The channel-attention operators: each one's output against its formula, its declared cost against the module's
real parameters and MACs, its gate-at-1 identity, its refusals, and the run keys of its knobs."""

from __future__ import annotations

import math
import typing

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sesweep import operators as declared
from sesweep.run_identity import inert_keys, run_key, unkeyed_keys
from sesweep.spec import AttentionSpec, SpecError, run_spec
from sesweep.training.measure import attention_params, count_macs
from sesweep.training.models import build_model
from sesweep.training.models.attention import EXCITATIONS, SQUEEZES, ChannelAttention
from sesweep.training.models.build import attention_blocks
from sesweep.training.models.operators.channelwise import ChannelWise
from sesweep.training.models.operators.dct import DCTPool, dct_bases, frequencies
from sesweep.training.models.operators.eca import ECA, eca_rule, released_kernel_conventions
from sesweep.training.models.operators.fc import FullFC
from sesweep.training.models.operators.gate_only import GateOnly

EXCITATION_NAMES = list(declared.EXCITATIONS)
#: (excitation, pool) pairs the tests build: every excitation on avg, every squeeze on the operators that take it
PAIRS = [(e, "avg") for e in EXCITATION_NAMES] + [("mlp", "avgstd"), ("channelwise", "avgstd"), ("fc", "avgstd"),
                                                  ("eca", "avgstd"), ("mlp", "dct"), ("none", "dct"), ("eca", "dct")]


def spec(**attention):
    return run_spec({f"model.attention.{k}": v for k, v in attention.items() if k != "arch"}
                    | {"model.arch": attention.get("arch", "resnet20")})


def net(seed: int = 0, classes: int = 10, **attention) -> nn.Module:
    return build_model(spec(**attention).model, classes, 3, seed)


# -- one registry, one list of names ---------------------------------------------------------------------------


def test_the_torch_registry_and_the_torch_free_declarations_name_the_same_operators():
    assert set(EXCITATIONS) == set(declared.EXCITATIONS) and set(SQUEEZES) == set(declared.SQUEEZES)
    hints = typing.get_type_hints(AttentionSpec)
    assert set(typing.get_args(hints["excitation"])) == set(EXCITATIONS)
    assert set(typing.get_args(hints["pool"])) == set(SQUEEZES)


def test_every_key_an_operator_declares_is_a_spec_key():
    fields = set(AttentionSpec.__dataclass_fields__)
    for reads in (*declared.EXCITATIONS.values(), *declared.SQUEEZES.values(), declared.COMMON_READS):
        assert reads <= fields


# -- outputs against their formulas ----------------------------------------------------------------------------


def descriptor_input() -> torch.Tensor:
    return torch.randn(2, 16, 5, 6, generator=torch.Generator().manual_seed(1))


def test_se_var1_gates_the_pooled_descriptor():
    x = descriptor_input()
    m = GateOnly(16)
    assert torch.allclose(m.excitation(x), torch.sigmoid(x.mean((2, 3), keepdim=True)))
    assert sum(p.numel() for p in m.parameters()) == 0


def test_se_var2_is_one_weight_and_bias_per_channel():
    x = descriptor_input()
    m = ChannelWise(16)
    nn.init.normal_(m.weight), nn.init.normal_(m.bias)
    y = x.mean((2, 3))
    assert torch.allclose(m.excitation(x).flatten(1), torch.sigmoid(m.weight[0] * y + m.bias), atol=1e-6)


def test_srm_style_channelwise_weighs_mean_and_std_of_each_channel():
    x = descriptor_input()
    m = ChannelWise(16, pool="avgstd", bias=False)
    nn.init.normal_(m.weight)
    mean, std = x.mean((2, 3)), (x.var((2, 3), unbiased=False) + 1e-5).sqrt()
    assert m.weight.shape == (2, 16)
    assert torch.allclose(m.excitation(x).flatten(1), torch.sigmoid(m.weight[0] * mean + m.weight[1] * std),
                          atol=1e-6)


def test_se_var3_is_one_full_fc():
    x = descriptor_input()
    m = FullFC(16)
    w, b = m.fc.weight.flatten(1), m.fc.bias
    assert torch.allclose(m.excitation(x).flatten(1), torch.sigmoid(x.mean((2, 3)) @ w.T + b), atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_eca_is_a_zero_padded_1d_convolution_across_channels(k):
    x = descriptor_input()
    m = ECA(16, kernel=k, bias=False)
    nn.init.normal_(m.conv.weight)
    y = F.pad(x.mean((2, 3)), ((k - 1) // 2, (k - 1) // 2))
    w = m.conv.weight.flatten()
    z = torch.stack([(y[:, c:c + k] * w).sum(1) for c in range(16)], 1)
    assert torch.allclose(m.excitation(x).flatten(1), torch.sigmoid(z), atol=1e-6)


def test_dct_basis_frequency_00_is_gap_up_to_a_constant_and_the_bases_are_orthonormal():
    h, w = 7, 7
    bases = dct_bases([(u, v) for u in range(7) for v in range(7)], h, w).flatten(1)
    assert torch.allclose(bases @ bases.T, torch.eye(49, dtype=bases.dtype), atol=1e-12)
    x = descriptor_input()
    pooled = DCTPool(16, "b", AttentionSpec(dct_frequencies="top1"))(x)
    assert torch.allclose(pooled, x.mean((2, 3), keepdim=True) * math.sqrt(5 * 6), atol=1e-5)


def test_dct_top16_pools_each_channel_group_with_its_frequency():
    assert frequencies("top16")[:4] == [(0, 0), (0, 1), (6, 0), (0, 5)]  # FcaNet's ranking
    x = descriptor_input()[:, :, :4, :4].repeat(1, 1, 2, 2)  # 8x8: indices scale by 8 // 7 = 1
    pool = DCTPool(16, "b", AttentionSpec())
    out = pool(x).flatten(1)
    u, v = frequencies("top16")[2]
    basis = dct_bases([(u, v)], 8, 8)[0].float()
    assert torch.allclose(out[:, 2], (x[:, 2] * basis).sum((1, 2)), atol=1e-5)  # group 2 = channel 2 (16 / 16)


# -- cost: the declared count is the module's -----------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet20", "resnet50"])
@pytest.mark.parametrize("excitation, pool", PAIRS)
def test_declared_params_and_macs_are_the_modules(arch, excitation, pool):
    kw = {"arch": arch, "excitation": excitation, "pool": pool, "reduction": 8}
    blocks = attention_blocks(spec(**kw).model)
    device = "cpu" if arch == "resnet20" else "meta"
    with torch.device(device):
        model, base = net(**kw), net(arch=arch, kind="none")
    assert sum(b.params for b in blocks) == attention_params(model)
    size = 32
    assert sum(b.macs for b in blocks) == count_macs(model, size) - count_macs(base, size)
    built = [m.cost() for m in model.modules() if isinstance(m, ChannelAttention)]
    assert built == blocks


@pytest.mark.parametrize("excitation, bias, expected", [("channelwise", False, 15_104), ("fc", False, 20_119_552),
                                                        ("channelwise", True, 30_208), ("none", True, 0)])
def test_eca_net_table_2_attention_params_on_resnet50(excitation, bias, expected):
    """ECA-Net Table 2's counts on ResNet-50: SE-Var2 ΣC, SE-Var3 ΣC² (bias false), SE-Var1 0."""
    blocks = attention_blocks(spec(arch="resnet50", excitation=excitation, bias=bias).model)
    assert sum(b.params for b in blocks) == expected


def test_eca_on_resnet50_with_the_released_kernels_adds_80_params_and_k3_adds_48():
    released = spec(arch="resnet50", excitation="eca", eca_kernel=[3, 5, 5, 7], bias=False).model
    with torch.device("meta"):
        assert attention_params(build_model(released, 1000, 3, 0)) == 80
    assert [b.width for b in attention_blocks(released)] == [3] * 3 + [5] * 4 + [5] * 6 + [7] * 3
    k3 = spec(arch="resnet50", excitation="eca", eca_kernel=3, bias=False).model
    assert sum(b.params for b in attention_blocks(k3)) == 48


def test_eca_auto_kernel_rule_and_which_c_reproduces_the_released_kernels():
    assert [eca_rule(c) for c in (4, 16, 32, 64, 128, 256, 512, 1024, 2048)] == [3, 3, 3, 3, 5, 5, 5, 5, 7]
    assert eca_rule(4, floor=1) == 1  # the floor of 3 matters only below 16 channels
    auto = attention_blocks(spec(arch="resnet50", excitation="eca").model)
    assert [b.width for b in auto][::4] == [5, 5, 5, 5] and auto[-1].width == 7  # C = the block's output
    conventions = released_kernel_conventions()
    assert conventions["block output"] == [5, 5, 5, 7] and conventions["planes"] == [3, 5, 5, 5]
    assert [3, 5, 5, 7] not in conventions.values()  # a hard-coded list in ECA's code, not its rule
    pre = attention_blocks(spec(arch="resnet50", excitation="eca", placement="pre").model)
    assert pre[0].channels == 64 and pre[0].width == 3  # at the pre site C is the block's input


# -- matched: shared weights, and the gate at 1 computes the baseline ------------------------------------------


class GateOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["standard", "pre", "post", "identity"])
@pytest.mark.parametrize("excitation, pool", PAIRS)
def test_every_operator_with_its_gate_forced_to_one_computes_the_baseline(excitation, pool, placement):
    base = net(seed=5, kind="none")
    model = net(seed=5, excitation=excitation, pool=pool, placement=placement, reduction=4)
    for m in model.modules():
        if isinstance(m, ChannelAttention):
            m.gate = GateOne()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.train()(x), base.train()(x))
        assert torch.equal(model.eval()(x), base.eval()(x))


@pytest.mark.parametrize("excitation, pool", PAIRS)
def test_every_operator_starts_from_the_baselines_weights(excitation, pool):
    base = net(seed=3, kind="none").state_dict()
    model = net(seed=3, excitation=excitation, pool=pool).state_dict()
    assert all(torch.equal(model[k], v) for k, v in base.items())
    extra = [k for k in model if k not in base]
    assert all(".attn_branch." in k for k in extra)


def test_the_se_mlp_keeps_its_parameter_names_and_draws():
    names = [k for k in net().state_dict() if "attn" in k]
    assert names[:2] == ["layer1.0.attn_branch.fc1.weight", "layer1.0.attn_branch.fc1.bias"]
    eca = net(excitation="eca").state_dict()
    assert "layer1.0.attn_branch.conv.weight" in eca
    assert not torch.equal(eca["layer1.0.attn_branch.conv.weight"], eca["layer1.1.attn_branch.conv.weight"])


@pytest.mark.parametrize("init", ["torch", "normal", "kaiming"])
def test_each_init_reaches_every_operator_with_weights(init):
    for excitation, name in (("fc", "fc.weight"), ("eca", "conv.weight"), ("channelwise", "weight")):
        w = net(excitation=excitation, init=init, init_std=0.01).state_dict()[f"layer3.0.attn_branch.{name}"]
        if init == "normal":
            assert 0.005 < w.std() < 0.02
        elif init == "torch":
            fan_in = {"fc": 64, "eca": 3, "channelwise": 1}[excitation]
            assert w.abs().max() <= 1 / math.sqrt(fan_in)
        else:
            assert w.abs().max() > 0


# -- refusals: one line naming the pair ------------------------------------------------------------------------


@pytest.mark.parametrize("knobs, key, words", [
    ({"excitation": "none", "pool": "avgstd"}, "model.attention.pool", "avgstd does not go with excitation none"),
    ({"excitation": "eca", "adaptive": "learnable"}, "model.attention.adaptive", "with excitation eca"),
    ({"adaptive": "dynamic", "pool": "avgstd"}, "model.attention.adaptive", "does not go with pool avgstd"),
    ({"excitation": "eca", "eca_kernel": [3, 5]}, "model.attention.eca_kernel", "but the net has 3 stages"),
    ({"pool": "dct", "dct_frequencies": "top32"}, "model.attention.dct_frequencies", "block layer1.0.attn_branch"),
])
def test_a_pair_an_operator_cannot_take_is_refused_in_one_line(knobs, key, words):
    with pytest.raises(SpecError) as info:
        attention_blocks(spec(**knobs).model)
    assert info.value.key == key and words in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SpecError):
        net(**knobs)


def test_an_even_eca_kernel_is_refused_by_the_spec():
    with pytest.raises(SpecError, match="eca_kernel"):
        spec(excitation="eca", eca_kernel=4)
    with pytest.raises(SpecError, match="eca_kernel"):
        spec(excitation="eca", eca_kernel=[3, 4, 5])


# -- run keys: an operator's unread keys are inert -------------------------------------------------------------


def test_keys_an_operator_does_not_read_stay_out_of_the_run_key():
    mlp = spec()
    assert {"model.attention.eca_kernel", "model.attention.dct_frequencies"} <= inert_keys(mlp)  # mlp reads neither
    # the default mlp reads its excitation key, but keeps it out of the key: its keys are those from before
    assert "model.attention.excitation" not in inert_keys(mlp) and "model.attention.excitation" in unkeyed_keys(mlp)
    eca = spec(excitation="eca")
    assert run_key(eca, "d") == run_key(spec(excitation="eca", reduction=2, divisor=8), "d")
    assert run_key(eca, "d") != run_key(spec(excitation="eca", eca_kernel=5), "d")
    assert run_key(eca, "d") != run_key(mlp, "d")
    assert run_key(spec(excitation="none"), "d") == run_key(spec(excitation="none", bias=False, init="normal"), "d")
    assert run_key(spec(pool="dct"), "d") != run_key(spec(pool="dct", dct_frequencies="top4"), "d")
    assert run_key(mlp, "d") == run_key(spec(dct_frequencies="top4", eca_kernel=7), "d")
    assert run_key(spec(kind="none"), "d") == run_key(spec(kind="none", excitation="fc"), "d")


def test_info_prints_each_blocks_operator_kernel_params_and_macs(capsys):
    from sesweep.cli import main

    assert main(["info", "model.arch=resnet50", "model.attention.excitation=eca", "model.attention.bias=false",
                 "model.attention.eca_kernel=[3,5,5,7]"]) == 0
    out = capsys.readouterr().out
    assert "se_params   80 " in out and "attention operators (eca on pool avg):" in out
    assert out.count("kernel 7") == 3 and out.count("kernel 3") == 3
