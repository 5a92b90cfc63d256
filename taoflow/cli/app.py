"""The ``taoflow`` command: one Typer app over one module per noun.

Each noun module (``taoflow.cli.wallet``, ``subnet``, ``miner``, ``weights``, ``stake``,
``ledger``, ``epoch``, ``network``, ``consensus``, ``services``, ``explorer``, ``governance``)
imports only typer, rich and light project modules at import time; torch, prefect, mlflow, dask,
duckdb, pyarrow and the web stack (fastapi, uvicorn) are imported inside the commands that need
them, so ``taoflow --help``, argument errors and read-only commands answer at once. Every
failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import typer

from taoflow.cli.audit import audit
from taoflow.cli.common import error_line, one_command_process
from taoflow.cli.consensus import consensus_app
from taoflow.cli.epoch import epoch_app, track_app
from taoflow.cli.explain import explain
from taoflow.cli.explorer import explorer
from taoflow.cli.governance import proposal_app, proposals, propose_app, vote
from taoflow.cli.ledger import ledger_app
from taoflow.cli.miner import miner_app, submissions, submit
from taoflow.cli.network import network_app
from taoflow.cli.replay import replay
from taoflow.cli.services import demo, serve, up
from taoflow.cli.stake import stake_app
from taoflow.cli.subnet import metagraph, register, subnet_app
from taoflow.cli.transfer import transfer
from taoflow.cli.wallet import wallet_app
from taoflow.cli.weights import weights_app
from taoflow.cli.whatif import whatif

app = typer.Typer(no_args_is_help=True, add_completion=False, help="taoflow network CLI")
for noun, sub_app in (
    ("wallet", wallet_app),
    ("subnet", subnet_app),
    ("miner", miner_app),
    ("weights", weights_app),
    ("stake", stake_app),
    ("ledger", ledger_app),
    ("epoch", epoch_app),
    ("track", track_app),
    ("network", network_app),
    ("consensus", consensus_app),
    ("propose", propose_app),
    ("proposal", proposal_app),
):
    app.add_typer(sub_app, name=noun)
for command in (demo, up, serve, metagraph, register, submit, submissions, transfer, explain):
    app.command(command.__name__)(command)
app.command("replay")(replay)
app.command("whatif")(whatif)
app.command("audit")(audit)
app.command("explorer")(explorer)
app.command("vote")(vote)
app.command("proposals")(proposals)


DEBUG_ENV = "TAOFLOW_DEBUG"
PROG_NAME = "taoflow"
USAGE_EXIT_CODE = 2
FAILURE_EXIT_CODE = 1
UNEXPECTED_EXIT_CODE = 2


def main(args: list[str] | None = None) -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit, no traceback.

    Usage errors (a missing or unknown option, a bad value, an unknown command) are
    ``error: <what> Try 'taoflow <command> --help'.`` with exit 2; the commands' own failures
    are ``error: <why>`` with exit 1 (2 for a bad amount). ``TAOFLOW_DEBUG=1`` re-raises.
    """
    one_command_process()
    raise SystemExit(run(args))


def run(args: list[str] | None = None) -> int:
    """Run the CLI on ``args`` (default ``sys.argv[1:]``); the exit code."""
    import os

    try:
        result = app(args=args, prog_name=PROG_NAME, standalone_mode=False)
    except typer.Abort:  # Ctrl-D at a prompt
        error_line("aborted")
        return FAILURE_EXIT_CODE
    except Exception as exc:
        if type(exc).__name__ == NO_ARGS_IS_HELP:
            return USAGE_EXIT_CODE  # a bare group: its help is already printed on stdout
        if isinstance(exc, ClickError):
            error_line(usage_message(exc))
            return exc.exit_code
        if os.environ.get(DEBUG_ENV):
            raise
        return report_failure(exc)
    # Without standalone mode a ``typer.Exit``'s code is returned, or the command's value.
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


NO_ARGS_IS_HELP = "NoArgsIsHelpError"
"""click's signal that a group was called bare (matched by name, as Typer itself does)."""


@runtime_checkable
class ClickError(Protocol):
    """A click (or Typer's vendored click) exception: a message and an exit code.

    Matched by shape, not class, because Typer ≥ 0.22 vendors click under its own module.
    """

    exit_code: int

    def format_message(self) -> str: ...


def usage_message(exc: ClickError) -> str:
    """``exc``'s message and, for a usage error, where the help is: one line."""
    message = exc.format_message().strip()
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command", None)
    if ctx is not None and command is not None and command.get_help_option(ctx) is not None:
        stop = "" if message.endswith((".", "?", "!")) else "."
        message = f"{message}{stop} Try '{ctx.command_path} {ctx.help_option_names[0]}'."
    return message


def report_failure(exc: Exception) -> int:
    """One line for a failure that escaped a command; its exit code."""
    from taoflow.ledger.errors import LedgerError
    from taoflow.tasks.errors import StageError
    from taoflow.wallet import WalletError

    expected: tuple[type[Exception], ...] = (
        LedgerError,
        WalletError,
        OSError,
        ValueError,
        LookupError,
        StageError,
    )
    if isinstance(exc, expected):
        error_line(str(exc))
        return FAILURE_EXIT_CODE
    # Anything else is a bug: say so, still no traceback by default.
    error_line(
        f"unexpected error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)"
    )
    return UNEXPECTED_EXIT_CODE


if __name__ == "__main__":
    main()
