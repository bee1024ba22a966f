"""The dashboard API's errors say why: a prediction without a usable law gives the scaling
view's reason, and an unknown /api/ path is a JSON 404 like every other API error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.store import open_read_only
from scaletrack.ui import create_app

SWEEP = "published"


def noisy_runs(path: Path, runs: int, noise: float) -> Path:
    """A CSV of `runs` Chinchilla-like runs (N from 1e6 to 1e8, D = 20 N) whose losses carry
    log-normal noise of scale `noise` (seeded)."""
    rng = np.random.default_rng(0)
    n = np.geomspace(1e6, 1e8, runs)
    d = 20 * n
    loss = (1.7 + 400 * n**-0.34 + 410 * d**-0.28) * np.exp(rng.normal(0, noise, runs))
    rows = zip(n, d, loss, strict=True)
    lines = ["N,D,loss"] + [f"{int(a)},{int(b)},{c:.4f}" for a, b, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def client_over(tmp_path: Path, runs: int, noise: float) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    csv = noisy_runs(tmp_path / "runs.csv", runs, noise)
    result = CliRunner().invoke(app, ["import-csv", str(csv), "--sweep", SWEEP, "--store", url])
    assert result.exit_code == 0, result.output
    store = open_read_only(url)
    try:
        with TestClient(create_app(store), base_url="http://localhost") as client:
            yield client
    finally:
        store.close()


@pytest.fixture
def noisy_client(tmp_path: Path) -> Iterator[TestClient]:
    """Seven runs too noisy for a law: every L(x) fit is degenerate."""
    yield from client_over(tmp_path, runs=7, noise=0.15)


@pytest.fixture
def sparse_client(tmp_path: Path) -> Iterator[TestClient]:
    """Four runs: fewer points than a three-parameter law needs."""
    yield from client_over(tmp_path, runs=4, noise=0.0)


@pytest.mark.parametrize("fixture", ["noisy_client", "sparse_client"])
def test_predict_without_a_law_gives_the_scaling_views_reason(
        fixture: str, request: pytest.FixtureRequest) -> None:
    client: TestClient = request.getfixturevalue(fixture)
    fits = client.get("/api/scaling", params={"sweep": SWEEP}).json()["fits"]
    for x in ("N", "D", "C"):
        assert fits[x]["status"] == "failed"
        answer = client.get("/api/predict", params={"sweep": SWEEP, "x": x, "at": "1e21"})
        assert answer.status_code == 400
        assert answer.json() == {"error": f"no L({x}) fit for these runs: {fits[x]['reason']}"}
    if fixture == "noisy_client":
        assert "degenerate" in fits["C"]["reason"] and "wider than a factor" in fits["C"]["reason"]
    else:
        assert "needs at least" in fits["C"]["reason"]


def test_unknown_api_path_is_a_json_404(sparse_client: TestClient) -> None:
    for path in ("/api/nothing", "/api/runs/x/nothing", "/api"):
        answer = sparse_client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json() == {"error": f"no API route {path!r}"}
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = sparse_client.get("/nothing")  # outside the API: a plain 404
    assert page.status_code == 404 and page.text == "Not Found"
    assert sparse_client.get("/api/info").status_code == 200
