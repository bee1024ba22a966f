"""The dashboard in a real headless Chromium: every view on a store filled by a small real
sweep and the Epoch Chinchilla points; toggles change the plot; plotted data equal the
store; user strings stay text; no request leaves the local server; the runs view updates
while a sweep writes; the offline report works with networking disabled.

Screenshots go to the test's tmp folder (or $SCALETRACK_UI_SHOTS when set).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from ui_fixtures import EPOCH, SCRIPT, SWEEP, running_ui, shared_ui_store

from scaletrack.cli.main import app
from scaletrack.store import RunRecord, Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> str:
    return shared_ui_store(tmp_path_factory, shared_data)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("SCALETRACK_UI_SHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Watched:
    """A page whose requests, dialogs and script errors are recorded."""

    def __init__(self, browser, base: str) -> None:  # noqa: ANN001
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.base = base
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def open(self, hash_: str) -> None:
        self.page.goto(f"{self.base}/{hash_}")
        self.wait()

    def wait(self) -> None:
        self.page.wait_for_selector("#view[data-ready='1']", timeout=120_000)

    def until(self, expression: str, timeout_s: float = 60) -> None:
        """Poll a JS expression until it is true (the page's CSP forbids Playwright's
        wait_for_function, which evaluates strings inside the page)."""
        deadline = time.monotonic() + timeout_s
        while not self.page.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout_s} s: {expression}")
            time.sleep(0.05)

    def wait_total(self, n: int) -> None:
        """Wait until the runs table says `n` runs match."""
        self.until(
            f"document.getElementById('runs-table')?.dataset.total == '{n}'")

    def plot(self, div: str) -> dict:
        """The traces and layout Plotly drew in `div` (after the next draw settles)."""
        self.until(f"!!document.getElementById('{div}')?.dataset.drawn")
        return self.page.evaluate(
            f"(() => {{ const d = document.getElementById('{div}');"
            " return {data: d.data.map(t => ({x: t.x, y: t.y, name: t.name, mode: t.mode,"
            " opacity: t.opacity})),"
            " xtype: d.layout.xaxis.type, ytype: d.layout.yaxis.type}; })()"
        )

    def redraw(self, div: str, action) -> dict:  # noqa: ANN001
        """Run `action` (a click, a choice) and return the plot drawn after it."""
        stamp = self.page.evaluate(f"document.getElementById('{div}').dataset.drawn")
        action()
        self.until(
            f"document.getElementById('{div}').dataset.drawn !== '{stamp}'")
        return self.plot(div)

    def close(self) -> None:
        self.context.close()


def file_state(url: str) -> tuple[str, float]:
    path = Path(url.removeprefix("sqlite:///"))
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


def test_every_view_in_chromium(chromium, ui_url: str, shots: Path) -> None:  # noqa: ANN001
    before = file_state(ui_url)
    with Store.open(ui_url) as store:
        runs = store.runs()
        sweep = runs[runs["sweep"] == SWEEP]
        epoch = runs[runs["sweep"] == EPOCH]
        last = sweep.iloc[-1]
        curve = store.metrics(run_keys=[last.run_key], names=["train/loss"])
    with running_ui(ui_url) as (base, startup_s):
        print(f"scaletrack ui served after {startup_s:.2f} s")
        w = Watched(chromium, base)
        page = w.page

        # runs: paged table, status filter, grouping, tag filter
        w.open("#/runs")
        page.wait_for_selector("#runs tr[data-key]")
        keys = page.eval_on_selector_all("#runs tr[data-key]", "rs => rs.map(r => r.dataset.key)")
        assert keys == list(runs["run_key"][:50])
        assert page.text_content("#page-info") == f"1–50 of {len(runs)} runs"
        page.screenshot(path=shots / "runs.png", full_page=True)
        page.select_option("#f-sweep", SWEEP)
        w.wait_total(len(sweep))
        page.select_option("#f-group", "N")
        page.wait_for_selector("#groups-table")
        group_rows = page.locator("#groups-table tr").count() - 1
        assert group_rows == sweep["N"].nunique()
        page.screenshot(path=shots / "runs_grouped.png", full_page=True)
        page.select_option("#f-sweep", "")
        page.select_option("#f-group", "")
        page.select_option("#f-tag", "baseline")
        w.wait_total(1)
        page.select_option("#f-tag", "")
        page.fill("#f-where", "model.n_layer=2")
        page.press("#f-where", "Enter")
        w.wait_total(len(sweep) // 2)

        # compare: tick two runs of the sweep
        picks = page.locator("#runs input.pick")
        picks.nth(0).check()
        picks.nth(1).check()
        page.click("#compare-selected")
        w.wait()
        compared = w.plot("chart-main")
        assert len([t for t in compared["data"] if t["mode"].startswith("lines")]) == 2
        page.screenshot(path=shots / "compare.png", full_page=True)

        # a run: curve equals the store; x and log toggles; smoothing
        w.open(f"#/run/{last.run_key}")
        drawn = w.plot("chart-main")
        assert drawn["data"][0]["x"] == curve["step"].tolist()
        assert np.allclose(drawn["data"][0]["y"], curve["value"])
        assert drawn["xtype"] == "linear" and drawn["ytype"] == "linear"
        tokens = w.redraw("chart-main", lambda: page.select_option("#xaxis", "tokens"))
        assert np.allclose(tokens["data"][0]["x"], curve["tokens"].astype(float))
        flops = w.redraw("chart-main", lambda: page.select_option("#xaxis", "flops"))
        assert np.allclose(flops["data"][0]["x"], curve["tokens"].astype(float) * last.C / last.D)
        assert w.redraw("chart-main", lambda: page.check("#logx"))["xtype"] == "log"
        assert w.redraw("chart-main", lambda: page.check("#logy"))["ytype"] == "log"
        smoothed = w.redraw("chart-main", lambda: page.fill("#smoothing", "0.9"))
        raw, smooth = smoothed["data"][0], smoothed["data"][1]  # the raw curve faint, beneath
        assert np.allclose(raw["y"], curve["value"]) and raw["opacity"] < 0.5
        assert not np.allclose(smooth["y"], curve["value"])
        grad = w.redraw("chart-main", lambda: page.select_option("#metric", "grad_norm"))
        assert len(grad["data"][0]["y"]) == len(curve)
        assert page.locator("#checkpoints tr").count() - 1 == 4
        page.screenshot(path=shots / "run.png", full_page=True)

        # scaling on the Epoch points: plotted points are the store's, toggles work
        w.open(f"#/scaling?sweep={EPOCH}")
        sc = w.plot("chart-scaling")
        points = sc["data"][0]
        assert sorted(points["x"]) == pytest.approx(sorted(epoch["C"]))
        assert sorted(points["y"]) == pytest.approx(sorted(epoch["final_loss"]))
        names = " ".join(t["name"] or "" for t in sc["data"])
        for part in ("95% confidence band", "95% prediction interval", "compute frontier",
                     "back-test", "L(C)"):
            assert part in names
        assert sc["xtype"] == "log"
        by_n = w.redraw("chart-scaling", lambda: page.select_option("#s-x", "N"))
        assert sorted(by_n["data"][0]["x"]) == pytest.approx(sorted(epoch["N"]))
        assert w.redraw("chart-scaling", lambda: page.check("#s-logy"))["ytype"] == "log"
        assert w.redraw("chart-scaling", lambda: page.uncheck("#s-logx"))["xtype"] == "linear"
        w.plot("chart-isoflop")
        w.plot("chart-optimal")
        page.select_option("#s-x", "C")
        page.check("#s-logx")
        page.uncheck("#s-logy")
        page.wait_for_timeout(300)
        page.screenshot(path=shots / "scaling_epoch.png", full_page=True)
        w.open(f"#/scaling?sweep={SWEEP}")
        small = w.plot("chart-scaling")
        assert sorted(small["data"][0]["y"]) == pytest.approx(sorted(sweep["final_loss"]))
        page.screenshot(path=shots / "scaling_sweep.png", full_page=True)

        # emergence and ideas
        w.open("#/emergence")
        w.plot("chart-emergence-0")
        assert page.locator("#emergence-table tr").count() == 2
        page.screenshot(path=shots / "emergence.png", full_page=True)
        w.open("#/ideas")
        w.plot("chart-ideas")
        assert page.locator("#ideas-table tr").count() == 3
        page.screenshot(path=shots / "ideas.png", full_page=True)

        assert not w.errors, w.errors
        assert all(u.startswith(base + "/") or u.startswith("data:") for u in w.requests), \
            sorted({u for u in w.requests if not u.startswith(base)})
        w.close()
    assert file_state(ui_url) == before  # browsing changed nothing in the store


def test_user_strings_show_as_text(chromium, ui_url: str, shots: Path) -> None:  # noqa: ANN001
    with running_ui(ui_url) as (base, _):
        w = Watched(chromium, base)
        page = w.page
        for view in ("#/runs?sort=final_loss", "#/ideas", f"#/scaling?sweep={SWEEP}"):
            w.open(view)
            page.wait_for_timeout(500)
        w.open("#/runs")
        page.select_option("#f-sweep", SCRIPT)
        w.wait_total(1)
        assert page.locator("#runs td", has_text=SCRIPT).count() == 3  # name, sweep and tags
        key = page.get_attribute("#runs tr[data-key]", "data-key")
        w.open(f"#/run/{key}")
        assert SCRIPT in page.text_content("#view")
        w.open("#/ideas")
        assert page.locator("#ideas-table td.idea-title", has_text=SCRIPT).count() == 1
        assert SCRIPT in page.text_content("#chart-ideas")  # the legend, as text
        page.screenshot(path=shots / "escaping.png", full_page=True)
        scripts = page.evaluate("document.querySelectorAll('script').length")
        assert scripts == 2  # plotly.min.js and app.js, nothing injected
        assert w.dialogs == [] and not w.errors
        w.close()


def test_runs_view_updates_while_a_sweep_writes(chromium, tmp_path: Path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'live.db'}"
    with Store.open(url) as store:
        store.upsert_sweep("live", {})
        first = store.ensure_run(RunRecord("live-a", "live", "gpt", {"i": 0}, 10, 10, 100, 6e3))
    with running_ui(url) as (base, _):
        w = Watched(chromium, base)
        w.open("#/runs")
        w.page.wait_for_selector("#runs tr[data-key='live-a'][data-status='pending']")
        with Store.open(url) as store:  # the sweep claims its cell and adds another
            assert store.claim_run(first.run_key, "worker-1")
            store.ensure_run(RunRecord("live-b", "live", "gpt", {"i": 1}, 20, 20, 100, 1.2e4))
        w.page.wait_for_selector("#runs tr[data-key='live-a'][data-status='running']",
                                 timeout=15_000)
        w.page.wait_for_selector("#runs tr[data-key='live-b']", timeout=15_000)
        with Store.open(url) as store:
            store.finish_run("live-a", "finished", final_loss=2.5)
        w.page.wait_for_selector("#runs tr[data-key='live-a'][data-status='finished']",
                                 timeout=15_000)
        w.close()


def test_report_opens_offline(chromium, ui_url: str, tmp_path: Path, shots: Path) -> None:  # noqa: ANN001
    from services import another_chromium

    before = file_state(ui_url)
    out = tmp_path / "report.html"
    t0 = time.perf_counter()
    done = CliRunner().invoke(app, ["report", "-o", str(out), "--store", ui_url])
    assert done.exit_code == 0, done.output
    print(f"report written in {time.perf_counter() - t0:.1f} s, {out.stat().st_size / 1e6:.1f} MB")
    assert file_state(ui_url) == before
    html = out.read_text()
    assert "http://" not in html.split('<script id="report-data"')[0]
    # networking off three ways: a dead proxy, offline emulation, and a CSP with no sources
    with another_chromium(chromium, ("--proxy-server=127.0.0.1:9",)) as browser:
        w = Watched(browser, "")
        w.context.set_offline(True)
        w.page.goto(out.as_uri())
        w.wait()
        w.page.wait_for_selector("#runs tr[data-key]")
        with Store.open(ui_url) as store:
            total = len(store.runs())
            epoch_c = store.runs(sweep=EPOCH)["C"]
        assert w.page.text_content("#page-info") == f"1–50 of {total} runs"
        w.page.screenshot(path=shots / "report_runs.png", full_page=True)
        w.page.goto(out.as_uri() + f"#/scaling?sweep={EPOCH}")
        w.page.reload()
        w.wait()
        sc = w.plot("chart-scaling")
        assert sorted(sc["data"][0]["x"]) == pytest.approx(sorted(epoch_c))
        w.page.screenshot(path=shots / "report_scaling.png", full_page=True)
        key = w.page.evaluate(
            "JSON.parse(document.getElementById('report-data').textContent).runs"
            f".find(r => r.sweep === '{SWEEP}').run_key")
        w.page.goto(out.as_uri() + f"#/run/{key}")
        w.page.reload()
        w.wait()
        assert w.plot("chart-main")["data"][0]["y"]
        w.page.goto(out.as_uri() + "#/ideas")
        w.page.reload()
        w.wait()
        assert w.page.locator("#ideas-table td.idea-title", has_text=SCRIPT).count() == 1
        assert w.dialogs == [] and not w.errors, w.errors
        assert all(u.startswith("file://") or u.startswith("data:") for u in w.requests), \
            w.requests
        w.close()
    bad = CliRunner().invoke(app, ["report", "-o", str(tmp_path / "no" / "r.html"),
                                   "--store", ui_url])
    assert bad.exit_code == 1 and "folder does not exist" in bad.output


def test_spikes_and_divergence_are_marked(chromium, tmp_path: Path, shots: Path) -> None:  # noqa: ANN001
    from test_ui_api import spiky_store

    url, key = spiky_store(tmp_path / "spiky.db")
    with running_ui(url) as (base, _):
        w = Watched(chromium, base)
        w.open(f"#/run/{key}")
        drawn = w.plot("chart-main")
        spikes = [t for t in drawn["data"] if (t["name"] or "").startswith("spikes")]
        assert len(spikes) == 1 and spikes[0]["x"] == [123] and spikes[0]["y"] == [9.0]
        shapes = w.page.evaluate("document.getElementById('chart-main').layout.shapes")
        assert len(shapes) == 1 and shapes[0]["x0"] == 349  # the last finite step
        assert "diverged (non-finite from step 350)" in w.page.text_content("#curve-info")
        w.page.screenshot(path=shots / "run_diverged.png", full_page=True)
        assert not w.errors
        w.close()
