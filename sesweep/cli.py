"""The ``sesweep`` command: one entry point, one sub-command per step of the data flow."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sesweep.results import SweepDataError
from sesweep.runner.outage import OutageError
from sesweep.spec import SpecError

EXAMPLES = """\
examples:
  sesweep run experiments/smoke.yaml && sesweep report experiments/smoke.yaml
  sesweep info model.arch=resnet50 model.attention.reduction=16 model.num_classes=1000 --json
  sesweep info model.arch=resnet20 model.attention.kind=none
  sesweep train model.arch=resnet20 recipe.dataset=digits recipe.epochs=15
"""


Handler = Callable[[argparse.Namespace], int]


def _load(where: str) -> Any:
    """``"package.module:function"`` → that function (its module imported now)."""
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Command:
    """A sub-command: its one-line help and three ``"module:function"`` names, each module imported only when
    needed. ``arguments`` adds the command's arguments to its parser and ``read`` reads its input from them: both
    in light modules (no torch, optuna or mlflow), so --help and a refused command line (a sweep file that is not
    there, a bad KEY=VALUE) are fast. ``read`` leaves what it read on the namespace (``args.plan``,
    ``args.spec``); then ``handler``'s module is imported, and the handler runs (aggregate and report never
    import torch; status only to resolve ``recipe.precision: auto`` for a sweep that has never run)."""

    help: str
    arguments: str
    read: str
    handler: str


#: every sub-command, in the order of the data flow: spec → runs → records → tables → figures
COMMANDS: dict[str, Command] = {
    "run": Command("run, resume or join a sweep (experiments/NAME.yaml) until every run is done",
                   "sesweep.runner.arguments:add_run_arguments", "sesweep.runner.arguments:read_run",
                   "sesweep.runner.commands:cmd_run"),
    "status": Command("done / running / failed / pending runs of a sweep, with an ETA",
                      "sesweep.runner.arguments:add_status_arguments", "sesweep.runner.arguments:read_status",
                      "sesweep.runner.commands:cmd_status"),
    "train": Command("train and evaluate one run, print its record",
                     "sesweep.training.arguments:add_train_arguments", "sesweep.training.arguments:read_spec",
                     "sesweep.training.commands:cmd_train"),
    "info": Command("cost of one variant: params, SE params, MACs, hidden widths",
                    "sesweep.training.arguments:add_info_arguments", "sesweep.training.arguments:read_info",
                    "sesweep.training.commands:cmd_info"),
    "aggregate": Command("mean ± CI per variant, paired deltas vs the baseline, paper-style tables",
                         "sesweep.publish_arguments:add_aggregate_arguments", "sesweep.publish_arguments:read_results",
                         "sesweep.publish:cmd_aggregate"),
    "report": Command("report.md and a self-contained report.html with tables, figures and a summary",
                      "sesweep.publish_arguments:add_report_arguments", "sesweep.publish_arguments:read_results",
                      "sesweep.publish:cmd_report"),
    "bench": Command("speed vs matmul peak and a DataLoader reference: ResNet vs SE, CIFAR and ImageNet shapes",
                     "sesweep.training.arguments:add_bench_arguments", "sesweep.training.arguments:read_spec",
                     "sesweep.training.commands:cmd_bench"),
    "overhead": Command("run a sweep from scratch and show where its wall time went besides training",
                        "sesweep.runner.arguments:add_overhead_arguments", "sesweep.runner.arguments:read_overhead",
                        "sesweep.runner.overhead:cmd_overhead"),
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


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of sub-command ``name`` (its handler's module is not imported)."""
    parser = CommandParser(prog=f"sesweep {name}")
    _load(COMMANDS[name].arguments)(parser)
    return parser


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
    command = COMMANDS[name]
    try:
        args = command_parser(name).parse_args(rest)
    except SystemExit as exc:  # a bad command line (2, one line printed): main returns it; --help exits as usual
        if not exc.code:
            raise
        return int(exc.code)
    try:
        _load(command.read)(args)  # bad input is refused here, before the handler's (heavier) module is imported
        handler: Handler = _load(command.handler)
        if getattr(args, "json", False):  # stdout holds the JSON alone: anything else printed goes to stderr
            args.json_stdout = sys.stdout
            with contextlib.redirect_stdout(sys.stderr):
                return handler(args)
        return handler(args)
    except (SpecError, SweepDataError) as exc:  # a bad spec, a results folder without results
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
