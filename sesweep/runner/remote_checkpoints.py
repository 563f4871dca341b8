"""A run's newest checkpoint kept in the tracking server too, for machines that do not share the results folder:
a lost run then resumes from it on any machine, not only on one that sees the folder it was written to.

Each attempt's MLflow run holds its newest checkpoint in one of two slots, ``checkpoint/a/latest.pt`` and
``checkpoint/b/latest.pt``, and a pointer, ``checkpoint/latest.json``: the checkpoint's sidecar plus the slot that
holds it. An upload writes the slot the pointer does not name, then the pointer, so a reader that comes between
the two calls still finds the pointer's slot whole (one upload at a time was a checkpoint and the sidecar of
another: a fetch then failed its sha256 and the run restarted from epoch 0). The server keeps at most two
checkpoints per attempt. A new attempt on a machine without a checkpoint of its run downloads the newest of the
earlier attempts' into its checkpoint folder, under the names the sidecar gives; the usual resume
(:mod:`sesweep.training.checkpoint`) then checks its size and sha256 against the sidecar before using it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sesweep.results import checkpoint_sidecars

if TYPE_CHECKING:
    from sesweep.runner.tracked_run import TrackedRun
    from sesweep.runner.tracking import Tracker

log = logging.getLogger("sesweep.runner.remote_checkpoints")

#: the artifact folder of an attempt's MLflow run that holds its newest checkpoint
ARTIFACT_DIR = "checkpoint"
#: earlier attempts of a run looked at for a checkpoint, newest first
MAX_ATTEMPTS = 20


def remote(tracker: Tracker) -> bool:
    """Whether ``tracker`` logs to a server (another machine may read it); a local store needs no copy."""
    return tracker.uri.startswith(("http://", "https://"))


#: the two slots an attempt's checkpoint alternates between
SLOTS = ("a", "b")


def upload(tracked: TrackedRun, path: Path) -> None:
    """Copy the checkpoint at ``path`` to the slot the attempt's pointer does not name, then the pointer (its
    sidecar and that slot): a reader sees the old pair or the new one, never half of each (the ``on_saved``
    hook of its :class:`~sesweep.training.checkpoint.CheckpointPolicy`)."""
    if tracked.run_id is None:
        return
    slot = SLOTS[tracked.checkpoint_uploads % 2]
    client = tracked.tracker.client
    with tempfile.TemporaryDirectory(prefix="sesweep-ckpt-") as tmp:
        data = Path(tmp) / "latest.pt"
        shutil.copyfile(path, data)
        client.log_artifact(tracked.run_id, str(data), f"{ARTIFACT_DIR}/{slot}")
        pointer = Path(tmp) / "latest.json"
        pointer.write_text(json.dumps({**json.loads(path.with_suffix(".json").read_text()), "slot": slot}))
        client.log_artifact(tracked.run_id, str(pointer), ARTIFACT_DIR)
    tracked.checkpoint_uploads += 1


def fetch(tracker: Tracker, run_key: str, directory: Path, exclude: str | None = None) -> int | None:
    """Download the newest checkpoint of run ``run_key`` held by an earlier attempt's MLflow run into
    ``directory``, unless this machine has one of its own; returns its epoch (None: none found). Best effort:
    a failure is warned about and the run starts from what it has."""
    if checkpoint_sidecars(directory):
        return None
    try:
        return _fetch(tracker, run_key, directory, exclude)
    except Exception as exc:
        log.warning("run %s: no checkpoint fetched from %s (%s)", run_key, tracker.uri,
                    str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__)
        return None


def _fetch(tracker: Tracker, run_key: str, directory: Path, exclude: str | None) -> int | None:
    client = tracker.client
    attempts = client.search_runs([tracker.experiment_id()], filter_string=f"tags.run_key = '{run_key}'",
                                  order_by=["attributes.start_time DESC"], max_results=MAX_ATTEMPTS)
    with tempfile.TemporaryDirectory(prefix="sesweep-ckpt-") as tmp:
        best: tuple[str, dict[str, Any]] | None = None
        for attempt in attempts:
            run_id = attempt.info.run_id
            if run_id == exclude or attempt.data.tags.get("sesweep.role") == "sweep":
                continue
            if not any(a.path == f"{ARTIFACT_DIR}/latest.json" for a in client.list_artifacts(run_id, ARTIFACT_DIR)):
                continue
            meta = json.loads(Path(client.download_artifacts(run_id, f"{ARTIFACT_DIR}/latest.json",
                                                             str(Path(tmp) / run_id))).read_text())
            if meta.get("run_key") == run_key and (best is None or meta["epoch"] > best[1]["epoch"]):
                best = run_id, meta
        if best is None:
            return None
        run_id, meta = best
        where = f"{ARTIFACT_DIR}/{meta['slot']}" if meta.get("slot") in SLOTS else ARTIFACT_DIR  # before slots
        data = Path(client.download_artifacts(run_id, f"{where}/latest.pt", str(Path(tmp) / "pt")))
        meta = {k: v for k, v in meta.items() if k != "slot"}
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, directory / str(meta["file"]))
        (directory / Path(str(meta["file"])).with_suffix(".json").name).write_text(json.dumps(meta))  # sidecar last
    log.info("run %s: fetched the checkpoint after epoch %d from MLflow run %s", run_key, meta["epoch"], run_id)
    return int(meta["epoch"])
