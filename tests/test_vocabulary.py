"""The README lists the names a sweep file's ``tables:`` and ``figures:`` may use, as the code allows them."""

from __future__ import annotations

from pathlib import Path

from sesweep.vocabulary import describe

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_lists_every_allowed_table_and_figure_name():
    text = " ".join(README.read_text(encoding="utf-8").split())
    for field in ("tables", "figures"):
        assert f"**Names for `{field}:`**" in text and describe(field) in text, f"README: regenerate the {field} names"
