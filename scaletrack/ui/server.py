"""The dashboard's web app (Starlette): the page, its static files and the JSON API.

Read-only by construction: the store is opened with `open_read_only` (the database refuses
writes), only GET/HEAD routes exist (anything else is 405), the browser never sends SQL, and
every response carries a Content-Security-Policy that allows no origin but this server.

JSON API (all GET; errors are {"error": "..."} with status 400 or 404):

- `/api/sweeps`: sweeps with run counts per status.
- `/api/runs?sweep=&status=&tag=&where=field=value&q=&sort=&desc=1&group=&offset=&limit=`:
  one page of runs (`where` repeats; field is a run column or a dotted config path;
  group is one of N, D, lr, seed, sweep, family, status).
- `/api/runs/{run_key}`: a run's row, config, checkpoints (by step), metric names, flags.
- `/api/runs/{run_key}/evals`: its checkpoints' evaluations, one series per (task, metric,
  shot count), by step.
- `/api/metrics?run=KEY&run=KEY2&name=train/loss&points=1000`: curves downsampled
  (MinMax-LTTB) with x as step, tokens, flops and wall_time.
- `/api/scaling?sweep=`: final losses vs N, D, C; frontier; fitted laws with confidence
  and prediction bands; back-test; IsoFLOP profiles and their minima.
- `/api/predict?sweep=&x=C&at=1e21`: the fitted L(x) at one x with its 95 % confidence and
  prediction intervals (`FitResult.predict_interval`).
- `/api/optimal?sweep=`: compute-optimal N and D against C from a Chinchilla fit.
- `/api/adaptive?sweep=`: an adaptive sweep's recorded decisions (cell, band width at the
  target after it, FLOPs spent, why it stopped).
- `/api/fits?form=`: fits saved in the store.
- `/api/emergence?offset=&limit=&q=`: curves per (task, metric, shot), a page at a time:
  values vs compute, fitted curve, class, predicted crossing.
- `/api/ideas`: the "not yet" registry with each idea's attempts.
- `/api/info`: the store (password hidden) and the scaletrack version.

Only requests whose Host header names this server are answered (localhost, 127.0.0.1, [::1]
and the --host it was started with; anything else is a 403), so a page on another site that
rebinds its DNS name to 127.0.0.1 reads nothing. Identical requests in flight share one
computation; one whose every client has gone away is told to stop (the analysis checks
between curves and fits), and its thread never holds up the process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scaletrack.errors import ScaletrackError
from scaletrack.ui import assets, data, sweep_data

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


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
POLL_S = 0.2  # how often a waiting request checks whether its client is still there


def host_name(header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower case."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class HostCheck:
    """ASGI middleware: answer only requests whose Host is one of `allowed` (403 otherwise)."""

    def __init__(self, app: Any, allowed: set[str]) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            raw = headers.get(b"host", b"").decode("latin-1")
            if host_name(raw) not in self.allowed:
                response = JSON({"error": f"host {raw!r} is not this dashboard's (DNS "
                                          "rebinding guard)"}, status_code=403,
                                headers=_SECURITY_HEADERS)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def not_found(request: Request, exc: Exception) -> Response:
    """404 for a path the dashboard does not serve: `{"error": ...}` under /api/ (as every
    API error), plain text elsewhere."""
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return JSON({"error": f"no API route {path[:200]!r}"}, status_code=404,
                    headers=_SECURITY_HEADERS)
    return Response("Not Found", status_code=404, media_type="text/plain",
                    headers=_SECURITY_HEADERS)


class Abandoned(Exception):  # noqa: N818 - the reason, not an error
    """Every client of a computation went away."""


@dataclass
class _Flight:
    future: asyncio.Future
    stop: threading.Event = field(default_factory=threading.Event)
    waiters: int = 0


def create_app(store: StoreLike, host: str | None = "127.0.0.1") -> Starlette:
    """The app over an opened (read-only) Store; the caller closes the store. `host`: the
    address it is served on (its name is accepted in the Host header, beside loopback)."""
    inflight: dict[str, _Flight] = {}
    allowed = {*LOOPBACK_NAMES, *((host_name(host),) if host else ())}

    def start(key: str, fn: Callable[[Callable[[], bool]], Any]) -> _Flight:
        loop = asyncio.get_running_loop()
        flight = _Flight(loop.create_future())

        def settle(outcome: tuple[bool, Any]) -> None:
            if inflight.get(key) is flight:
                del inflight[key]
            if not flight.future.done():
                flight.future.set_result(outcome)

        def work() -> None:
            try:
                outcome: tuple[bool, Any] = (True, fn(flight.stop.is_set))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                outcome = (False, exc)
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(settle, outcome)

        inflight[key] = flight
        # a daemon thread: a computation nobody waits for never holds up shutdown
        threading.Thread(target=work, name="scaletrack-ui-answer", daemon=True).start()
        return flight

    async def answer(request: Request, fn: Callable[[Callable[[], bool]], Any]) -> Response:
        """Run fn(should_stop) off the event loop; identical requests share one run, and a
        run whose clients all left is asked to stop."""
        key = request.url.path + "?" + "&".join(
            f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
        flight = inflight.get(key) or start(key, fn)
        flight.waiters += 1
        try:
            while not flight.future.done():
                await asyncio.wait({flight.future}, timeout=POLL_S)
                if not flight.future.done() and await request.is_disconnected():
                    raise Abandoned
        except Abandoned:
            return Response(status_code=499)  # nobody reads it
        except asyncio.CancelledError:  # the server is stopping: tell the work, answer 503
            flight.stop.set()
            return JSON({"error": "the dashboard is stopping"}, status_code=503,
                        headers=_SECURITY_HEADERS)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.future.done():
                flight.stop.set()
                if inflight.get(key) is flight:
                    del inflight[key]
        ok, value = flight.future.result()
        if ok:
            return JSON(value, headers=_SECURITY_HEADERS)
        if isinstance(value, ScaletrackError):
            status = 404 if str(value).startswith("no run with key") else 400
            return JSON({"error": str(value)}, status_code=status, headers=_SECURITY_HEADERS)
        raise value

    def opt(request: Request, name: str) -> str | None:
        value = request.query_params.get(name)
        return value if value not in (None, "") else None

    async def api_info(request: Request) -> Response:
        from scaletrack import __version__
        from scaletrack.store.engine import redact_url

        return await answer(request, lambda stop: {
            "store": redact_url(store.url), "version": __version__, "read_only": True})

    async def api_sweeps(request: Request) -> Response:
        return await answer(request, lambda stop: data.sweeps_summary(store))

    async def api_runs(request: Request) -> Response:
        q = request.query_params
        return await answer(request, lambda stop: data.runs_page(
            store, sweep=opt(request, "sweep"), status=opt(request, "status"),
            tag=opt(request, "tag"), where=data.parse_where(q.getlist("where")),
            search=opt(request, "q"), sort=opt(request, "sort") or "created_at",
            descending=q.get("desc") in ("1", "true"), group=opt(request, "group"),
            offset=_int(request, "offset", 0), limit=_int(request, "limit", 100),
        ))

    async def api_run(request: Request) -> Response:
        key = request.path_params["run_key"]
        return await answer(request, lambda stop: data.run_detail(store, key))

    async def api_run_evals(request: Request) -> Response:
        key = request.path_params["run_key"]
        return await answer(request, lambda stop: sweep_data.run_evals(store, key))

    async def api_adaptive(request: Request) -> Response:
        return await answer(request, lambda stop: sweep_data.adaptive_steps(
            store, opt(request, "sweep")))

    async def api_metrics(request: Request) -> Response:
        q = request.query_params
        return await answer(request, lambda stop: data.metric_series(
            store, q.getlist("run"), q.get("name") or "train/loss",
            points=_int(request, "points", data.DEFAULT_POINTS),
        ))

    async def api_scaling(request: Request) -> Response:
        return await answer(request, lambda stop: data.scaling(store, opt(request, "sweep"),
                                                               should_stop=stop))

    async def api_predict(request: Request) -> Response:
        raw = request.query_params.get("at", "")
        try:
            at = float(raw)
        except ValueError:  # say what was typed, not what it failed to become
            return JSON({"error": f"predict at {raw[:40]!r}: a positive number is needed, "
                                  "e.g. 1e21"}, status_code=400, headers=_SECURITY_HEADERS)
        return await answer(request, lambda stop: data.predict_at(
            store, opt(request, "sweep"), request.query_params.get("x") or "C", at))

    async def api_optimal(request: Request) -> Response:
        return await answer(request, lambda stop: data.optimal(store, opt(request, "sweep")))

    async def api_fits(request: Request) -> Response:
        return await answer(request, lambda stop: data.stored_fits(store, opt(request, "form")))

    async def api_emergence(request: Request) -> Response:
        from scaletrack.ui.emergence_data import DEFAULT_PAGE
        from scaletrack.ui.emergence_data import emergence as emergence_page

        return await answer(request, lambda stop: emergence_page(
            store, offset=_int(request, "offset", 0),
            limit=_int(request, "limit", DEFAULT_PAGE), search=opt(request, "q"),
            should_stop=stop))

    async def api_ideas(request: Request) -> Response:
        return await answer(request, lambda stop: data.ideas(store))

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
        Route("/api/runs/{run_key}/evals", api_run_evals, methods=get),
        Route("/api/metrics", api_metrics, methods=get),
        Route("/api/scaling", api_scaling, methods=get),
        Route("/api/optimal", api_optimal, methods=get),
        Route("/api/adaptive", api_adaptive, methods=get),
        Route("/api/predict", api_predict, methods=get),
        Route("/api/fits", api_fits, methods=get),
        Route("/api/emergence", api_emergence, methods=get),
        Route("/api/ideas", api_ideas, methods=get),
    ]
    return Starlette(routes=routes, middleware=[Middleware(HostCheck, allowed=allowed)],
                     exception_handlers={404: not_found})


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


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    """Drop uvicorn's line about cancelling answers at Ctrl-C: stopping them is intended."""
    return "timeout graceful shutdown exceeded" not in record.getMessage()


def _warm_imports() -> None:
    """Import the fitting code (SciPy, the analysis package: seconds) in the background from
    the start, so the first scaling or emergence view does not wait for it."""

    def load() -> None:
        import importlib

        for name in ("scaletrack.analysis", "scaletrack.scaling_fits",
                     "scaletrack.analysis.classify",
                     "scaletrack.evals.ideas_table", "scaletrack.ui.emergence_data"):
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    threading.Thread(target=load, name="scaletrack-ui-warm", daemon=True).start()


def serve(store_url: str | None, host: str = "127.0.0.1", port: int = 8765,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Open the store read-only and serve the dashboard until interrupted (port 0: any free
    port). Raises StoreError for a store it cannot read and OSError for an address in use."""
    _warm_imports()  # the fitting code loads while the store opens and uvicorn starts
    import uvicorn

    from scaletrack.store import open_read_only

    store = open_read_only(store_url)
    try:
        sock = _bind(host, port)  # bound here, so a taken port is one clear error
        bound = sock.getsockname()[1]
        # in-flight answers get half a second after SIGTERM / Ctrl-C, then the process goes
        # (their daemon threads never hold it up)
        config = uvicorn.Config(create_app(store, host), log_level="warning",
                                access_log=False, lifespan="off",
                                timeout_graceful_shutdown=0.5)  # type: ignore[arg-type]  # seconds
        server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_quiet_shutdown)
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
