"""Issue 21.3: one adjusted p per contrast. A variant's Δ vs its baseline is one contrast; every table that
prints it (the factor tables, overall.csv, comparisons.csv) prints the same Holm p, from one family
definition, and the caption names that family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_stats import metrics_for, write_sweep  # tests/ is on sys.path

from sesweep import publish, results
from sesweep.analysis import factors, tables


def outcome(variant: str, seed: int) -> dict[str, float]:
    shift = {"resnet": 0.0, "r=4": -0.6, "r=8": -0.2, "r=16": 0.1, "tanh": -0.5, "relu": 0.3, "max_pool": -0.1}
    noise = np.random.default_rng([seed, *variant.encode()]).normal(0, 0.3)  # every variant its own noise
    return metrics_for(10.0 + shift[variant] + noise, 1.0, 270_000 + len(variant))


def test_a_contrast_has_one_holm_p_in_every_table(tmp_path):
    variants = {"resnet": {"model.attention.kind": "none"}, "r=16": {}, "r=4": {"model.attention.reduction": 4},
                "r=8": {"model.attention.reduction": 8}, "tanh": {"model.attention.gate": "tanh"},
                "relu": {"model.attention.gate": "relu"}, "max_pool": {"model.attention.pool": "max"}}
    spec = write_sweep(tmp_path, "fam", variants, [0, 1, 2, 3, 4], outcome, excitation=False,
                       extra_spec={"tables": ["ratio", "squeeze", "excitation", "overall"]})
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    tables.write_tables(an, tmp_path / "tables")
    comps = pd.read_csv(tmp_path / "tables" / "comparisons.csv")
    vs_base = comps[(comps["factor"] == "baseline") & (comps["metric"] == "top1_err")].set_index("variant")
    assert vs_base["family_size"].nunique() == 1 and vs_base["family_size"].iloc[0] >= 6
    checked = 0
    for name in ("table10_ratio", "table11_squeeze", "table12_excitation", "overall"):
        frame = pd.read_csv(tmp_path / "tables" / f"{name}.csv")
        for _, row in frame.dropna(subset=["p_t"]).iterrows():
            assert row["p_holm"] == pytest.approx(vs_base.at[row["variant"], "p_holm"]), (name, row["variant"])
            checked += 1
    assert checked >= 10
    files = publish.run_report(spec, results_root=tmp_path / "results", out=tmp_path / "r", figures=False)
    md = files.markdown.read_text(encoding="utf-8")
    assert "one family per table" not in md
