"""One self-contained HTML page from report sections: figures embedded as PNG data URIs, tables as HTML,
provenance in a collapsible block per section. Figures scale to the page width and sit in their own blocks,
so no text is drawn over them at any window size."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from subcell._version import __version__
from subcell.report.collect import Section

__all__ = ["render_html"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
     color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;
     margin-top:2em} h3{font-size:1em;margin:1.2em 0 .4em}
.meta{color:#666;font-size:.9em} nav a{margin-right:1em}
figure{margin:1em 0;display:block} figure img{display:block;max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-bottom:.4em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;display:block;overflow-x:auto}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right;white-space:nowrap} th{background:#f6f6f6}
details{margin:.8em 0;font-size:.85em} pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}
ul.lines li{margin:.2em 0}
"""


def _anchor(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def _figure(title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    t = html.escape(title)
    return f"<figure><figcaption>{t}</figcaption><img src='data:image/png;base64,{data}' alt='{t}'></figure>"


def _table(title: str, df: Any) -> str:
    body = df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, escape=True)
    return f"<h3>{html.escape(title)}</h3>{body}"


def render_html(sections: Sequence[Section], *, title: str, source: str | Path) -> str:
    """The page for ``sections`` (from :func:`subcell.report.collect.collect_sections`)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(str(source))} · subcell {__version__} · {now}</p>",
        "<nav>" + "".join(f"<a href='#{_anchor(s.name)}'>{html.escape(s.name)}</a>" for s in sections) + "</nav>",
    ]
    for s in sections:
        parts.append(f"<section id='{_anchor(s.name)}'><h2>{html.escape(s.name)}</h2>")
        if s.lines:
            parts.append("<ul class='lines'>" + "".join(f"<li>{html.escape(x)}</li>" for x in s.lines) + "</ul>")
        parts += [_figure(t, png) for t, png in s.figures]
        parts += [_table(t, df) for t, df in s.tables]
        if s.provenance:
            prov = json.dumps(s.provenance, indent=2, default=str, ensure_ascii=False)
            parts.append(f"<details><summary>Provenance</summary><pre>{html.escape(prov)}</pre></details>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
