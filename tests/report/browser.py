"""Render an HTML page in headless Chromium (Debian's, driven by Playwright) and report what a reader would see
broken: images that did not load, text boxes that overlap a figure, and a screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# without the background-networking flags Chromium keeps dialling out, and this machine refuses each connection
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

CHECK = """() => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt);
  const rects = imgs.map(i => i.getBoundingClientRect());
  const texts = [...document.querySelectorAll('h1,h2,h3,p,li,figcaption,td,th,summary')];
  const overlaps = [];
  for (const t of texts) {
    const r = t.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    rects.forEach((f, k) => {
      const ix = Math.min(r.right, f.right) - Math.max(r.left, f.left);
      const iy = Math.min(r.bottom, f.bottom) - Math.max(r.top, f.top);
      if (ix > 1 && iy > 1) overlaps.push([t.tagName + ': ' + t.textContent.slice(0, 40), imgs[k].alt]);
    });
  }
  const wide = imgs.filter(i => i.getBoundingClientRect().right > document.documentElement.clientWidth + 1).length;
  return {images: imgs.length, broken, overlaps, wide, details: document.querySelectorAll('details').length};
}"""


def available() -> str | None:
    """None when a browser can be driven, else why not."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (Debian package chromium; `make install` installs it)"
    return None


def inspect_page(page_path: Path, screenshot: Path, *, width: int = 1200) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            result = dict(page.evaluate(CHECK))
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return result
