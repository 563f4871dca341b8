"""What a run key identifies (issue 9, items 1 and 2): the data a run reads and the results version.

Two sweeps that read different image folders both train; the same folder moved (or copied) elsewhere trains
nothing; a record of an older results version or of other data is never adopted, and ``sesweep status``
says how many such records a sweep has. Every test makes its own tiny image folders.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from test_data import make_folder, write_png  # tests/ is on sys.path

import sesweep.run_identity
from sesweep.cli import main
from sesweep.plan import load_plan
from sesweep.results import code_version
from sesweep.run_identity import RESULTS_VERSION, run_key
from sesweep.runner import sweep as sw
from sesweep.runner.outputs import find_result
from sesweep.runner.status import sweep_status
from sesweep.spec import RecipeSpec, SpecError, run_spec
from sesweep.training.data import data_identity

FAST = {"heartbeat_interval": 1, "grace_period": 4, "progress": False, "threads": 1}
#: the tiny folders of make_folder (9 train, 3 test images of 8x8) in one epoch
FOLDER_RECIPE = {"dataset": "imagefolder", "train_subset": None, "test_subset": None, "image_size": 8,
                 "batch_size": 8, "eval_batch_size": 8}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SESWEEP_CACHE", str(cache))
    return cache


def folder(root: Path, extra: bool = False) -> Path:
    """make_folder's tree (always the same content); ``extra`` adds one training image: other data."""
    make_folder(root)
    if extra:
        write_png(root / "train" / "cat" / "img99.png", __import__("numpy").full((8, 8, 3), 7, dtype="uint8"))
    return root


def imagefolder(root: Path, **kw: object) -> RecipeSpec:
    return RecipeSpec(dataset="imagefolder", data_root=str(root), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# data identity


def test_builtin_data_sets_are_identified_by_name_not_by_where_they_live():
    ids = {name: data_identity(RecipeSpec(dataset=name)) for name in ("digits", "cifar10", "cifar100", "fake")}
    assert len(set(ids.values())) == 4
    assert all(name in ident for name, ident in ids.items())
    assert data_identity(RecipeSpec(dataset="cifar10", data_root="/nowhere")) == ids["cifar10"]


def test_imagefolder_identity_is_a_content_fingerprint(tmp_path: Path):
    a = data_identity(imagefolder(folder(tmp_path / "a")))
    assert a.startswith("imagefolder")
    assert "3" in a and "9" in a  # class count and file counts are readable in it
    # the same content elsewhere (copied: new mtimes), reached through another spelling of the path: same identity
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    assert data_identity(imagefolder(tmp_path / "copy")) == a
    assert data_identity(imagefolder(tmp_path / "x" / ".." / "a")) == a
    # files the loader ignores do not count
    (tmp_path / "copy" / "train" / "dog" / "README.txt").write_text("ignored")
    write_png(tmp_path / "copy" / "train" / "dog" / ".hidden.png", __import__("numpy").zeros((8, 8, 3), "uint8"))
    assert data_identity(imagefolder(tmp_path / "copy")) == a
    # one more image, a file of another size, a renamed file, a renamed class: other data
    assert data_identity(imagefolder(folder(tmp_path / "b", extra=True))) != a
    img = tmp_path / "copy" / "test" / "bird" / "img00.png"
    img.write_bytes(img.read_bytes() + b"\0")
    assert data_identity(imagefolder(tmp_path / "copy")) != a
    shutil.copytree(tmp_path / "a", tmp_path / "ren")
    (tmp_path / "ren" / "train" / "dog" / "img00.png").rename(tmp_path / "ren" / "train" / "dog" / "img50.png")
    assert data_identity(imagefolder(tmp_path / "ren")) != a
    shutil.copytree(tmp_path / "a", tmp_path / "cls")
    (tmp_path / "cls" / "test" / "bird").rename(tmp_path / "cls" / "test" / "aardvark")
    (tmp_path / "cls" / "train" / "bird").rename(tmp_path / "cls" / "train" / "aardvark")
    assert data_identity(imagefolder(tmp_path / "cls")) != a


def test_imagefolder_identity_is_never_stale(tmp_path: Path):
    root = folder(tmp_path / "a")
    first = data_identity(imagefolder(root))
    assert data_identity(imagefolder(root)) == first
    (root / "train" / "cat" / "img00.png").unlink()
    assert data_identity(imagefolder(root)) != first


def test_imagefolder_identity_without_the_data_names_data_root(tmp_path: Path):
    with pytest.raises(SpecError) as err:
        data_identity(imagefolder(tmp_path / "missing"))
    assert err.value.key == "recipe.data_root"


def _same_size_other_pixels(root: Path, value: int) -> Path:
    """A folder of uncompressed PPM images (3 classes × 2 per split): every file has one size whatever its
    pixels, so names and sizes cannot tell two such folders apart."""
    header = b"P6 4 4 255\n"
    for split in ("train", "test"):
        for c in ("bird", "cat", "dog"):
            for i in range(2):
                path = root / split / c / f"img{i}.ppm"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(header + bytes([value + i]) * 48)
    return root


def test_imagefolder_identity_reads_the_pixels_not_just_names_and_sizes(tmp_path: Path):
    """Issue 21.5: two folders of equal names and sizes and other pixels were one data identity (one run key)."""
    a = data_identity(imagefolder(_same_size_other_pixels(tmp_path / "a", 10)))
    b = data_identity(imagefolder(_same_size_other_pixels(tmp_path / "b", 99)))
    assert a != b
    assert data_identity(imagefolder(_same_size_other_pixels(tmp_path / "c", 10))) == a


def test_a_warm_identity_reads_only_the_files_whose_stat_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              cache_in_tmp: Path):
    import os

    import sesweep.file_hashes as fh

    read: list[str] = []
    real = fh.hash_file
    monkeypatch.setattr(fh, "hash_file", lambda path: read.append(path) or real(path))
    root = _same_size_other_pixels(tmp_path / "a", 10)
    cold = data_identity(imagefolder(root))
    assert len(read) == 12 and (cache_in_tmp / "file-hashes.sqlite").is_file()
    read.clear()
    assert data_identity(imagefolder(root)) == cold and read == []  # warm: a stat per file, nothing read
    img = root / "train" / "cat" / "img1.ppm"
    before = img.stat()
    img.write_bytes(img.read_bytes()[:-1] + b"\xff")  # the same size, another pixel
    os.utime(img, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    changed = data_identity(imagefolder(root))
    assert changed != cold and read == [str(img)]
    # without a usable cache every file is read, and the identity is the same
    read.clear()
    monkeypatch.setenv("SESWEEP_CACHE", str(tmp_path / "not-a-folder" / "x"))
    (tmp_path / "not-a-folder").write_text("")
    assert data_identity(imagefolder(root)) == changed and len(read) == 12


# --------------------------------------------------------------------------------------------------
# run keys


def test_run_key_covers_the_data_and_the_results_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    a, b = folder(tmp_path / "a"), folder(tmp_path / "b", extra=True)
    shutil.copytree(a, tmp_path / "moved")
    spec = {"recipe.dataset": "imagefolder", "recipe.image_size": 8}
    key_a = run_key(run_spec({**spec, "recipe.data_root": str(a)}))
    assert key_a != run_key(run_spec({**spec, "recipe.data_root": str(b)}))
    assert key_a == run_key(run_spec({**spec, "recipe.data_root": str(tmp_path / "moved")}))
    assert key_a == run_key(run_spec({**spec, "recipe.data_root": str(b)}), data_identity(imagefolder(a)))
    assert re.fullmatch(r"[0-9a-f]{16}", key_a)
    assert isinstance(RESULTS_VERSION, int) and RESULTS_VERSION >= 2
    digits = run_key(run_spec({}))
    monkeypatch.setattr(sesweep.run_identity, "RESULTS_VERSION", RESULTS_VERSION + 1)
    assert run_key(run_spec({})) != digits


def test_plan_keys_follow_the_data_and_data_root_recomputes_them(tmp_path: Path, make_sweep):
    a, b = folder(tmp_path / "a"), folder(tmp_path / "b", extra=True)
    shutil.copytree(a, tmp_path / "moved")
    plan_a = load_plan(make_sweep("on-a", recipe={**FOLDER_RECIPE, "data_root": str(a)}))
    plan_b = load_plan(make_sweep("on-b", recipe={**FOLDER_RECIPE, "data_root": str(b)}))
    assert not set(plan_a.keys) & set(plan_b.keys)
    assert plan_b.with_data_root(str(tmp_path / "moved")).keys == plan_a.keys
    assert plan_a.with_data_root(str(b)).keys == plan_b.keys
    assert {r.data_id for r in plan_a.runs} == {data_identity(imagefolder(a))}


# --------------------------------------------------------------------------------------------------
# sweeps: other data trains, moved data adopts


def test_two_folders_both_train_and_the_same_folder_moved_trains_nothing(
        tmp_path: Path, make_sweep, count_trainings: Counter[str], capsys: pytest.CaptureFixture[str]):
    results = tmp_path / "results"
    a, b = folder(tmp_path / "a"), folder(tmp_path / "b", extra=True)
    first = load_plan(make_sweep("first", recipe={**FOLDER_RECIPE, "data_root": str(a)}))
    second = load_plan(make_sweep("second", recipe={**FOLDER_RECIPE, "data_root": str(b)}))
    assert sw.run_sweep(first, results_dir=results, tracking=False, **FAST).done == 1
    assert sw.run_sweep(second, results_dir=results, tracking=False, **FAST).done == 1
    assert sum(count_trainings.values()) == 2, "the second folder's sweep must train, not adopt the first's run"
    rec_a = json.loads((results / "first" / "runs" / f"{first.keys[0]}.json").read_text())["record"]
    rec_b = json.loads((results / "second" / "runs" / f"{second.keys[0]}.json").read_text())["record"]
    assert rec_a["data_id"] == data_identity(imagefolder(a)) != rec_b["data_id"] == data_identity(imagefolder(b))

    # the first folder moved elsewhere, read by a third sweep through --data-root: adopted, nothing trains
    shutil.move(a, tmp_path / "elsewhere")
    spec = make_sweep("third", recipe={**FOLDER_RECIPE, "data_root": str(a)})
    code = main(["run", str(spec), "--results", str(results), "--no-tracking", "--quiet",
                 "--data-root", str(tmp_path / "elsewhere")])
    assert code == 0
    assert sum(count_trainings.values()) == 2
    third = load_plan(spec).with_data_root(str(tmp_path / "elsewhere"))
    assert third.keys == first.keys
    rec = json.loads((results / "third" / "runs" / f"{third.keys[0]}.json").read_text())["record"]
    assert rec["sweep"] == "third" and rec["data_id"] == rec_a["data_id"]
    assert rec["code_version"] == rec_a["code_version"]


def test_a_sweep_whose_image_folder_is_missing_refuses_to_run_but_can_be_listed(
        tmp_path: Path, make_sweep, capsys: pytest.CaptureFixture[str]):
    results = tmp_path / "results"
    spec = make_sweep("nodata", recipe={**FOLDER_RECIPE, "data_root": str(tmp_path / "missing")},
                      axes={"model.attention.reduction": [4, 8]})
    plan = load_plan(spec)  # a plan without its data still loads (dry runs, status, the manifest's costs)
    assert len(plan.runs) == 2 and len(set(plan.keys)) == 2

    assert main(["run", str(spec), "--results", str(results), "--no-tracking", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recipe.data_root" in err
    assert not results.exists(), "nothing may be written before the data are found"
    with pytest.raises(SpecError, match=r"recipe\.data_root"):
        sw.run_sweep(plan, results_dir=results, tracking=False, **FAST)

    # --dry-run answers "would run accept this?": it lists the runs under placeholder keys, then run's one line
    assert main(["run", str(spec), "--results", str(results), "--dry-run", "--no-tracking"]) == 2
    out, err = capsys.readouterr()
    assert "cannot be resolved" in out and "recipe.data_root" in out
    assert len(err.strip().splitlines()) == 1 and "recipe.data_root" in err
    assert main(["status", str(spec), "--results", str(results)]) == 0
    assert "cannot be resolved" in capsys.readouterr().out
    assert main(["status", str(spec), "--results", str(results), "--json"]) == 0
    assert "recipe.data_root" in json.loads(capsys.readouterr().out)["unresolved"]
    assert not results.exists()

    folder(tmp_path / "found")
    moved = plan.with_data_root(str(tmp_path / "found"))
    assert moved.unresolved is None and all(re.fullmatch(r"[0-9a-f]{16}", k) for k in moved.keys)


# --------------------------------------------------------------------------------------------------
# results version and code version in every record; stale records are never adopted


def test_code_version_has_package_version_commit_and_dirty_flag_and_works_without_git(
        monkeypatch: pytest.MonkeyPatch):
    from sesweep import __version__

    code_version.cache_clear()
    try:
        got = code_version()
        assert re.fullmatch(rf"{re.escape(__version__)}(\+g[0-9a-f]{{7,40}}(\.dirty)?)?", got), got
        monkeypatch.setenv("PATH", str(Path("/nonexistent")))  # no git to be found
        code_version.cache_clear()
        assert code_version() == __version__
    finally:
        code_version.cache_clear()


def test_records_and_tables_carry_the_results_version_code_version_and_data_id(
        tmp_path: Path, make_sweep, tracking_store):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("tagged"))
    uri = tracking_store(results, "tagged")
    sw.run_sweep(plan, results_dir=results, tracking=True, **FAST)
    record = json.loads((results / "tagged" / "runs" / f"{plan.keys[0]}.json").read_text())["record"]
    assert record["results_version"] == RESULTS_VERSION
    assert record["data_id"] == data_identity(plan.runs[0].spec.recipe) == "fake"
    assert record["code_version"] == code_version()
    import csv

    with open(results / "tagged" / "runs.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["results_version"], row["data_id"], row["code_version"]) == (str(RESULTS_VERSION), "fake",
                                                                              code_version())
    from mlflow import MlflowClient

    from sesweep.runner.tracking import ROLE_TAG

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tagged").experiment_id])
    (run,) = [r for r in runs if r.data.tags.get(ROLE_TAG) != "sweep"]  # the training run, not the sweep's
    tags = run.data.tags
    assert (tags["results_version"], tags["data_id"], tags["code_version"]) == (str(RESULTS_VERSION), "fake",
                                                                                code_version())


def _fake_record(run, **fields):
    return {"record": {"run_key": run.key, "status": "finished", "top1_err": 1.0, "variant": run.variant,
                       "seed": run.seed, **fields}, "curves": [], "hidden_widths": []}


def test_find_result_refuses_records_of_another_results_version_or_other_data(tmp_path: Path, make_sweep):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("strict"))
    run = plan.runs[0]
    path = results / "elsewhere" / "runs" / f"{run.key}.json"
    path.parent.mkdir(parents=True)
    for fields in ({}, {"results_version": 1, "data_id": "fake"},
                   {"results_version": RESULTS_VERSION, "data_id": "digits"},
                   {"results_version": RESULTS_VERSION + 1, "data_id": "fake"}):
        path.write_text(json.dumps(_fake_record(run, **fields)))
        assert find_result(run.key, plan, results) is None, fields
    path.write_text(json.dumps(_fake_record(run, results_version=RESULTS_VERSION, data_id="fake")))
    assert find_result(run.key, plan, results) == (path, json.loads(path.read_text()))


def test_status_shows_runs_recorded_by_an_older_results_version(
        tmp_path: Path, make_sweep, capsys: pytest.CaptureFixture[str]):
    results = tmp_path / "results"
    spec = make_sweep("old", axes={"model.attention.reduction": [4, 8]}, seeds=(0, 1))
    plan = load_plan(spec)
    runs = results / "old" / "runs"
    runs.mkdir(parents=True)
    # records written before this issue: other keys (the key now covers the results version), no version field
    for i, run in enumerate(plan.runs[:3]):
        old = _fake_record(run, **({"results_version": 1} if i == 2 else {}))
        old["record"]["run_key"] = f"{i:016x}"
        (runs / f"{i:016x}.json").write_text(json.dumps(old))
    current = _fake_record(plan.runs[3], results_version=RESULTS_VERSION, data_id="fake")
    (runs / f"{plan.runs[3].key}.json").write_text(json.dumps(current))

    status = sweep_status(plan, results_dir=results)
    line = f"3 runs recorded by results version 1 (older than {RESULTS_VERSION}): not reused, will be trained again"
    assert line in status.table()
    assert main(["status", str(spec), "--results", str(results)]) == 0
    assert line in capsys.readouterr().out
    assert main(["status", str(spec), "--results", str(results), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["older_results"] == [{"results_version": 1, "runs": 3}]
    dry = sw.run_sweep(plan, results_dir=results, tracking=False, dry_run=True, **FAST)
    assert dry.done == 1 and dry.older_results == [{"results_version": 1, "runs": 3}]
