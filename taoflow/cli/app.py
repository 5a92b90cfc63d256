"""The ``taoflow`` command: one Typer app over one module per noun.

Each noun module (``taoflow.cli.wallet``, ``subnet``, ``miner``, ``weights``, ``stake``,
``ledger``, ``epoch``, ``network``, ``consensus``, ``services``) imports only typer, rich and
light project modules at import time; torch, prefect, mlflow, dask, duckdb and pyarrow are
imported inside the commands that need them, so ``taoflow --help``, argument errors and
read-only commands answer at once. Every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import typer

from taoflow.cli.common import err
from taoflow.cli.consensus import consensus_app
from taoflow.cli.epoch import epoch_app, track_app
from taoflow.cli.ledger import ledger_app
from taoflow.cli.miner import miner_app, submissions, submit
from taoflow.cli.network import network_app
from taoflow.cli.services import demo, serve, up
from taoflow.cli.stake import stake_app
from taoflow.cli.subnet import metagraph, register, subnet_app
from taoflow.cli.transfer import transfer
from taoflow.cli.wallet import wallet_app
from taoflow.cli.weights import weights_app

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
):
    app.add_typer(sub_app, name=noun)
for command in (demo, up, serve, metagraph, register, submit, submissions, transfer):
    app.command(command.__name__)(command)


DEBUG_ENV = "TAOFLOW_DEBUG"


def main() -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit, no traceback."""
    import os

    from taoflow.ledger.errors import LedgerError
    from taoflow.tasks.errors import StageError
    from taoflow.wallet import WalletError

    try:
        app()
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        expected: tuple[type[Exception], ...] = (
            LedgerError,
            WalletError,
            OSError,
            ValueError,
            LookupError,
            StageError,
        )
        if isinstance(exc, expected):
            err.print(f"[red]error:[/] {exc}", soft_wrap=True)
            raise SystemExit(1) from None
        # Anything else is a bug: say so, still no traceback by default.
        err.print(
            f"[red]unexpected error:[/] {type(exc).__name__}: {exc} "
            f"(set {DEBUG_ENV}=1 for the traceback)",
            soft_wrap=True,
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
