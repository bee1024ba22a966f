"""The page and its static files: our ES modules (app.js and what it imports) and app.css, and
Plotly.js from the installed `plotly` package (served by the app, or inlined into a report;
never from a CDN).

Served, the page loads app.js as a module and the browser fetches the modules it imports from
/static/. A report is one file that may not fetch anything, so there the modules are joined
into one script in dependency order: each module's `import { ... } from "./x.js";` lines are
dropped and its `export` keywords removed (the modules' top-level names are distinct), all
inside one function scope.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

# the dashboard's modules, each after the modules it imports (the report's order)
MODULES = ("common.js", "plot.js", "api.js", "runs.js", "runevals.js", "curves.js", "adaptive.js",
           "scaling.js", "emergence.js", "ideas.js", "app.js")
_STATIC = {**{name: "text/javascript" for name in MODULES}, "app.css": "text/css"}
_IMPORT = re.compile(r'^import \{[^}]*\} from "\./([a-z]+\.js)";\n', re.M)
_EXPORT = re.compile(r"^export (?=(?:async function|function|const|let) )", re.M)
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


@cache
def bundled_js() -> str:
    """The modules as one classic script (for a report): imports dropped, exports unmarked."""
    parts = []
    for name in MODULES:
        text = _own(name).decode("utf-8")
        for imported in _IMPORT.findall(text):
            if imported not in MODULES[: MODULES.index(name)]:
                raise RuntimeError(f"{name} imports {imported}, which is not an earlier module")
        text = _EXPORT.sub("", _IMPORT.sub("", text))
        if re.search(r"^(?:import|export)\b", text, re.M):
            raise RuntimeError(f"{name}: write imports on one line and export declarations only")
        parts.append(f"// ---- {name}\n" + text)
    return '(function () {\n"use strict";\n' + "\n".join(parts) + "})();\n"


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
                   '<script type="module" src="/static/app.js"></script>')
    else:
        head = (f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">\n'
                f"<style>{_own('app.css').decode()}</style>")
        plotly = plotly_js().decode("utf-8").replace("</script", "<\\/script")
        scripts = (
            f'<script id="report-data" type="application/json">{_script_json(report_data)}'
            f"</script>\n<script>{plotly}</script>\n<script>{bundled_js()}</script>"
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
