"""The `netfrontier` command: thin wrappers that parse options, call one library function, print.

Every NetfrontierError and every usage error (unknown command, missing argument, a value of the
wrong type) becomes one line on stderr and exit code 2; Ctrl-C exits 130. Only typer's public
exceptions are caught (typer is pinned: it carries its own copy of click).
"""
from __future__ import annotations

import sys

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Which network to ship on your accelerator: cost, frontier, report.")
hw_app = typer.Typer(help="Hardware presets and profiles.")
app.add_typer(hw_app, name="hw")


def _help_without_command(ctx: typer.Context) -> None:
    """A group called without a command prints its help (stdout) and exits 0."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


app.callback(invoke_without_command=True)(_help_without_command)
hw_app.callback(invoke_without_command=True)(_help_without_command)

from netfrontier.cli import analyze_cmds, compress_cmds, hw_cmds, measure_cmds, prune_cmds, search_cmds, serve_cmds, sweep_cmds  # noqa: E402,F401  (register commands)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    from netfrontier.errors import NetfrontierError

    try:
        rc = app(args=argv, standalone_mode=False)
    except NetfrontierError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        rc = 130

    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: unknown command, bad or missing value
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print(f"error: {_one_line(exc.format_message())}{hint}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    except BrokenPipeError:  # `netfrontier hw list | head -1`
        sys.stderr.close()
        sys.exit(0)
    if rc == 130:  # typer turns Ctrl-C into Exit(130), returned in non-standalone mode
        print("interrupted; completed results are kept", file=sys.stderr)
    sys.exit(rc if isinstance(rc, int) else 0)
