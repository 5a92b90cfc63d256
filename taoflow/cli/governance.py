"""``taoflow propose …``, ``taoflow vote``, ``taoflow proposals``, ``taoflow proposal show``.

TAO holders propose changes to a subnet's or the network's parameters (or a text-only signal),
vote on them with the power they held when the proposal opened, and read the tally so far.

Invariants:
- A proposal or a vote is checked against the current ledger state by the ledger's own rules
  (``ProposalSpec.from_payload`` / ``governance_rules.check_proposal`` / ``check_vote``) before
  any wallet is unlocked, anything is signed or a backtest runs; a refusal is the ledger's own
  reason as one line on stderr, exit 1 (a malformed option: exit 2), and the ledger is unchanged.
- A change the audit what-if can recompute (``yuma`` keys, ``emission_split_ppm``) is proposed
  only with a backtest: run now by the Prefect flow ``proposal-backtest`` (stored under the
  home, an MLflow run, a Prefect artifact), or an existing stored report (``--backtest SHA``)
  whose bytes still hash to SHA and which describes this very change of this subnet.
- Money is integer rao throughout; τ is only how it is shown (``--json`` keeps rao).
- A proposal's id is ``proposal/<first 8 hex of the proposer's coldkey>/<its nonce>``: unique
  per signer, readable, and what ``taoflow vote --proposal`` takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.markup import escape
from rich.table import Table

from taoflow.cli.common import HomeOption, JsonOption, SubnetOption, WalletOption, console
from taoflow.cli.common import account_label as _account_label
from taoflow.cli.common import account_of as _account_of
from taoflow.cli.common import amount_rao as _amount_rao
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import print_json as _print_json
from taoflow.cli.common import settings_for as _settings
from taoflow.cli.common import tao_text as _tao
from taoflow.settings import Settings

if TYPE_CHECKING:
    from taoflow.ledger.proposals import ProposalRecord
    from taoflow.ledger.schema import Tx
    from taoflow.ledger.state import LedgerState
    from taoflow.ledger.store import Ledger

USAGE_EXIT_CODE: Final = 2
PROPOSER_ID_HEX_CHARS: Final = 8
VOTING_TEMPOS_DEFAULT: Final = 2
"""Default voting period: this many tempos of the subnet, clamped to the network's bounds."""
BACKTEST_EPOCHS_DEFAULT: Final = 20
BACKTEST_EPOCHS_MAX_CLI: Final = 1_000
"""``tasks.governance.backtest.BACKTEST_EPOCHS_MAX`` (checked before the flow stack loads)."""
SETTINGS_PER_COMMAND_MAX: Final = 64
"""Most ``--set`` / ``--emission-share`` options one command takes."""
OBJECT_SETTINGS: Final = frozenset({"yuma", "validator_policy"})
"""Settings that are objects: ``--set yuma.kappa_u16=…`` sets one of their keys."""
MLFLOW_HEALTH_TIMEOUT_S: Final = 1.0
MLFLOW_RUNS_MAX: Final = 1
PPM: Final = 1_000_000
TITLE_COLUMN_MIN_CHARS: Final = 16

propose_app = typer.Typer(
    no_args_is_help=True, help="Propose a change of parameters (or a signal) for TAO holders"
)
proposal_app = typer.Typer(no_args_is_help=True, help="One governance proposal")

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="name=value (JSON-ish: 39321, true, 0.5, text); yuma.key=value"),
]
TitleOption = Annotated[str, typer.Option("--title", help="Proposal title")]
TextOption = Annotated[str, typer.Option("--text", help="Proposal text (why)")]
DepositOption = Annotated[
    str | None, typer.Option("--deposit", help="Deposit in τ (default: the network's minimum)")
]
VotingBlocksOption = Annotated[
    int | None,
    typer.Option("--voting-blocks", help="Voting period in blocks (default: 2 tempos, clamped)"),
]


# ---- parsing -------------------------------------------------------------------------------


def _json_value(text: str) -> Any:
    """``text`` as JSON (int, true/false, float, object…), or as plain text if it is none."""

    def no_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, parse_constant=no_constant)
    except ValueError:
        return text


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``--set name=value`` options as a change object (dotted names set one key of an object
    setting); one line and exit 2 for a malformed one."""
    if len(items) > SETTINGS_PER_COMMAND_MAX:
        raise _fail(f"at most {SETTINGS_PER_COMMAND_MAX} --set options", USAGE_EXIT_CODE)
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise _fail(f"--set takes name=value, got {item[:80]!r}", USAGE_EXIT_CODE)
        setting, dot, key = name.partition(".")
        value = _json_value(raw.strip())
        if not dot:
            if setting in changes:
                raise _fail(f"--set names {setting} twice", USAGE_EXIT_CODE)
            changes[setting] = value
            continue
        if setting not in OBJECT_SETTINGS or not key or "." in key:
            raise _fail(
                f"--set {name[:80]}: dotted names set one key of {sorted(OBJECT_SETTINGS)}",
                USAGE_EXIT_CODE,
            )
        keys = changes.setdefault(setting, {})
        if not isinstance(keys, dict) or key in keys:
            raise _fail(f"--set names {name[:80]} twice", USAGE_EXIT_CODE)
        keys[key] = value
    return changes


def parse_shares(items: list[str]) -> dict[str, Any]:
    """``--emission-share subnet=N`` options as ``{subnet: N}`` (exit 2 when malformed)."""
    if len(items) > SETTINGS_PER_COMMAND_MAX:
        raise _fail(f"at most {SETTINGS_PER_COMMAND_MAX} --emission-share options", 2)
    shares: dict[str, Any] = {}
    for item in items:
        subnet, sep, raw = item.partition("=")
        if not sep or not subnet.strip() or subnet.strip() in shares:
            raise _fail(f"--emission-share takes subnet=share once each, got {item[:80]!r}", 2)
        shares[subnet.strip()] = _json_value(raw.strip())
    return shares


# ---- proposing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attached:
    """The backtest a proposal carries: its hash, summary lines and MLflow run (if run now)."""

    sha256: str
    lines: tuple[str, ...]
    mlflow_run_id: str | None = None


def _common_payload(
    state: LedgerState,
    *,
    kind: str,
    title: str,
    text: str,
    deposit: str | None,
    voting_blocks: int | None,
    tempo_blocks: int | None,
) -> dict[str, Any]:
    params = state.governance
    deposit_rao = params.deposit_min_rao if deposit is None else _amount_rao(deposit)
    if voting_blocks is None:
        wanted = VOTING_TEMPOS_DEFAULT * (tempo_blocks or params.voting_blocks_min)
        voting_blocks = min(params.voting_blocks_max, max(params.voting_blocks_min, wanted))
    return {
        "kind": kind,
        "title": title,
        "text": text,
        "deposit_rao": deposit_rao,
        "voting_blocks": voting_blocks,
    }


def _proposal_tx(state: LedgerState, *, proposer: str, payload: dict[str, Any]) -> Tx:
    from taoflow.ledger.schema import Kind, Tx, canonical_json

    nonce = state.next_nonce(proposer)
    return Tx(
        f"proposal/{proposer[:PROPOSER_ID_HEX_CHARS]}/{nonce}",
        Kind.PROPOSAL,
        coldkey=proposer,
        amount_rao=int(payload["deposit_rao"]),
        payload=canonical_json(payload),
    )


def _check_proposal(settings: Settings, state: LedgerState, tx: Tx) -> None:
    """The ledger's own refusal of ``tx`` (its rules and its fee), as one line; else nothing."""
    from taoflow.actions import named
    from taoflow.ledger.governance_rules import check_proposal

    reason = check_proposal(state, tx)
    if reason is None:
        fee_rao = state.tx_fee_rao
        need_rao = tx.amount_rao + fee_rao
        if state.balance(tx.coldkey) < need_rao:
            reason = (
                f"balance {_tao(state.balance(tx.coldkey))} τ is less than the deposit and fee "
                f"{_tao(need_rao)} τ"
            )
    if reason is not None:
        raise _fail(named(settings, reason))


def _submit(
    settings: Settings,
    *,
    wallet: str,
    payload: dict[str, Any],
    attached: Attached | None,
    as_json: bool,
) -> None:
    """Sign, commit and report the proposal (every ``propose`` command ends here)."""
    proposal_id, batch_no = _commit_proposal(
        settings, wallet=wallet, payload=payload, attached=attached
    )
    _report_proposal(
        settings, proposal_id=proposal_id, batch_no=batch_no, attached=attached, as_json=as_json
    )


def _commit_proposal(
    settings: Settings, *, wallet: str, payload: dict[str, Any], attached: Attached | None
) -> tuple[str, int | None]:
    """Sign and commit the proposal; (proposal id, batch)."""
    from taoflow.actions import ActionError, coldkey, commit_signed
    from taoflow.ledger.store import Ledger

    if attached is not None:
        payload = {**payload, "backtest_sha256": attached.sha256}
    try:
        cold = coldkey(settings, wallet)
        state = Ledger.open(settings.ledger_dir).state()
        tx = _proposal_tx(state, proposer=cold.public_hex, payload=payload)
        result = commit_signed(settings, tx, cold)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    return tx.tx_id, result.batch_no


def _report_proposal(
    settings: Settings,
    *,
    proposal_id: str,
    batch_no: int | None,
    attached: Attached | None,
    as_json: bool,
) -> None:
    from taoflow.ledger.store import Ledger

    record = Ledger.open(settings.ledger_dir).state().proposals[proposal_id]
    if as_json:
        _print_json(
            {
                "proposal_id": proposal_id,
                "kind": record.kind.value,
                "batch_no": batch_no,
                "opens_block": record.opens_block,
                "closes_block": record.closes_block,
                "deposit_rao": record.deposit_rao,
                "backtest_sha256": record.backtest_sha256,
                "backtest_summary": [] if attached is None else list(attached.lines),
                "mlflow_run_id": None if attached is None else attached.mlflow_run_id,
            }
        )
        return
    if attached is not None:
        for line in attached.lines:
            console.print(escape(line), soft_wrap=True)
        if attached.mlflow_run_id:
            console.print(f"MLflow run {attached.mlflow_run_id}", soft_wrap=True)
    console.print(
        f"[green]proposed[/] {escape(proposal_id)} ({record.kind.value}, batch {batch_no}): "
        f"deposit {_tao(record.deposit_rao)} τ locked; voting closes at block "
        f"{record.closes_block:,}",
        soft_wrap=True,
    )
    console.print(
        f"vote: taoflow vote --proposal {escape(proposal_id)} --choice for|against|abstain "
        "--wallet W",
        soft_wrap=True,
    )


def _spec_problem(state: LedgerState, payload: dict[str, Any]) -> str | None:
    """The ledger's one-line refusal of ``payload`` against ``state``, or None."""
    from taoflow.ledger.governance import ProposalSpec

    params = state.governance
    try:
        ProposalSpec.from_payload(
            payload,
            subnets={name: info.config for name, info in state.subnets.items()},
            block=state.block,
            deposit_min_rao=params.deposit_min_rao,
            voting_blocks_min=params.voting_blocks_min,
            voting_blocks_max=params.voting_blocks_max,
        )
    except ValueError as exc:
        return str(exc)
    return None


def _prepare(
    settings: Settings, *, wallet: str, payload: dict[str, Any]
) -> tuple[LedgerState, dict[str, Any]]:
    """The current state; ``payload`` refused in one line unless the ledger would take it."""
    from taoflow.ledger.store import Ledger

    state = Ledger.open(settings.ledger_dir).state()
    problem = _spec_problem(state, payload)
    if problem is not None:
        raise _fail(problem)
    proposer = _account_of(settings, wallet)
    _check_proposal(settings, state, _proposal_tx(state, proposer=proposer, payload=payload))
    return state, payload


@propose_app.command("subnet-params")
def propose_subnet_params(
    subnet: SubnetOption,
    title: TitleOption,
    wallet: WalletOption,
    set_: SetOption = None,
    text: TextOption = "",
    deposit: DepositOption = None,
    voting_blocks: VotingBlocksOption = None,
    backtest_epochs: Annotated[
        int, typer.Option("--backtest-epochs", help="Epochs the backtest recomputes (last K)")
    ] = BACKTEST_EPOCHS_DEFAULT,
    backtest: Annotated[
        str | None, typer.Option("--backtest", help="Attach this stored backtest report (sha256)")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Propose new values of SUBNET's hyper-parameters, backtested over its last epochs."""
    from taoflow.ledger.store import Ledger

    changes = parse_settings(set_ or [])
    if not changes:
        raise _fail("name at least one --set name=value", USAGE_EXIT_CODE)
    settings = _settings(home)
    state = Ledger.open(settings.ledger_dir).state()
    info = state.subnets.get(subnet)
    payload = _common_payload(
        state,
        kind="subnet_params",
        title=title,
        text=text,
        deposit=deposit,
        voting_blocks=voting_blocks,
        tempo_blocks=None if info is None else info.config.tempo_blocks,
    )
    payload.update({"subnet": subnet, "changes": changes})
    state, payload = _prepare(settings, wallet=wallet, payload=payload)
    attached = _attach_backtest(
        settings,
        state,
        subnet=subnet,
        changes=changes,
        sha256=backtest,
        epochs=backtest_epochs,
        title=title,
    )
    _submit(settings, wallet=wallet, payload=payload, attached=attached, as_json=as_json)


@propose_app.command("network-params")
def propose_network_params(
    title: TitleOption,
    wallet: WalletOption,
    emission_share: Annotated[
        list[str] | None,
        typer.Option("--emission-share", help="subnet=share (an integer weight), repeatable"),
    ] = None,
    set_: SetOption = None,
    subnets: Annotated[
        str, typer.Option("--subnets", help="Comma-separated subnets the --set values apply to")
    ] = "",
    text: TextOption = "",
    deposit: DepositOption = None,
    voting_blocks: VotingBlocksOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Propose emission shares between subnets, registration cost dynamics or tempo."""
    from taoflow.ledger.store import Ledger

    shares = parse_shares(emission_share or [])
    values = parse_settings(set_ or [])
    names = [name.strip() for name in subnets.split(",") if name.strip()]
    settings = _settings(home)
    state = Ledger.open(settings.ledger_dir).state()
    tempos = [info.config.tempo_blocks for info in state.subnets.values()]
    payload = _common_payload(
        state,
        kind="network_params",
        title=title,
        text=text,
        deposit=deposit,
        voting_blocks=voting_blocks,
        tempo_blocks=max(tempos) if tempos else None,
    )
    if shares:
        payload["emission_shares"] = shares
    if values:
        payload["settings"] = values
    if names:
        payload["subnets"] = names
    _, payload = _prepare(settings, wallet=wallet, payload=payload)
    _submit(settings, wallet=wallet, payload=payload, attached=None, as_json=as_json)


@propose_app.command("signal")
def propose_signal(
    title: TitleOption,
    wallet: WalletOption,
    text: TextOption = "",
    deposit: DepositOption = None,
    voting_blocks: VotingBlocksOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Propose a text-only signal: holders state an opinion, nothing changes."""
    from taoflow.ledger.store import Ledger

    settings = _settings(home)
    state = Ledger.open(settings.ledger_dir).state()
    tempos = [info.config.tempo_blocks for info in state.subnets.values()]
    payload = _common_payload(
        state,
        kind="signal",
        title=title,
        text=text,
        deposit=deposit,
        voting_blocks=voting_blocks,
        tempo_blocks=max(tempos) if tempos else None,
    )
    _, payload = _prepare(settings, wallet=wallet, payload=payload)
    _submit(settings, wallet=wallet, payload=payload, attached=None, as_json=as_json)


# ---- backtests -----------------------------------------------------------------------------


def _attach_backtest(
    settings: Settings,
    state: LedgerState,
    *,
    subnet: str,
    changes: dict[str, Any],
    sha256: str | None,
    epochs: int,
    title: str,
) -> Attached | None:
    """The backtest the proposal carries (see the module docstring), or None when the change
    has nothing a what-if recomputes and no report was named."""
    from taoflow.tasks.governance.backtest import (
        BacktestError,
        BacktestMismatch,
        check_backtest_for,
        load_backtest,
        overrides_of_change,
    )

    try:
        if sha256 is not None:
            report = load_backtest(settings.governance_backtests_dir, sha256)
            check_backtest_for(report, subnet=subnet, values=changes)
            return Attached(sha256=report.sha256, lines=_lines(settings, report))
        if overrides_of_change(changes) is None:
            return None
    except (BacktestError, BacktestMismatch) as exc:
        raise _fail(str(exc)) from None
    if state.last_epoch.get(subnet) is None:
        raise _fail(f"no stored epochs of {subnet} to backtest: run an epoch first")
    if not 1 <= epochs <= BACKTEST_EPOCHS_MAX_CLI:
        raise _fail(f"--backtest-epochs must be in [1, {BACKTEST_EPOCHS_MAX_CLI}]", 2)
    sha, run_id = run_backtest_flow(
        settings, subnet=subnet, values_json=json.dumps(changes), epochs=epochs, title=title
    )
    try:
        report = load_backtest(settings.governance_backtests_dir, sha)
    except (BacktestError, BacktestMismatch) as exc:
        raise _fail(str(exc)) from None
    return Attached(sha256=sha, lines=_lines(settings, report), mlflow_run_id=run_id)


def run_backtest_flow(
    settings: Settings, *, subnet: str, values_json: str, epochs: int, title: str
) -> tuple[str, str]:
    """Run the ``proposal-backtest`` flow (``up``'s Prefect server, else a temporary one, as
    ``taoflow epoch run`` does); (the report's sha256, its MLflow run id)."""
    import contextlib

    from taoflow.oneshot import TemporaryServerFailed, temporary_prefect_server
    from taoflow.services import reuse_running_services

    settings = reuse_running_services(settings).settings
    with contextlib.ExitStack() as services:
        prefect = services.enter_context(temporary_prefect_server(settings))
        from taoflow.flows.governance_backtest import backtest_flow
        from taoflow.tasks.governance.backtest import BacktestError

        try:
            if prefect is not None:
                prefect.wait_ready()
            result = backtest_flow(
                home=str(settings.home),
                subnet=subnet,
                values_json=values_json,
                epochs=epochs,
                proposal_title=title,
            )
        except (TemporaryServerFailed, BacktestError) as exc:
            raise _fail(str(exc)) from None
    return result.sha256, result.mlflow_run_id


# ---- voting --------------------------------------------------------------------------------


def _choice_index(choice: str) -> int:
    from taoflow.ledger.governance import PROPOSAL_OPTIONS

    if choice not in PROPOSAL_OPTIONS:
        raise _fail(
            f"--choice must be one of {', '.join(PROPOSAL_OPTIONS)}, got {choice[:40]!r}",
            USAGE_EXIT_CODE,
        )
    return PROPOSAL_OPTIONS.index(choice)


def vote(
    proposal: Annotated[str, typer.Option("--proposal", help="Proposal id (taoflow proposals)")],
    choice: Annotated[str, typer.Option("--choice", help="for, against or abstain")],
    wallet: WalletOption,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Vote on an open proposal with WALLET's coldkey (a later vote replaces an earlier one)."""
    from taoflow.actions import ActionError, coldkey, commit_signed, named, new_tx_id
    from taoflow.ledger.governance_rules import check_vote
    from taoflow.ledger.schema import Kind, Tx, canonical_json
    from taoflow.ledger.store import Ledger

    index = _choice_index(choice)
    settings = _settings(home)
    voter = _account_of(settings, wallet)
    body = canonical_json({"proposal_id": proposal, "choice": index})
    tx = Tx(new_tx_id(Kind.VOTE), Kind.VOTE, coldkey=voter, payload=body)
    reason = check_vote(Ledger.open(settings.ledger_dir).state(), tx)
    if reason is not None:
        raise _fail(named(settings, reason))
    try:
        cold = coldkey(settings, wallet)
        result = commit_signed(settings, tx, cold)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    state = Ledger.open(settings.ledger_dir).state()
    record = state.proposals[proposal]
    power_rao = record.power.power_rao(voter)
    delegated_in_rao = sum(  # cast with this vote unless the delegator votes itself
        to.get(voter, 0)
        for delegator, to in record.power.delegated_rao.items()
        if (proposal, delegator) not in state.votes
    )
    result_tally = state.proposal_tally(proposal)
    if as_json:
        _print_json(
            {
                "tx_id": tx.tx_id,
                "batch_no": result.batch_no,
                "proposal_id": proposal,
                "choice": choice,
                "power_rao": power_rao,
                "delegated_in_rao": delegated_in_rao,
                "tally": result_tally.to_payload(),
            }
        )
        return
    delegated = (
        f" and {_tao(delegated_in_rao)} τ delegated by holders who have not voted"
        if delegated_in_rao
        else ""
    )
    console.print(
        f"[green]voted[/] {choice} on {escape(proposal)} with {_tao(power_rao)} τ of power"
        f"{delegated} (batch {result.batch_no})",
        soft_wrap=True,
    )
    console.print(_tally_line(result_tally), soft_wrap=True)


def _pct(part_rao: int, whole_rao: int) -> str:
    return "—" if whole_rao == 0 else f"{100 * part_rao / whole_rao:.2f}%"


def _tally_line(t: Any) -> str:
    quorum = "met" if t.quorum_met else "not met"
    return (
        f"tally so far: for {_tao(t.for_rao)} τ, against {_tao(t.against_rao)} τ, abstain "
        f"{_tao(t.abstain_rao)} τ; turnout {_pct(t.turnout_rao, t.total_rao)} of "
        f"{_tao(t.total_rao)} τ (quorum {t.quorum_ppm / PPM:.0%}: {quorum}); "
        f"{'passing' if t.passed else 'not passing'} (needs more than {t.pass_ppm / PPM:.0%} "
        "of for + against)"
    )


# ---- reading -------------------------------------------------------------------------------


def _row(state: LedgerState, record: ProposalRecord) -> dict[str, Any]:
    t = state.proposal_tally(record.proposal_id)
    return {
        "proposal_id": record.proposal_id,
        "kind": record.kind.value,
        "title": record.title,
        "proposer": record.proposer,
        "status": record.status.value,
        "opens_block": record.opens_block,
        "closes_block": record.closes_block,
        "for_rao": t.for_rao,
        "against_rao": t.against_rao,
        "abstain_rao": t.abstain_rao,
        "turnout_rao": t.turnout_rao,
        "total_rao": t.total_rao,
        "turnout_ppm": 0 if t.total_rao == 0 else t.turnout_rao * PPM // t.total_rao,
        "quorum_met": t.quorum_met,
        "passing": t.passed,
        "deposit_rao": record.deposit_rao,
        "backtest_sha256": record.backtest_sha256,
    }


def proposals(
    status: Annotated[
        str | None,
        typer.Option("--status", help="open, passed, rejected, no_quorum, activated, …"),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every governance proposal with its tally so far (or its committed tally)."""
    from taoflow.ledger.proposals import ProposalStatus
    from taoflow.ledger.store import Ledger

    known = [s.value for s in ProposalStatus]
    if status is not None and status not in known:
        raise _fail(f"--status must be one of {', '.join(known)}", USAGE_EXIT_CODE)
    settings = _settings(home, read_only=True)
    state = Ledger.open(settings.ledger_dir).state()
    records = sorted(state.proposals.values(), key=lambda r: (r.opens_block, r.proposal_id))
    rows = [_row(state, r) for r in records if status is None or r.status.value == status]
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"proposals (block {state.block:,})", header_style="bold cyan")
    columns = ("id", "kind", "title", "status", "closes", "for τ", "against τ", "abstain τ")
    for column in (*columns, "turnout", "quorum", "passing", "deposit τ"):
        if column == "title":
            table.add_column(column, overflow="fold", min_width=TITLE_COLUMN_MIN_CHARS)
        else:
            table.add_column(column, overflow="fold", no_wrap=True)
    for r in rows:
        table.add_row(
            escape(r["proposal_id"]),
            r["kind"],
            escape(r["title"]),
            r["status"],
            f"{r['closes_block']:,}",
            _tao(r["for_rao"]),
            _tao(r["against_rao"]),
            _tao(r["abstain_rao"]),
            _pct(r["turnout_rao"], r["total_rao"]),
            "yes" if r["quorum_met"] else "no",
            "yes" if r["passing"] else "no",
            _tao(r["deposit_rao"]),
        )
    console.print(table)


def _configs_before(ledger: Ledger, state: LedgerState, record: ProposalRecord) -> dict[str, Any]:
    """Subnet → the config the change applies to: the one in effect now, or, once activated,
    the one the last epoch before its activation ran with."""
    configs: dict[str, Any] = {name: info.config for name, info in state.subnets.items()}
    for subnet, epoch in record.effective_from_epoch:
        batch = None if epoch < 1 else ledger.batch_of_epoch(subnet, epoch - 1)
        info = None if batch is None else ledger.state_as_of(batch).subnets.get(subnet)
        if info is not None:
            configs[subnet] = info.config
    return configs


def _change_rows(configs: dict[str, Any], record: ProposalRecord) -> list[dict[str, Any]]:
    """Each setting the proposal changes: its value before the change, and the proposed one."""
    rows: list[dict[str, Any]] = []
    for subnet, values in record.changes:
        config = configs.get(subnet)
        for setting, value in values:
            before = None if config is None else getattr(config, setting, None)
            if setting in OBJECT_SETTINGS and isinstance(value, dict):
                current = dict(before or {})
                for key, proposed in sorted(value.items()):
                    rows.append(_change_row(subnet, f"{setting}.{key}", current.get(key), proposed))
                continue
            if isinstance(before, tuple) and setting == "emission_split_ppm":
                before = dict(before)
            rows.append(_change_row(subnet, setting, before, value))
    return rows


def _change_row(subnet: str, setting: str, before: Any, proposed: Any) -> dict[str, Any]:
    return {"subnet": subnet, "setting": setting, "before": before, "proposed": proposed}


@dataclass(frozen=True)
class BacktestView:
    sha256: str
    matches: bool | None
    """True: the stored report hashes to the sha; False: it was changed; None: not found."""
    problem: str
    lines: tuple[str, ...]
    mlflow_run_id: str | None


def _backtest_view(settings: Settings, sha256: str) -> BacktestView:
    from taoflow.tasks.governance.backtest import (
        BacktestError,
        BacktestMismatch,
        load_backtest,
    )

    try:
        report = load_backtest(settings.governance_backtests_dir, sha256)
    except BacktestMismatch as exc:
        return BacktestView(sha256, False, str(exc), (), None)
    except BacktestError as exc:
        return BacktestView(sha256, None, str(exc), (), None)
    return BacktestView(sha256, True, "", _lines(settings, report), _mlflow_run(settings, sha256))


def _lines(settings: Settings, report: Any) -> tuple[str, ...]:
    """The backtest's summary lines with hotkeys by local wallet names where known."""
    from taoflow.names import account_labels
    from taoflow.tasks.governance.backtest import summary_lines

    return tuple(summary_lines(report, labels=account_labels(settings.wallets_dir)))


def _mlflow_run(settings: Settings, sha256: str) -> str | None:
    """The MLflow run tagged with ``sha256``, looked up only through an MLflow server that
    answers at once (never the home's SQLite store); None otherwise."""
    from taoflow.services import answers, recorded_services

    uris = [settings.mlflow_tracking_uri]
    record = recorded_services(settings)
    if record is not None and record.mlflow_tracking_uri:
        uris.append(record.mlflow_tracking_uri)
    for uri in uris:
        if not uri.startswith(("http://", "https://")):
            continue
        if not answers(f"{uri}/health", timeout_s=MLFLOW_HEALTH_TIMEOUT_S):
            continue
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            experiments = [e.experiment_id for e in client.search_experiments()]
            runs = client.search_runs(
                experiments,
                filter_string=f"tags.`taoflow.backtest_sha256` = '{sha256}'",
                max_results=MLFLOW_RUNS_MAX,
            )
        except Exception:  # optional: an MLflow that fails is skipped silently
            continue
        if runs:
            return str(runs[0].info.run_id)
    return None


def _deposit_fate(record: ProposalRecord) -> str:
    if record.tally is None:
        return "locked"
    return "returned" if record.tally.quorum_met else "burned"


def _activation_text(record: ProposalRecord) -> str:
    from taoflow.ledger.proposals import ProposalStatus

    if record.status is ProposalStatus.ACTIVATED and record.effective_from_epoch:
        return ", ".join(f"{s} from epoch {e}" for s, e in record.effective_from_epoch)
    if record.status is ProposalStatus.ACTIVATION_FAILED:
        return f"failed: {record.activation_problem}"
    if record.status is ProposalStatus.PASSED:
        return "at the epoch boundary after the tally"
    if record.status is ProposalStatus.OPEN and record.changes:
        return "one epoch boundary after the tally, if it passes"
    return "—"


def _show_doc(
    settings: Settings, ledger: Ledger, state: LedgerState, record: ProposalRecord
) -> dict[str, Any]:
    from taoflow.ledger.governance import PROPOSAL_OPTIONS
    from taoflow.ledger.proposals import record_to_doc, votes_of

    doc = record_to_doc(record)
    doc.pop("power")
    doc["total_power_rao"] = record.power.total_rao
    doc["tally"] = state.proposal_tally(record.proposal_id).to_payload()
    doc["tally_committed"] = record.tally is not None
    doc["deposit"] = _deposit_fate(record)
    doc["changes"] = _change_rows(_configs_before(ledger, state, record), record)
    doc["activation"] = _activation_text(record)
    doc["votes"] = [
        {
            "coldkey": coldkey,
            "name": _account_label(settings, coldkey),
            "choice": PROPOSAL_OPTIONS[choice],
            "power_rao": record.power.power_rao(coldkey),
        }
        for coldkey, choice in sorted(votes_of(state.votes, record.proposal_id).items())
    ]
    view = (
        None if record.backtest_sha256 is None else _backtest_view(settings, record.backtest_sha256)
    )
    doc["backtest"] = (
        None
        if view is None
        else {
            "sha256": view.sha256,
            "matches": view.matches,
            "problem": view.problem,
            "summary": list(view.lines),
            "mlflow_run_id": view.mlflow_run_id,
        }
    )
    return doc


@proposal_app.command("show")
def proposal_show(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (taoflow proposals)")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything about one proposal: its change, deposit, tally, voters and backtest."""
    from taoflow.ledger.store import Ledger

    settings = _settings(home, read_only=True)
    ledger = Ledger.open(settings.ledger_dir)
    state = ledger.state()
    record = state.proposals.get(proposal_id)
    if record is None:
        raise _fail(f"unknown proposal {proposal_id[:80]!r}")
    doc = _show_doc(settings, ledger, state, record)
    if as_json:
        _print_json(doc)
        return
    _print_show(settings, state, record, doc)


def _print_show(
    settings: Settings, state: LedgerState, record: ProposalRecord, doc: dict[str, Any]
) -> None:
    from taoflow.ledger.governance import Tally

    out = console.print
    out(f"[bold]{escape(record.proposal_id)}[/] · {record.kind.value} · {escape(record.title)}")
    if record.text:
        out(escape(record.text), soft_wrap=True)
    out(f"proposer {escape(_account_label(settings, record.proposer))}; status {doc['status']}")
    out(
        f"voting: blocks {record.opens_block:,} → {record.closes_block:,} (ledger at block "
        f"{state.block:,})"
    )
    out(f"deposit {_tao(record.deposit_rao)} τ: {doc['deposit']}")
    for row in doc["changes"]:
        out(
            f"  {escape(row['subnet'])} {escape(row['setting'])}: "
            f"{escape(json.dumps(row['before']))} → {escape(json.dumps(row['proposed']))}",
            soft_wrap=True,
        )
    committed = "committed tally" if doc["tally_committed"] else "tally so far"
    out(_tally_line(Tally(**doc["tally"])).replace("tally so far", committed), soft_wrap=True)
    for voter in doc["votes"]:
        out(f"  {escape(voter['name'])}: {voter['choice']} with {_tao(voter['power_rao'])} τ")
    out(f"activation: {escape(doc['activation'])}", soft_wrap=True)
    backtest = doc["backtest"]
    if backtest is None:
        out("backtest: none")
        return
    out(f"backtest {backtest['sha256']}")
    if backtest["matches"] is False:
        out("[red]MISMATCH: the stored report was changed[/]")
    elif backtest["matches"] is None:
        out(f"[yellow]{escape(backtest['problem'])}[/]", soft_wrap=True)
    for line in backtest["summary"]:
        out(f"  {escape(line)}", soft_wrap=True)
    if backtest["mlflow_run_id"]:
        out(f"MLflow run {backtest['mlflow_run_id']}")


# ---- parameters in effect ------------------------------------------------------------------


def _set_by(state: LedgerState, subnet: str) -> dict[str, str]:
    """Setting (``yuma.key`` for an object key) → the activated proposal that set it last."""
    from taoflow.ledger.proposals import ProposalStatus

    activated = [
        (dict(r.effective_from_epoch).get(subnet, -1), r)
        for r in state.proposals.values()
        if r.status is ProposalStatus.ACTIVATED and subnet in r.subnets
    ]
    by: dict[str, str] = {}
    for _, record in sorted(activated, key=lambda pair: (pair[0], pair[1].proposal_id)):
        for name, values in record.changes:
            if name != subnet:
                continue
            for setting, value in values:
                if setting in OBJECT_SETTINGS and isinstance(value, dict):
                    by.update({f"{setting}.{key}": record.proposal_id for key in value})
                else:
                    by[setting] = record.proposal_id
    return by


def subnet_params_view(
    home: Path | None, *, subnet: str, as_of_epoch: int | None, as_json: bool
) -> None:
    """``taoflow subnet params``: SUBNET's parameters now, or those epoch N ran with."""
    from taoflow.ledger.governance import config_payload
    from taoflow.ledger.store import Ledger

    settings = _settings(home, read_only=True)
    ledger = Ledger.open(settings.ledger_dir)
    if as_of_epoch is None:
        state = ledger.state()
    else:
        batch = ledger.batch_of_epoch(subnet, as_of_epoch)
        if batch is None:
            raise _fail(f"epoch {as_of_epoch} of subnet {subnet!r} is not in the ledger")
        state = ledger.state_as_of(batch)
    info = state.subnets.get(subnet)
    if info is None:
        raise _fail(f"unknown subnet {subnet[:64]!r}")
    params = config_payload(info.config)
    set_by = _set_by(state, subnet)
    if as_json:
        _print_json(
            {"subnet": subnet, "as_of_epoch": as_of_epoch, "params": params, "set_by": set_by}
        )
        return
    when = "now" if as_of_epoch is None else f"in effect for epoch {as_of_epoch}"
    table = Table(title=f"{subnet} parameters {when}", header_style="bold cyan")
    for column in ("setting", "value", "set by proposal"):
        table.add_column(column, overflow="fold")
    for name, value in sorted(params.items()):
        if name in OBJECT_SETTINGS and isinstance(value, dict):
            for key, item in sorted(value.items()):
                full = f"{name}.{key}"
                table.add_row(full, escape(json.dumps(item)), escape(set_by.get(full, "")))
            continue
        table.add_row(name, escape(json.dumps(value)), escape(set_by.get(name, "")))
    console.print(table)
