"""``sesweep info``, ``train`` and ``bench``: their arguments and the reading of their ``KEY=VALUE`` overrides
into ``args.spec``, torch-free (a fast --help, a fast refusal of a bad key); their handlers, which build models
and train, are :mod:`sesweep.training.commands` (imported by :data:`sesweep.cli.COMMANDS` after these)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sesweep.spec import SpecError, parse_assignments, run_spec, schema_keys

#: the help of the --json flag of info, train and bench
JSON_HELP = ("print the result as JSON on stdout, and nothing else there (progress, logs and notes go to "
             "stderr); its keys are stable")


def _assignments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE",
                        help="spec overrides by dotted key, e.g. model.attention.reduction=8 "
                             "(values parse as YAML: [2,3], null, true)")


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Cost of one variant: parameters, SE parameters, MACs and per-block hidden widths."
    _assignments(parser)
    parser.add_argument("--json", action="store_true",
                        help=f"{JSON_HELP}: arch, attention, hardened, params, se_params, macs, input_size, "
                             "hidden_widths")
    parser.add_argument("--input-size", type=int, default=None,
                        help="square input size for MACs (default: recipe.image_size, else the architecture's "
                             "design size: 32 for CIFAR ResNets, 224 for ImageNet)")
    parser.add_argument("--in-channels", type=int, default=None, help="input channels (default: 3, RGB)")
    parser.add_argument("--run", metavar="RUN_JSON", default=None,
                        help="the model of a finished run (results/NAME/runs/KEY.json), at its image size; a "
                             "learnable adaptive SE is shown hardened at the widths it learned (overrides that change "
                             "its SE blocks are an error)")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Train and evaluate one run (variant × recipe × seed) and print its record."
    parser.epilog = "exit status: 0 finished, 1 diverged, 2 bad spec"
    _assignments(parser)
    parser.add_argument("--json", action="store_true", help=f"{JSON_HELP}: record, curves, hidden_widths")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (also off when not a terminal)")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Speed of sesweep on this device, every figure next to its yardstick: matmul peak per "
                          "precision; ResNet and SE-ResNet training steps at CIFAR and ImageNet shapes (SE overhead, "
                          "achieved FLOP/s as a fraction of the peak, inference latency); a textbook DataLoader "
                          "reference loop; one end-to-end epoch on JPEG folders each way; and the goals of issue 12, "
                          "each met or missed. Configurations are interleaved and medians reported: compare ratios "
                          "within one run, not figures across runs.")
    parser.epilog = ("exit status: 0 done (goals missed are reported, not an error), 2 bad option or spec. "
                     "Default run on 2 CPU cores: a few minutes. Example: sesweep bench --jpeg-root "
                     "data/cifar10 --images 5000; a quick look: sesweep bench --sections peak,cifar --steps 3")
    _assignments(parser)
    parser.add_argument("--sections", default="peak,cifar,imagenet,reference,epoch,loader",
                        help="what to measure, comma-separated (default: all): peak = GFLOP/s of a square matmul "
                             "per precision; cifar = ResNet vs SE-ResNet training steps at the spec's shape "
                             "(default resnet20, 32x32, batch 128); imagenet = the same at --imagenet-arch/-size/"
                             "-batch; reference = sesweep's SE-ResNet vs a textbook DataLoader loop on JPEGs, "
                             "interleaved; epoch = one epoch on the JPEG folder each way, wall clock; loader = the "
                             "input pipelines alone (no model): sesweep stream and memory loaders vs torchvision "
                             "ImageFolder + DataLoader, images/s")
    parser.add_argument("--kinds", default="none,se",
                        help="attention kinds of the cifar and imagenet sections (default: none,se; the SE "
                             "overhead needs both)")
    parser.add_argument("--precisions", default=None,
                        help="training precisions of the cifar and imagenet sections, and the peaks measured "
                             "(fp32, bf16, fp16 on CUDA, auto; default: fp32, bf16 where the device computes it "
                             "in hardware, and what auto resolves to). The reference and epoch sections run "
                             "sesweep at the precision auto picks, where the goals are checked")
    parser.add_argument("--steps", default="10",
                        help="timed steps per repeat, cifar and reference sections (default: 10)")
    parser.add_argument("--repeats", default="3",
                        help="interleaved repeats, cifar, reference and loader sections (loader: epochs per "
                             "pipeline after a warm-up epoch); medians are shown (default: 3)")
    parser.add_argument("--imagenet-arch", default="resnet50", help="architecture of the imagenet section "
                                                                    "(default: resnet50)")
    parser.add_argument("--imagenet-size", default="224", help="input side of the imagenet section (default: 224)")
    parser.add_argument("--imagenet-batch", default="16",
                        help="batch of the imagenet section (default: 16, small enough for a CPU)")
    parser.add_argument("--imagenet-steps", default="2", help="timed steps per repeat, imagenet section (default: 2)")
    parser.add_argument("--imagenet-repeats", default="2", help="interleaved repeats, imagenet section (default: 2)")
    parser.add_argument("--jpeg-root", default=None, metavar="DIR",
                        help="an ImageFolder of JPEGs (DIR/train/<class>/*.jpg, DIR/test/<class>/*.jpg) for the "
                             "reference, epoch and loader sections; a class-stratified subset of --images of its "
                             "training files (and a tenth as many test files) is linked into a temporary folder. "
                             "Default: "
                             "the embedded digits, written to a temporary folder as 32x32 JPEGs")
    parser.add_argument("--images", default="2560",
                        help="training images of the JPEG folder, i.e. of the epoch (default: 2560; at least one "
                             "batch)")
    parser.add_argument("--workers", default="2",
                        help="DataLoader worker processes of the reference loop and of every loader of the loader "
                             "section (default: 2, the PyTorch CIFAR tutorial's value and this 2-core machine's "
                             "cores; 0 loads in the training process)")
    parser.add_argument("--loader-size", default="64",
                        help="crop side of the loader section's ImageNet augmentation (random-resized crop and "
                             "flip, sesweep stream vs torchvision; default: 64, at least 8)")
    parser.add_argument("--peak-size", default="2048",
                        help="side of the square matrices of the matmul peak (default: 2048; shrunk where one "
                             "product would take over 2 s, e.g. bf16 on a CPU without bf16 hardware)")
    parser.add_argument("--peak-repeats", default="5", help="timed matmuls per precision; the median is shown "
                                                            "(default: 5)")
    parser.add_argument("--json", action="store_true",
                        help=f"{JSON_HELP}: device, flops_convention, peak, cifar, imagenet, jpegs, reference, "
                             "epoch, loader (null when not measured) and goals (value and met per goal)")


# --------------------------------------------------------------------------------------------------
# reading the input (after parsing, before the handler's module is imported)


def read_spec(args: argparse.Namespace) -> None:
    """``train``, ``bench``: ``args.spec``, the run spec of the ``KEY=VALUE`` overrides (a bad key or value is
    refused here)."""
    args.spec = run_spec(parse_assignments(args.assignments))


def read_info(args: argparse.Namespace) -> None:
    """``info``: ``args.spec`` (the overrides, on top of the spec keys of ``--run``'s run) and ``args.hardened``
    (the SE widths that run learned, per block; empty unless ``--run`` names a learnable SE)."""
    flat = parse_assignments(args.assignments)
    hardened: dict[str, int] = {}
    if args.run is not None:
        flat, hardened = _from_run_json(args.run, flat)
    args.spec, args.hardened = run_spec(flat), hardened


def _from_run_json(path: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A finished run's spec keys (then the command line's) and, for a learnable SE, its hardened widths."""
    try:
        payload = json.loads(Path(path).read_text())
        record = payload["record"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError("--run", f"{path}: not a run JSON written by `sesweep run` ({exc})") from None
    flat = {k: record[k] for k in schema_keys() if k in record and record[k] is not None}
    hardened = {}
    if flat.get("model.attention.adaptive") == "learnable":
        hardened = {w["block"]: int(w["hidden"]) for w in payload.get("hidden_widths", [])}
    return {**flat, **overrides}, hardened
