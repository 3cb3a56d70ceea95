"""`serve`: the interactive pages (frontier, hardware what-if, model, compare, studies)."""
from __future__ import annotations

from pathlib import Path

import typer

from netfrontier.cli import app
from netfrontier.cli.common import err


@app.command()
def serve(
    store: Path = typer.Option(None, "--store", help="SQLite store with the captured zoo "
                                                     "(default: user cache)"),
    port: int = typer.Option(8765, "--port", help="TCP port (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; anything but "
                                                         "loopback is reachable by others"),
    studies: Path = typer.Option(None, "--studies", help="folder of study results (default: "
                                                         "./benchmarks/results when it exists)"),
) -> None:
    """Explore frontiers, ask hardware what-ifs, drill into layers, in a browser."""
    from netfrontier.cli.common import check_number
    from netfrontier.errors import OptionError
    from netfrontier.serve import serve as run
    from netfrontier.store import default_path

    check_number("port", port, lo=0, hi=65535)
    if studies is not None and not studies.is_dir():
        raise OptionError(f"--studies '{studies}' is not a folder")
    if studies is None and Path("benchmarks/results").is_dir():
        studies = Path("benchmarks/results")
    run(store or default_path(), host=host, port=port, studies=studies,
        say=lambda s: print(s, flush=True),
        warn=lambda s: err.print(s, markup=False, highlight=False, style="yellow"))
