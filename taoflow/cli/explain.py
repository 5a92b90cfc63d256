"""``taoflow explain``: every step from one neuron's artifact to its reward in one epoch.

The content is ``tasks.audit.explain.explain`` (read-only): rich panels and tables for people,
``--json`` for scripts (every row; the tables here show at most ``TABLE_ROWS_MAX``). τ is exact
(9 decimals, from integer rao). Accounts are shown by wallet name where a local wallet holds them.

Invariants: ``--hotkey`` is a hotkey id, ``wallet/hotkey``, or a wallet name whose hotkeys
include exactly one registered on the subnet; ``--subnet`` may be left out when that hotkey is
registered on exactly one subnet. An unknown hotkey, subnet or epoch is one line on stderr and
exit 2, before anything is shown. An epoch whose numbers do not add up (``Explanation.ok`` false:
a record that fails its hash, emission rows that differ from the record) is shown in full, then
named in one line, exit 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final

import typer

from taoflow.cli.common import HomeOption, JsonOption, console, fail, print_json, settings_for
from taoflow.cli.common import tao_text as _tao

if TYPE_CHECKING:
    from rich.console import RenderableType

    from taoflow.tasks.audit.explain import Explanation, Judgement

USAGE_EXIT_CODE: Final = 2
MISMATCH_EXIT_CODE: Final = 1
TABLE_ROWS_MAX: Final = 64
"""Most rows of one table printed for people (``--json`` holds them all)."""

HotkeyArg = Annotated[
    str,
    typer.Option("--hotkey", help="Hotkey id, wallet/hotkey, or a wallet name"),
]
EpochArg = Annotated[int, typer.Option("--epoch", help="A committed epoch of the subnet")]
SubnetArg = Annotated[
    str | None,
    typer.Option("--subnet", "-s", help="Subnet (default: the one subnet the hotkey is on)"),
]


def explain(
    hotkey: HotkeyArg,
    epoch: EpochArg,
    subnet: SubnetArg = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every step from a neuron's artifact to its reward in one epoch.

    The commit evaluated, each validator's score and weight, consensus clipping, incentive or
    dividends, and the ledger rows that paid it.
    """
    settings = settings_for(home, read_only=True)

    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels
    from taoflow.tasks.audit.explain import choose_hotkey, hotkeys_named
    from taoflow.tasks.audit.explain import explain as explain_reward
    from taoflow.tasks.audit.history import HistoryError

    labels = account_labels(settings.wallets_dir)
    ledger = Ledger.open(settings.ledger_dir)
    try:
        candidates = hotkeys_named(hotkey, labels)
        chosen_subnet, chosen_hotkey = choose_hotkey(
            ledger.state(), candidates, subnet=subnet, given=hotkey
        )
        explanation = explain_reward(
            ledger, subnet=chosen_subnet, hotkey=chosen_hotkey, epoch=epoch, labels=labels
        )
    except HistoryError as exc:
        raise fail(str(exc), USAGE_EXIT_CODE) from None
    if as_json:
        print_json(explanation.to_dict())
    else:
        show(explanation)
    if not explanation.ok:
        failed = ", ".join(c.name for c in explanation.checks if not c.holds)
        raise fail(
            f"epoch {epoch} of {chosen_subnet!r} does not add up for uid {explanation.uid}: "
            f"{failed}",
            MISMATCH_EXIT_CODE,
        )


# ---- rich output ----------------------------------------------------------------------------


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.6f}"


def _bounded(table: RenderableType, rows: int) -> list[RenderableType]:
    more = rows - TABLE_ROWS_MAX
    return [table, f"[dim]… {more} more rows: --json shows them all[/]"] if more > 0 else [table]


def _head(x: Explanation) -> RenderableType:
    from rich.panel import Panel

    s = x.submission
    if s.commit_block is None:
        eligibility = "no submission committed before the epoch"
    elif s.eligible:
        eligibility = f"eligible: block {s.commit_block} + delay {s.delay_blocks} ≤ {s.epoch_block}"
    else:
        eligibility = f"[yellow]not eligible before block {s.eligible_from_block}[/]"
    lines = [
        f"block {x.block} · ledger batch {x.batch_no} ({x.batch_hash[:16]}…) · role {x.role}",
        f"coldkey {x.coldkey.name} · stake {_tao(x.stake_rao)} τ at the epoch's start",
        f"commit [bold]{s.commit_tx_id or '–'}[/] at block "
        f"{'–' if s.commit_block is None else s.commit_block}",
        f"digest {s.digest or '–'} · uri {s.uri or '–'}",
        eligibility,
        f"rejected: [red]{s.rejection}[/]" if s.rejection else "rejected: no",
    ]
    title = f"{x.hotkey.name} · uid {x.uid} · {x.subnet} · epoch {x.epoch}"
    return Panel("\n".join(lines), title=title, title_align="left")


def _judgement_table(title: str, rows: tuple[Judgement, ...], *, as_miner: bool) -> RenderableType:
    from rich.table import Table

    table = Table(title=title, header_style="bold cyan", title_justify="left")
    first = ("validator", "stake τ", "permit", "stake share") if as_miner else ("miner",)
    for name in (*first, "score", "weight u16", "weight", "consensus", "clipped", "clipped by"):
        table.add_column(name, justify="left" if name in ("validator", "miner") else "right")
    table.add_column("bond u16" if not as_miner else "entry")
    for j in rows[:TABLE_ROWS_MAX]:
        who = (
            (
                f"{j.validator} {j.validator_hotkey.name}",
                _tao(j.validator_stake_rao),
                "yes" if j.permitted else "no",
                _f(j.consensus_stake_share),
            )
            if as_miner
            else (str(j.miner),)
        )
        last = (
            (j.masked or "counted")
            if as_miner
            else ("–" if j.bond_u16 is None else str(j.bond_u16))
        )
        u16 = "–" if j.weight_u16 is None else str(j.weight_u16)
        table.add_row(
            *who,
            _f(j.score),
            u16,
            _f(j.weight),
            _f(j.consensus),
            _f(j.clipped_weight),
            _f(j.clipped_by),
            last,
        )
    return table


def _emission(x: Explanation) -> list[RenderableType]:
    from rich.table import Table

    s = x.split
    pool = (
        "validators' pool + miners' pool (no miner earned incentive)"
        if s.fallback
        else "validators' pool"
    )
    lines = [
        f"epoch emission {_tao(s.scheduled_rao)} τ → owner {_tao(s.owner_rao)} τ · miners' pool "
        f"{_tao(s.miners_pool_rao)} τ · validators' pool {_tao(s.validators_pool_rao)} τ · "
        f"unissued {_tao(s.unissued_rao)} τ",
        f"incentive {_tao(s.incentive_rao)} τ of the miners' pool · dividend "
        f"{_tao(s.dividend_rao)} τ of the {pool}",
        f"[bold]paid to uid {x.uid}: {_tao(x.emission_rao)} τ[/] ({x.emission_rao} rao; uids "
        f"record {x.recorded_emission_rao} rao)",
    ]
    table = Table(title="ledger rows", header_style="bold cyan", title_justify="left")
    for name in ("row", "role", "τ", "moved to"):
        table.add_column(name, justify="right" if name == "τ" else "left")
    for p in x.payouts[:TABLE_ROWS_MAX]:
        moved = (
            f"stake of {p.coldkey.name} on {p.hotkey.name}"
            if p.moves == "stake"
            else f"balance of {p.coldkey.name}"
        )
        table.add_row(p.tx_id, p.role, _tao(p.amount_rao), moved)
    return ["\n".join(lines), *_bounded(table, len(x.payouts))]


def show(x: Explanation) -> None:
    """The explanation as panels and tables (τ exact, accounts by wallet name)."""
    parts: list[RenderableType] = [_head(x)]
    m = x.miner
    if m.judgements:
        title = (
            f"as a miner: mean score {_f(m.mean_score)} · consensus {_f(m.consensus)} · rank "
            f"{_f(m.rank)} of {_f(m.rank_total)} → incentive {_f(m.incentive)}"
        )
        table = _judgement_table(title, m.judgements, as_miner=True)
        parts += _bounded(table, len(m.judgements))
    v = x.validator
    if v is not None:
        title = (
            f"as a validator: stake share {_f(v.consensus_stake_share)} · trust "
            f"{_f(v.validator_trust)} · dividends {_f(v.dividends)} · take "
            f"{v.take_ppm / 10_000:g} % · permit next epoch {'yes' if v.permit_next else 'no'}"
        )
        parts += _bounded(_judgement_table(title, v.weights, as_miner=False), len(v.weights))
    parts += _emission(x)
    parts += [f"{'[green]✓[/]' if c.holds else '[red]✗[/]'} {c.name}: {c.detail}" for c in x.checks]
    for part in parts:
        console.print(part)
