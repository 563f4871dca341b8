"""The report in a real browser: headless Chromium at 1,280 px, no horizontal overflow, every image loaded.

A copy of the report gets a few lines of script that write the page's measurements into the DOM;
``chromium --dump-dom`` prints the DOM after the load event, and the test reads them back.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from test_stats import write_adaptive_sweep  # tests/ is on sys.path

from sesweep import publish

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

MEASURE = """<script>
window.addEventListener("load", () => {
  const tables = [...document.querySelectorAll("table")].map(t => ({
    scroll: t.scrollWidth, client: t.clientWidth, box: t.parentElement.clientWidth,
    right: t.getBoundingClientRect().right}));
  const images = [...document.images].map(i => i.complete && i.naturalWidth > 0);
  const out = {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
               tables: tables, images: images};
  const pre = document.createElement("pre");
  pre.id = "measurements";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip(f"chromium not installed: none of {', '.join(BROWSERS)} is on PATH")
    return found


def measure(page: str, tmp_path, width: int = 1280) -> dict:
    """Load ``page`` in headless Chromium at ``width`` px and return what the script measured."""
    copy = tmp_path / "measured.html"
    copy.write_text(page.replace("</body>", f"{MEASURE}\n</body>"), encoding="utf-8")
    done = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},900", f"--user-data-dir={tmp_path / 'profile'}",
                           "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=60)
    found = re.search(r'<pre id="measurements">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, f"no measurements in the dumped DOM (exit {done.returncode}): {done.stderr[-1500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory):
    """The adaptive sweep: the widest tables the report has (16 columns), figures of column and page width."""
    browser()                                          # skip before building anything when there is none
    root = tmp_path_factory.mktemp("browser")
    spec = write_adaptive_sweep(root, extra_spec={"figures": ["ratio", "adaptive"]})
    return publish.run_report(spec, results_root=root / "results", out=root / "report")


def test_report_fits_1280_px_and_every_image_loads(wide_report, tmp_path):
    page = wide_report.html.read_text(encoding="utf-8")
    m = measure(page, tmp_path)
    assert m["innerWidth"] == 1280
    assert m["scrollWidth"] <= m["innerWidth"], "the page scrolls sideways"
    assert len(m["images"]) == len(wide_report.figures) >= 2 and all(m["images"]), m["images"]
    assert len(m["tables"]) >= 5                      # Table 10, adaptive, overall, runs, every run
    for i, t in enumerate(m["tables"]):
        assert t["scroll"] <= min(t["client"], t["box"]) + 1, f"table {i} is cut off: {t}"
        assert t["right"] <= m["innerWidth"], f"table {i} runs past the window: {t}"


def test_the_measurement_catches_an_overflowing_page(wide_report, tmp_path):
    """The check itself: a 2,000 px block must be seen as overflow (so a pass above means something)."""
    page = wide_report.html.read_text(encoding="utf-8")
    m = measure(page.replace("<body>", '<body><div style="width:2000px;height:1px"></div>', 1), tmp_path)
    assert m["scrollWidth"] > m["innerWidth"]
