"""``sesweep overhead``: a sweep run from scratch, its wall time split into parts that add up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sesweep.runner.overhead import PARTS, format_overhead, measure


@pytest.mark.slow
def test_the_parts_add_up_to_the_worker_seconds_and_none_is_negative(make_sweep):
    spec = make_sweep("costs", seeds=(0, 1), recipe={"epochs": 2, "eval_every": 2})
    doc = measure(str(spec), workers=1, extra=[])  # with MLflow: its time must fall inside the runs
    assert doc["runs"] == 2
    parts = {row["part"]: row["seconds"] for row in doc["rows"]}
    assert sum(parts.values()) == pytest.approx(doc["worker_seconds"])
    assert all(seconds >= 0 for seconds in parts.values()), parts  # nothing counted twice
    assert parts["training steps"] > 0 and parts["evaluation"] > 0
    assert [label for label, _, _ in PARTS] == list(parts)[:len(PARTS)]
    assert doc["bookkeeping_share"] == pytest.approx(1 - parts["training steps"] / doc["worker_seconds"])
    work = (parts["training steps"] + parts["evaluation"]) / doc["worker_seconds"]
    assert doc["work_share"] == pytest.approx(work) and doc["work_goal"] == 0.90
    assert "goal <= 3%" in format_overhead(doc) and f"training + evaluation: {work:.1%}" in format_overhead(doc)


def test_a_bad_spec_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrecipe: {epochs: 0}\n")
    done = subprocess.run([sys.executable, "-m", "sesweep", "overhead", str(bad), "--json"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "recipe.epochs" in done.stderr


@pytest.mark.slow  # > 5 s: out of the fast tier
def test_json_has_the_rows(make_sweep):
    spec = make_sweep("costs-json")
    done = subprocess.run([sys.executable, "-m", "sesweep", "overhead", str(spec), "--no-tracking", "--json"],
                          capture_output=True, text=True, check=True)
    doc = json.loads(done.stdout)
    assert {"sweep", "runs", "workers", "wall_seconds", "worker_seconds", "rows", "bookkeeping_share",
            "work_share"} <= set(doc)
