"""The page and its static files: our app.js / app.css and Plotly.js from the installed
`plotly` package (served by the app, or inlined into a report; never from a CDN)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
_TITLE = "scaletrack"


@cache
def plotly_js() -> bytes:
    """plotly.min.js as shipped inside the `plotly` Python package (package_data)."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    return path.read_bytes()


@cache
def _own(name: str) -> bytes:
    return resources.files("scaletrack.ui").joinpath("static", name).read_bytes()


def static_file(name: str) -> tuple[bytes, str] | None:
    """(body, media type) of a file the page loads, or None for any other name."""
    if name == "plotly.min.js":
        return plotly_js(), "text/javascript"
    if name in _STATIC:
        return _own(name), _STATIC[name]
    return None


def _script_json(payload: Any) -> str:
    """JSON safe inside a <script> element: no '</script>' or '<!--' can appear in it."""
    text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The report allows inline code only and no connection at all: it cannot fetch anything.
REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)


def page(report_data: Any | None) -> str:
    """The dashboard page: linked to /static/ when served, everything inlined for a report."""
    if report_data is None:
        head = '<link rel="stylesheet" href="/static/app.css">'
        scripts = ('<script src="/static/plotly.min.js"></script>\n'
                   '<script src="/static/app.js"></script>')
    else:
        head = (f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">\n'
                f"<style>{_own('app.css').decode()}</style>")
        plotly = plotly_js().decode("utf-8").replace("</script", "<\\/script")
        scripts = (
            f'<script id="report-data" type="application/json">{_script_json(report_data)}'
            f"</script>\n<script>{plotly}</script>\n<script>{_own('app.js').decode()}</script>"
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_TITLE}</title>
<link rel="icon" href="data:,">
{head}
</head>
<body>
<header id="top">
  <span class="brand">scaletrack</span>
  <nav id="nav">
    <a href="#/runs" data-view="runs">Runs</a>
    <a href="#/compare" data-view="compare">Compare</a>
    <a href="#/scaling" data-view="scaling">Scaling</a>
    <a href="#/emergence" data-view="emergence">Emergence</a>
    <a href="#/ideas" data-view="ideas">Ideas</a>
  </nav>
  <span id="source"></span>
</header>
<main id="view"></main>
{scripts}
</body>
</html>
"""
