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

__all__ = ["find_chromium", "check_images", "ImageCheck"]

_PROBE = """
<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img').forEach(function (im) {
    out.push({alt: im.alt, w: im.naturalWidth, h: im.naturalHeight, complete: im.complete});
  });
  var pre = document.createElement('pre');
  pre.id = 'gridsweep-image-probe';
  pre.textContent = JSON.stringify({images: out, sections: document.querySelectorAll('section.claim').length});
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

    @property
    def ok(self) -> bool:
        return self.n_images > 0 and not self.broken


def check_images(html_path: str | Path, chromium: str | None = None, timeout: float = 120.0) -> ImageCheck:
    """Load ``html_path`` in headless Chromium; report images that did not decode."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (install it, e.g. `apt-get install -y chromium`, or set $CHROMIUM)")
    text = Path(html_path).read_text()
    probe = text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE
    with tempfile.TemporaryDirectory(prefix="gridsweep-chromium-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(probe)
        profile = Path(tmp) / "profile"
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
               "--dump-dom", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    m = re.search(r'<pre id="gridsweep-image-probe">(.*?)</pre>', proc.stdout, re.S)
    if not m:
        raise RuntimeError(f"chromium did not run the probe (exit {proc.returncode}): {proc.stderr[-2000:]}")
    import html as _html

    data = json.loads(_html.unescape(m.group(1)))
    imgs = data["images"]
    broken = [i["alt"] for i in imgs if not (i["w"] > 0 and i["h"] > 0)]
    return ImageCheck(len(imgs), broken, int(data["sections"]), imgs)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin CLI
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gridsweep.reproduce.browser REPORT.html", file=sys.stderr)
        return 2
    res = check_images(args[0])
    print(f"{res.n_images} images, {len(res.broken)} broken, {res.sections} claim sections")
    for b in res.broken:
        print(f"broken: {b}")
    return 0 if res.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
