"""`netfrontier serve`: a local web application over the store's zoo.

Pages (pages.py, static/*.js) call a small JSON API (routes.py → api.py) that costs the kept
graphs (state.py) with the library's own cost model, frontier and spec validation; plots are
plotly figures (figures.py) drawn by the plotly.min.js that the plotly package bundles, served
from this process, so nothing is fetched from the network.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from netfrontier.serve.app import LOOPBACK, bind, create_app, server, url
from netfrontier.serve.params import default_hardware, hardware
from netfrontier.serve.state import ZooState

__all__ = ["ZooState", "create_app", "serve"]


def serve(store: Path, host: str = "127.0.0.1", port: int = 8765, studies: Path | None = None,
          say: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> None:
    """Load the zoo's graphs from `store`, bind, say where to point a browser, serve until
    Ctrl-C. A host other than loopback is served with a warning (there is no authentication)."""
    sock = None
    try:  # Ctrl-C is how a server stops, at any moment: a quiet exit, nothing to keep
        state = ZooState(store)
        n = state.load()
        state.cost_rows(hardware(default_hardware(), ""))  # the first page costs nothing more
        sock = bind(host, port)
        port = sock.getsockname()[1]
        local = host in LOOPBACK
        if not local:
            warn(f"warning: serving on {host}, not 127.0.0.1: anyone who can reach this "
                 f"machine on port {port} can use the server (it has no authentication)")
        app = create_app(state, studies, None if local else ["*"])
        line = (f"netfrontier serve: {n} models from {store}; open {url(host, port)} in a "
                "browser (Ctrl-C stops)")
        # said once uvicorn listens and handles signals; it shuts down cleanly on Ctrl-C,
        # then re-raises SIGINT
        server(app, on_started=lambda: say(line)).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        if sock is not None:
            sock.close()
