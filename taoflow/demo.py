"""``taoflow demo``: a local network running real epochs.

Genesis (once per home), then ``epochs`` epoch flows on one Dask LocalCluster. Running it again
on the same home continues the network from its ledger; ``fresh`` starts over.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console

from taoflow.settings import Settings

DASK_WORKERS = 2


def run_demo(settings: Settings, *, epochs: int, fresh: bool, console: Console) -> None:
    if fresh and settings.home.exists():
        shutil.rmtree(settings.home)
    settings.apply_environment()

    import distributed

    from taoflow.flows.epoch import epoch_flow
    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels
    from taoflow.network import DEMO_PASSPHRASE, SUBNET, ensure_genesis
    from taoflow.render import metagraph_table
    from taoflow.wallet import PASSPHRASE_ENV

    ledger = Ledger.open(settings.ledger_dir)
    ledger.state()  # re-hashes every batch against the commit log before any epoch runs
    with console.status("genesis: training miners") as status:
        created = ensure_genesis(
            ledger,
            artifacts_root=settings.artifacts_dir,
            wallets_root=settings.wallets_dir,
            passphrase=os.environ.get(PASSPHRASE_ENV) or DEMO_PASSPHRASE,
            progress=lambda text: status.update(f"genesis: {text}"),
        )
    if created is not None:
        console.print(f"[green]genesis committed[/] as batch {created.batch_no}")
    else:
        console.print(f"continuing the network in {settings.home}")

    cluster = None
    address = settings.dask_address
    if address is None:
        cluster = distributed.LocalCluster(
            n_workers=DASK_WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
        address = cluster.scheduler_address
        console.print(f"Dask cluster {address} (dashboard: {cluster.dashboard_link})")
    try:
        for _ in range(epochs):
            result = epoch_flow(subnet=SUBNET, home=str(settings.home), dask_address=address)
            title = (
                f"{SUBNET} — epoch {result.epoch} — batch {result.batch_no} — "
                f"emission {result.emission_rao / 1e9:,.4f} τ"
            )
            labels = account_labels(settings.wallets_dir)
            console.print(metagraph_table(result.metagraph.to_pylist(), title=title, labels=labels))
            if result.mlflow_error:
                console.print(f"[yellow]MLflow unavailable, run queued:[/] {result.mlflow_error}")
    finally:
        if cluster is not None:
            cluster.close()
    report = Ledger.open(settings.ledger_dir).verify()
    if report.ok:
        from taoflow.render import verify_lines

        console.print("ledger verify: " + "\n".join(verify_lines(report)), soft_wrap=True)
    else:
        console.print(f"ledger verify: [red]FAILED[/] {report.problem}", soft_wrap=True)
    print_ui_commands(settings.home, console=console)


def print_ui_commands(home: Path, *, console: Console) -> None:
    venv = Path(".venv/bin")
    prefix = str(venv) + "/" if venv.exists() else ""
    console.print("\nOpen the UIs on this network's data:")
    console.print(
        f"  Prefect: PREFECT_HOME={home}/prefect {prefix}prefect server start --host 127.0.0.1"
        "   → http://127.0.0.1:4200"
    )
    console.print(
        f"  MLflow:  {prefix}mlflow ui --backend-store-uri sqlite:///{home}/mlflow.db "
        "--host 127.0.0.1 --port 5000   → http://127.0.0.1:5000"
    )
