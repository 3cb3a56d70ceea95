"""The web application and its server: Starlette with request limits, security headers and a host
check, run by uvicorn on a socket bound to 127.0.0.1 unless the user asks otherwise.

Static files are read into memory at start-up from this package (and plotly's bundled
plotly.min.js from the plotly package): a request picks one by name from that table and never
opens a path.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import socket
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request

from netfrontier.errors import OptionError
from netfrontier.serve.params import BadRequest
from netfrontier.serve.routes import EXCEPTION_HANDLERS, MAX_BODY_BYTES, ROUTES, error
from netfrontier.serve.state import ZooState

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".svg": "image/svg+xml"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_URL_BYTES = 4096
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")]


def plotly_js() -> Path:
    """plotly.min.js as the plotly Python package ships it (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js" if spec and spec.origin \
        else None
    if path is None or not path.is_file():
        raise OptionError("plotly's bundled plotly.min.js is missing; reinstall netfrontier "
                          "(pip install -e .) to get the pinned plotly")
    return path


def load_assets() -> dict[str, tuple[bytes, str, str, str]]:
    """name -> (body, media type, ETag, Cache-Control) for every file the pages load."""
    files = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in MEDIA_TYPES}
    files["plotly.min.js"] = plotly_js()
    out = {}
    for name, path in files.items():
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        cache = "public, max-age=86400" if name == "plotly.min.js" else "no-cache"
        out[name] = (body, MEDIA_TYPES[path.suffix], etag, cache)
    return out


class Guard:
    """Request limits and response headers for every request: an over-long URL is a 414, a
    body over MAX_BODY_BYTES a 413 (by its Content-Length, or as it streams in), each with one
    message; every response gets the security headers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = self._with_headers(send)
        problem = None
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") > \
                MAX_URL_BYTES:
            problem = (414, f"the URL is longer than {MAX_URL_BYTES:,} bytes")
        length = Request(scope).headers.get("content-length", "0")
        if not length.isdigit():
            problem = (400, "the Content-Length header is not a number")
        elif int(length) > MAX_BODY_BYTES:
            problem = (413, f"the request body is larger than the {MAX_BODY_BYTES:,}-byte limit")
        if problem:
            return await error(Request(scope), *problem)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:  # a chunked body that grows past the limit
                raise BadRequest(f"the request body is larger than the {MAX_BODY_BYTES:,}-byte "
                                 "limit", 413)
            return message

        await self.app(scope, limited, send)

    @staticmethod
    def _with_headers(send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers") or []) + SECURITY_HEADERS
            await send(message)
        return wrapped


def create_app(state: ZooState, studies: Path | None = None,
               hosts: list[str] | None = None) -> Starlette:
    """The application over a loaded zoo. `hosts`: Host headers accepted (default: loopback
    names only, which also stops DNS-rebinding pages from reaching a local server)."""
    app = Starlette(routes=ROUTES, exception_handlers=EXCEPTION_HANDLERS,
                    middleware=[Middleware(Guard), Middleware(
                        TrustedHostMiddleware, allowed_hosts=hosts or ["127.0.0.1", "localhost"])])
    app.state.zoo = state
    app.state.studies = Path(studies) if studies else None
    app.state.assets = load_assets()
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one. Connections made before
    uvicorn runs wait in its backlog. One clear error when the address is taken or cannot be
    bound."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        raise OptionError(f"cannot serve on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def server(app: Starlette, on_started=None):
    """A uvicorn server with quiet logs and bounded connections and headers. `on_started` runs
    once it listens with its own signal handlers in place, so a Ctrl-C sent by whoever read
    what `on_started` printed always reaches uvicorn's orderly shutdown."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if on_started is not None and self.started:
                on_started()

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            ws="none", server_header=False, limit_concurrency=64,
                            timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024)
    return Server(config)


@contextlib.contextmanager
def serve_in_thread(app: Starlette, timeout_s: float = 30.0):
    """Serve `app` on a free 127.0.0.1 port from a thread (tests, screenshots); yields the
    base URL and stops the server on exit."""
    import threading
    import time

    sock = bind("127.0.0.1", 0)
    srv = server(app)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not srv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(timeout_s)
        sock.close()


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"
