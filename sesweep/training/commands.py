"""``sesweep info``, ``train`` and ``bench``: their handlers, which build models and train (their arguments, and
the reading of the ``KEY=VALUE`` overrides into ``args.spec``: :mod:`sesweep.arguments`)."""

from __future__ import annotations

import argparse
from typing import Any

from sesweep.json_output import print_json
from sesweep.plan_checks import check_layers, check_model
from sesweep.spec import SpecError
from sesweep.training.bench_report import format_suite
from sesweep.training.bench_suite import BenchOptions, bench_suite, check_options
from sesweep.training.data import dataset_channels, dataset_num_classes
from sesweep.training.measure import model_cost
from sesweep.training.models import ARCHS, build_model
from sesweep.training.models.adaptive import harden_to_widths
from sesweep.training.train import train


def cmd_info(args: argparse.Namespace) -> int:
    """Cost of one variant (``args.spec``, learned widths ``args.hardened``: :func:`sesweep.arguments.read_info`):
    parameters, SE parameters, MACs and per-block hidden widths."""
    spec, hardened = args.spec, args.hardened
    check_layers(spec)  # a huge layer is refused before it is allocated, as in a sweep file
    arch = ARCHS[spec.model.arch]
    classes = None if spec.model.num_classes != "auto" else dataset_num_classes(spec.recipe)
    channels = dataset_channels(spec.recipe) if args.in_channels is None else args.in_channels
    size = args.input_size or spec.recipe.image_size or arch.input_size
    model = build_model(spec.model, classes, channels, spec.seed, spec.recipe.dropout)
    att = spec.model.attention
    if att.kind != "se" or att.adaptive != "learnable":
        hardened = {}  # the overrides made it another kind of SE (or none): the learned widths do not apply
    if hardened:
        try:
            harden_to_widths(model, hardened)
        except ValueError as exc:
            given = " ".join(args.assignments)
            model_of = f"the model that {given} gives" if given else "its model"
            raise SpecError("--run", f"the widths learned by {args.run} do not fit {model_of} ({exc}); leave out "
                                     "the overrides that change the SE blocks") from None
    cost = {"arch": spec.model.arch, "attention": att.kind, "hardened": bool(hardened),
            **model_cost(model, size, channels)}
    if args.json:
        print_json(args, cost)
    else:
        origin = "learned, hardened" if hardened else f"requested r={spec.model.attention.reduction:g}"
        print(format_cost(cost, origin))
    return 0


def format_cost(cost: dict[str, Any], origin: str) -> str:
    lines = [
        f"arch        {cost['arch']}   attention {cost['attention']}",
        f"params      {cost['params']:,}  ({cost['params'] / 1e6:.3f}M)",
        f"se_params   {cost['se_params']:,}  ({cost['se_params'] / 1e6:.3f}M)",
        f"macs        {cost['macs']:,}  ({cost['macs'] / 1e9:.4f} G at {cost['input_size']}x{cost['input_size']})",
    ]
    widths = cost["hidden_widths"]
    if widths:
        lines.append(f"hidden widths ({origin}):")
        lines.append(f"  {'block':<28}{'C':>6}{'C/r':>9}{'hidden':>8}{'eff. r':>9}  note")
        for w in widths:
            note = ", ".join(n for n, on in (("rounded", w["rounded"]), ("raised to min_hidden", w["raised"]))
                             if on)
            lines.append(f"  {w['block']:<28}{w['channels']:>6}{w['exact']:>9.3g}{w['hidden']:>8}"
                         f"{w['effective_reduction']:>9.3g}  {note}")
    return "\n".join(lines + format_blocks(cost.get("attention_blocks", [])))


def format_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """Each attention block's operator, width or kernel, parameters and MACs (as the operator declares them)."""
    if not blocks:
        return []
    lines = [f"attention operators ({blocks[0]['excitation']} on pool {blocks[0]['pool']}):",
             f"  {'block':<28}{'C':>6}{'width':>12}{'params':>12}{'MACs':>12}"]
    for b in blocks:
        width = f"{b['width_kind'] or '-'} {b['width']}" if b["width"] is not None else "-"
        lines.append(f"  {b['block']:<28}{b['channels']:>6}{width:>12}{b['params']:>12,}{b['macs']:>12,}")
    return lines


def cmd_train(args: argparse.Namespace) -> int:
    """Train and evaluate one run (``args.spec``: :func:`sesweep.arguments.read_spec`) and print its record."""
    spec = args.spec
    check_model(spec)  # the checks a sweep file gets, before the data are loaded or the model built
    result = train(spec, progress=False if args.quiet else None)
    if args.json:
        print_json(args, {"record": result.record(), "curves": result.curves, "hidden_widths": result.hidden_widths})
    else:
        print(format_record(result.record()))
    return 0 if result.status == "finished" else 1


def format_record(record: dict[str, Any]) -> str:
    m = record
    lines = [f"run {m['run_key']}  {m['model.arch']}  attention {m['model.attention.kind']}  seed {m['seed']}  "
             f"status {m['status']}" + (f" ({m['reason']})" if m["reason"] else "")]
    lines.append(f"  top-1 error {m['top1_err']:.2f}%   top-5 error {m['top5_err']:.2f}%   "
                 f"test loss {m['test_loss']:.4f}   train loss {m['train_loss']:.4f}")
    lines.append(f"  params {m['params']:,} (SE {m['se_params']:,})   MACs {m['macs'] / 1e6:.2f}M   "
                 f"epochs {m['epochs_done']}")
    lines.append(f"  train {m['train_seconds']:.1f}s at {m['train_img_per_s']:.0f} img/s   "
                 f"inference {m['infer_ms']:.1f} ms/batch of {m['infer_batch']}   "
                 + (f"peak memory {m['peak_mem_mb']:.0f} MB   " if m.get("peak_mem_mb") is not None else "")
                 + (f"peak RSS {m['peak_rss_mb']:.0f} MB   " if m.get("peak_rss_mb") is not None else "")
                 + f"on {m['resolved_device']} {m['resolved_precision']}")
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    """Speed of sesweep on this device, every figure next to its yardstick: matmul peak per precision; ResNet
    and SE-ResNet training steps at CIFAR and ImageNet shapes (SE overhead, achieved FLOP/s as a fraction of
    the peak, inference latency); a textbook DataLoader reference loop; one end-to-end epoch on JPEG folders
    each way; and the goals of issue 12, each met or missed. Configurations are interleaved and medians
    reported: compare ratios within one run, not figures across runs. ``args.spec``:
    :func:`sesweep.arguments.read_spec`."""
    spec = args.spec
    check_model(spec)  # the checks train makes (a huge classifier is refused, not allocated), before any work
    options = _bench_options(args)
    check_options(options, spec)  # every option, before any work
    doc = bench_suite(spec, options)
    if args.json:
        print_json(args, doc)
    else:
        print(format_suite(doc))
    return 0


def _bench_options(args: argparse.Namespace) -> Any:
    """The options of ``sesweep bench`` as a BenchOptions; a value that is not a whole number is a SpecError."""

    def names(value: str | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())

    def whole(flag: str) -> int:
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        try:
            return int(value)
        except ValueError:
            raise SpecError(flag, f"{value!r} is not a whole number") from None

    ints = ("--steps", "--repeats", "--imagenet-size", "--imagenet-batch", "--imagenet-steps",
            "--imagenet-repeats", "--images", "--workers", "--loader-size", "--peak-size", "--peak-repeats")
    return BenchOptions(sections=names(args.sections), kinds=names(args.kinds), precisions=names(args.precisions),
                        imagenet_arch=args.imagenet_arch, jpeg_root=args.jpeg_root,
                        **{flag.removeprefix("--").replace("-", "_"): whole(flag) for flag in ints})

