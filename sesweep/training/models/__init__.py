"""Models: SE attention (fixed and adaptive width), ResNet families, and the one spec → network builder."""

from sesweep.training.models.adaptive import DynamicSE, LearnableSE, harden_model
from sesweep.training.models.attention import Attention, ChannelAttention, HiddenWidth, hidden_width
from sesweep.training.models.build import ARCHS, build_model, resolve_num_classes
from sesweep.training.models.operators.mlp import SqueezeExcite
from sesweep.training.models.preact import PreActResNet
from sesweep.training.models.resnet import PLACEMENTS, ResNet

__all__ = ["ARCHS", "PLACEMENTS", "Attention", "ChannelAttention", "DynamicSE", "HiddenWidth", "LearnableSE",
           "PreActResNet", "ResNet", "SqueezeExcite", "build_model", "harden_model", "hidden_width",
           "resolve_num_classes"]
