"""Network simulation: seeded synthetic validator scores through the real consensus and ledger.

``simulate`` fast-forwards one subnet by N epochs without training, evaluation, Prefect, Dask
or MLflow. Genesis (when the ledger is empty) is one batch like the demo's: the ``network``
entry, mints, the subnet, V validators registered and staked, M miners registered with one
submission commit each (a digest that names no stored artifact: nothing is evaluated). Each
epoch is the pipeline's own path minus evaluation: ``tasks.gather.gather_context`` (which reads
the previous epoch's bonds and permits from its records) → synthetic scores → u16 weights
(``tasks.weights.scores_to_weights`` with the subnet's validator policy) →
``tasks.consensus.stage.run_consensus`` → ``EpochShares`` and the epoch's records
(``tasks.records.epoch_records``) → the emit stage's ``plan_from_context`` and ``epoch_batch``
→ ``Ledger.commit``, where the ledger checks every money rule (schedule, split, recipients,
supply identity) as for any epoch and writes the record files before the batch.

Invariants:
- Determinism: everything is a function of (seed, miners, validators, subnet) and the ledger.
  In an empty home the writer key, the network salt and every participant key are derived from
  the seed, so two runs with the same arguments write identical rows and batch hashes.
- External validators (``SimulationSpec.external_validators``, registered with
  ``{"hosted": false}``) are not scored here: their revealed weights, if any, join the hosted
  ones exactly as in the consensus task (``tasks.shells.consensus``).
- Scores: miner uid ``u`` has a latent quality drawn once from ``(QUALITY_STREAM, seed)``;
  validator ``v`` observes it in epoch ``e`` with noise from ``(NOISE_STREAM, seed, e, v)``,
  clipped to [0, 1]. Continuing a ledger (the next epoch numbers) gives the same epochs as one
  longer run with the same seed.
- Each epoch is preceded by the governance step (``tasks.governance.boundary``) on the same
  open ledger, as in the epoch flow: tallies and activations due at the boundary are committed
  as their own batch first, so a simulated network votes and changes parameters too. Nothing is
  committed when nothing is due (no extra batch).
- One ``Ledger`` object stays open for the whole run: its state catches up incrementally
  instead of replaying the history for every epoch. The batch it commits is byte-for-byte the
  one ``tasks.emit.commit_epoch`` would commit for the same context and results, with the same
  record files.
- Bytes on disk per epoch (``SimulationSummary.bytes_per_epoch``) count the epoch's batch file
  and its record files.
- Bounds: ``EPOCHS_MAX`` epochs per call, ``MINERS_MAX`` miners, ``VALIDATORS_MAX`` validators,
  seeds in [0, ``SEED_MAX``]; anything else is a ``SimulationError`` (one line) raised before
  anything is written.

SIMULATION KEYS: the derived keys (writer, owner, validators, miners) are a public function of
the seed. Anyone who knows the seed can sign as them. Never use a simulated network, or any key
derived here, for real money.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.epoch_records import RECORDS_KEY, check_refs
from taoflow.ledger.keys import Keypair
from taoflow.ledger.names import check_subnet_name
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.payouts import EpochShares
from taoflow.ledger.registration import RegistrationPolicy
from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx, canonical_json
from taoflow.ledger.signing import sign, signer_of
from taoflow.ledger.store import CommitResult, Ledger
from taoflow.ledger.store.records import record_path
from taoflow.ledger.store.segments import batch_file_name
from taoflow.ledger.store.writer_key import load_or_create_writer_key
from taoflow.ledger.submissions import submission_binding
from taoflow.tasks.consensus.stage import run_consensus
from taoflow.tasks.emit import EpochBatch, epoch_batch, plan_from_context
from taoflow.tasks.gather import EpochContext, gather_context
from taoflow.tasks.governance.boundary import GovernanceCommit, commit_governance_on
from taoflow.tasks.records import EpochRecords, epoch_records
from taoflow.tasks.weights import ValidatorPolicy, scores_to_weights

EPOCHS_MAX: Final = 100_000
"""Epochs one call may simulate (a year of 72-minute epochs is 7,300)."""
MINERS_MAX: Final = 3_072
VALIDATORS_MAX: Final = 1_024
"""MINERS_MAX + VALIDATORS_MAX = the ledger's per-subnet uid limit (4,096)."""
SEED_MAX: Final = 2**63 - 1
MINERS_DEFAULT: Final = 256
VALIDATORS_DEFAULT: Final = 64
NETWORK_NAME: Final = "taoflow-simulation"
KEY_DOMAIN: Final = "taoflow-simulate/v1"
QUALITY_STREAM: Final = 1
NOISE_STREAM: Final = 2
QUALITY_MIN: Final = 0.5
QUALITY_MAX: Final = 0.95
NOISE_SD: Final = 0.02
SCORE_DECIMALS: Final = 6
EVALUATION_SET: Final = "digits"
OWNER_BALANCE_RAO: Final = 1_000 * RAO_PER_TAO
MINER_BALANCE_RAO: Final = 5 * RAO_PER_TAO
VALIDATOR_STAKE_BASE_RAO: Final = 1_000 * RAO_PER_TAO
VALIDATOR_STAKE_STEP_RAO: Final = 97 * RAO_PER_TAO
"""Validator i stakes base + i · step (distinct stakes) and holds 10 τ more for costs and fees."""
VALIDATOR_SPARE_RAO: Final = 10 * RAO_PER_TAO


class SimulationError(ValueError):
    """A simulation request that cannot be run (one line, nothing written)."""


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate; checked on construction."""

    subnet: str
    epochs: int
    miners: int = MINERS_DEFAULT
    validators: int = VALIDATORS_DEFAULT
    seed: int = 0
    external_validators: int = 0
    """The last this many validators register as external (they set weights by commit and
    reveal, ``EpochContext.external_weights``; the simulation scores only hosted ones)."""

    def __post_init__(self) -> None:
        problem = check_subnet_name(self.subnet)
        if problem is None and not 0 <= self.external_validators <= self.validators:
            problem = f"external validators must be between 0 and {self.validators}"
        for name, value, high in (
            ("epochs", self.epochs, EPOCHS_MAX),
            ("miners", self.miners, MINERS_MAX),
            ("validators", self.validators, VALIDATORS_MAX),
        ):
            if problem is None and not 1 <= value <= high:
                problem = f"--{name} must be between 1 and {high}, got {value}"
        if problem is None and not 0 <= self.seed <= SEED_MAX:
            problem = f"--seed must be between 0 and {SEED_MAX}, got {self.seed}"
        if problem is not None:
            raise SimulationError(problem)


@dataclass(frozen=True)
class Participant:
    """One simulated account: its role, derived keys and genesis money."""

    name: str
    role: str  # "owner" | "validator" | "miner"
    coldkey: Keypair
    hotkey: Keypair
    balance_rao: int
    stake_rao: int = 0


@dataclass(frozen=True)
class EpochReport:
    """One committed simulated epoch."""

    epoch: int
    batch_no: int
    batch_hash: str
    emitted_rao: int
    scheduled_rao: int
    batch_bytes: int
    record_bytes: int
    """Bytes of the epoch's record files on disk."""
    seconds: float
    governance: GovernanceCommit | None = None
    """What the governance step committed before this epoch (None when nothing was due)."""


@dataclass(frozen=True)
class SimulationSummary:
    """What a ``simulate`` call did and the ledger it left."""

    subnet: str
    seed: int
    genesis: bool
    miners: int
    validators: int
    first_epoch: int
    last_epoch: int
    epochs: int
    batches: int
    ledger_bytes: int
    bytes_per_epoch: int
    """Bytes on disk per simulated epoch: its batch file and its record files."""
    batch_bytes_per_epoch: int
    record_bytes_per_epoch: int
    seconds_per_epoch: float
    emitted_rao: int
    supply_identity_holds: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- keys and genesis (pure) -----------------------------------------------------------------


def simulation_keypair(seed: int, label: str) -> Keypair:
    """A SIMULATION key derived from the seed (public knowledge: never for real money)."""
    return Keypair.from_private_bytes(
        hashlib.sha256(f"{KEY_DOMAIN}/{seed}/{label}".encode()).digest()
    )


def network_params(seed: int, *, writer_key_hex: str) -> NetworkParams:
    """The simulated network: its salt is derived from the seed, not random."""
    salt_hex = hashlib.sha256(f"{KEY_DOMAIN}/{seed}/salt".encode()).hexdigest()
    return NetworkParams(name=NETWORK_NAME, writer_key=writer_key_hex, salt_hex=salt_hex)


def participants(spec: SimulationSpec) -> list[Participant]:
    """The owner, then validators 0…V-1, then miners 0…M-1 (registration order = uid order)."""

    def make(name: str, role: str, balance_rao: int, stake_rao: int = 0) -> Participant:
        return Participant(
            name=name,
            role=role,
            coldkey=simulation_keypair(spec.seed, f"{name}/cold"),
            hotkey=simulation_keypair(spec.seed, f"{name}/hot"),
            balance_rao=balance_rao,
            stake_rao=stake_rao,
        )

    people = [make("owner", "owner", OWNER_BALANCE_RAO)]
    for index in range(spec.validators):
        stake_rao = VALIDATOR_STAKE_BASE_RAO + index * VALIDATOR_STAKE_STEP_RAO
        people.append(
            make(f"validator-{index}", "validator", stake_rao + VALIDATOR_SPARE_RAO, stake_rao)
        )
    people += [make(f"miner-{i}", "miner", MINER_BALANCE_RAO) for i in range(spec.miners)]
    return people


def subnet_payload(spec: SimulationSpec) -> dict[str, Any]:
    """A valid subnet configuration on ``digits`` with room for every participant."""
    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.network import subnet_config

    return subnet_config(
        load_evaluation_set(EVALUATION_SET),
        uids_max=spec.miners + spec.validators,
        registration_cost_increase_ppm=0,  # flat cost: every genesis balance covers it
    )


class _Signer:
    """Signs user transactions with consecutive nonces per signing account."""

    def __init__(self, people: list[Participant], *, network_id: str) -> None:
        self.network_id = network_id
        self.keys = {k.public_hex: k for p in people for k in (p.coldkey, p.hotkey)}
        self.nonces: dict[str, int] = {}

    def __call__(self, tx: Tx) -> Tx:
        account = signer_of(tx)
        if account is None:
            return tx
        self.nonces[account] = self.nonces.get(account, 0) + 1
        return sign(
            dataclasses.replace(tx, nonce=self.nonces[account]),
            self.keys[account],
            network_id=self.network_id,
        )


def _simulated_submission(spec: SimulationSpec, miner: Participant) -> Tx:
    """The miner's one submission commit: a digest that names no stored artifact."""
    digest = hashlib.sha256(f"{KEY_DOMAIN}/{spec.seed}/{miner.name}/model".encode()).hexdigest()
    payload = {
        "digest": digest,
        "uri": f"simulated://{digest}",
        "binding": submission_binding(digest=digest, hotkey=miner.hotkey.public_hex),
    }
    return _user_tx(
        miner,
        f"genesis/submit/{spec.subnet}/{miner.name}",
        Kind.SUBMISSION_COMMIT,
        subnet=spec.subnet,
        payload=payload,
    )


def genesis_transactions(
    spec: SimulationSpec, *, writer_key_hex: str, subnet_config: Mapping[str, Any]
) -> list[Tx]:
    """The signed genesis batch: network, mints, subnet, registrations, stakes, submissions."""
    people = participants(spec)
    network = network_params(spec.seed, writer_key_hex=writer_key_hex)
    signer = _Signer(people, network_id=network.network_id)
    owner, subnet = people[0], spec.subnet
    txs = [Tx("genesis/network", Kind.NETWORK, payload=canonical_json(network.to_payload()))]
    txs += [
        Tx(
            f"genesis/mint/{p.name}",
            Kind.GENESIS_MINT,
            coldkey=p.coldkey.public_hex,
            amount_rao=p.balance_rao,
        )
        for p in people
    ]
    txs.append(
        Tx(
            f"genesis/subnet/{subnet}",
            Kind.SUBNET_CREATE,
            subnet=subnet,
            coldkey=owner.coldkey.public_hex,
            hotkey=owner.hotkey.public_hex,
            amount_rao=_lock_cost_rao(),
            payload=canonical_json(dict(subnet_config)),
        )
    )
    cost_rao = RegistrationPolicy.from_config(
        SubnetConfig.from_payload(dict(subnet_config))
    ).initial_cost_rao
    external = {
        f"validator-{i}" for i in range(spec.validators - spec.external_validators, spec.validators)
    }
    for p in people[1:]:
        registration: dict[str, Any] = {"role": p.role}
        if p.name in external:
            registration["validator_settings"] = {"hosted": False}
        txs.append(
            _user_tx(
                p,
                f"genesis/register/{subnet}/{p.name}",
                Kind.REGISTER,
                subnet=subnet,
                amount_rao=cost_rao,
                payload=registration,
            )
        )
    for p in people:
        if p.stake_rao:
            txs.append(
                _user_tx(p, f"genesis/stake/{p.name}", Kind.ADD_STAKE, amount_rao=p.stake_rao)
            )
    txs += [_simulated_submission(spec, p) for p in people if p.role == "miner"]
    return [signer(tx) for tx in txs]


def _lock_cost_rao() -> int:
    from taoflow.network import LOCK_COST_RAO

    return int(LOCK_COST_RAO)


def _user_tx(
    p: Participant,
    tx_id: str,
    kind: Kind,
    *,
    subnet: str = "",
    amount_rao: int = 0,
    payload: Mapping[str, Any] | None = None,
) -> Tx:
    return Tx(
        tx_id,
        kind,
        subnet=subnet,
        coldkey=p.coldkey.public_hex,
        hotkey=p.hotkey.public_hex,
        amount_rao=amount_rao,
        payload=canonical_json(dict(payload or {})),
    )


# ---- one epoch (pure) -------------------------------------------------------------------------


def miner_qualities(seed: int, *, uids: int) -> np.ndarray:
    """Each uid's latent quality, drawn once from the seed (prefix-stable in ``uids``)."""
    rng = np.random.default_rng([QUALITY_STREAM, seed])
    return rng.uniform(QUALITY_MIN, QUALITY_MAX, size=uids)


def synthetic_scores(ctx: EpochContext, *, seed: int) -> dict[int, dict[int, float]]:
    """Hosted validator uid → {miner uid with an eligible submission: observed score}."""
    miners = [n.uid for n in ctx.neurons if n.artifact_digest is not None]
    quality = miner_qualities(seed, uids=ctx.n)[miners]
    scores: dict[int, dict[int, float]] = {}
    for neuron in ctx.neurons:
        if not ctx.is_hosted_validator(neuron.uid):
            continue
        rng = np.random.default_rng([NOISE_STREAM, seed, ctx.epoch, neuron.uid])
        observed = np.clip(quality + rng.normal(0.0, NOISE_SD, size=len(miners)), 0.0, 1.0)
        scores[neuron.uid] = {
            uid: round(float(s), SCORE_DECIMALS) for uid, s in zip(miners, observed, strict=True)
        }
    return scores


def scores_weights(
    ctx: EpochContext, scores: Mapping[int, Mapping[int, float]]
) -> dict[int, dict[int, int]]:
    """Each validator's u16 weights from its scores, with its (or the subnet's) policy."""
    commit_blocks = {n.uid: n.artifact_block for n in ctx.neurons if n.artifact_block is not None}
    default = dict(ctx.config.validator_policy)
    weights = {}
    for validator, row in scores.items():
        settings = ctx.neurons[validator].validator_settings or {}
        weights[validator] = scores_to_weights(
            row,
            commit_blocks=commit_blocks,
            current_block=ctx.block,
            policy=ValidatorPolicy.from_settings(default, settings),
        )
    return weights


@dataclass(frozen=True)
class EpochProposal:
    """What an epoch commits: the integer shares and the epoch's records."""

    shares: EpochShares
    records: EpochRecords


def propose_epoch(ctx: EpochContext, *, seed: int) -> EpochProposal:
    """Scores → weights → Yuma consensus → shares and records, shaped like the emit stage's."""
    scores = synthetic_scores(ctx, seed=seed)
    weights = scores_weights(ctx, scores)
    last_update: dict[int, int] = {}
    for uid, (row, commit_block) in ctx.external_weights.items():  # as the consensus task does
        if uid not in weights:
            weights[uid] = row
            last_update[uid] = commit_block
    outcome = run_consensus(ctx, weights, last_update_block=last_update)
    out = outcome.outputs
    shares = EpochShares.from_consensus(
        hotkeys=[n.hotkey for n in ctx.neurons],
        incentive=out.incentive.tolist(),
        dividends=out.dividends.tolist(),
        validator_share=out.validator_emission_share.tolist(),
    )
    # nothing was sampled (sample size 0): the scores are synthetic
    records = epoch_records(ctx, outcome, scores=scores, errors={}, sample_size=0)
    return EpochProposal(shares=shares, records=records)


# ---- the shell: one open ledger, N epochs ----------------------------------------------------


def ensure_writer_key(path: Path, *, seed: int) -> Keypair:
    """The writer key at ``path``; if there is none, the SIMULATION key derived from ``seed``,
    written like any writer key (0600, durable, never replacing one that exists)."""
    return load_or_create_writer_key(path, new_key=lambda: simulation_keypair(seed, "writer"))


def cosigners_of(ctx: EpochContext, *, seed: int, validators: int) -> list[Keypair]:
    """The derived hotkeys of ``ctx``'s hosted validators (those this seed's keys match)."""
    wanted = {n.hotkey for n in ctx.neurons if ctx.is_hosted_validator(n.uid)}
    keys = [simulation_keypair(seed, f"validator-{i}/hot") for i in range(validators)]
    return [k for k in keys if k.public_hex in wanted]


def commit_simulated_epoch(ledger: Ledger, *, seed: int, subnet: str) -> EpochReport:
    """Commit governance's due entries, then gather, propose and commit the next epoch of
    ``subnet`` on the open ``ledger`` (as the epoch flow orders its steps)."""
    started_s = time.perf_counter()
    governance = commit_governance_on(ledger)
    ctx = gather_context(ledger, subnet=subnet)
    proposal = propose_epoch(ctx, seed=seed)
    plan = plan_from_context(ctx, proposal.shares)
    batch = epoch_batch(ctx, plan, shares=proposal.shares, records=proposal.records)
    validators = sum(1 for n in ctx.neurons if n.role == "validator")
    result: CommitResult = ledger.commit(
        list(batch.txs),
        cosigners=cosigners_of(ctx, seed=seed, validators=validators),
        records=batch.tables,
    )
    if result.batch_no is None or result.batch_hash is None:
        raise SimulationError(f"epoch {ctx.epoch} of {subnet!r} was already committed")
    batch_bytes = (ledger.batches_dir / batch_file_name(result.batch_no)).stat().st_size
    return EpochReport(
        epoch=ctx.epoch,
        batch_no=result.batch_no,
        batch_hash=result.batch_hash,
        emitted_rao=plan.total_rao,
        scheduled_rao=plan.scheduled_rao,
        batch_bytes=batch_bytes,
        record_bytes=record_bytes(ledger, ctx, batch),
        seconds=time.perf_counter() - started_s,
        governance=governance if governance.entries else None,
    )


def record_bytes(ledger: Ledger, ctx: EpochContext, batch: EpochBatch) -> int:
    """Bytes on disk of the record files that ``batch``'s ``epoch`` entry names."""
    refs = check_refs(batch.txs[0].payload_dict().get(RECORDS_KEY))
    if isinstance(refs, str):
        raise SimulationError(refs)
    return sum(
        record_path(ledger.root, subnet=ctx.subnet, epoch=ctx.epoch, ref=ref).stat().st_size
        for ref in refs.values()
    )


def prepare(ledger: Ledger, spec: SimulationSpec) -> bool:
    """Write the genesis batch if the ledger is empty (True); refuse a network without the
    subnet. The home's writer key is created from the seed when absent."""
    if ledger.records():
        if spec.subnet not in ledger.state().subnets:
            raise SimulationError(
                f"the network at {ledger.root.parent} has no subnet {spec.subnet!r}: "
                "simulate in an empty home or continue one of its subnets"
            )
        return False
    writer = ensure_writer_key(ledger.writer_key_path, seed=spec.seed)
    txs = genesis_transactions(
        spec, writer_key_hex=writer.public_hex, subnet_config=subnet_payload(spec)
    )
    ledger.commit(txs)
    return True


def simulate(
    ledger_dir: Path,
    spec: SimulationSpec,
    *,
    on_epoch: Callable[[EpochReport], None] = lambda _: None,
) -> SimulationSummary:
    """Genesis if needed, then ``spec.epochs`` epochs of ``spec.subnet`` on one open ledger."""
    ledger = Ledger.open(ledger_dir)
    genesis = prepare(ledger, spec)
    reports = []
    for _ in range(spec.epochs):  # bounded: SimulationSpec checks epochs ≤ EPOCHS_MAX
        report = commit_simulated_epoch(ledger, seed=spec.seed, subnet=spec.subnet)
        reports.append(report)
        on_epoch(report)
    state = ledger.state()
    supply = state.supply()
    held_rao = supply["balances_rao"] + supply["stakes_rao"] + supply["locked_rao"]
    roles = [n.role for n in state.neurons.get(spec.subnet, {}).values()]
    return SimulationSummary(
        subnet=spec.subnet,
        seed=spec.seed,
        genesis=genesis,
        miners=roles.count("miner"),
        validators=roles.count("validator"),
        first_epoch=reports[0].epoch,
        last_epoch=reports[-1].epoch,
        epochs=len(reports),
        batches=len(ledger.records()),
        ledger_bytes=sum(p.stat().st_size for p in Path(ledger_dir).rglob("*") if p.is_file()),
        bytes_per_epoch=sum(r.batch_bytes + r.record_bytes for r in reports) // len(reports),
        batch_bytes_per_epoch=sum(r.batch_bytes for r in reports) // len(reports),
        record_bytes_per_epoch=sum(r.record_bytes for r in reports) // len(reports),
        seconds_per_epoch=sum(r.seconds for r in reports) / len(reports),
        emitted_rao=sum(r.emitted_rao for r in reports),
        supply_identity_holds=supply["issued_rao"] - supply["burned_rao"] == held_rao,
    )
