"""The ``sesweep`` command: one entry point, one sub-command per step of the data flow."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sesweep.spec import SpecError, parse_assignments, run_spec

EXAMPLES = """\
examples:
  sesweep info model.arch=resnet50 model.attention.reduction=16 model.num_classes=1000 --json
  sesweep info model.arch=resnet20 model.attention.kind=none
"""


def _assignments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE",
                        help="spec overrides by dotted key, e.g. model.attention.reduction=8 "
                             "(values parse as YAML: [2,3], null, true)")


def cmd_info(args: argparse.Namespace) -> int:
    """Cost of one variant: parameters, SE parameters, MACs and per-block hidden widths."""
    from sesweep.data import dataset_channels, dataset_num_classes
    from sesweep.measure import model_cost
    from sesweep.models import ARCHS, build_model

    spec = run_spec(parse_assignments(args.assignments))
    arch = ARCHS[spec.model.arch]
    classes = None if spec.model.num_classes != "auto" else dataset_num_classes(spec.recipe)
    channels = dataset_channels(spec.recipe) if args.in_channels is None else args.in_channels
    size = args.input_size or arch.input_size
    model = build_model(spec.model, classes, channels, spec.seed)
    cost = {"arch": spec.model.arch, "attention": spec.model.attention.kind, **model_cost(model, size, channels)}
    if args.json:
        print(json.dumps(cost, indent=2))
    else:
        print(format_cost(cost, spec.model.attention.reduction))
    return 0


def format_cost(cost: dict[str, Any], reduction: float) -> str:
    lines = [
        f"arch        {cost['arch']}   attention {cost['attention']}",
        f"params      {cost['params']:,}  ({cost['params'] / 1e6:.3f}M)",
        f"se_params   {cost['se_params']:,}  ({cost['se_params'] / 1e6:.3f}M)",
        f"macs        {cost['macs']:,}  ({cost['macs'] / 1e9:.4f} G at {cost['input_size']}x{cost['input_size']})",
    ]
    widths = cost["hidden_widths"]
    if widths:
        lines.append(f"hidden widths (requested r={reduction:g}):")
        lines.append(f"  {'block':<28}{'C':>6}{'C/r':>9}{'hidden':>8}{'eff. r':>9}  note")
        for w in widths:
            note = ", ".join(n for n, on in (("rounded", w["rounded"]), ("raised to min_hidden", w["raised"]))
                             if on)
            lines.append(f"  {w['block']:<28}{w['channels']:>6}{w['exact']:>9.3g}{w['hidden']:>8}"
                         f"{w['effective_reduction']:>9.3g}  {note}")
    return "\n".join(lines)


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "info": (cmd_info, "cost of one variant: params, SE params, MACs, hidden widths"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sesweep",
        description="Matched ablation sweeps of Squeeze-and-Excitation ResNets: spec → runs → tables → figures.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help=COMMANDS["info"][1], description=cmd_info.__doc__)
    _assignments(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.add_argument("--input-size", type=int, default=None,
                      help="square input size for MACs (default: 32 for CIFAR ResNets, 224 for ImageNet)")
    info.add_argument("--in-channels", type=int, default=None,
                      help="input channels (default: the data set's, 3 for RGB)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = COMMANDS[args.command][0]
    try:
        return handler(args)
    except SpecError as exc:
        print(f"sesweep {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
