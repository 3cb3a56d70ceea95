"""The `netfrontier` command: thin wrappers that parse options, call one library function, print.

Every NetfrontierError becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Which network to ship on your accelerator: cost, frontier, report.")
hw_app = typer.Typer(no_args_is_help=True, help="Hardware presets and profiles.")
app.add_typer(hw_app, name="hw")

from netfrontier.cli import analyze_cmds, compress_cmds, hw_cmds, measure_cmds  # noqa: E402,F401  (register commands)


def main() -> None:
    """Console entry point."""
    from netfrontier.errors import NetfrontierError

    try:
        app(standalone_mode=False)
    except NetfrontierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; completed results are kept in the store", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise
