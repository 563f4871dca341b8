"""The one place that turns a model spec into a network."""

from __future__ import annotations

from dataclasses import dataclass

from sesweep.spec import ModelSpec, SpecError
from sesweep.training.models.init import init_weights
from sesweep.training.models.operators import AttentionFactory, BlockCost, plan_block
from sesweep.training.models.preact import PreActBasicBlock, PreActBottleneck, PreActResNet
from sesweep.training.models.resnet import BasicBlock, Bottleneck, ResNet

Block = type[BasicBlock | Bottleneck | PreActBasicBlock | PreActBottleneck]


@dataclass(frozen=True)
class Arch:
    """A backbone: block type, blocks per stage, stage widths, stem and shortcut kind, and its family:
    ``resnet`` (post-activation, :mod:`.resnet`) or ``preact`` (pre-activation and wide, :mod:`.preact`)."""

    block: Block
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    stem: str
    shortcut: str
    input_size: int  # the resolution the family is designed for (MACs in `sesweep info`)
    family: str = "resnet"

    @property
    def stages(self) -> tuple[int, ...]:
        """SENet's stage numbers (conv2_x … ): stage k is layer{k-1}."""
        return tuple(range(2, 2 + len(self.layers)))

    @property
    def stem_width(self) -> int:
        """Channels out of the stem (the first block's input): 16 for every pre-activation net and WRN."""
        return 16 if self.family == "preact" else self.widths[0]

    @property
    def has_dropout(self) -> bool:
        """Whether ``recipe.dropout`` has a site in this net (WRN's, between a basic block's convs)."""
        return getattr(self.block, "has_dropout", False)


def _cifar(block: Block, n: int, shortcut: str) -> Arch:
    return Arch(block, (n, n, n), (16, 32, 64), "cifar", shortcut, 32)


def _imagenet(block: Block, layers: tuple[int, ...]) -> Arch:
    return Arch(block, layers, (64, 128, 256, 512), "imagenet", "projection", 224)


def _preact(block: Block, n: int, k: int = 1) -> Arch:
    """A pre-activation CIFAR ResNet with ``n`` blocks per stage; ``k`` > 1: a Wide ResNet (widths ×k)."""
    return Arch(block, (n, n, n), (16 * k, 32 * k, 64 * k), "cifar", "projection", 32, "preact")


#: He et al. 2016: CIFAR ResNet-(6n+2) with option-A shortcuts; ResNet-164 = 18 bottlenecks per stage with
#: projection shortcuts (post-activation); ImageNet ResNets in torchvision's layout. Pre-activation ResNets
#: (He et al., ECCV 2016: 6n+2 basic, 9n+2 bottleneck) and WRN-d-k ((d-4)/6 basic blocks per stage, widths ×k).
ARCHS: dict[str, Arch] = {
    "resnet20": _cifar(BasicBlock, 3, "pad"),
    "resnet32": _cifar(BasicBlock, 5, "pad"),
    "resnet44": _cifar(BasicBlock, 7, "pad"),
    "resnet56": _cifar(BasicBlock, 9, "pad"),
    "resnet110": _cifar(BasicBlock, 18, "pad"),
    "resnet164": _cifar(Bottleneck, 18, "projection"),
    "resnet18": _imagenet(BasicBlock, (2, 2, 2, 2)),
    "resnet34": _imagenet(BasicBlock, (3, 4, 6, 3)),
    "resnet50": _imagenet(Bottleneck, (3, 4, 6, 3)),
    "resnet101": _imagenet(Bottleneck, (3, 4, 23, 3)),
    "resnet152": _imagenet(Bottleneck, (3, 8, 36, 3)),
    "preresnet20": _preact(PreActBasicBlock, 3),
    "preresnet32": _preact(PreActBasicBlock, 5),
    "preresnet44": _preact(PreActBasicBlock, 7),
    "preresnet56": _preact(PreActBasicBlock, 9),
    "preresnet110": _preact(PreActBasicBlock, 18),
    "preresnet164": _preact(PreActBottleneck, 18),
    "preresnet1001": _preact(PreActBottleneck, 111),
    "wrn16_4": _preact(PreActBasicBlock, 2, 4),
    "wrn16_8": _preact(PreActBasicBlock, 2, 8),
    "wrn16_10": _preact(PreActBasicBlock, 2, 10),
    "wrn22_8": _preact(PreActBasicBlock, 3, 8),
    "wrn28_10": _preact(PreActBasicBlock, 4, 10),
    "wrn40_4": _preact(PreActBasicBlock, 6, 4),
}


def check_dropout(arch: str, dropout: float) -> None:
    """``recipe.dropout`` > 0 on a net without a dropout site is an error naming the nets that have one."""
    if dropout > 0 and not ARCHS[arch].has_dropout:
        with_site = [name for name, a in ARCHS.items() if a.has_dropout]
        raise SpecError("recipe.dropout", f"{dropout:g} but {arch} has no dropout site; allowed: 0 for {arch}, "
                                          f"or an arch with one: {', '.join(with_site)}")


def resolve_num_classes(spec: ModelSpec, data_classes: int | None) -> int:
    """``model.num_classes``, or the data set's class count when it is ``auto``."""
    if spec.num_classes != "auto":
        if data_classes is not None and spec.num_classes < data_classes:
            raise SpecError("model.num_classes", f"{spec.num_classes} is fewer than the data set's "
                            f"{data_classes} classes; allowed: auto or >= {data_classes}")
        return int(spec.num_classes)
    if data_classes is None:
        raise SpecError("model.num_classes", "is auto but no data set says how many classes; give a number")
    return data_classes


def attention_stages(spec: ModelSpec) -> tuple[int, ...] | None:
    """The validated stage numbers that get attention (``None`` = all)."""
    stages = spec.attention.stages
    if stages == "all":
        return None
    allowed = ARCHS[spec.arch].stages
    if not stages:
        raise SpecError("model.attention.stages", "is empty; for no attention use model.attention.kind=none")
    bad = [s for s in stages if s not in allowed]
    if bad:
        raise SpecError("model.attention.stages", f"stage {bad[0]} does not exist in {spec.arch}; allowed: "
                        f"all or a list from {', '.join(map(str, allowed))}")
    return tuple(stages)


def attention_blocks(spec: ModelSpec) -> list[BlockCost]:
    """Every attention block of a spec's net as its operator declares it (width or kernel, params, MACs), in
    order, without building anything: what ``plan_checks`` bounds and ``sesweep info`` prints."""
    att = spec.attention
    if att.kind == "none":
        return []
    arch = ARCHS[spec.arch]
    AttentionFactory(att, len(arch.layers))  # the knob pairs its operator refuses
    stages = attention_stages(spec)
    site = {"standard": "attn_branch", "pre": "attn_pre", "post": "attn_post", "identity": "attn_identity"}
    blocks, inplanes = [], arch.stem_width
    for i, (n, planes) in enumerate(zip(arch.layers, arch.widths, strict=True)):
        cout = planes * arch.block.expansion
        for j in range(n):
            cin = inplanes if j == 0 else cout
            if stages is None or i + 2 in stages:
                channels = cin if att.placement == "pre" else cout
                blocks.append(plan_block(att, channels, f"layer{i + 1}.{j}.{site[att.placement]}"))
        inplanes = cout
    return blocks


def build_model(spec: ModelSpec, num_classes: int | None = None, in_channels: int = 3,
                seed: int = 0, dropout: float = 0.0, initialise: bool = True) -> ResNet | PreActResNet:
    """The network a spec describes, initialised for ``seed`` (matched across variants, see init.py).

    ``num_classes`` is the data set's class count, used when ``model.num_classes`` is ``auto``; ``dropout`` is
    ``recipe.dropout`` (an error on a net without a dropout site, see :func:`check_dropout`). ``initialise=False``
    leaves PyTorch's default weights: for a build on the meta device that checks shapes only (initialising
    there has no values to set, yet imports torch._dynamo: 2-6 s at every sweep load).
    """
    arch = ARCHS[spec.arch]
    att = spec.attention
    attn_layer = AttentionFactory(att, len(arch.layers)) if att.kind == "se" else None
    check_dropout(spec.arch, dropout)
    classes, stages = resolve_num_classes(spec, num_classes), attention_stages(spec)
    model: ResNet | PreActResNet
    if arch.family == "preact":
        model = PreActResNet(arch.block, list(arch.layers), list(arch.widths), arch.stem_width, classes,
                             in_channels, attn_layer, att.placement, stages, dropout)
    else:
        model = ResNet(arch.block, list(arch.layers), list(arch.widths), arch.stem, arch.shortcut,
                       classes, in_channels, attn_layer, att.placement, stages)
    if initialise:
        init_weights(model, seed)
    return model
