"""Roles: who may set weights on whom, whose take is a setting, and re-submitting an artifact.

Ledger side: every rule is enforced by ``LedgerState`` itself, so a hand-made, correctly signed
transaction is refused with the reason and nothing changes (head, nonces, balances, weights).
Read side: ``submissions`` names the one commit the last epoch evaluated.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from ledger_helpers import TAO, acct, commit_signed, epoch_batch, network_with_subnet, signed
from typer.testing import CliRunner

from taoflow.cli import app
from taoflow.ledger.epoch_records import RECORDS_KEY, UID_FLOAT_COLUMNS, record_refs
from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.keys import Keypair
from taoflow.ledger.network import TX_FEE_DEFAULT_RAO, NetworkParams
from taoflow.ledger.roles import (
    MAX_VALIDATORS_DEFAULT,
    STAKE_THRESHOLD_DEFAULT_RAO,
    validator_permits,
)
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.signing import sign
from taoflow.ledger.state import TAKE_DEFAULT_PPM
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.writer_key import load_or_create_writer_key
from taoflow.ledger.submissions import SubmissionCommit, evaluated_commit, submission_binding
from taoflow.queries import submission_states
from taoflow.tasks.consensus.params import YumaParams
from taoflow.wallet import create_wallet, load_hotkey, unlock_coldkey

SUBNET = "sn"
MINER, VALIDATOR = "bob-hot", "carol-hot"  # uid 0 (miner, owned by bob), uid 1 (validator, carol)
FEE = TX_FEE_DEFAULT_RAO


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """Subnet "sn" owned by alice: uid 0 = bob-hot (miner), uid 1 = carol-hot (validator); no
    stake anywhere yet."""
    return network_with_subnet(tmp_path, subnet=SUBNET)


def weights_body(uids: list[int], weights: list[int]) -> dict[str, Any]:
    return {"uids": uids, "weights": weights, "salt": "5a17"}


def commit_tx(tx_id: str, hot: str, body: dict[str, Any], *, self_weight: bool = False) -> Tx:
    commit_hash = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    payload: dict[str, Any] = {"commit_hash": commit_hash}
    if self_weight:
        payload["self_weight"] = True
    return Tx(
        tx_id, Kind.WEIGHTS_COMMIT, subnet=SUBNET, hotkey=acct(hot), payload=canonical_json(payload)
    )


def reveal_tx(tx_id: str, hot: str, body: dict[str, Any]) -> Tx:
    return Tx(
        tx_id, Kind.WEIGHTS_REVEAL, subnet=SUBNET, hotkey=acct(hot), payload=canonical_json(body)
    )


def stake(ledger: Ledger, tx_id: str, *, who: str, hot: str, amount_rao: int) -> None:
    add = Tx(tx_id, Kind.ADD_STAKE, coldkey=acct(who), hotkey=acct(hot), amount_rao=amount_rao)
    commit_signed(ledger, add)


def assert_refused(ledger: Ledger, tx: Tx, reason: str) -> None:
    """``tx`` (signed with the next nonce) is refused with exactly ``reason``; nothing changed."""
    before = ledger.state().copy()
    head = ledger.head_hash()
    with pytest.raises(BatchRejected) as caught:
        ledger.commit([signed(ledger.state(), tx)], allow_system=False)
    assert caught.value.reason == reason
    after = Ledger.open(ledger.root).state()
    assert ledger.head_hash() == head
    assert after.nonces == before.nonces
    assert after.balances == before.balances
    assert after.weight_commits == before.weight_commits
    assert after.revealed_weights == before.revealed_weights
    assert after.submission_history == before.submission_history
    assert after.takes_ppm == before.takes_ppm


# ---- permits -----------------------------------------------------------------------------------


def test_permit_defaults_are_the_consensus_defaults() -> None:
    assert YumaParams().max_validators == MAX_VALIDATORS_DEFAULT
    assert YumaParams().stake_threshold_rao == STAKE_THRESHOLD_DEFAULT_RAO


def test_permits_are_the_top_k_non_zero_stakes_lower_uid_losing_ties_owner_always() -> None:
    stakes = {0: 5, 1: 0, 2: 7, 3: 5, 4: 9}
    few = validator_permits(stakes, max_validators=8, stake_threshold_rao=0, owner_uid=None)
    assert few == {0, 2, 3, 4}  # n < k: every non-zero stake
    top3 = validator_permits(stakes, max_validators=3, stake_threshold_rao=0, owner_uid=None)
    assert top3 == {2, 3, 4}  # uids 0 and 3 tie at 5: the lower uid loses
    owned = validator_permits(stakes, max_validators=3, stake_threshold_rao=0, owner_uid=1)
    assert owned == {1, 2, 3, 4}
    threshold = validator_permits(stakes, max_validators=8, stake_threshold_rao=6, owner_uid=0)
    assert threshold == {0, 2, 4}  # uid 3 under the threshold; the owner (uid 0) is exempt


def test_the_ledger_reads_permits_from_stake_and_the_subnet_settings(ledger: Ledger) -> None:
    assert ledger.state().validator_permits(SUBNET) == frozenset()
    stake(ledger, "s1", who="carol", hot=VALIDATOR, amount_rao=TAO)
    assert ledger.state().validator_permits(SUBNET) == {1}


# ---- weights -----------------------------------------------------------------------------------


def test_a_miners_commit_is_refused_unless_it_declares_a_self_weight(ledger: Ledger) -> None:
    stake(ledger, "s1", who="bob", hot=MINER, amount_rao=TAO)  # a permit, but a miner
    assert ledger.state().validator_permits(SUBNET) == {0}
    body = weights_body([1], [65535])
    assert_refused(
        ledger,
        commit_tx("c1", MINER, body),
        f"hotkey {acct(MINER)!r} is registered on 'sn' as a miner: only validators with a "
        "permit set weights on other uids (a self-weight is allowed); a self-weight commit says "
        '"self_weight": true',
    )


def test_a_miners_reveal_on_other_uids_is_refused(ledger: Ledger) -> None:
    body = weights_body([0, 1], [65535, 100])
    commit_signed(ledger, commit_tx("c1", MINER, body, self_weight=True))  # a false declaration
    assert (
        ledger.state().weight_commits[(SUBNET, acct(MINER))][0]
        == commit_tx("c1", MINER, body).payload_dict()["commit_hash"]
    )
    assert_refused(
        ledger,
        reveal_tx("r1", MINER, body),
        f"hotkey {acct(MINER)!r} is registered on 'sn' as a miner: only validators with a "
        "permit set weights on other uids (a self-weight is allowed)",
    )
    assert (SUBNET, acct(MINER)) not in ledger.state().revealed_weights


def test_a_miners_self_weight_is_allowed(ledger: Ledger) -> None:
    body = weights_body([0], [65535])
    commit_signed(ledger, commit_tx("c1", MINER, body, self_weight=True))
    commit_signed(ledger, reveal_tx("r1", MINER, body))
    revealed = ledger.state().revealed_weights[(SUBNET, acct(MINER))]
    assert (revealed["uids"], revealed["weights"]) == ([0], [65535])


def test_a_validator_needs_a_permit_at_commit_and_at_reveal(ledger: Ledger) -> None:
    body = weights_body([0], [65535])
    no_permit = (
        f"hotkey {acct(VALIDATOR)!r} holds no validator permit on 'sn': permits go to the "
        "validators with the most stake (non-zero); stake to it first"
    )
    assert_refused(
        ledger,
        commit_tx("c1", VALIDATOR, body),
        f'{no_permit}; a self-weight commit says "self_weight": true',
    )
    stake(ledger, "s1", who="carol", hot=VALIDATOR, amount_rao=TAO)
    commit_signed(ledger, commit_tx("c2", VALIDATOR, body))
    unstake = Tx(
        "u1", Kind.REMOVE_STAKE, coldkey=acct("carol"), hotkey=acct(VALIDATOR), amount_rao=TAO
    )
    commit_signed(ledger, unstake)  # the permit is gone before the reveal
    assert_refused(ledger, reveal_tx("r1", VALIDATOR, body), no_permit)
    stake(ledger, "s2", who="carol", hot=VALIDATOR, amount_rao=TAO)
    commit_signed(ledger, reveal_tx("r2", VALIDATOR, body))
    assert ledger.state().revealed_weights[(SUBNET, acct(VALIDATOR))]["uids"] == [0]


def test_a_reveal_with_a_uid_out_of_range_is_refused(ledger: Ledger) -> None:
    stake(ledger, "s1", who="carol", hot=VALIDATOR, amount_rao=TAO)
    body = weights_body([99], [65535])
    commit_signed(ledger, commit_tx("c1", VALIDATOR, body))
    assert_refused(
        ledger, reveal_tx("r1", VALIDATOR, body), "uid 99 is not a uid of 'sn', which has 2 uids"
    )


@pytest.mark.parametrize(
    ("uids", "weights", "reason"),
    [
        ([0, 0], [1, 2], "uids and weights must have the same length and distinct uids"),
        ([[0]], [1], "uid [0] is not a uid of 'sn', which has 2 uids"),
        ([True], [1], "uid True is not a uid of 'sn', which has 2 uids"),
        ([0], [65536], "weight 65536 is not a u16 (an integer in [0, 65535])"),
        ([0], [1.5], "weight 1.5 is not a u16 (an integer in [0, 65535])"),
    ],
)
def test_weights_problem_names_the_first_bad_entry(
    ledger: Ledger, uids: list[Any], weights: list[Any], reason: str
) -> None:
    problem = ledger.state().weights_problem(
        subnet=SUBNET, hotkey=acct(VALIDATOR), uids=uids, weights=weights
    )
    assert problem == reason


# ---- take --------------------------------------------------------------------------------------


def take_tx(tx_id: str, who: str, hot: str, take_ppm: int) -> Tx:
    return Tx(
        tx_id,
        Kind.SET_TAKE,
        coldkey=acct(who),
        hotkey=acct(hot),
        payload=canonical_json({"take_ppm": take_ppm}),
    )


def test_take_of_a_miner_hotkey_is_refused_a_validators_is_set(ledger: Ledger) -> None:
    assert_refused(
        ledger,
        take_tx("t1", "bob", MINER, 50_000),
        f"hotkey {acct(MINER)!r} is not registered as a validator on any subnet: take is a "
        "validator setting",
    )
    commit_signed(ledger, take_tx("t2", "carol", VALIDATOR, 50_000))  # no permit needed
    state = ledger.state()
    assert state.take_ppm(acct(VALIDATOR)) == 50_000
    assert state.take_ppm(acct(MINER)) == TAKE_DEFAULT_PPM


# ---- re-submission -----------------------------------------------------------------------------


def digest_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def submit_tx(tx_id: str, digest: str) -> Tx:
    payload = {
        "digest": digest,
        "uri": f"artifact://{digest}",
        "binding": submission_binding(digest=digest, hotkey=acct(MINER)),
    }
    return Tx(
        tx_id,
        Kind.SUBMISSION_COMMIT,
        subnet=SUBNET,
        hotkey=acct(MINER),
        payload=canonical_json(payload),
    )


def test_identical_resubmission_is_refused_with_its_block_and_costs_nothing(
    ledger: Ledger,
) -> None:
    a, b = digest_of("a"), digest_of("b")
    commit_signed(ledger, submit_tx("s1", a))
    assert_refused(
        ledger,
        submit_tx("s2", a),
        f"artifact {a[:16]}… already committed at block 0 by this hotkey on 'sn': "
        "nothing new to commit",
    )
    commit_signed(ledger, submit_tx("s3", b))
    ledger.commit(epoch_batch(ledger.state(), SUBNET, block=100))  # a fresh quota
    commit_signed(ledger, submit_tx("s4", a))  # an older artifact again: a way back, allowed
    history = ledger.state().submission_commits(subnet=SUBNET, hotkey=acct(MINER))
    assert [c.digest for c in history] == [a, b, a]


def commit_at(tx_id: str, digest: str, block: int) -> SubmissionCommit:
    return SubmissionCommit(
        subnet=SUBNET, hotkey="h", digest=digest, uri="", block=block, tx_id=tx_id
    )


def test_evaluated_commit_is_never_one_made_after_the_epoch() -> None:
    a, b = digest_of("a"), digest_of("b")
    history = [commit_at("1", a, 0), commit_at("2", b, 100), commit_at("3", a, 100)]
    # Epoch at block 100 evaluated a: the commit at block 0, not the later one of a.
    chosen = evaluated_commit(history, epoch_block=100, delay_blocks=0, digest=a)
    assert chosen is not None and chosen.tx_id == "1"
    # Another subnet's epoch put the chain at block 100 before b came; this epoch scored b.
    chosen = evaluated_commit(history, epoch_block=100, delay_blocks=0, digest=b)
    assert chosen is not None and chosen.tx_id == "2"
    assert evaluated_commit(history, epoch_block=100, delay_blocks=1, digest=b) is None
    assert evaluated_commit(history, epoch_block=50, delay_blocks=0, digest=b) is None


def uids_record(ledger: Ledger, *, digest: str, score: float) -> pa.Table:
    """A ``uids`` record in which uid 0 (the miner) was evaluated on ``digest``."""
    neurons = ledger.state().neurons[SUBNET]
    n = len(neurons)
    columns: dict[str, list[Any]] = {
        "uid": list(range(n)),
        "hotkey": [neurons[u].hotkey for u in range(n)],
        "stake_rao": [0] * n,
        "permit": [False] * n,
        "active": [True] * n,
        **{name: [0.0] * n for name in UID_FLOAT_COLUMNS},
        "emission_rao": [0] * n,
        "score": [score] + [float("nan")] * (n - 1),
        "error": [""] * n,
        "artifact_digest": [digest] + [""] * (n - 1),
    }
    return pa.table(columns)


def commit_epoch(ledger: Ledger, *, block: int, digest: str, score: float) -> None:
    """The next epoch at ``block``, whose ``uids`` record scored the miner's ``digest``."""
    txs = epoch_batch(ledger.state(), SUBNET, block=block)
    tables = {"uids": uids_record(ledger, digest=digest, score=score)}
    payload = {**txs[0].payload_dict(), "block": block, RECORDS_KEY: record_refs(tables)}
    epoch = Tx(
        txs[0].tx_id,
        Kind.EPOCH,
        subnet=SUBNET,
        epoch=txs[0].epoch,
        block=block,
        amount_rao=txs[0].amount_rao,
        payload=canonical_json(payload),
    )
    ledger.commit([epoch, *txs[1:]], records=tables)


def test_submissions_after_an_epoch_show_each_commits_true_state(ledger: Ledger) -> None:
    a, b = digest_of("a"), digest_of("b")
    commit_signed(ledger, submit_tx("s1", a))
    tempo = ledger.state().subnets[SUBNET].config.tempo_blocks
    commit_epoch(ledger, block=tempo, digest=a, score=0.75)
    commit_signed(ledger, submit_tx("s2", b))  # after epoch 0
    commit_signed(ledger, submit_tx("s3", a))  # a again, after epoch 0
    rows = [
        (r["digest"], r["block"], r["state"], r["score"], r["reason"])
        for r in submission_states(ledger, subnet=SUBNET)
    ]
    assert rows == [
        (a, 0, "evaluated", 0.75, "scored in epoch 0"),
        (b, tempo, "superseded", None, "a newer eligible commit replaces it"),
        (a, tempo, "eligible", None, f"evaluated in epoch 1 (block {2 * tempo})"),
    ]
    commit_epoch(ledger, block=2 * tempo, digest=a, score=0.5)
    states = [(r["block"], r["state"]) for r in submission_states(ledger, subnet=SUBNET)]
    assert states == [(0, "superseded"), (tempo, "superseded"), (tempo, "evaluated")]


# ---- the CLI checks before it commits ----------------------------------------------------------

PASSPHRASE = "roles test passphrase"
SCRYPT_N_FAST = 2**10
runner = CliRunner()


def commit_as(ledger: Ledger, tx: Tx, keypair: Keypair) -> None:
    state = ledger.state()
    tx = dataclasses.replace(tx, nonce=state.next_nonce(keypair.public_hex))
    ledger.commit([sign(tx, keypair, network_id=state.network_id)], allow_system=False)


@pytest.fixture(scope="module")
def submission_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A valid (untrained) digits MLP as model.safetensors + config.json."""
    import torch

    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.tasks.miner_kit import model_config_for
    from taoflow.tasks.models.artifacts import save_submission
    from taoflow.tasks.models.families import build_model

    torch.manual_seed(0)
    config = model_config_for(
        load_evaluation_set("digits"), family="mlp", config_overrides={"hidden_sizes": [4]}
    )
    return save_submission(build_model(config), config, tmp_path_factory.mktemp("model"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with wallets owner, miner, validator; subnet "sn" (digits) owned by owner;
    uid 0 = miner/default (miner), uid 1 = validator/default (validator, staked: a permit)."""
    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.network import subnet_config

    monkeypatch.setenv("TAOFLOW_WALLET_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "home"
    wallets = home / "wallets"
    keys = {}
    for name in ("owner", "miner", "validator"):
        create_wallet(wallets, name=name, passphrase=PASSPHRASE, scrypt_n=SCRYPT_N_FAST)
        keys[name] = (
            unlock_coldkey(wallets, name=name, passphrase=PASSPHRASE),
            load_hotkey(wallets, wallet=name, hotkey="default"),
        )
    writer_path = home / "keys" / "writer.key"
    writer = load_or_create_writer_key(writer_path)
    ledger = Ledger.open(home / "ledger", writer_key_path=writer_path)
    params = NetworkParams.create(name="roles", writer_key=writer.public_hex)
    ledger.commit(
        [
            Tx("genesis/network", Kind.NETWORK, payload=canonical_json(params.to_payload())),
            *(
                Tx(f"m/{n}", Kind.GENESIS_MINT, coldkey=c.public_hex, amount_rao=1_000 * TAO)
                for n, (c, _) in keys.items()
            ),
        ]
    )
    cold, hot = keys["owner"]
    config = subnet_config(load_evaluation_set("digits"))
    create = Tx(
        "create",
        Kind.SUBNET_CREATE,
        subnet=SUBNET,
        coldkey=cold.public_hex,
        hotkey=hot.public_hex,
        amount_rao=100 * TAO,
        payload=canonical_json(config),
    )
    commit_as(ledger, create, cold)
    for name in ("miner", "validator"):
        cold, hot = keys[name]
        register = Tx(
            f"reg/{name}",
            Kind.REGISTER,
            subnet=SUBNET,
            coldkey=cold.public_hex,
            hotkey=hot.public_hex,
            amount_rao=ledger.state().registration_cost(SUBNET),
            payload=canonical_json({"role": name}),
        )
        commit_as(ledger, register, cold)
    cold, hot = keys["validator"]
    add = Tx(
        "stake", Kind.ADD_STAKE, coldkey=cold.public_hex, hotkey=hot.public_hex, amount_rao=TAO
    )
    commit_as(ledger, add, cold)
    return home


def cli(home: Path, *args: str) -> tuple[int, str]:
    """Exit code and the output as one line (the console wraps long lines)."""
    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, " ".join(result.output.split())


def hotkey_of(home: Path, wallet: str) -> str:
    return load_hotkey(home / "wallets", wallet=wallet, hotkey="default").public_hex


def weights_commit(home: Path, wallet: str, weights: str) -> tuple[int, str]:
    return cli(
        home, "weights", "commit", "--subnet", SUBNET, "--wallet", wallet, "--weights", weights
    )


def assert_nothing_committed(home: Path, before: int) -> None:
    assert len(Ledger.open(home / "ledger").records()) == before
    assert not (home / "pending-weights").exists()


def test_cli_refuses_a_uid_out_of_range_at_commit(home: Path) -> None:
    before = len(Ledger.open(home / "ledger").records())
    code, out = weights_commit(home, "validator", "1:65535,99:65535")
    assert (code, out) == (1, "error: uid 99 is not a uid of 'sn', which has 2 uids")
    assert_nothing_committed(home, before)


def test_cli_refuses_a_miners_weights_on_other_uids(home: Path) -> None:
    before = len(Ledger.open(home / "ledger").records())
    code, out = weights_commit(home, "miner", "1:65535")
    assert (code, out) == (
        1,
        "error: hotkey miner/default is registered on 'sn' as a miner: only validators with a "
        "permit set weights on other uids (a self-weight is allowed)",
    )
    assert_nothing_committed(home, before)


def test_cli_commits_and_reveals_a_miners_self_weight(home: Path) -> None:
    code, out = weights_commit(home, "miner", "0:65535")
    assert code == 0, out
    miner = hotkey_of(home, "miner")
    assert (SUBNET, miner) in Ledger.open(home / "ledger").state().weight_commits
    code, out = cli(home, "weights", "reveal", "--subnet", SUBNET, "--wallet", "miner")
    assert code == 0, out
    revealed = Ledger.open(home / "ledger").state().revealed_weights[(SUBNET, miner)]
    assert (revealed["uids"], revealed["weights"]) == ([0], [65535])


def test_cli_commits_and_reveals_a_permitted_validators_weights(home: Path) -> None:
    code, out = weights_commit(home, "validator", "0:65535")
    assert code == 0, out
    code, out = cli(home, "weights", "reveal", "--subnet", SUBNET, "--wallet", "validator")
    assert code == 0, out
    state = Ledger.open(home / "ledger").state()
    assert state.revealed_weights[(SUBNET, hotkey_of(home, "validator"))]["uids"] == [0]


def test_cli_take_of_a_miner_is_refused_a_validators_is_set(home: Path) -> None:
    before = len(Ledger.open(home / "ledger").records())
    code, out = cli(home, "stake", "take", "--wallet", "miner", "--percent", "5")
    assert (code, out) == (
        1,
        "error: hotkey miner/default is not registered as a validator on any subnet: take is "
        "a validator setting",
    )
    assert len(Ledger.open(home / "ledger").records()) == before
    code, out = cli(home, "stake", "take", "--wallet", "validator", "--percent", "5")
    assert code == 0, out
    assert Ledger.open(home / "ledger").state().take_ppm(hotkey_of(home, "validator")) == 50_000


def test_cli_refuses_an_identical_resubmission_with_its_block(
    home: Path, submission_files: tuple[Path, Path]
) -> None:
    model, config = (str(p) for p in submission_files)
    args = ("submit", model, config, "--subnet", SUBNET, "--wallet", "miner")
    code, out = cli(home, *args)
    assert code == 0, out
    ledger = Ledger.open(home / "ledger")
    before = (len(ledger.records()), ledger.state().balances)
    digest = ledger.state().submission_commits(subnet=SUBNET, hotkey=hotkey_of(home, "miner"))[0]
    code, out = cli(home, *args)
    assert (code, out) == (
        1,
        f"error: artifact {digest.digest[:16]}… already committed at block 0 by this hotkey on "
        "'sn': nothing new to commit",
    )
    ledger = Ledger.open(home / "ledger")
    assert (len(ledger.records()), ledger.state().balances) == before


# ---- validator settings are checked when they enter the ledger ----------------------------------


def register_tx(tx_id: str, who: str, settings: object) -> Tx:
    payload = {"role": "validator", "validator_settings": settings}
    return Tx(
        tx_id,
        Kind.REGISTER,
        subnet=SUBNET,
        coldkey=acct(who),
        hotkey=acct(f"{who}-hot2"),
        amount_rao=TAO,
        payload=canonical_json(payload),
    )


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (
            {"win_policy": "coin-flip"},
            "validator policy: win_policy must be one of epsilon, bootstrap, got 'coin-flip'",
        ),
        ({"temperature": "hot"}, "validator policy: temperature must be a number"),
        ({"epsilon": 0.9}, "validator policy: epsilon must be in [0, 0.5]"),
        ({"no_such_knob": 1}, "validator policy: unknown validator setting(s) ['no_such_knob']"),
        ({"hosted": "yes"}, "validator setting hosted must be true or false"),
    ],
)
def test_a_validator_registering_with_settings_no_epoch_could_use_is_refused(
    ledger: Ledger, settings: dict[str, Any], reason: str
) -> None:
    # Accepted, these would make every later epoch of the subnet fail when it builds weights.
    assert_refused(ledger, register_tx("reg/dave", "dave", settings), reason)


def test_valid_validator_settings_register(ledger: Ledger) -> None:
    settings = {"hosted": True, "win_policy": "bootstrap", "bootstrap_confidence": 0.9}
    tx = register_tx("reg/dave", "dave", settings)
    cost_rao = ledger.state().registration_cost(SUBNET)
    commit_signed(ledger, dataclasses.replace(tx, amount_rao=cost_rao))
    uid = ledger.state().uid_of(subnet=SUBNET, hotkey=acct("dave-hot2"))
    assert uid is not None
    assert ledger.state().neurons[SUBNET][uid].validator_settings == settings


def test_a_subnet_policy_no_epoch_could_use_is_refused(tmp_path: Path) -> None:
    from taoflow.ledger.config import SubnetConfig

    with pytest.raises(ValueError, match="validator policy: bootstrap_resamples must be"):
        SubnetConfig.from_payload({"validator_policy": {"bootstrap_resamples": 10}})
