"""``taoflow demo``: a local network running real epochs, and what it taught.

Genesis (once per home), then ``epochs`` epoch flows on one Dask LocalCluster. Running it again
on the same home continues the network from its ledger; ``fresh`` starts over.

Invariants: after each epoch the demo prints the metagraph right after that epoch's commit (the
rows of ``metagraph --epoch N``, the table of ``epoch run``). Its closing lines are computed
from the ledger (``demo_summary``: what each epoch of this run paid miners and validators, the
permits held before it, the best-paid miners' share of incentive) by a pure function
(``closing_lines``), and the commands they suggest are runnable as printed on this home.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from taoflow.settings import Settings

if TYPE_CHECKING:
    from taoflow.ledger.store import Ledger

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
    from taoflow.queries import metagraph
    from taoflow.render import epoch_table
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
    ran: list[int] = []
    try:
        for _ in range(epochs):
            result = epoch_flow(subnet=SUBNET, home=str(settings.home), dask_address=address)
            ran.append(result.epoch)
            rows = metagraph(Ledger.open(settings.ledger_dir), subnet=SUBNET, epoch=result.epoch)
            labels = account_labels(settings.wallets_dir)
            console.print(epoch_table(rows, result=result, labels=labels))
            if result.mlflow_error:
                console.print(f"[yellow]MLflow unavailable, run queued:[/] {result.mlflow_error}")
    finally:
        if cluster is not None:
            cluster.close()
    print_closing(settings, subnet=SUBNET, epochs=ran, console=console)


def print_closing(
    settings: Settings, *, subnet: str, epochs: Sequence[int], console: Console
) -> None:
    """``ledger verify`` on the whole ledger, then what happened and what to try next."""
    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels
    from taoflow.render import verify_lines

    ledger = Ledger.open(settings.ledger_dir)
    report = ledger.verify()
    if report.ok:
        console.print("ledger verify: " + "\n".join(verify_lines(report)), soft_wrap=True)
    else:
        console.print(f"ledger verify: [red]FAILED[/] {report.problem}", soft_wrap=True)
    labels = account_labels(settings.wallets_dir)
    summary = demo_summary(ledger, subnet=subnet, epochs=epochs, home=settings.home, labels=labels)
    for line in closing_lines(summary):
        console.print(line, soft_wrap=True, markup=False, highlight=False)


TOP_MINERS = 3
"""How many of the best-paid miners the closing lines name."""
DEMO_WALLET = "alice"
"""The wallet name the first-miner commands create."""
TRANSFER_TAO = 10
"""τ the first-miner commands move from the owner: the registration burn and fees, with room."""
U16_MAX = 65_535
PPM_PER_PERCENT = 10_000
"""Parts per million in one percent."""


@dataclass(frozen=True)
class EpochFacts:
    """What one epoch paid, read back from its ``uids`` record."""

    epoch: int
    miners_rao: int
    validators_rao: int
    permits_before: int
    """Validators holding a permit from the previous epoch (none before the first)."""


@dataclass(frozen=True)
class TopMiners:
    """The best-paid miners of one epoch and their share of its incentive."""

    epoch: int
    names: tuple[str, ...]
    scores: tuple[float | None, ...]
    share: float
    best_scores: bool
    """True when they are also the miners with the best mean scores."""
    miners: int


@dataclass(frozen=True)
class DemoSummary:
    """What the demo's closing lines are computed from (``closing_lines`` is pure in it)."""

    subnet: str
    epochs: tuple[EpochFacts, ...]
    top: TopMiners | None
    kappa: float
    temperature: float
    miners_percent: float
    command: str
    home: Path | None
    """``None`` when the home is the default one (no ``TAOFLOW_HOME`` to export)."""
    owner_passphrase: str | None
    """The demo wallets' published passphrase; None when ``TAOFLOW_WALLET_PASSPHRASE`` is set."""


def taoflow_command() -> str:
    """How the person who ran the demo calls ``taoflow``: by name if it is on PATH."""
    script = Path(sys.executable).parent / "taoflow"
    found = shutil.which("taoflow")
    if found and script.exists() and Path(found).resolve() == script.resolve():
        return "taoflow"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m taoflow.cli"
    try:
        return shlex.quote(str(script.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(script))


def _epoch_facts(ledger: Ledger, *, subnet: str, epoch: int) -> EpochFacts | None:
    uids = ledger.epoch_records(subnet, epoch, names=("uids",)).get("uids")
    if uids is None:
        return None
    state = ledger.state()
    roles = {n.hotkey: n.role for n in state.neurons.get(subnet, {}).values()}
    paid = {"miner": 0, "validator": 0}
    for hotkey, emission_rao in zip(
        uids.column("hotkey").to_pylist(), uids.column("emission_rao").to_pylist(), strict=True
    ):
        role = roles.get(hotkey, "miner")
        paid[role if role in paid else "miner"] += emission_rao
    previous = ledger.epoch_records(subnet, epoch - 1, names=("uids",)) if epoch else {}
    permits = previous["uids"].column("permit").to_pylist() if "uids" in previous else []
    return EpochFacts(
        epoch=epoch,
        miners_rao=paid["miner"],
        validators_rao=paid["validator"],
        permits_before=sum(permits),
    )


def _top_miners(
    ledger: Ledger, *, subnet: str, epoch: int, labels: Mapping[str, str]
) -> TopMiners | None:
    from taoflow.names import label
    from taoflow.queries import metagraph

    rows = [r for r in metagraph(ledger, subnet=subnet, epoch=epoch) if r["role"] == "miner"]
    total = sum(r["incentive"] for r in rows)
    if not rows or total <= 0:
        return None
    by_incentive = sorted(rows, key=lambda r: (-r["incentive"], r["uid"]))[:TOP_MINERS]
    by_score = sorted(rows, key=lambda r: (-(r["score"] or 0.0), r["uid"]))[:TOP_MINERS]
    return TopMiners(
        epoch=epoch,
        names=tuple(label(r["hotkey"], dict(labels)).split("/")[0] for r in by_incentive),
        scores=tuple(r["score"] for r in by_incentive),
        share=sum(r["incentive"] for r in by_incentive) / total,
        best_scores={r["uid"] for r in by_incentive} == {r["uid"] for r in by_score},
        miners=len(rows),
    )


def demo_summary(
    ledger: Ledger, *, subnet: str, epochs: Sequence[int], home: Path, labels: Mapping[str, str]
) -> DemoSummary:
    """The facts behind the closing lines, from the ledger and the epochs this run committed."""
    from taoflow.network import DEMO_PASSPHRASE
    from taoflow.settings import DEFAULT_HOME
    from taoflow.tasks.consensus.stage import yuma_params
    from taoflow.tasks.weights import ValidatorPolicy
    from taoflow.wallet import PASSPHRASE_ENV

    config = ledger.state().subnets[subnet].config
    facts = [_epoch_facts(ledger, subnet=subnet, epoch=e) for e in epochs]
    paying = [e for e in epochs if e in {f.epoch for f in facts if f and f.miners_rao > 0}]
    top = _top_miners(ledger, subnet=subnet, epoch=paying[-1], labels=labels) if paying else None
    split = config.split_ppm()
    return DemoSummary(
        subnet=subnet,
        epochs=tuple(f for f in facts if f is not None),
        top=top,
        kappa=yuma_params(config).kappa_u16 / U16_MAX,
        temperature=ValidatorPolicy.from_settings(config.validator_policy).temperature,
        miners_percent=split["miners"] / PPM_PER_PERCENT,
        command=taoflow_command(),
        home=None if home == DEFAULT_HOME.resolve() else home,
        owner_passphrase=None if os.environ.get(PASSPHRASE_ENV) else DEMO_PASSPHRASE,
    )


def first_miner_commands(command: str, *, subnet: str, wallet: str = DEMO_WALLET) -> list[str]:
    """A first miner in four commands: wallet, funds, registration, a trained model submitted."""
    out = f"{wallet}-model"
    return [
        f"{command} wallet create --name {wallet}",
        f"{command} transfer --wallet owner --dest {wallet} --amount {TRANSFER_TAO}",
        f"{command} register --subnet {subnet} --wallet {wallet}",
        f"{command} miner train --subnet {subnet} --out {out} && {command} submit "
        f"{out}/model.safetensors {out}/config.json --subnet {subnet} --wallet {wallet}",
    ]


def _what_happened(summary: DemoSummary) -> list[str]:
    lines = []
    for facts in summary.epochs:
        if facts.miners_rao > 0 or facts.validators_rao == 0:
            continue
        if facts.permits_before == 0:
            why = (
                "no validator held a permit yet (an epoch grants permits, by stake, for the "
                "next one), so consensus ignored every weight"
            )
        else:
            why = "no weight survived consensus, so no miner earned incentive"
        lines.append(
            f"  epoch {facts.epoch} paid validators only: {why}; the miners' "
            f"{summary.miners_percent:g} % went to validators by stake."
        )
    top = summary.top
    if top is not None:
        names = ", ".join(
            name if score is None else f"{name} {score:.3f}"
            for name, score in zip(top.names, top.scores, strict=True)
        )
        which = "the best mean scores" if top.best_scores else "mean scores"
        lines += [
            f"  epoch {top.epoch}: {len(top.names)} of {top.miners} miners ({which}: {names}) "
            f"took {top.share * 100:.0f} % of the incentive:",
            f"    each validator weights a softmax (temperature {summary.temperature:g}) of "
            f"pairwise wins, and consensus clips every weight to what validators holding "
            f"κ = {summary.kappa * 100:.0f} % of the stake gave that miner.",
        ]
    return lines


def closing_lines(summary: DemoSummary) -> list[str]:
    """What happened in this run and what to try next: plain text, at most ~15 lines."""
    tf = summary.command
    happened = _what_happened(summary)
    lines = ["", "What happened", *happened] if happened else []
    lines += ["", "Try next"]
    if summary.home is not None:
        lines.append(f"  export TAOFLOW_HOME={shlex.quote(str(summary.home))}")
    lines += [
        f"  {tf} up               the explorer, Prefect, MLflow and Dask UIs on this network",
        f"  {tf} metagraph        the table above at any time (--epoch N, --json)",
        f"  {tf} ledger verify    re-check every batch, signature and money rule",
    ]
    owner = (
        f"the owner wallet's passphrase is {summary.owner_passphrase}"
        if summary.owner_passphrase
        else "the owner wallet uses your TAOFLOW_WALLET_PASSPHRASE"
    )
    lines.append(f"  A first miner in four commands ({owner}), then `{tf} epoch run`:")
    lines += [f"    {c}" for c in first_miner_commands(tf, subnet=summary.subnet)]
    return lines
