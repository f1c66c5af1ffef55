"""The report in a real browser (headless Chromium, Debian's package): at a desktop's
width no element is wider than the viewport; at a phone's only a table inside its
scrolling box may be; the page never scrolls sideways; every image loads. Skips, saying
how to install it, where Chromium is absent; .ci/run installs it.
"""
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resnets.report import write_report

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                       "google-chrome")) if p), None)
# Measures the page once it has loaded and leaves the answer in the title (the page itself
# has no scripts: this copy gets one). Elements are compared with the viewport's width.
PROBE = """<script>const inBox = INBOX; window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().width > vw + 0.5)
    .filter(e => !(inBox && e.parentElement.closest(".scroll")))
    .map(e => e.tagName + (e.id ? "#" + e.id : "")).slice(0, 5);
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  document.title = JSON.stringify({vw, wide, scroll: document.documentElement.scrollWidth,
                                   broken, images: document.images.length});
});</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=5000"]


def measure(page, tmp_path, width: int, in_box: bool) -> dict:
    """The probe's answer at ``width``; with ``in_box``, what is inside a scrolling box
    (a table on a phone) may be wider than the viewport, the box itself not."""
    probe = tmp_path / f"probe-{width}.html"
    script = PROBE.replace("INBOX", "true" if in_box else "false")
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
