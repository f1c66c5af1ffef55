"""The report and the history page in a real browser (headless Chromium, Debian's
package): at a desktop's width no element is wider than the viewport; at a phone's only a
table inside its scrolling box may be; the page never scrolls sideways; every image loads
from the page itself; no script runs but the probe, and hostile case names read as text.
Skips, saying how to install it, where Chromium is absent; .ci/run installs it.
"""
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from records import CASE, OTHER, RESNET18, write_cases

from resnets import cli
from resnets.case import Case
from resnets.report import write_report

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                       "google-chrome")) if p), None)
# Measures the page once it has loaded and leaves the answer in the title (the page itself
# has no scripts: this copy gets one). Elements are compared with the viewport's width.
PROBE = """<script>const inBox = INBOX, needle = NEEDLE;
window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().width > vw + 0.5)
    .filter(e => !(inBox && e.parentElement.closest(".scroll")))
    .map(e => e.tagName + (e.id ? "#" + e.id : "")).slice(0, 5);
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  const external = [...document.images].filter(i => !i.src.startsWith("data:")).length;
  const split = [];  // header words drawn on two lines ("devi/ce")
  for (const th of document.querySelectorAll("th")) {
    for (const t of th.childNodes) {
      if (t.nodeType !== 3) continue;
      for (const m of t.data.matchAll(/[^\\s-]+/g)) {  // a hyphen may break
        const r = document.createRange();
        r.setStart(t, m.index); r.setEnd(t, m.index + m[0].length);
        if (new Set([...r.getClientRects()].map(x => Math.round(x.top))).size > 1)
          split.push(m[0]);
      }
    }
  }
  document.title = JSON.stringify({vw, wide, scroll: document.documentElement.scrollWidth,
                                   broken, images: document.images.length, external,
                                   scripts: document.scripts.length, split,
                                   found: document.body.innerText.includes(needle)});
});</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=5000"]


def measure(page, tmp_path, width: int, in_box: bool, needle: str = "") -> dict:
    """The probe's answer at ``width``; with ``in_box``, what is inside a scrolling box
    (a table on a phone) may be wider than the viewport, the box itself not; ``found``:
    whether the page's text holds ``needle``."""
    probe = tmp_path / f"probe-{width}.html"
    script = PROBE.replace("INBOX", "true" if in_box else "false").replace(
        "NEEDLE", json.dumps(needle).replace("<", "\\u003c"))
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / f'profile-{width}'}",
                        f"--window-size={width},900", "--dump-dom", probe.as_uri()],
                       capture_output=True, text=True, timeout=180)
    title = re.search(r"<title>(.*?)</title>", r.stdout, re.S)
    assert title, r.stderr[-2000:]
    return json.loads(html.unescape(title.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The widest report we have: the committed CPU and H100 reference runs together."""
    return write_report([ROOT / "reports" / "reference-cpu", ROOT / "reports" / "reference-h100"],
                        tmp_path_factory.mktemp("report"))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium "
                    "(.ci/run installs it where it can)")
@pytest.mark.parametrize("width", [1400, 420])
def test_the_report_fits_desktop_and_phone_and_its_images_load(report, tmp_path, width):
    """On a desktop every table fits; on a phone a table may scroll inside its box."""
    got = measure(report / "index.html", tmp_path, width, in_box=width < 1000)
    assert got["wide"] == [], got
    assert got["scroll"] <= got["vw"], got  # no sideways page scroll
    assert got["images"] >= 4 and got["broken"] == 0, got
    assert got["external"] == 0 and got["scripts"] == 1, got  # only the probe runs
    assert got["split"] == [], got["split"]  # no header breaks inside a word


HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def history_page(tmp_path_factory) -> Path:
    """A history of four cases (two with shifts, one with a hostile name, one with a
    bisect result) over 12 runs."""
    root = tmp_path_factory.mktemp("history")
    levels = {CASE: [1.0] * 8 + [1.3] * 4, OTHER: [1.0] * 12,
              RESNET18: [1.0] * 5 + [0.8] * 7,
              Case(f"m{HOSTILE}", input_shape=(1, 8, 8)): [1.0] * 6 + [1.25] * 6}
    write_cases(root / "runs", levels, noise=0.01, seed=9)
    (root / "runs" / "run08" / "bisect.json").write_text(json.dumps(
        {CASE.id: {"first_bad": "08" + "c" * 38, "change": 1.3, "low": 1.25, "high": 1.35}}))
    assert cli.main(["history", str(root / "runs" / "*"), "-o", str(root / "out")]) == 1
    return root / "out" / "index.html"


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium "
                    "(.ci/run installs it where it can)")
@pytest.mark.parametrize("width", [1400, 420])
def test_the_history_page_fits_loads_its_images_and_shows_hostile_names_as_text(
        history_page, tmp_path, width):
    got = measure(history_page, tmp_path, width, in_box=width < 1000,
                  needle=f"m{HOSTILE}")
    assert got["wide"] == [] and got["scroll"] <= got["vw"], got
    assert got["images"] == 4 + 3 and got["broken"] == 0, got  # sparklines and trend plots
    assert got["external"] == 0 and got["scripts"] == 1, got  # the payload never runs
    assert got["found"], got  # ... and reads as the text it is
