"""The dashboard's web app (Starlette): the page, its static files and the JSON API.

Read-only by construction: the store is opened with `open_read_only` (the database refuses
writes), only GET/HEAD routes exist (anything else is 405), the browser never sends SQL, and
every response carries a Content-Security-Policy that allows no origin but this server.

JSON API (all GET; errors are {"error": "..."} with status 400 or 404):

- `/api/sweeps`: sweeps with run counts per status.
- `/api/runs?sweep=&status=&tag=&where=field=value&q=&sort=&desc=1&group=&offset=&limit=`:
  one page of runs (`where` repeats; field is a run column or a dotted config path;
  group is one of N, D, lr, seed, sweep, family, status).
- `/api/runs/{run_key}`: a run's row, config, checkpoints, metric names, flags.
- `/api/metrics?run=KEY&run=KEY2&name=train/loss&points=1000`: curves downsampled
  (MinMax-LTTB) with x as step, tokens, flops and wall_time.
- `/api/scaling?sweep=`: final losses vs N, D, C; frontier; fitted laws with confidence
  and prediction bands; back-test; IsoFLOP profiles and their minima.
- `/api/optimal?sweep=`: compute-optimal N and D against C from a Chinchilla fit.
- `/api/fits?form=`: fits saved in the store.
- `/api/emergence`: per task, values vs compute, fitted curve, class, predicted crossing.
- `/api/ideas`: the "not yet" registry with each idea's attempts.
- `/api/info`: the store (password hidden) and the scaletrack version.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scaletrack.errors import ScaletrackError
from scaletrack.ui import assets, data

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

# The page loads nothing from anywhere else; inline styles are needed by Plotly.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class JSON(JSONResponse):
    """Strict JSON (NaN is already None in every payload)."""

    def render(self, content: Any) -> bytes:
        import json

        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScaletrackError(f"query parameter {name}={raw!r} is not an integer") from None


def create_app(store: StoreLike) -> Starlette:
    """The app over an opened (read-only) Store; the caller closes the store."""

    async def answer(fn: Callable[[], Any]) -> Response:
        try:
            # Store readers block; keep the event loop free for other requests.
            payload = await asyncio.to_thread(fn)
        except ScaletrackError as exc:
            status = 404 if str(exc).startswith("no run with key") else 400
            return JSON({"error": str(exc)}, status_code=status, headers=_SECURITY_HEADERS)
        return JSON(payload, headers=_SECURITY_HEADERS)

    def opt(request: Request, name: str) -> str | None:
        value = request.query_params.get(name)
        return value if value not in (None, "") else None

    async def api_info(request: Request) -> Response:
        from scaletrack import __version__
        from scaletrack.store.engine import redact_url

        return await answer(lambda: {"store": redact_url(store.url), "version": __version__,
                                     "read_only": True})

    async def api_sweeps(request: Request) -> Response:
        return await answer(lambda: data.sweeps_summary(store))

    async def api_runs(request: Request) -> Response:
        q = request.query_params
        return await answer(lambda: data.runs_page(
            store, sweep=opt(request, "sweep"), status=opt(request, "status"),
            tag=opt(request, "tag"), where=data.parse_where(q.getlist("where")),
            search=opt(request, "q"), sort=opt(request, "sort") or "created_at",
            descending=q.get("desc") in ("1", "true"), group=opt(request, "group"),
            offset=_int(request, "offset", 0), limit=_int(request, "limit", 100),
        ))

    async def api_run(request: Request) -> Response:
        key = request.path_params["run_key"]
        return await answer(lambda: data.run_detail(store, key))

    async def api_metrics(request: Request) -> Response:
        q = request.query_params
        return await answer(lambda: data.metric_series(
            store, q.getlist("run"), q.get("name") or "train/loss",
            points=_int(request, "points", data.DEFAULT_POINTS),
        ))

    async def api_scaling(request: Request) -> Response:
        return await answer(lambda: data.scaling(store, opt(request, "sweep")))

    async def api_optimal(request: Request) -> Response:
        return await answer(lambda: data.optimal(store, opt(request, "sweep")))

    async def api_fits(request: Request) -> Response:
        return await answer(lambda: data.stored_fits(store, opt(request, "form")))

    async def api_emergence(request: Request) -> Response:
        return await answer(lambda: data.emergence(store))

    async def api_ideas(request: Request) -> Response:
        return await answer(lambda: data.ideas(store))

    async def index(request: Request) -> Response:
        return Response(assets.page(report_data=None), media_type="text/html; charset=utf-8",
                        headers=_SECURITY_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        found = assets.static_file(name)
        if found is None:
            return JSON({"error": f"no static file {name!r}"}, status_code=404,
                        headers=_SECURITY_HEADERS)
        body, media = found
        headers = {**_SECURITY_HEADERS, "Cache-Control": "max-age=3600"}
        return Response(body, media_type=media, headers=headers)

    get = ["GET"]  # HEAD is answered for every GET route; all other methods get 405
    routes = [
        Route("/", index, methods=get),
        Route("/static/{name}", static, methods=get),
        Route("/api/info", api_info, methods=get),
        Route("/api/sweeps", api_sweeps, methods=get),
        Route("/api/runs", api_runs, methods=get),
        Route("/api/runs/{run_key}", api_run, methods=get),
        Route("/api/metrics", api_metrics, methods=get),
        Route("/api/scaling", api_scaling, methods=get),
        Route("/api/optimal", api_optimal, methods=get),
        Route("/api/fits", api_fits, methods=get),
        Route("/api/emergence", api_emergence, methods=get),
        Route("/api/ideas", api_ideas, methods=get),
    ]
    return Starlette(routes=routes)


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (OSError when the address is taken or invalid)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(store_url: str | None, host: str = "127.0.0.1", port: int = 8765,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Open the store read-only and serve the dashboard until interrupted (port 0: any free
    port). Raises StoreError for a store it cannot read and OSError for an address in use."""
    import uvicorn

    from scaletrack.store import open_read_only

    store = open_read_only(store_url)
    try:
        sock = _bind(host, port)  # bound here, so a taken port is one clear error
        bound = sock.getsockname()[1]
        config = uvicorn.Config(create_app(store), log_level="warning", access_log=False,
                                lifespan="off")
        server = uvicorn.Server(config)
        if on_ready is not None:
            url_host = f"[{host}]" if ":" in host else host
            original_startup = server.startup

            async def startup(sockets: Any = None) -> None:
                await original_startup(sockets)
                if server.started:
                    on_ready(f"http://{url_host}:{bound}/")

            server.startup = startup  # type: ignore[method-assign]
        server.run(sockets=[sock])
    finally:
        store.close()
