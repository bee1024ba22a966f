"""The documentation site: it builds strictly, and its generated reference pages list every grid
key, CLI command and option, store table and column, public Python name and JSON route."""

from __future__ import annotations

import functools
import html
import importlib.util
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings")


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load("scaletrack_docs_hooks", ROOT / "docs" / "hooks.py")
griffe_docstrings = _load("scaletrack_docs_griffe", ROOT / "docs" / "griffe_docstrings.py")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `mkdocs build --strict` builds it (a warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def section(markup: str, anchor: str) -> str:
    """The HTML from the heading with id `anchor` up to the next heading of its level or above."""
    start = re.search(rf'<h([1-6]) id="{re.escape(anchor)}"', markup)
    assert start, f"no heading #{anchor}"
    level = int(start.group(1))
    end = re.compile(rf"<h[1-{level}][ >]").search(markup, start.end())
    return markup[start.start(): end.start() if end else len(markup)]


# ------------------------------------------------------------------------------ generators
# (fast: the generated Markdown itself, without building the site)


def test_grid_reference_lists_every_key_of_every_section() -> None:
    from pydantic import BaseModel

    from scaletrack.sweeps import spec

    text = hooks.grid_reference()
    sections = {model for _, model in hooks._grid_sections()}
    # every pydantic model the grid is made of is a section of its own
    found = {obj for obj in vars(spec).values() if isinstance(obj, type)
             and issubclass(obj, BaseModel) and obj.__module__ == spec.__name__
             and not obj.__name__.startswith("_")}
    assert found <= sections, found - sections
    keys = hooks.grid_keys()
    assert len(keys) > 60
    for model, key in keys:
        block = text.split(f"{{#grid-{model.lower()}}}", 1)[1].split("\n### ", 1)[0]
        assert f"| `{key}` |" in block, (model, key)


def test_grid_reference_states_types_defaults_and_limits() -> None:
    text = hooks.grid_reference()
    axes = text.split("{#grid-axesspec}", 1)[1].split("\n### ", 1)[0]
    tokens = next(line for line in axes.splitlines() if line.startswith("| `tokens` |"))
    assert "list of integer" in tokens and "**required**" in tokens
    assert "at least 1 item" in tokens and "each > 0" in tokens
    executor = text.split("{#grid-executorspec}", 1)[1].split("\n### ", 1)[0]
    workers = next(line for line in executor.splitlines() if line.startswith("| `workers` |"))
    assert "`1`" in workers and "≤ 1024" in workers and "2^63" not in workers  # tightest bound
    schedule = text.split("{#grid-schedulespec}", 1)[1].split("\n### ", 1)[0]
    assert '`"cosine"` or `"wsd"` or `"constant"`' in schedule


def test_cli_reference_lists_every_command_and_option() -> None:
    import typer

    from scaletrack.cli.main import app

    text = hooks.cli_reference()
    commands = hooks.cli_commands()
    assert {"scaletrack sweep run", "scaletrack fit", "scaletrack ideas rerun",
            "scaletrack import lm-eval", "scaletrack ui"} <= set(commands)

    def walk(path: list[str], command: object) -> Iterator[tuple[str, object]]:
        yield " ".join(path), command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                yield from walk([*path, name], sub)

    seen = 0
    for full, command in walk(["scaletrack"], typer.main.get_command(app)):
        assert full in commands, full
        heading = f"`{full}`\n"
        assert heading in text, full
        block = text.split(heading, 1)[1].split("\n#", 1)[0]
        for param in command.params:
            if param.hidden or param.name == "help":
                continue
            for opt in (param.opts if param.param_type_name == "option" else
                        [param.name.upper()]):
                assert f"`{opt}`" in block, (full, opt)
                seen += 1
    assert seen > 100


def test_schema_reference_lists_every_table_and_column() -> None:
    from scaletrack.store import schema

    text = hooks.schema_reference()
    for table in schema.metadata.sorted_tables:
        block = text.split(f"### `{table.name}`\n", 1)[1].split("\n### ", 1)[0]
        for column in table.columns:
            assert f"| `{column.name}` |" in block, (table.name, column.name)
    assert "check: `status IN (" in text  # constraints are listed too


def test_every_public_name_has_an_api_block() -> None:
    import scaletrack

    names = hooks.public_api()
    assert set(scaletrack.__all__) - {"__version__"} == set(names)
    blocks = "\n".join(hooks.api_blocks(group) for group in [*hooks.API_GROUPS, "other"])
    for name, target in names.items():
        assert f"::: {target}\n" in blocks, name
        module, _, attr = target.rpartition(".")
        if module.endswith(".Store"):  # a classmethod: Store.open
            module, attr = module.rpartition(".")[0], "Store"
        assert hasattr(importlib.import_module(module), attr), target


def test_unknown_marker_fails_the_build() -> None:
    class Page:
        class file:  # noqa: N801
            src_uri = "x.md"

    with pytest.raises(ValueError, match="unknown generated part"):
        hooks.on_page_markdown("<!-- scaletrack:nothing -->\n", Page, None, None)


def test_indexing_expressions_become_code_outside_code() -> None:
    escape = griffe_docstrings.escape_indexing
    assert escape("take SCREEN[0][1] steps") == "take `SCREEN[0][1]` steps"
    assert escape("`SCREEN[0][1]` and `a = x[0][1]`") == "`SCREEN[0][1]` and `a = x[0][1]`"
    assert escape("a list[int] or [link](x.md)") == "a list[int] or [link](x.md)"


def test_docs_quick_start_is_the_readmes() -> None:
    def blocks(path: Path) -> list[str]:
        text = path.read_text(encoding="utf-8")
        part = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
        return re.findall(r"```bash\n(.*?)```", part, flags=re.S)

    assert blocks(ROOT / "README.md")
    assert blocks(ROOT / "docs" / "getting-started.md") == blocks(ROOT / "README.md")


def test_readme_links_into_the_docs_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert len(links) >= 15
    for link in links:
        assert (ROOT / link).is_file(), link


def test_every_docs_page_is_in_the_nav() -> None:
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    listed: set[str] = set()

    def collect(item: object) -> None:
        if isinstance(item, str):
            listed.add(item)
        elif isinstance(item, dict):
            for value in item.values():
                collect(value)
        elif isinstance(item, list):
            for value in item:
                collect(value)

    collect(nav)
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == listed


# ------------------------------------------------------------------------------ the built site


@pytest.mark.slow
def test_site_pages_show_the_generated_references(site: Path) -> None:
    grid = page(site, "reference/grid")
    for model, key in hooks.grid_keys():
        assert f"<code>{key}</code>" in section(grid, f"grid-{model.lower()}"), (model, key)

    cli = text_of(page(site, "reference/cli"))
    for command in hooks.cli_commands():
        assert command in cli, command

    schema_page = page(site, "reference/store-schema")
    for table in hooks.schema_tables():
        assert f'id="{table}"' in schema_page, table

    for name, target in hooks.public_api().items():
        group = hooks.api_group(name, target)
        markup = page(site, f"api/{group}" if group in hooks.API_GROUPS else "api")
        assert f'id="{target}"' in markup, name  # the docstring block, under st.NAME
        assert f"st.{name}" in text_of(markup), name
        assert f'href="{group}/#{target}"' in page(site, "api") or group == "other", name


@pytest.mark.slow
def test_site_documents_tracking_integrations_and_fit_results(site: Path) -> None:
    tracking = page(site, "api/tracking")
    for target in ("scaletrack.tracking.init", "scaletrack.tracking.run.Run",
                   "scaletrack.tracking.run.Run.log", "scaletrack.tracking.run.Run.checkpoint"):
        assert f'id="{target}"' in tracking, target
    integrations = page(site, "api/integrations")
    for target in ("scaletrack.integrations.transformers.ScaletrackCallback",
                   "scaletrack.integrations.lightning.ScaletrackLogger",
                   "scaletrack.integrations.batch_tokens"):
        assert f'id="{target}"' in integrations, target
    fits = page(site, "api/fits")
    for target in ("scaletrack.analysis.result.FitResult",
                   "scaletrack.analysis.result.FitResult.predict_interval"):
        assert f'id="{target}"' in fits, target


@pytest.mark.slow
def test_json_api_page_lists_every_route(site: Path) -> None:
    from scaletrack.ui.server import create_app

    app = create_app(store=None)  # routes only; nothing is served
    while not hasattr(app, "routes"):  # inside whatever middleware wraps it
        app = app.app
    routes = [r.path for r in app.routes if r.path.startswith("/api/")]
    assert len(routes) >= 10
    text = text_of(page(site, "reference/json-api"))
    for route in routes:
        assert route in text, route


@pytest.mark.slow
def test_site_loads_nothing_from_elsewhere(site: Path) -> None:
    loads = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=\"([^\"]+)\"")
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    for path in pages:
        for url in loads.findall(path.read_text(encoding="utf-8")):
            assert not re.match(r"^(https?:)?//", url), (path.relative_to(site), url)
    for css in site.rglob("*.css"):
        assert not re.search(r"@import\s+url\(\s*['\"]?(https?:)?//|url\(\s*['\"]?https?://",
                             css.read_text(encoding="utf-8")), css


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
@pytest.mark.browser
def test_site_in_chromium_requests_only_itself(site: Path, chromium) -> None:  # noqa: ANN001
    """The start page, an API page and a search, in a real browser: every request stays on the
    local server, no script error, and the content is there."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    shots = os.environ.get("SCALETRACK_DOCS_SHOTS")
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        tab = context.new_page()
        requests: list[str] = []
        errors: list[str] = []
        tab.on("request", lambda r: requests.append(r.url))
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{base}/", wait_until="networkidle")
        assert "scaletrack" in tab.title()
        assert tab.locator("h1").first.inner_text().rstrip("¶") == "scaletrack"
        if shots:
            tab.screenshot(path=str(Path(shots) / "docs-start.png"))
        tab.goto(f"{base}/api/fits/", wait_until="networkidle")
        assert tab.locator('[id="scaletrack.analysis.chinchilla.fit_chinchilla"]').count() == 1
        if shots:
            tab.screenshot(path=str(Path(shots) / "docs-api-fits.png"))
        tab.locator("input.md-search__input").first.click()
        tab.keyboard.type("cooldown")
        tab.wait_for_selector(".md-search-result__item", timeout=30_000)
        assert errors == []
        elsewhere = [u for u in requests if not u.startswith(base) and
                     not u.startswith(("data:", "blob:"))]
        assert elsewhere == []
    finally:
        context.close()
        server.shutdown()
        server.server_close()
