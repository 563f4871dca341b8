"""The ``sesweep`` command: one entry point, one sub-command per step of the data flow."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from sesweep.json_output import print_json
from sesweep.plan_checks import check_layers, check_model
from sesweep.runner.outage import OutageError
from sesweep.spec import SpecError, parse_assignments, run_spec

EXAMPLES = """\
examples:
  sesweep run experiments/smoke.yaml && sesweep report experiments/smoke.yaml
  sesweep info model.arch=resnet50 model.attention.reduction=16 model.num_classes=1000 --json
  sesweep info model.arch=resnet20 model.attention.kind=none
  sesweep train model.arch=resnet20 recipe.dataset=digits recipe.epochs=15
"""


#: the help of every command's --json flag
JSON_HELP = ("print the result as JSON on stdout, and nothing else there (progress, logs and notes go to "
             "stderr); its keys are stable")


def _assignments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE",
                        help="spec overrides by dotted key, e.g. model.attention.reduction=8 "
                             "(values parse as YAML: [2,3], null, true)")


def cmd_info(args: argparse.Namespace) -> int:
    """Cost of one variant: parameters, SE parameters, MACs and per-block hidden widths."""
    from sesweep.training.data import dataset_channels, dataset_num_classes
    from sesweep.training.measure import model_cost
    from sesweep.training.models import ARCHS, build_model

    flat = parse_assignments(args.assignments)
    hardened: dict[str, int] = {}
    if args.run is not None:
        flat, hardened = _from_run_json(args.run, flat)
    spec = run_spec(flat)
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
        from sesweep.training.models.adaptive import harden_to_widths

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


def _from_run_json(path: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A finished run's spec keys (then the command line's) and, for a learnable SE, its hardened widths."""
    from sesweep.spec import schema_keys

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
    """Train and evaluate one run (variant × recipe × seed) and print its record."""
    from sesweep.training.train import train

    spec = run_spec(parse_assignments(args.assignments))
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
    reported: compare ratios within one run, not figures across runs."""
    from sesweep.training.bench_report import format_suite
    from sesweep.training.bench_suite import bench_suite, check_options

    spec = run_spec(parse_assignments(args.assignments))
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
    from sesweep.training.bench_suite import BenchOptions

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


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.epilog = "exit status: 0 finished, 1 diverged, 2 bad spec"
    _assignments(parser)
    parser.add_argument("--json", action="store_true", help=f"{JSON_HELP}: record, curves, hidden_widths")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (also off when not a terminal)")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
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


AddArguments = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A sub-command: its one-line help and ``load``, which returns its (add_arguments, handler); a command's
    module is imported only when that command runs (a fast --help, and no torch for aggregate/report)."""

    help: str
    load: Callable[[], tuple[AddArguments, Handler]]


def _run_command() -> tuple[AddArguments, Handler]:
    from sesweep.runner.commands import add_run_arguments, cmd_run

    return add_run_arguments, cmd_run


def _status_command() -> tuple[AddArguments, Handler]:
    from sesweep.runner.commands import add_status_arguments, cmd_status

    return add_status_arguments, cmd_status


def _aggregate_command() -> tuple[AddArguments, Handler]:
    from sesweep.publish import add_aggregate_arguments, cmd_aggregate

    return add_aggregate_arguments, cmd_aggregate


def _report_command() -> tuple[AddArguments, Handler]:
    from sesweep.publish import add_report_arguments, cmd_report

    return add_report_arguments, cmd_report


def _overhead_command() -> tuple[AddArguments, Handler]:
    from sesweep.runner.overhead import add_overhead_arguments, cmd_overhead

    return add_overhead_arguments, cmd_overhead


#: every sub-command, in the order of the data flow: spec → runs → records → tables → figures
COMMANDS: dict[str, Command] = {
    "run": Command("run, resume or join a sweep (experiments/NAME.yaml) until every run is done", _run_command),
    "status": Command("done / running / failed / pending runs of a sweep, with an ETA", _status_command),
    "train": Command("train and evaluate one run, print its record", lambda: (add_train_arguments, cmd_train)),
    "info": Command("cost of one variant: params, SE params, MACs, hidden widths",
                    lambda: (add_info_arguments, cmd_info)),
    "aggregate": Command("mean ± CI per variant, paired deltas vs the baseline, paper-style tables",
                         _aggregate_command),
    "report": Command("report.md and a self-contained report.html with tables, figures and a summary",
                      _report_command),
    "bench": Command("speed vs matmul peak and a DataLoader reference: ResNet vs SE, CIFAR and ImageNet shapes",
                     lambda: (add_bench_arguments, cmd_bench)),
    "overhead": Command("run a sweep from scratch and show where its wall time went besides training",
                        _overhead_command),
}


def top_level_help() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: sesweep COMMAND [options]   (sesweep COMMAND --help for its options)", "",
             "Matched ablation sweeps of Squeeze-and-Excitation ResNets: spec → runs → tables → figures.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {cmd.help}" for name, cmd in COMMANDS.items()]
    return "\n".join([*lines, "", EXAMPLES])


def _did_you_mean(given: str, allowed: Sequence[str], quote: bool = False) -> str:
    close = difflib.get_close_matches(given, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close and quote else f"; did you mean {close[0]}?" if close else ""


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: no abbreviations (``--worker 2`` is not ``--workers 2``), and an error is one line
    on stderr that suggests the nearest option (exit 2), like every other refusal."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            unknown = [a.split("=")[0] for a in message.removeprefix("unrecognized arguments: ").split()
                       if a.startswith("-")]
            message += next((hint for a in unknown if (hint := _did_you_mean(a, options))), "")
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_parser(name: str) -> tuple[argparse.ArgumentParser, Handler]:
    """The parser of sub-command ``name`` (its module imported now) and its handler."""
    add_arguments, handler = COMMANDS[name].load()
    parser = CommandParser(prog=f"sesweep {name}", description=handler.__doc__)
    add_arguments(parser)
    return parser, handler


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(top_level_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        from sesweep import __version__

        print(f"sesweep {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"sesweep: error: unknown command {name!r}{_did_you_mean(name, COMMANDS, quote=True)}; allowed: "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    parser, handler = command_parser(name)
    try:
        args = parser.parse_args(rest)
    except SystemExit as exc:  # a bad command line (2, one line printed): main returns it; --help exits as usual
        if not exc.code:
            raise
        return int(exc.code)
    try:
        if getattr(args, "json", False):  # stdout holds the JSON alone: anything else printed goes to stderr
            args.json_stdout = sys.stdout
            with contextlib.redirect_stdout(sys.stderr):
                return handler(args)
        return handler(args)
    except SpecError as exc:
        print(f"sesweep {name}: error: {exc}", file=sys.stderr)
        return 2
    except OutageError as exc:  # a storage that stayed away, a folder that cannot be written: runs are left
        print(f"sesweep {name}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `sesweep … | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
