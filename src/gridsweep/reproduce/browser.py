"""Open a report in headless Chromium and check that every image decoded.

Used by the tests and available to anyone who publishes a report:
``python -m gridsweep.reproduce.browser report.html`` exits 0 when every ``<img>`` has a
positive natural width. A copy of the page with a small probe script appended is
loaded (the report itself is not modified); the probe writes each image's
``naturalWidth`` into the DOM, which Chromium dumps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["find_chromium", "check_images", "ImageCheck", "screenshot", "WINDOW"]

#: The browser window of the checks, (width, height) in CSS pixels: a laptop's first screen.
WINDOW = (1280, 800)

_PROBE = """
<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img').forEach(function (im) {
    out.push({alt: im.alt, w: im.naturalWidth, h: im.naturalHeight, complete: im.complete});
  });
  var table = document.getElementById('summary');
  var top = table ? table.getBoundingClientRect().top : -1;
  var pre = document.createElement('pre');
  pre.id = 'gridsweep-image-probe';
  pre.textContent = JSON.stringify({images: out, sections: document.querySelectorAll('section.claim').length,
                                    summary_top: top, viewport_height: window.innerHeight});
  document.body.appendChild(pre);
});
</script>
"""

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``$CHROMIUM`` first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for c in CANDIDATES:
        p = shutil.which(c)
        if p:
            return p
    return None


@dataclass
class ImageCheck:
    n_images: int
    broken: list[str]
    sections: int
    images: list[dict]
    #: top of the summary table in the first screen, CSS pixels (-1 when the page has none)
    summary_top: float = -1.0
    viewport_height: float = 0.0

    @property
    def summary_in_first_screen(self) -> bool:
        """The summary table starts within the first screen (before any scrolling)."""
        return 0 <= self.summary_top < self.viewport_height

    @property
    def ok(self) -> bool:
        return self.n_images > 0 and not self.broken


def _flags(profile: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-extensions", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--hide-scrollbars"]


def _exe(chromium: str | None) -> str:
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (install it, e.g. `apt-get install -y chromium`, or set $CHROMIUM)")
    return exe


def screenshot(html_path: str | Path, png_path: str | Path, chromium: str | None = None, timeout: float = 120.0) -> Path:
    """Save a PNG of the first screen (:data:`WINDOW`) of ``html_path`` as headless Chromium shows it."""
    exe, png = _exe(chromium), Path(png_path)
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gridsweep-chromium-") as tmp:
        cmd = [exe, *_flags(Path(tmp) / "profile"), "--virtual-time-budget=15000", f"--screenshot={png}",
               Path(html_path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return png


def check_images(html_path: str | Path, chromium: str | None = None, timeout: float = 120.0) -> ImageCheck:
    """Load ``html_path`` in headless Chromium; report images that did not decode and where the summary sits."""
    exe = _exe(chromium)
    text = Path(html_path).read_text()
    probe = text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE
    with tempfile.TemporaryDirectory(prefix="gridsweep-chromium-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(probe)
        profile = Path(tmp) / "profile"
        cmd = [exe, *_flags(profile), "--virtual-time-budget=15000", "--dump-dom", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    m = re.search(r'<pre id="gridsweep-image-probe">(.*?)</pre>', proc.stdout, re.S)
    if not m:
        raise RuntimeError(f"chromium did not run the probe (exit {proc.returncode}): {proc.stderr[-2000:]}")
    import html as _html

    data = json.loads(_html.unescape(m.group(1)))
    imgs = data["images"]
    broken = [i["alt"] for i in imgs if not (i["w"] > 0 and i["h"] > 0)]
    return ImageCheck(len(imgs), broken, int(data["sections"]), imgs, float(data.get("summary_top", -1)),
                      float(data.get("viewport_height", 0)))


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin CLI
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gridsweep.reproduce.browser REPORT.html", file=sys.stderr)
        return 2
    res = check_images(args[0])
    print(f"{res.n_images} images, {len(res.broken)} broken, {res.sections} claim sections, "
          f"summary table {'in' if res.summary_in_first_screen else 'NOT in'} the first screen")
    for b in res.broken:
        print(f"broken: {b}")
    return 0 if res.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
