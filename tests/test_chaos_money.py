"""Chaos: forged money. The ledger recomputes every epoch and refuses any other amount, split,
recipient or order; signatures name their network; zero amounts are refused; fees are burned.

Each forgery is committed to a real on-disk ledger with a network entry, and each test asserts
the exact reason and that nothing changed (head, files, supply)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from ledger_helpers import (
    TAO,
    acct,
    commit_signed,
    epoch_batch,
    mint,
    network_with_subnet,
    open_network,
    signed,
)

import taoflow.ledger.store.ledger as store_ledger
from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.emission import SHARE_QUANTUM
from taoflow.ledger.epoch_payment import pay_columns
from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.network import TX_FEE_DEFAULT_RAO, NetworkParams
from taoflow.ledger.payouts import parse_tao, tao_text
from taoflow.ledger.schema import Kind, Tx, canonical_json, txs_to_table
from taoflow.ledger.state import Applied, LedgerState, Rejected
from taoflow.ledger.store import Ledger
from taoflow.ledger.submissions import submission_binding
from taoflow.tasks.weights import ValidatorPolicy, scores_to_weights

SUBNET = "sn"
FEE = TX_FEE_DEFAULT_RAO
HALF = SHARE_QUANTUM // 2


@pytest.fixture(autouse=True, params=["row by row", "column-wise"])
def commit_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the commit checking emission runs row by row and column-wise: both
    must accept and refuse exactly the same batches, with the same reasons."""
    if request.param == "column-wise":
        monkeypatch.setattr(store_ledger, "COLUMN_PAY_MIN_ROWS", 1)
    return str(request.param)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """Subnet "sn": uid 0 = bob-hot (miner), uid 1 = carol-hot (validator, dave delegates)."""
    ledger = network_with_subnet(tmp_path, subnet=SUBNET)
    for who, amount in (("carol", 30 * TAO), ("dave", 10 * TAO)):
        commit_signed(
            ledger,
            Tx(
                f"stake/{who}",
                Kind.ADD_STAKE,
                coldkey=acct(who),
                hotkey=acct("carol-hot"),
                amount_rao=amount,
            ),
        )
    return ledger


def valid_epoch(ledger: Ledger, *, errors: tuple[int, ...] = ()) -> list[Tx]:
    return epoch_batch(
        ledger.state(),
        SUBNET,
        block=100,
        incentive=[HALF, 0],
        dividends=[0, SHARE_QUANTUM],
        validator_share=[0, SHARE_QUANTUM],
        errors=errors,
    )


def snapshot(ledger: Ledger) -> tuple[object, ...]:
    files = sorted((p.name, p.stat().st_size) for p in ledger.batches_dir.iterdir())
    state = Ledger.open(ledger.root, writer_key_path=ledger.writer_key_path).state()
    return (ledger.head_hash(), len(ledger.records()), files, state.supply(), state.last_epoch)


def assert_rejected(ledger: Ledger, txs: list[Tx], reason: str) -> None:
    before = snapshot(ledger)
    with pytest.raises(BatchRejected) as caught:
        ledger.commit(txs)
    assert caught.value.reason == reason
    assert snapshot(ledger) == before


def by_kind(batch: list[Tx], kind: Kind, uid: int | None = None) -> int:
    return next(i for i, tx in enumerate(batch) if tx.kind == kind and uid in (None, tx.uid))


# ---- the epoch as proposed is accepted (so every forgery below can fail) ---------------------


def test_valid_epoch_is_accepted_and_pays_the_exact_split(ledger: Ledger) -> None:
    state = ledger.state()
    scheduled = state.scheduled_emission_rao(SUBNET)
    batch = valid_epoch(ledger)
    result = ledger.commit(batch)
    assert result.applied == len(batch)
    assert scheduled == 100 * TAO  # 100 blocks of 1 τ, one subnet
    paid = {(tx.kind, tx.uid, tx.coldkey): tx.amount_rao for tx in batch[1:]}
    assert paid == {
        (Kind.EMISSION_OWNER, -1, acct("alice")): 18 * TAO,
        (Kind.EMISSION_INCENTIVE, 0, acct("bob")): 41 * TAO,
        (Kind.EMISSION_DIVIDEND, 1, acct("carol")): 7_380_000_000,  # 18 % take of 41 τ
        (Kind.EMISSION_DELEGATOR, 1, acct("carol")): 25_215_000_000,  # 3/4 of the rest
        (Kind.EMISSION_DELEGATOR, 1, acct("dave")): 8_405_000_000,  # 1/4 of the rest
    }
    assert batch[0].amount_rao == scheduled
    ledger.state().check_supply()


# ---- forged amounts, splits, recipients and order --------------------------------------------


def test_forged_epoch_amount_above_the_schedule_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    exact = batch[0].amount_rao
    batch[0] = dataclasses.replace(batch[0], amount_rao=exact + 5 * TAO)
    owner = by_kind(batch, Kind.EMISSION_OWNER)
    batch[owner] = dataclasses.replace(batch[owner], amount_rao=batch[owner].amount_rao + 5 * TAO)
    reason = (
        f"epoch announces {exact + 5 * TAO} rao but the schedule and split pay exactly {exact} rao"
    )
    assert_rejected(ledger, batch, reason)


def test_forged_schedule_in_the_payload_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    payload = batch[0].payload_dict()
    exact = payload["scheduled_rao"]
    payload["scheduled_rao"] = exact * 2
    batch[0] = dataclasses.replace(batch[0], payload=canonical_json(payload))
    reason = (
        f"epoch records a schedule of {exact * 2} rao but 'sn' is owed exactly {exact} rao "
        "at this point"
    )
    assert_rejected(ledger, batch, reason)


def test_forged_split_owner_more_miners_less_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    owner, miner = by_kind(batch, Kind.EMISSION_OWNER), by_kind(batch, Kind.EMISSION_INCENTIVE)
    exact = batch[owner].amount_rao
    batch[owner] = dataclasses.replace(batch[owner], amount_rao=exact + TAO)
    batch[miner] = dataclasses.replace(batch[miner], amount_rao=batch[miner].amount_rao - TAO)
    assert sum(tx.amount_rao for tx in batch[1:]) == batch[0].amount_rao  # same total
    reason = f"emission_owner of uid -1 must be exactly {exact} rao, not {exact + TAO}"
    assert_rejected(ledger, batch, reason)


def test_forged_delegator_part_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    take = by_kind(batch, Kind.EMISSION_DIVIDEND)
    dave = next(i for i, tx in enumerate(batch) if tx.coldkey == acct("dave"))
    exact = batch[dave].amount_rao
    batch[take] = dataclasses.replace(batch[take], amount_rao=batch[take].amount_rao - 1)
    batch[dave] = dataclasses.replace(batch[dave], amount_rao=exact + 1)
    forged = batch[take].amount_rao
    reason = f"emission_dividend of uid 1 must be exactly {forged + 1} rao, not {forged}"
    assert_rejected(ledger, batch, reason)


def test_incentive_to_an_unregistered_hotkey_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    miner = by_kind(batch, Kind.EMISSION_INCENTIVE)
    batch[miner] = dataclasses.replace(batch[miner], coldkey=acct("eve"), hotkey=acct("eve"))
    reason = f"hotkey {acct('eve')[:16]!r} is not registered on 'sn' at uid 0"
    assert_rejected(ledger, batch, reason)


def test_a_uid_paid_twice_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    miner = by_kind(batch, Kind.EMISSION_INCENTIVE)
    twice = dataclasses.replace(batch[miner], tx_id=batch[miner].tx_id + "/again")
    batch.insert(miner + 1, twice)
    reason = f"emission_incentive of uid 0 to {acct('bob')[:16]}… already paid this epoch"
    assert_rejected(ledger, batch, reason)


def test_incentive_to_a_rejected_uid_is_rejected(ledger: Ledger) -> None:
    honest = valid_epoch(ledger, errors=(0,))
    assert all(tx.kind != Kind.EMISSION_INCENTIVE for tx in honest)  # the plan pays it nothing
    forged = valid_epoch(ledger)  # the same epoch with uid 0's incentive
    batch = [honest[0], *[tx for tx in forged[1:] if tx.kind == Kind.EMISSION_INCENTIVE]]
    reason = "uid 0 is listed with an evaluation error and earns no incentive"
    assert_rejected(ledger, batch, reason)
    assert ledger.commit(honest).applied == len(honest)


def test_emission_before_its_epoch_entry_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    batch[0], batch[1] = batch[1], batch[0]
    assert_rejected(ledger, batch, "no open epoch 0 of 'sn' to pay")


# ---- signatures, zero amounts, fees ----------------------------------------------------------


def test_signed_transfer_replayed_on_another_network_is_rejected(tmp_path: Path) -> None:
    network_a = open_network(tmp_path / "a", name="alpha")
    network_b = open_network(tmp_path / "b", name="beta")
    transfer = Tx("t", Kind.TRANSFER, coldkey=acct("alice"), dest=acct("bob"), amount_rao=TAO)
    for_a = signed(network_a.state(), transfer)
    assert_rejected(network_b, [for_a], "signed for another network")
    assert network_a.commit([for_a], allow_system=False).applied == 1


def test_network_entry_only_first_and_only_once(ledger: Ledger) -> None:
    again = NetworkParams.create(name="again", writer_key=acct("alice"))
    tx = Tx("network/again", Kind.NETWORK, payload=canonical_json(again.to_payload()))
    assert_rejected(ledger, [tx], "the network entry can appear only once")
    state = LedgerState()
    assert isinstance(state.apply(mint("m", "alice", TAO)), Applied)
    late = state.apply(tx)
    assert late == Rejected(tx.tx_id, "the network entry must be the ledger's first transaction")


@pytest.mark.parametrize("kind", [Kind.TRANSFER, Kind.ADD_STAKE, Kind.REMOVE_STAKE])
def test_zero_amount_is_rejected(ledger: Ledger, kind: Kind) -> None:
    tx = Tx(
        "zero",
        kind,
        coldkey=acct("dave"),
        dest=acct("bob") if kind == Kind.TRANSFER else "",
        hotkey="" if kind == Kind.TRANSFER else acct("carol-hot"),
        amount_rao=0,
    )
    assert_rejected(ledger, [signed(ledger.state(), tx)], "amount must be positive")


def test_fee_is_burned_and_the_supply_identity_holds(ledger: Ledger) -> None:
    before = ledger.state().copy()
    transfer = Tx("t", Kind.TRANSFER, coldkey=acct("dave"), dest=acct("bob"), amount_rao=TAO)
    commit_signed(ledger, transfer)
    after = ledger.state()
    assert after.balance(acct("dave")) == before.balance(acct("dave")) - TAO - FEE
    assert after.balance(acct("bob")) == before.balance(acct("bob")) + TAO
    assert after.burned_rao == before.burned_rao + FEE
    assert after.issued_rao == before.issued_rao
    after.check_supply()


def test_hotkey_signed_transaction_fee_is_paid_by_the_hotkey_owner(ledger: Ledger) -> None:
    before = ledger.state().copy()
    digest = "ab" * 32
    payload = {
        "digest": digest,
        "uri": "",
        "binding": submission_binding(digest=digest, hotkey=acct("bob-hot")),
    }
    submit = Tx(
        "submit",
        Kind.SUBMISSION_COMMIT,
        subnet=SUBNET,
        coldkey=acct("bob"),
        hotkey=acct("bob-hot"),
        payload=canonical_json(payload),
    )
    commit_signed(ledger, submit)
    assert ledger.state().balance(acct("bob")) == before.balance(acct("bob")) - FEE
    assert ledger.state().burned_rao == before.burned_rao + FEE


def test_balance_that_cannot_cover_the_fee_is_rejected(ledger: Ledger) -> None:
    have = ledger.state().balance(acct("dave"))
    transfer = Tx("all", Kind.TRANSFER, coldkey=acct("dave"), dest=acct("bob"), amount_rao=have)
    reason = (
        f"insufficient balance for the fee: {acct('dave')!r} has {tao_text(have)} τ, needs "
        f"{tao_text(have)} τ + {tao_text(FEE)} τ fee"
    )
    assert_rejected(ledger, [signed(ledger.state(), transfer)], reason)
    fits = dataclasses.replace(transfer, tx_id="fits", amount_rao=have - FEE)
    commit_signed(ledger, fits)
    assert acct("dave") not in ledger.state().balances


def test_signature_without_the_network_prefix_is_a_bad_signature(ledger: Ledger) -> None:
    tx = signed(
        ledger.state(), Tx("t", Kind.TRANSFER, coldkey=acct("dave"), dest=acct("bob"), amount_rao=1)
    )
    bare = dataclasses.replace(tx, signature=tx.signature[32:])
    assert_rejected(ledger, [bare], "bad signature")
    relabelled = dataclasses.replace(tx, signature=bytes(32) + tx.signature[32:])
    assert_rejected(ledger, [relabelled], "signed for another network")


# ---- rejected submissions earn nothing at the source -----------------------------------------


def test_rejected_uid_gets_weight_zero() -> None:
    scores = {0: 0.0, 1: 0.5, 2: 0.9}
    blocks = {0: 1, 1: 1, 2: 1}
    policy = ValidatorPolicy(temperature=1.0)
    unfiltered = scores_to_weights(scores, commit_blocks=blocks, current_block=10, policy=policy)
    assert unfiltered[0] == 24_108  # softmax gives the failed model weight without the fix
    weights = scores_to_weights(
        scores, commit_blocks=blocks, current_block=10, policy=policy, rejected=frozenset({0})
    )
    assert weights == {0: 0, 1: 24_108, 2: 65_535}  # exp(-1) · 65535, floored


# ---- amounts on the command line -------------------------------------------------------------


DECIMALS = "τ has at most 9 decimal places (1 rao = 0.000000001 τ)"
NOT_A_NUMBER = (
    "write τ as a decimal number such as 1.5 (digits and one '.', no spaces, commas or hex)"
)
TOO_LARGE = "above the largest amount the ledger holds, 9,223,372,036.854775807 τ"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "must be more than 0 τ"),
        ("0.0", "must be more than 0 τ"),
        ("1e-10", DECIMALS),
        ("0.1234567891", DECIMALS),
        ("0.12345678901234567890", DECIMALS),
        ("1.0000000000000000000000000000001", DECIMALS),  # beyond a Decimal context's 28 digits
        ("inf", "τ amounts are finite numbers"),
        ("-inf", "τ amounts are finite numbers"),
        ("nan", "τ amounts are finite numbers"),
        ("-1", "τ amounts cannot be negative"),
        ("abc", NOT_A_NUMBER),
        ("0x10", NOT_A_NUMBER),
        ("1,5", NOT_A_NUMBER),
        (" 3 ", NOT_A_NUMBER),
        ("1_000", NOT_A_NUMBER),
        ("\u0661", NOT_A_NUMBER),  # a non-ASCII digit
        ("", "give a number of τ such as 1.5"),
        ("1e30", TOO_LARGE),
        ("1e400", TOO_LARGE),
        ("9223372036.854775808", TOO_LARGE),
    ],
)
def test_parse_tao_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_tao(text)
    assert str(caught.value) == f"invalid amount {text!r}: {reason}"


@pytest.mark.parametrize(
    ("text", "rao"),
    [
        ("1.5", 1_500_000_000),
        ("0.000000001", 1),
        ("2", 2 * TAO),
        ("1e-9", 1),
        (".5", TAO // 2),
        ("100000000000000000000e-20", TAO),
        ("9223372036.854775807", 2**63 - 1),
    ],
)
def test_parse_tao_is_exact(text: str, rao: int) -> None:
    assert parse_tao(text) == rao


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ("transfer", "--wallet", "w", "--dest", "d", "--amount", "inf"),
            "τ amounts are finite numbers",
        ),
        (("stake", "add", "--wallet", "w", "--hotkey", "h", "--amount", "0.1234567891"), DECIMALS),
    ],
)
def test_cli_refuses_a_bad_amount_in_one_line_with_exit_2(
    tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args, "--home", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: invalid amount {args[-1]!r}: {reason}"
    assert list(tmp_path.iterdir()) == []


# ---- typed subnet configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({}, "subnet config needs tempo_blocks"),
        ({"tempo_blocks": 0}, "subnet setting tempo_blocks must be an integer in [1, 1,000,000]"),
        (
            {"tempo_blocks": "10"},
            "subnet setting tempo_blocks must be an integer in [1, 1,000,000]",
        ),
        ({"tempo_blocks": 10, "bogus": 1}, "unknown subnet setting(s) ['bogus']"),
        (
            {"tempo_blocks": 10, "uids_max": 10**9},
            "subnet setting uids_max must be an integer in [1, 4,096]",
        ),
        (
            {
                "tempo_blocks": 10,
                "emission_split_ppm": {"owner": 900_000, "miners": 50_000, "validators": 60_000},
            },
            "emission_split_ppm must add up to 1,000,000",
        ),
        (
            {"tempo_blocks": 10, "registration_cost_rao": TAO, "registration_cost_max_rao": 1},
            "registration_cost_max_rao must be ≥ registration_cost_rao",
        ),
    ],
)
def test_hostile_subnet_config_is_refused(
    ledger: Ledger, config: dict[str, object], reason: str
) -> None:
    create = Tx(
        "create/bad",
        Kind.SUBNET_CREATE,
        subnet="bad",
        coldkey=acct("dave"),
        hotkey=acct("frank"),
        amount_rao=TAO,
        payload=canonical_json(config),
    )
    assert_rejected(ledger, [signed(ledger.state(), create)], reason)


def test_subnet_config_is_typed_on_the_subnet(ledger: Ledger) -> None:
    config = ledger.state().subnets[SUBNET].config
    assert isinstance(config, SubnetConfig)
    assert (config.tempo_blocks, config.uids_max, config.split_ppm()) == (
        100,
        256,
        {"owner": 180_000, "miners": 410_000, "validators": 410_000},
    )
    assert config.yuma == {} and not hasattr(config, "__getitem__")  # attributes, not keys


def test_lock_and_max_cost_are_exact_and_may_be_zero() -> None:
    from taoflow.ledger.payouts import parse_tao

    assert parse_tao("0", allow_zero=True) == 0
    assert parse_tao("2.000000001", allow_zero=True) == 2_000_000_001
    for bad in ("-1", "inf", "1e-10", "nan"):
        with pytest.raises(ValueError, match=f"^invalid amount {bad!r}: "):
            parse_tao(bad, allow_zero=True)
    with pytest.raises(ValueError, match="must be more than 0 τ"):
        parse_tao("0")


def test_a_retried_epoch_batch_exists_and_a_changed_one_is_rejected(ledger: Ledger) -> None:
    batch = valid_epoch(ledger)
    ledger.commit(batch)
    batches = len(ledger.records())
    again = ledger.commit(batch)
    assert (again.batch_no, again.applied, again.existed) == (None, 0, len(batch))
    owner = next(tx for tx in batch if tx.kind == Kind.EMISSION_OWNER)
    changed = [tx if tx is not owner else dataclasses.replace(owner, amount_rao=1) for tx in batch]
    with pytest.raises(BatchRejected, match="was committed without this entry"):
        ledger.commit(changed)
    assert len(ledger.records()) == batches


def test_user_ids_under_the_epoch_prefix_are_refused(ledger: Ledger) -> None:
    transfer = Tx(
        "epoch/sn/1/owner", Kind.TRANSFER, coldkey=acct("bob"), dest=acct("dave"), amount_rao=TAO
    )
    with pytest.raises(BatchRejected, match="ids starting with 'epoch/' belong to epochs"):
        ledger.commit([signed(ledger.state(), transfer)], allow_system=False)


def _open_epoch_and_rows(ledger: Ledger) -> tuple[LedgerState, list[Tx], pa.Table]:
    batch = valid_epoch(ledger)
    state = ledger.state().copy()
    assert isinstance(state.apply(batch[0]), Applied)
    return state, batch[1:], txs_to_table(batch[1:])


def test_column_wise_payment_equals_paying_row_by_row(ledger: Ledger) -> None:
    state, rows, table = _open_epoch_and_rows(ledger)
    by_rows = state.copy()
    for tx in rows:
        assert isinstance(by_rows.apply(tx), Applied)
    assert table.num_rows == 5 and pay_columns(state, table)
    assert state == by_rows and not state.open_epochs
    state.check_supply()


FORGERIES = {
    "amount": lambda t: t.set_column(9, "amount_rao", pc.add(t.column("amount_rao"), 1)),
    "one row twice": lambda t: pa.concat_tables([t.slice(0, 1), t.slice(0, t.num_rows - 1)]),
    "a row missing": lambda t: t.slice(1),
    "hotkey": lambda t: t.set_column(6, "hotkey", pa.array([acct("eve")] * t.num_rows)),
    "signature": lambda t: t.set_column(12, "signature", pa.array([b"x"] * t.num_rows)),
    "payload": lambda t: t.set_column(10, "payload", pa.array(['{"a":1}'] * t.num_rows)),
    "id outside the epoch": lambda t: t.set_column(
        0, "tx_id", pc.utf8_replace_slice(t.column("tx_id"), start=0, stop=5, replacement="x")
    ),
    "same id twice": lambda t: t.set_column(0, "tx_id", pa.array(["epoch/sn/0/a"] * t.num_rows)),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_column_wise_payment_refuses_anything_but_the_exact_plan(
    ledger: Ledger, forgery: str
) -> None:
    state, _, table = _open_epoch_and_rows(ledger)
    before = state.copy()
    assert not pay_columns(state, FORGERIES[forgery](table))
    assert state == before
