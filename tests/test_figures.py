"""Figures that are right by construction: layout measured on the rendered figure, each factor figure showing its
factor only (the others held), a log₂ ratio axis ticked at the tested r, no intervals from too few seeds, one
colour per variant everywhere.

Artists drawn for a variant carry its name as their ``gid``; the tests read what a figure shows from that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.colors as mcolors
import pandas as pd
import pytest
from matplotlib.collections import Collection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image
from test_stats import adaptive_details, metrics_for, write_sweep  # tests/ is on sys.path

from sesweep import results
from sesweep.analysis import factors, figures
from sesweep.analysis.figures import layout as figure_layout
from sesweep.analysis.figures import style

Drawn = dict[str, tuple[Figure, figures.FigureFile]]

R8 = {"model.attention.reduction": 8}
#: a smoke-like sweep: r axis at avg/sigmoid, pool and gate variants at r=8 (the base r), a learned ratio
MIXED = {"resnet": {"model.attention.kind": "none"},
         **{f"r={r}": {"model.attention.reduction": r} for r in (4, 8, 16)},
         "max_pool": {**R8, "model.attention.pool": "max"},
         "tanh": {**R8, "model.attention.gate": "tanh"},
         "relu": {**R8, "model.attention.gate": "relu"},
         "learned": {"model.attention.adaptive": "learnable", "model.attention.reduction": 4,
                     "model.attention.cost_weight": 1}}
BASE_R8 = {"model": {"arch": "resnet20", "attention": {"reduction": 8}}}


def outcome_for(variants: Mapping[str, Mapping[str, Any]]) -> Callable[[str, int], dict[str, float]]:
    """Errors spread over the variants, seeds 0.4 apart; params and MACs shrink with r (learned in between)."""
    names = list(variants)

    def outcome(v: str, seed: int) -> dict[str, float]:
        r = float(variants[v].get("model.attention.reduction", 16))
        se = 0 if variants[v].get("model.attention.kind") == "none" else int(64_000 / r)
        se = 6_000 if "model.attention.adaptive" in variants[v] else se
        out = metrics_for(3.0 + 0.5 * names.index(v) + 0.4 * seed, 1.0, 272_474 + se, macs=41_000_000 + 2 * se,
                          infer_ms=20.0 + se / 1e3 + seed)
        if variants[v].get("model.attention.adaptive") == "dynamic":
            out |= {"se_budget": 0.5, "se_active_width": 0.5}
        return out

    return outcome


def analysis(root: Path, name: str, variants: Mapping[str, Mapping[str, Any]], seeds: list[int], *,
             baseline: str | None = "resnet", shared: bool | None = False, **kw: Any) -> factors.Analysis:
    """A synthetic sweep written as the runner writes it; ``shared``: every run's ``timed_shared``."""
    spec = write_sweep(root, name, variants, seeds, outcome_for(variants), baseline=baseline,
                       details=adaptive_details, **kw)
    if shared is not None:
        path = root / "results" / name / "runs.csv"
        runs = pd.read_csv(path)
        runs = runs.assign(host="vm", device_name="cpu", timed_shared=shared)
        runs.to_csv(path, index=False)
    return factors.analyze(results.load_sweep(spec, root / "results"))


def draw_all(an: factors.Analysis, out: Path, real: bool = False, formats: tuple[str, ...] = ("png",)) -> Drawn:
    """make_figures, keeping each figure object next to its files (slug → (Figure, FigureFile)). Unless ``real``,
    only ``formats`` at 100 dpi (the layout is in inches and points, the same at any dpi; writing the PDF's fonts
    takes as long as drawing)."""
    drawn: Drawn = {}
    save = style.save

    def spy(fig: Figure, *args: Any, **kwargs: Any) -> figures.FigureFile:
        file = save(fig, *args, **kwargs)
        drawn[file.slug] = (fig, file)
        return file

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(style, "save", spy)      # the builders save through the style module, at call time
        if not real:
            mp.setattr(style, "FORMATS", formats)
            mp.setattr(style, "DPI", 100)
        files, _ = figures.make_figures(an, out)
    assert [f.slug for f in files] == list(drawn)
    return drawn


def shown(fig: Figure) -> set[str]:
    """The variants a figure draws (their artists' gids)."""
    return {a.get_gid() for ax in fig.axes for a in ax.get_children() if a.get_gid()}


def category_labels(fig: Figure, panel: int = 0) -> list[str]:
    """A categorical figure's x tick labels without the n line under them."""
    return [t.get_text().split("\n")[0] for t in fig.axes[panel].get_xticklabels()]


# --------------------------------------------------------------------------------------------------
# sweeps


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[factors.Analysis, Drawn]:
    root = tmp_path_factory.mktemp("mixed")
    an = analysis(root, "mixed", MIXED, [0, 1], extra_spec=BASE_R8, excitation=False)
    return an, draw_all(an, root / "fig", formats=())   # what is drawn, not how it looks: no files


def long_name(i: int, tag: str) -> str:
    return f"{i:02d}-{tag}-{'-a-rather-long-variant-name' * 2}"[:40]


#: 12 variants named with 40 characters, varying r, pool, gate, stages and the adaptive knobs; two of them
#: differ only in a key that is no factor, so the labels are the long names
WIDE_CONFIGS = [("resnet", {"model.attention.kind": "none"}),
                *((f"r{r}", {"model.attention.reduction": r}) for r in (2, 4, 8, 16)),
                ("r8-eval256", {**R8, "recipe.eval_batch_size": 256}),
                ("max", {**R8, "model.attention.pool": "max"}),
                ("tanh", {**R8, "model.attention.gate": "tanh"}),
                ("relu", {**R8, "model.attention.gate": "relu"}),
                ("stages34", {**R8, "model.attention.stages": [3, 4]}),
                ("learned", {"model.attention.adaptive": "learnable", "model.attention.reduction": 2,
                             "model.attention.cost_weight": 1}),
                ("dynamic", {"model.attention.adaptive": "dynamic", "model.attention.reduction": 2,
                             "model.attention.cost_weight": 1})]
WIDE = {long_name(i, tag): config for i, (tag, config) in enumerate(WIDE_CONFIGS)}
#: the smallest sweeps each figure kind can be drawn for: two variants
SMALL = {"ratio": {"r=4": {"model.attention.reduction": 4}, "r=16": {"model.attention.reduction": 16}},
         "pool": {"avg": {}, "max": {"model.attention.pool": "max"}},
         "adaptive": {"r=4": {"model.attention.reduction": 4},
                      "learned": {"model.attention.adaptive": "learnable", "model.attention.reduction": 4,
                                  "model.attention.cost_weight": 1}}}


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> tuple[factors.Analysis, Drawn]:
    root = tmp_path_factory.mktemp("wide")
    an = analysis(root, "wide", WIDE, [0, 1], baseline=long_name(0, "resnet"), extra_spec=BASE_R8, excitation=False)
    return an, draw_all(an, root / "fig")


# --------------------------------------------------------------------------------------------------
# layout


def test_the_layout_check_catches_a_legend_wider_than_the_figure():
    with figures.paper_style():
        fig = figures.new_figure(figures.COLUMN_IN, 2.5)
        ax = fig.add_subplot()
        lines = ax.plot([1, 2], [1, 2], label="a label long enough to leave a one-column figure on both sides")
        ax.set_xticks([1, 1.01], ["first", "second"])
        fig.legend(handles=lines, loc="outside lower center")
        ax.legend(handles=lines, labels=["inside"])
        ax.annotate("r=8", (1.5, 1.5))
        ax.annotate("r=16", (1.5, 1.5))
        problems = figure_layout.layout_problems(fig)
    assert any(p.startswith("outside the figure: legend") for p in problems)                       # (a)
    assert any(p.startswith("overlapping tick labels on axes 0 x: 'first' and 'second'") for p in problems)  # (b)
    assert "legend ['inside'] overlaps the plotting area of axes 0" in problems                      # (c)
    assert "overlapping texts: 'r=8' and 'r=16'" in problems                                         # (d)
    with figures.paper_style():
        clean = figures.new_figure(figures.COLUMN_IN, 2.5)
        clean.add_subplot().plot([1, 2], [1, 2], label="a short label")
        figure_layout.legend_below(clean, clean.axes[0].get_lines())
        assert figure_layout.layout_problems(clean) == []


def assert_clean(drawn: Drawn) -> None:
    """No layout problem (measured by save on the drawn figure) and the image is the whole figure."""
    for slug, (fig, file) in drawn.items():
        assert file.problems == (), slug
        with Image.open(file.png) as im:   # no bbox_inches="tight": the image is the figure, nothing cut
            dpi = round(im.info["dpi"][0])
            assert im.size == tuple(round(x * dpi) for x in fig.get_size_inches()), slug
        assert not file.pdf.exists() or file.pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("name", list(SMALL))
def test_every_figure_of_two_variants_fits(name, tmp_path):
    real = name == "pool"  # one sweep at the real dpi, with PDFs and the excitation figure
    an = analysis(tmp_path, name, SMALL[name], [0, 1, 2], baseline=None, excitation=real)
    drawn = draw_all(an, tmp_path / "fig", real=real)
    kinds = {"ratio": {"ratio", "pareto_params", "pareto_macs", "pareto_infer_ms", "curves"},
             "pool": {"squeeze", "curves", "excitation_avg"},
             "adaptive": {"pareto_params", "pareto_macs", "pareto_infer_ms", "adaptive_pareto", "adaptive_ratios",
                          "adaptive_trajectories", "curves"}}[name]
    assert kinds <= set(drawn)
    assert_clean(drawn)
    if real:
        assert all(file.pdf.is_file() for _, file in drawn.values())
        with Image.open(drawn["squeeze"][1].png) as im:
            assert round(im.info["dpi"][0]) == figures.DPI >= 200


@pytest.mark.slow  # > 5 s: out of the fast tier
def test_every_figure_of_twelve_long_named_variants_fits(wide):
    an, drawn = wide
    assert len(an.order) == 12 and factors.variant_labels(an)[an.order[1]] == an.order[1]  # the long names
    assert {"ratio", "squeeze", "gate", "stages", "pareto_params", "pareto_macs", "pareto_infer_ms",
            "adaptive_pareto", "adaptive_ratios", "adaptive_trajectories", "curves"} <= set(drawn)
    assert_clean(drawn)


# --------------------------------------------------------------------------------------------------
# what each figure shows


def test_squeeze_and_gate_figures_show_only_their_factor_at_the_held_levels(mixed):
    _, drawn = mixed
    squeeze, sq_file = drawn["squeeze"]
    gate, gate_file = drawn["gate"]
    assert category_labels(squeeze) == ["avg", "max"]
    assert category_labels(gate) == ["sigmoid", "tanh", "relu"]
    assert shown(squeeze) == {"r=8", "max_pool", "resnet"}
    assert shown(gate) == {"r=8", "tanh", "relu", "resnet"}
    assert sq_file.factor == "model.attention.pool" and gate_file.factor == "model.attention.gate"
    assert "others held at r=8, gate=sigmoid (the sweep's base values)" in sq_file.caption
    assert "others held at r=8, pool=avg (the sweep's base values)" in gate_file.caption
    assert "No CI is drawn for n < 3 seeds" in sq_file.caption


def test_ratio_figure_has_a_log2_axis_ticked_at_the_tested_ratios_and_fixed_ratios_only(mixed):
    _, drawn = mixed
    fig, file = drawn["ratio"]
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    assert list(ax.get_xticks()) == [4, 8, 16]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "8", "16"]
    assert ax.get_xticks(minor=True).size == 0
    assert shown(fig) == {"r=4", "r=8", "r=16", "resnet"}
    assert file.factor == "model.attention.reduction"
    assert "others held at pool=avg, gate=sigmoid" in file.caption


def test_factor_figures_panel_per_architecture(tmp_path):
    variants = {f"{arch}-{pool}": {"model.arch": arch, "model.attention.pool": pool}
                for arch in ("resnet20", "resnet32") for pool in ("avg", "max")}
    an = analysis(tmp_path, "arch", variants, [0, 1], baseline=None, excitation=False,
                  extra_spec={"figures": ["squeeze"]})
    drawn = draw_all(an, tmp_path / "fig")
    fig, file = drawn["squeeze"]
    assert [ax.get_title() for ax in fig.axes] == ["arch=resnet20", "arch=resnet32"]
    assert file.factor == "model.attention.pool"
    assert category_labels(fig, 0) == category_labels(fig, 1) == ["avg", "max"]
    assert_clean(drawn)


def test_curves_draw_seeds_not_a_band_for_few_seeds(mixed, tmp_path):
    fig, file = mixed[1]["curves"]
    assert not any(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
    seed_lines = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "r=4"]
    assert len(seed_lines) == 3                             # two seeds thin, the mean thick
    assert sorted(ln.get_linewidth() for ln in seed_lines)[-1] > 2 * sorted(ln.get_linewidth() for ln in seed_lines)[0]
    assert "each seed a thin line" in file.caption
    many = analysis(tmp_path, "many", SMALL["ratio"], list(range(6)), baseline=None, excitation=False,
                    extra_spec={"figures": ["curves"]})
    fig6, file6 = draw_all(many, tmp_path / "fig", formats=())["curves"]
    assert any(isinstance(c, PolyCollection) for c in fig6.axes[0].collections)
    assert "95% CI band" in file6.caption


def test_error_bars_only_where_n_allows(mixed, tmp_path):
    def errorbars(fig: Figure) -> int:
        return sum(1 for ax in fig.axes for c in ax.containers if type(c).__name__ == "ErrorbarContainer"
                   and c.has_yerr)

    for slug in ("squeeze", "ratio", "pareto_params"):
        assert errorbars(mixed[1][slug][0]) == 0, slug
    three = analysis(tmp_path, "three", SMALL["ratio"], [0, 1, 2], baseline=None, excitation=False,
                     extra_spec={"figures": ["ratio", "params"]})
    drawn = draw_all(three, tmp_path / "fig", formats=())
    for slug in ("ratio", "pareto_params"):
        assert errorbars(drawn[slug][0]) == 2, slug


def test_excitation_figure_drawn_whenever_saved(tmp_path):
    asked = analysis(tmp_path, "asked", SMALL["pool"], [0], baseline=None, extra_spec={"figures": ["curves"]})
    drawn = draw_all(asked, tmp_path / "fig", formats=())
    assert list(drawn) == ["curves", "excitation_avg", "excitation_max"]   # not asked for, but the runs saved it
    none = analysis(tmp_path, "none", SMALL["pool"], [0], baseline=None, excitation=False,
                    extra_spec={"figures": ["squeeze"]})
    assert not any(s.startswith("excitation_") for s in draw_all(none, tmp_path / "fig", formats=()))


def test_latency_pareto_only_from_unshared_timings(tmp_path):
    only = {"excitation": False, "extra_spec": {"figures": ["latency"]}}
    shared = analysis(tmp_path / "a", "shared", SMALL["ratio"], [0, 1], baseline=None, shared=True, **only)
    assert "pareto_infer_ms" not in draw_all(shared, tmp_path / "a" / "fig", formats=())
    files, notes = figures.make_figures(shared, tmp_path / "a" / "fig")      # nothing else asked for: no file
    assert files == [] and any(n.startswith("no latency Pareto figure") for n in notes)
    alone = analysis(tmp_path / "b", "alone", SMALL["ratio"], [0, 1], baseline=None, shared=False, **only)
    _, file = draw_all(alone, tmp_path / "b" / "fig", formats=())["pareto_infer_ms"]
    assert "did not share their device" in file.caption


def _rgb(artist: Any) -> tuple[float, ...]:
    if isinstance(artist, Line2D):
        return mcolors.to_rgb(artist.get_color())
    assert isinstance(artist, Collection)
    return tuple(float(x) for x in artist.get_facecolor()[0][:3])


def test_one_colour_per_variant_in_every_figure(mixed):
    an, drawn = mixed
    colors = figures.variant_colors(an.order, an.baseline)
    seen: dict[str, set[str]] = {}
    for slug in ("squeeze", "gate", "ratio", "pareto_params", "curves", "adaptive_pareto", "adaptive_ratios"):
        fig = drawn[slug][0]
        for ax in fig.axes:
            for a in ax.get_children():
                v = a.get_gid()
                if v:
                    assert _rgb(a) == pytest.approx(colors[v]), (slug, v)
                    seen.setdefault(v, set()).add(slug)
    assert {"squeeze", "ratio", "pareto_params", "curves"} <= seen["r=8"]
    assert {"pareto_params", "curves", "adaptive_pareto", "adaptive_ratios"} <= seen["learned"]


def test_figure_files_name_their_factor(mixed):
    factors = {slug: file.factor for slug, (_, file) in mixed[1].items()}
    assert factors["ratio"] == "model.attention.reduction" and factors["squeeze"] == "model.attention.pool"
    assert all(f is None for s, f in factors.items() if s.startswith(("excitation", "adaptive")))
    assert json.dumps(sorted(factors, key=str))  # plain strings


def test_curves_with_test_scores_every_other_epoch_share_the_epoch_axis_and_mark_the_points(tmp_path):
    an = analysis(tmp_path, "sparse", SMALL["ratio"], [0, 1], baseline=None, excitation=False,
                  extra_spec={"figures": ["curves"]})
    curves = an.sweep.curves
    odd = curves["epoch"] % 2 == 1  # recipe.eval_every: 2 leaves the test columns empty on odd epochs
    curves.loc[odd, ["top1_err", "top5_err", "test_loss"]] = float("nan")
    fig, file = draw_all(an, tmp_path / "fig", formats=())["curves"]
    top, bottom = fig.axes[:2]
    assert top.get_xlim() == bottom.get_xlim()  # before: the top panel's axis began at epoch 2
    means = [ln for ln in top.get_lines() if ln.get_linewidth() > 1]
    assert means and all(ln.get_marker() == "o" and not any(x % 2 for x in ln.get_xdata()) for ln in means)
    assert all(ln.get_marker() in ("None", None, "") for ln in bottom.get_lines())
    assert "dots: the epochs with a test evaluation" in file.caption


# --------------------------------------------------------------------------------------------------
# read at a glance (issue 22.7): zoomed curves, the excitation at initialisation, relative cost axes, one label


def _lab(rgb: Any) -> Any:
    """sRGB → CIELAB (D65), for colour differences as the eye sees them (CIE76 ΔE)."""
    import numpy as np

    c = np.asarray(mcolors.to_rgb(rgb), dtype=float)
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    x, y, z = xyz / np.array([0.95047, 1.0, 1.08883])

    def f(t: float) -> float:
        return float(np.cbrt(t)) if t > 0.008856 else 7.787 * t + 16 / 116

    return np.array([116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))])


def test_curves_zoom_on_the_last_epochs_one_panel_per_factor_with_the_baseline_in_each(mixed):
    fig, file = mixed[1]["curves"]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["test error, every epoch", "training loss, every epoch"]
    zoomed = {t.removesuffix(": last epochs"): ax for t, ax in zip(titles, fig.axes, strict=True) if "last" in t}
    assert list(zoomed) == ["r", "pool", "gate", "adaptive"]
    expect = {"r": {"r=4", "r=8", "r=16"}, "pool": {"r=8", "max_pool"}, "gate": {"r=8", "tanh", "relu"},
              "adaptive": {"r=8", "learned"}}
    for name, ax in zoomed.items():
        drawn = {ln.get_gid() for ln in ax.get_lines() if ln.get_gid()}
        assert drawn == expect[name] | {"resnet"}, name          # the baseline in every panel
        assert ax.get_xlim()[0] > 2                               # the last epochs of 5 only
        span = ax.get_ylim()[1] - ax.get_ylim()[0]
        assert span < (fig.axes[0].get_ylim()[1] - fig.axes[0].get_ylim()[0]) / 3, name
    assert "the baseline dashed in every panel" in file.caption


def test_the_excitation_figure_shows_the_same_net_at_initialisation_and_says_what_changed(tmp_path):
    an = analysis(tmp_path, "exc", SMALL["pool"], [0], baseline=None, extra_spec={"figures": ["squeeze"]})
    for detail in an.sweep.details.values():         # the initial profile: flat, and the same for every class
        detail["excitation_init"] = [{**row, "mean": [0.5 + 0.01 * (i % 3) for i in range(len(row["mean"]))]}
                                     for row in detail["excitation"]]
    fig, file = draw_all(an, tmp_path / "fig", formats=())["excitation_avg"]
    assert all(any(ln.get_gid() == "init" for ln in ax.get_lines()) for ax in fig.axes)
    assert "the same net at initialisation" in file.caption and "What training changed" in file.caption
    assert all("ρ with init" in ax.get_title() for ax in fig.axes)
    for detail in an.sweep.details.values():
        del detail["excitation_init"]              # a run from before the initial profile was recorded
    fig, file = draw_all(an, tmp_path / "old", formats=())["excitation_avg"]
    assert not any(ln.get_gid() == "init" for ax in fig.axes for ln in ax.get_lines())
    assert "No excitation at initialisation was recorded" in file.caption


def test_excitation_class_colours_stay_distinct(tmp_path):
    an = analysis(tmp_path, "exc", SMALL["pool"], [0], baseline=None, extra_spec={"figures": ["squeeze"]})
    fig, _ = draw_all(an, tmp_path / "fig", formats=())["excitation_avg"]
    classes = [ln for ln in fig.axes[-1].get_lines() if ln.get_label().startswith("class ")]
    assert len(classes) == 4
    import numpy as np

    closest = min(float(np.linalg.norm(_lab(a.get_color()) - _lab(b.get_color())))
                  for i, a in enumerate(classes) for b in classes[i + 1:])
    assert closest > 30, closest   # CIE76 ΔE; seaborn's "dark" gave classes 1 and 3 a ΔE of 17 (two reds)


def test_cost_axes_say_how_big_a_change_is_relative_to_the_baseline(mixed):
    drawn = mixed[1]
    for slug, name in (("pareto_params", "params"), ("pareto_macs", "MACs")):
        ax = drawn[slug][0].axes[0]
        assert ax.get_xlabel().startswith(f"{name}, Δ vs resnet (")
        star = [ln for ln in ax.get_lines() if ln.get_gid() == "resnet" and ln.get_marker() == "*"]
        assert star and star[0].get_xdata()[0] == pytest.approx(0.0)      # the baseline at 0%
        assert "as the change in % of resnet's" in drawn[slug][1].caption
    ratio = drawn["ratio"][0]
    twin = ratio.axes[-1]
    assert twin.get_ylabel() == "params, Δ vs resnet (%)" and twin.get_ylim()[0] <= 0   # from 0: no cliff
    assert drawn["adaptive_pareto"][0].axes[1].get_xlabel().startswith("MACs, Δ vs resnet (")


def test_one_label_per_variant_in_tables_and_figures(mixed):
    """Every legend names a variant as the tables' variant column does (the learned variant is "learned", not
    "r=4, adaptive=learnable, cost_weight=1")."""
    import re

    from sesweep.analysis import tables

    an, drawn = mixed
    names = {v for t in tables.build_tables(an)[0] for v in t.shown.get("variant", [])}
    seen = set()
    for slug, (fig, _) in drawn.items():
        for leg in fig.legends:
            for text in leg.get_texts():
                label = text.get_text().replace("\n", " ")
                m = re.match(r"^(.*?)(?: \(baseline\))?(?:,| \()? ?n=\d+\)?$", label)
                if m:
                    assert m.group(1) in names, (slug, label)
                    seen.add(m.group(1))
    assert {"learned", "max_pool", "resnet"} <= seen


def test_a_pareto_caption_promises_a_front_line_only_where_one_is_drawn(tmp_path):
    """The baseline both cheapest and best: the front is one point, so no line, and the caption says why."""
    variants = {"resnet": {"model.attention.kind": "none"}, "se_r8": {"model.attention.reduction": 8}}
    errors = {"resnet": 10.0, "se_r8": 11.0}
    spec = write_sweep(tmp_path, "dominated", variants, [0, 1, 2],
                       lambda v, s: metrics_for(errors[v] + 0.1 * s, 1.0, 272_474 + (0 if v == "resnet" else 4_000)),
                       excitation=False, extra_spec={"figures": ["pareto"]})
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    fig, file = draw_all(an, tmp_path / "fig", formats=())["pareto_params"]
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "Pareto front"]
    assert "line: the Pareto front" not in file.caption
    assert "no front line: resnet is both the cheapest and the best" in file.caption
