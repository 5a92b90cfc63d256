"""The network's rules as a state machine over plain data.

``LedgerState`` is the fold of every committed transaction. ``LedgerState.apply(tx)`` checks a
transaction against the rules and, only if every check passes, changes the state: a rejected or
duplicate transaction leaves the state exactly as it was. ``apply(state, tx)`` is the pure form
(it works on a copy) used by tests and what-if questions.

Invariants (checked with explicit exceptions, see ``check_supply``):
- Balances, stakes and locks are non-negative integer rao; no transaction can overdraw them.
- Supply identity: ``issued_rao − burned_rao == Σ balances + Σ stakes + Σ locked``.
- Transaction ids are idempotent: the same id with the same content is ``Exists``; the same id
  with other content is ``Rejected``. The id index (``ledger.tx_index``) holds every id except
  emission entries': an epoch's entry is ``epoch/<subnet>/<n>`` and its emission entries' ids
  extend it (``epoch/<subnet>/<n>/…``, unique within the epoch, checked while it is open), ids
  under ``epoch/`` are refused from anything else, so the index grows with user transactions
  and epochs, not with the number of payees. (A retried epoch batch is recognised by the store,
  which compares it with the committed one.)
- The ``network`` entry (``ledger.network``) can only be a ledger's first transaction; its id is
  what every user transaction signs, so a transaction signed for another network is refused.
- Every user transaction is signed by its signer (``ledger.signing``) for this network and
  carries the signer's next nonce (1, 2, 3, …), so it cannot be replayed under another id.
- Every user transaction burns the network's ``tx_fee_rao`` from the signer's coldkey (for
  hotkey-signed kinds: the hotkey owner's), checked with the amount it spends before anything
  changes. Transfers, stakes and unstakes of 0 rao are refused. A ledger without a network entry
  (unit tests) charges no fee. Genesis transactions pay the fee too: no phase is free.
- The ledger owns the money rules (``ledger.payouts``): an ``epoch`` entry announces exactly what
  the schedule owes the subnet at that point and the exact split leaves; while it is open, each
  emission entry must be one the recomputed plan owes (right kind, uid, registered hotkey,
  coldkey and amount), at most once, never an incentive to a uid rejected by the evaluation. An
  epoch is paid in order (k+1 only after k is fully paid), and ``check_epochs_complete`` at the
  end of every batch refuses an epoch that was announced but not fully paid.
- One place per kind: ``_RULES`` maps every ``Kind`` to its (check, apply) pair; ``apply`` runs
  the check and only then the change.
- Only ``epoch`` entries move the block height; registrations and subnets record the block at
  which they were applied, never a block the sender chose.
- A validator's take is within [0, ``TAKE_MAX_PPM``]; it can be lowered at any time but raised
  only once per ``TAKE_INCREASE_INTERVAL_BLOCKS``. Only a hotkey registered as a validator on
  some subnet has a take (``ledger.roles``).
- Roles (``ledger.roles``, the chain's ``check_validator_permit``): a weights reveal on other
  uids needs a hotkey registered as a validator that holds a permit at the reveal; anyone
  registered may reveal a self-weight. A commit only carries a hash, so the commit is checked
  for the hotkey: a validator with a permit, or a commit that declares itself a self-weight
  (``"self_weight": true``); the vector itself (uids in range, u16 weights, the role) is checked
  at the reveal.
- A submission commit of the digest that is already the hotkey's newest commit on the subnet is
  refused ("already committed at block B"): nothing is committed and no fee is burned.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.epoch_records import RECORDS_KEY, check_refs
from taoflow.ledger.errors import SupplyIdentityViolated
from taoflow.ledger.governance import GovernanceParams, Tally
from taoflow.ledger.keys import is_account_id
from taoflow.ledger.names import check_subnet_name
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.payouts import (
    EpochPlan,
    EpochShares,
    PayoutEntry,
    Recipient,
    plan_epoch,
    subnet_emission_rao,
    tao_text,
)
from taoflow.ledger.proposals import (
    GOVERNANCE_ID_PREFIX,
    ProposalRecord,
    ProposalStatus,
    current_tally,
    due_records,
    votes_of,
)
from taoflow.ledger.registration import Candidate, RegistrationPolicy, uid_to_prune
from taoflow.ledger.roles import (
    SELF_WEIGHT_KEY,
    VALIDATOR_ROLE,
    is_self_weight,
    permit_settings,
    take_problem,
    validator_permits,
    weight_setter_problem,
    weight_vector_problem,
)
from taoflow.ledger.schema import (
    EMISSION_KINDS,
    SIGNED_BY_HOTKEY,
    SYSTEM_KINDS,
    Kind,
    Tx,
    canonical_json,
)
from taoflow.ledger.signing import signature_problem, signer_of
from taoflow.ledger.submissions import (
    HISTORY_MAX,
    SubmissionCommit,
    SubmissionPolicy,
    submission_binding,
)
from taoflow.ledger.tx_index import TxIndex
from taoflow.ledger.validator_policy import policy_problem

UIDS_MAX_DEFAULT = 256
EPOCH_ID_PREFIX: Final = "epoch/"
"""Ids under this prefix belong to epochs: ``epoch/<subnet>/<n>`` and its emission entries."""
NEURON_ROLES = frozenset({"miner", VALIDATOR_ROLE})
TAKE_DEFAULT_PPM = 180_000
TAKE_MAX_PPM = 180_000
TAKE_INCREASE_INTERVAL_BLOCKS = 1_000
HASH_HEX_CHARS = 64
TX_ID_CHARS_MAX = 256
PAYLOAD_CHARS_MAX = 64 * 1024
EPOCH_PAYLOAD_CHARS_MAX = 64 * 1024 * 1024
"""Epoch entries carry the consensus state (bonds, permits, outputs), hence the larger bound."""
FIELD_CHARS_MAX = 128
AMOUNT_MUST_BE_POSITIVE: Final = "amount must be positive"
_SPENDS_BALANCE = frozenset(
    {Kind.TRANSFER, Kind.ADD_STAKE, Kind.SUBNET_CREATE, Kind.REGISTER, Kind.PROPOSAL}
)
_RESERVED_PREFIXES: Final = ((EPOCH_ID_PREFIX, "epochs"), (GOVERNANCE_ID_PREFIX, "governance"))


@dataclass(frozen=True)
class Applied:
    """The transaction changed the state."""

    tx_id: str


@dataclass(frozen=True)
class Exists:
    """The same transaction (same id, same content) was applied before: nothing changed."""

    tx_id: str


@dataclass(frozen=True)
class Rejected:
    """The transaction breaks a rule; ``reason`` says which. Nothing changed."""

    tx_id: str
    reason: str


Outcome = Applied | Exists | Rejected
PayKey = tuple[Kind, int, str]


@dataclass
class OpenEpoch:
    """An announced epoch while its emission entries are being applied."""

    due: dict[PayKey, PayoutEntry]
    paid: set[PayKey]
    rejected_uids: frozenset[int]
    paid_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Neuron:
    """A registered UID of a subnet."""

    uid: int
    hotkey: str
    coldkey: str
    registered_block: int
    role: str = "miner"
    validator_settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subnet:
    """A subnet as created: its owner and its validated configuration (``ledger.config``)."""

    name: str
    owner_coldkey: str
    owner_hotkey: str
    created_block: int
    config: SubnetConfig

    @property
    def uids_max(self) -> int:
        return self.config.uids_max


@dataclass
class LedgerState:
    """Everything the rules need, derived from the committed transactions."""

    balances: dict[str, int] = field(default_factory=dict)
    stakes: dict[tuple[str, str], int] = field(default_factory=dict)
    locked: dict[str, int] = field(default_factory=dict)
    issued_rao: int = 0
    burned_rao: int = 0
    block: int = 0
    subnets: dict[str, Subnet] = field(default_factory=dict)
    neurons: dict[str, dict[int, Neuron]] = field(default_factory=dict)
    hotkey_owner: dict[str, str] = field(default_factory=dict)
    submissions: dict[tuple[str, str], SubmissionCommit] = field(default_factory=dict)
    submission_history: dict[tuple[str, str], tuple[SubmissionCommit, ...]] = field(
        default_factory=dict
    )
    registration_cost_rao: dict[str, int] = field(default_factory=dict)
    uid_emission_rao: dict[str, dict[int, int]] = field(default_factory=dict)
    last_epoch: dict[str, int] = field(default_factory=dict)
    last_epoch_payload: dict[str, dict[str, Any]] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)
    takes_ppm: dict[str, int] = field(default_factory=dict)
    take_raised_block: dict[str, int] = field(default_factory=dict)
    weight_commits: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    revealed_weights: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    proposals: dict[str, ProposalRecord] = field(default_factory=dict)
    votes: dict[tuple[str, str], int] = field(default_factory=dict)
    """(proposal id, coldkey) → choice index into ``governance.PROPOSAL_OPTIONS``."""
    open_epochs: dict[tuple[str, int], OpenEpoch] = field(default_factory=dict)
    tx_index: TxIndex = field(default_factory=TxIndex)
    """Transaction id → content digest (idempotency: same id, same content; ``ledger.tx_index``)."""
    network: NetworkParams | None = None
    network_id: str = ""
    """The network entry's id ("" while there is none); what user transactions sign."""
    _plan_memo: tuple[str, EpochPlan] | None = field(default=None, repr=False, compare=False)

    # ---- queries -------------------------------------------------------------------------

    def copy(self) -> LedgerState:
        return copy.deepcopy(self)

    def balance(self, coldkey: str) -> int:
        return self.balances.get(coldkey, 0)

    def stake(self, *, coldkey: str, hotkey: str) -> int:
        return self.stakes.get((coldkey, hotkey), 0)

    def hotkey_stake(self, hotkey: str) -> int:
        """Total stake on ``hotkey`` from every coldkey."""
        return sum(v for (_, hk), v in self.stakes.items() if hk == hotkey)

    def take_ppm(self, hotkey: str) -> int:
        """The validator take of ``hotkey`` in parts per million."""
        return self.takes_ppm.get(hotkey, TAKE_DEFAULT_PPM)

    def next_nonce(self, account: str) -> int:
        return self.nonces.get(account, 0) + 1

    def uid_of(self, *, subnet: str, hotkey: str) -> int | None:
        for neuron in self.neurons.get(subnet, {}).values():
            if neuron.hotkey == hotkey:
                return neuron.uid
        return None

    def validator_permits(self, subnet: str) -> frozenset[int]:
        """The uids of ``subnet`` that hold a validator permit now (``ledger.roles``)."""
        info = self.subnets[subnet]
        neurons = self.neurons.get(subnet, {})
        hotkeys = {n.hotkey for n in neurons.values()}
        stake_of: dict[str, int] = {}
        for (_, hotkey), amount_rao in self.stakes.items():  # one pass over every stake
            if hotkey in hotkeys:
                stake_of[hotkey] = stake_of.get(hotkey, 0) + amount_rao
        max_validators, threshold_rao = permit_settings(info.config)
        return validator_permits(
            {uid: stake_of.get(n.hotkey, 0) for uid, n in neurons.items()},
            max_validators=max_validators,
            stake_threshold_rao=threshold_rao,
            owner_uid=self.uid_of(subnet=subnet, hotkey=info.owner_hotkey),
        )

    def is_validator(self, hotkey: str) -> bool:
        """Whether ``hotkey`` is registered as a validator on at least one subnet."""
        return any(
            n.hotkey == hotkey and n.role == VALIDATOR_ROLE
            for neurons in self.neurons.values()
            for n in neurons.values()
        )

    def weight_setter_problem(self, *, subnet: str, hotkey: str) -> str | None:
        """Why ``hotkey`` may not set weights on other uids of ``subnet`` now, or None."""
        if subnet not in self.subnets:
            return f"unknown subnet {subnet!r}"
        uid = self.uid_of(subnet=subnet, hotkey=hotkey)
        if uid is None:
            return f"hotkey {hotkey!r} is not registered on {subnet!r}"
        return weight_setter_problem(
            role=self.neurons[subnet][uid].role,
            has_permit=uid in self.validator_permits(subnet),
            hotkey=hotkey,
            subnet=subnet,
        )

    def weights_problem(
        self, *, subnet: str, hotkey: str, uids: object, weights: object
    ) -> str | None:
        """Why ``hotkey`` may not set these weights on ``subnet`` now, or None.

        The rule a reveal is held to; the CLI asks it before it commits the hash.
        """
        if subnet not in self.subnets:
            return f"unknown subnet {subnet!r}"
        uid = self.uid_of(subnet=subnet, hotkey=hotkey)
        if uid is None:
            return f"hotkey {hotkey!r} is not registered on {subnet!r}"
        n_uids = len(self.neurons[subnet])
        problem = weight_vector_problem(uids, weights, n_uids=n_uids, subnet=subnet)
        if problem is not None:
            return problem
        if isinstance(uids, list) and is_self_weight(uid, uids):
            return None
        return self.weight_setter_problem(subnet=subnet, hotkey=hotkey)

    def supply(self) -> dict[str, int]:
        """The terms of the supply identity."""
        return {
            "issued_rao": self.issued_rao,
            "burned_rao": self.burned_rao,
            "balances_rao": sum(self.balances.values()),
            "stakes_rao": sum(self.stakes.values()),
            "locked_rao": sum(self.locked.values()),
        }

    def check_supply(self) -> None:
        """Raise ``SupplyIdentityViolated`` unless issued − burned = Σ balances, stakes, locks."""
        s = self.supply()
        held = s["balances_rao"] + s["stakes_rao"] + s["locked_rao"]
        if s["issued_rao"] - s["burned_rao"] != held:
            raise SupplyIdentityViolated(
                f"issued {s['issued_rao']} − burned {s['burned_rao']} ≠ held {held} ({s})"
            )

    def check_epochs_complete(self) -> None:
        """Raise ``SupplyIdentityViolated`` if an announced epoch emission was not fully paid."""
        for (subnet, epoch), open_epoch in self.open_epochs.items():
            unpaid = sum(entry.amount_rao for entry in open_epoch.due.values())
            raise SupplyIdentityViolated(
                f"epoch {epoch} of {subnet!r}: {unpaid} rao announced but not paid"
            )

    @property
    def tx_fee_rao(self) -> int:
        """What every user transaction burns (0 on a ledger without a network entry)."""
        return 0 if self.network is None else self.network.tx_fee_rao

    @property
    def governance(self) -> GovernanceParams:
        """The network's governance settings (the defaults on a ledger without a network)."""
        return GovernanceParams() if self.network is None else self.network.governance

    def proposal_tally(self, proposal_id: str) -> Tally:
        """``proposal_id``'s tally: the committed one once tallied, the votes so far before."""
        record = self.proposals[proposal_id]
        if record.tally is not None:
            return record.tally
        params = self.governance
        return current_tally(
            record,
            votes_of(self.votes, proposal_id),
            quorum_ppm=params.quorum_ppm,
            pass_ppm=params.pass_ppm,
        )

    def governance_entries_due(self) -> list[Tx]:
        """The tally and activation entries due now (``ledger.proposals``), in commit order; the
        network commits them as one batch at an epoch boundary."""
        return gov.due_entries(self, due_records(self.proposals.values(), block=self.block))

    def fee_payer(self, tx: Tx) -> str | None:
        """The coldkey that pays ``tx``'s fee (None for system entries or an unowned hotkey)."""
        if tx.kind in SIGNED_BY_HOTKEY:
            return self.hotkey_owner.get(tx.hotkey)
        return signer_of(tx)

    def scheduled_emission_rao(self, subnet: str) -> int:
        """What the schedule owes ``subnet``'s next epoch now."""
        return subnet_emission_rao(
            issued_rao=self.issued_rao,
            blocks=self.subnets[subnet].config.tempo_blocks,
            emission_shares={
                name: info.config.emission_share for name, info in self.subnets.items()
            },
            subnet=subnet,
        )

    def recipients(self, subnet: str) -> dict[int, Recipient]:
        """Every uid of ``subnet`` with its take and stakers, as the epoch split reads them."""
        neurons = self.neurons.get(subnet, {})
        hotkeys = {n.hotkey for n in neurons.values()}
        stakers: dict[str, list[tuple[str, int]]] = {}
        for (coldkey, hotkey), stake in self.stakes.items():  # one pass over every stake
            if stake > 0 and hotkey in hotkeys:
                stakers.setdefault(hotkey, []).append((coldkey, stake))
        return {
            uid: Recipient(
                uid=uid,
                hotkey=n.hotkey,
                coldkey=n.coldkey,
                take_ppm=self.take_ppm(n.hotkey),
                stakers=tuple(sorted(stakers.get(n.hotkey, []))),
            )
            for uid, n in sorted(neurons.items())
        }

    def epoch_plan(self, subnet: str, shares: EpochShares) -> EpochPlan:
        """The exact payouts of ``subnet``'s next epoch with consensus ``shares``, right now."""
        info = self.subnets[subnet]
        return plan_epoch(
            scheduled_rao=self.scheduled_emission_rao(subnet),
            shares=shares,
            split_ppm=info.config.split_ppm(),
            recipients=self.recipients(subnet),
            owner_coldkey=info.owner_coldkey,
            owner_hotkey=info.owner_hotkey,
        )

    # ---- rules ---------------------------------------------------------------------------

    def apply(self, tx: Tx, *, allow_system: bool = True, check_signatures: bool = True) -> Outcome:
        """Check ``tx`` against the rules; change the state only if it is accepted.

        ``check_signatures=False`` is only for replaying batches whose signatures were checked
        when they were committed and whose bytes are covered by the hash chain.
        """
        seen = None if tx.kind in EMISSION_KINDS else self.tx_index.get(tx.tx_id)
        if seen is not None:
            if seen == TxIndex.digest_of(tx.content_digest()):
                return Exists(tx.tx_id)
            return Rejected(tx.tx_id, "transaction id already used with different content")
        if tx.kind in SYSTEM_KINDS and not allow_system:
            return Rejected(tx.tx_id, f"{tx.kind} entries are produced only by the network")
        if tx.kind not in SYSTEM_KINDS:
            for prefix, owner in _RESERVED_PREFIXES:
                if tx.tx_id.startswith(prefix):
                    return Rejected(tx.tx_id, f"ids starting with {prefix!r} belong to {owner}")
        shape = _shape_problem(tx)
        if shape is not None:
            return Rejected(tx.tx_id, shape)
        if check_signatures:
            problem = signature_problem(tx, network_id=self.network_id)
            if problem is not None:
                return Rejected(tx.tx_id, problem)
        signer = signer_of(tx)
        if signer is not None and tx.nonce != self.next_nonce(signer):
            return Rejected(
                tx.tx_id,
                f"nonce {tx.nonce} is not the signer's next nonce {self.next_nonce(signer)}",
            )
        rule = _RULES.get(tx.kind)
        if rule is None:
            return Rejected(tx.tx_id, f"unknown transaction kind {tx.kind!r}")
        check, change = rule
        reason = check(self, tx)
        if reason is None and signer is not None:
            reason = self._fee_problem(tx)
        if reason is not None:
            return Rejected(tx.tx_id, reason)
        change(self, tx)
        if signer is not None:
            self._burn_fee(tx)
            self.nonces[signer] = tx.nonce
        if tx.kind not in EMISSION_KINDS:  # kept per open epoch instead (``_check_emission``)
            self.tx_index.add(tx.tx_id, tx.content_digest())
        return Applied(tx.tx_id)

    def _fee_problem(self, tx: Tx) -> str | None:
        fee = self.tx_fee_rao
        if fee == 0:
            return None
        payer = self.fee_payer(tx)
        if payer is None:
            return f"hotkey {tx.hotkey!r} has no coldkey to pay the fee"
        spends = tx.amount_rao if tx.kind in _SPENDS_BALANCE else 0
        have = self.balance(payer)
        if spends + fee > have:
            return (
                f"insufficient balance for the fee: {payer!r} has {tao_text(have)} τ, needs "
                f"{tao_text(spends)} τ + {tao_text(fee)} τ fee"
            )
        return None

    def _burn_fee(self, tx: Tx) -> None:
        fee = self.tx_fee_rao
        payer = self.fee_payer(tx)
        if fee and payer is not None:
            self._debit(payer, fee)
            self.burned_rao += fee

    # -- network and money movements --

    def _check_network(self, tx: Tx) -> str | None:
        if self.network is not None:
            return "the network entry can appear only once"
        if self.tx_index:
            return "the network entry must be the ledger's first transaction"
        if tx.amount_rao or tx.subnet or tx.coldkey or tx.hotkey or tx.dest:
            return "the network entry carries only its payload"
        try:
            NetworkParams.from_payload(tx.payload_dict())
        except ValueError as exc:
            return str(exc)
        return None

    def _apply_network(self, tx: Tx) -> None:
        self.network = NetworkParams.from_payload(tx.payload_dict())
        self.network_id = self.network.network_id

    def _check_mint(self, tx: Tx) -> str | None:
        if not tx.coldkey:
            return "genesis mint needs a coldkey"
        if self.last_epoch:
            return "genesis mints are only allowed before the first epoch"
        return None

    def _apply_mint(self, tx: Tx) -> None:
        self.issued_rao += tx.amount_rao
        self._credit(tx.coldkey, tx.amount_rao)

    def _check_transfer(self, tx: Tx) -> str | None:
        if tx.amount_rao == 0:
            return AMOUNT_MUST_BE_POSITIVE
        if not is_account_id(tx.dest) or tx.dest == tx.coldkey:
            return "transfer needs a destination account other than the source"
        return self._need_balance(tx.coldkey, tx.amount_rao)

    def _apply_transfer(self, tx: Tx) -> None:
        self._debit(tx.coldkey, tx.amount_rao)
        self._credit(tx.dest, tx.amount_rao)

    def _check_add_stake(self, tx: Tx) -> str | None:
        if tx.amount_rao == 0:
            return AMOUNT_MUST_BE_POSITIVE
        if tx.hotkey not in self.hotkey_owner:
            return f"hotkey {tx.hotkey!r} is not registered"
        return self._need_balance(tx.coldkey, tx.amount_rao)

    def _apply_add_stake(self, tx: Tx) -> None:
        self._debit(tx.coldkey, tx.amount_rao)
        self._add_stake(coldkey=tx.coldkey, hotkey=tx.hotkey, amount_rao=tx.amount_rao)

    def _check_remove_stake(self, tx: Tx) -> str | None:
        if tx.amount_rao == 0:
            return AMOUNT_MUST_BE_POSITIVE
        have = self.stake(coldkey=tx.coldkey, hotkey=tx.hotkey)
        if tx.amount_rao > have:
            return f"cannot unstake {tao_text(tx.amount_rao)} τ: {tao_text(have)} τ staked"
        return None

    def _apply_remove_stake(self, tx: Tx) -> None:
        self._add_stake(coldkey=tx.coldkey, hotkey=tx.hotkey, amount_rao=-tx.amount_rao)
        self._credit(tx.coldkey, tx.amount_rao)

    def _check_subnet_create(self, tx: Tx) -> str | None:
        if (name_problem := check_subnet_name(tx.subnet)) is not None:
            return name_problem
        if tx.subnet in self.subnets:
            return f"subnet {tx.subnet!r} already exists or has no name"
        if not tx.hotkey or self.hotkey_owner.get(tx.hotkey, tx.coldkey) != tx.coldkey:
            return "owner hotkey belongs to another coldkey"
        try:
            SubnetConfig.from_payload(tx.payload_dict())
        except ValueError as exc:
            return str(exc)
        return self._need_balance(tx.coldkey, tx.amount_rao)

    def _apply_subnet_create(self, tx: Tx) -> None:
        self._debit(tx.coldkey, tx.amount_rao)
        self.locked[tx.subnet] = tx.amount_rao
        self.hotkey_owner[tx.hotkey] = tx.coldkey
        self.subnets[tx.subnet] = Subnet(
            name=tx.subnet,
            owner_coldkey=tx.coldkey,
            owner_hotkey=tx.hotkey,
            created_block=self.block,
            config=SubnetConfig.from_payload(tx.payload_dict()),
        )
        self.neurons[tx.subnet] = {}

    def _check_register(self, tx: Tx) -> str | None:
        subnet = self.subnets.get(tx.subnet)
        if subnet is None:
            return f"unknown subnet {tx.subnet!r}"
        if self.uid_of(subnet=tx.subnet, hotkey=tx.hotkey) is not None:
            return f"hotkey {tx.hotkey!r} is already registered on {tx.subnet!r}"
        if self.hotkey_owner.get(tx.hotkey, tx.coldkey) != tx.coldkey:
            return f"hotkey {tx.hotkey!r} belongs to another coldkey"
        if self._full(tx.subnet) and self._uid_to_replace(tx.subnet) is None:
            return f"subnet {tx.subnet!r} is full ({subnet.uids_max} uids) and every uid is immune"
        role = tx.payload_dict().get("role", "miner")
        if role not in NEURON_ROLES:
            return f"unknown role {role!r}: expected one of {sorted(NEURON_ROLES)}"
        settings = tx.payload_dict().get("validator_settings", {})
        if not isinstance(settings, dict):
            return "validator_settings must be a JSON object"
        if settings and role == "validator":
            problem = policy_problem(subnet.config.validator_policy, settings)
            if problem is not None:
                return problem
        cost = self.registration_cost(tx.subnet)
        if tx.amount_rao != cost:
            return f"registration burns exactly {tao_text(cost)} τ, not {tao_text(tx.amount_rao)} τ"
        return self._need_balance(tx.coldkey, tx.amount_rao)

    def _check_take(self, tx: Tx) -> str | None:
        if self.hotkey_owner.get(tx.hotkey) != tx.coldkey:
            return f"hotkey {tx.hotkey!r} is not owned by the signing coldkey"
        not_validator = take_problem(hotkey=tx.hotkey, is_validator=self.is_validator(tx.hotkey))
        if not_validator is not None:
            return not_validator
        new = tx.payload_dict().get("take_ppm")
        if not isinstance(new, int) or isinstance(new, bool) or not 0 <= new <= TAKE_MAX_PPM:
            return f"take_ppm must be an integer in [0, {TAKE_MAX_PPM}]"
        if new > self.take_ppm(tx.hotkey):
            last = self.take_raised_block.get(tx.hotkey)
            if last is not None and self.block < last + TAKE_INCREASE_INTERVAL_BLOCKS:
                return (
                    f"take was raised at block {last}; the next increase is allowed from block "
                    f"{last + TAKE_INCREASE_INTERVAL_BLOCKS}"
                )
        return None

    def _check_reveal(self, tx: Tx) -> str | None:
        commit = self.weight_commits.get((tx.subnet, tx.hotkey))
        if commit is None:
            return "no weights commit to reveal"
        payload = tx.payload_dict()
        uids, weights, salt = payload.get("uids"), payload.get("weights"), payload.get("salt")
        if not (isinstance(uids, list) and isinstance(weights, list) and isinstance(salt, str)):
            return "weights reveal needs uids, weights and salt"
        n_uids = len(self.neurons.get(tx.subnet, {}))
        problem = weight_vector_problem(uids, weights, n_uids=n_uids, subnet=tx.subnet)
        if problem is not None:
            return problem
        body = canonical_json({"uids": uids, "weights": weights, "salt": salt}).encode()
        if hashlib.sha256(body).hexdigest() != commit[0]:
            return "revealed weights do not match the commit"
        return self.weights_problem(subnet=tx.subnet, hotkey=tx.hotkey, uids=uids, weights=weights)

    def registration_cost(self, subnet: str) -> int:
        """What registering on ``subnet`` burns right now."""
        if subnet in self.registration_cost_rao:
            return self.registration_cost_rao[subnet]
        return RegistrationPolicy.from_config(self.subnets[subnet].config).initial_cost_rao

    def _full(self, subnet: str) -> bool:
        return len(self.neurons.get(subnet, {})) >= self.subnets[subnet].uids_max

    def _uid_to_replace(self, subnet: str) -> int | None:
        info = self.subnets[subnet]
        policy = RegistrationPolicy.from_config(info.config)
        emission = self.uid_emission_rao.get(subnet, {})
        owner_uid = self.uid_of(subnet=subnet, hotkey=info.owner_hotkey)
        return uid_to_prune(
            (
                Candidate(
                    uid=n.uid,
                    registered_block=n.registered_block,
                    emission_rao=emission.get(n.uid, 0),
                )
                for n in self.neurons[subnet].values()
            ),
            current_block=self.block,
            immunity_period_blocks=policy.immunity_period_blocks,
            protected=frozenset() if owner_uid is None else frozenset({owner_uid}),
        )

    def submission_commits(self, *, subnet: str, hotkey: str) -> tuple[SubmissionCommit, ...]:
        return self.submission_history.get((subnet, hotkey), ())

    def newest_submission(self, *, subnet: str, hotkey: str) -> SubmissionCommit | None:
        """The hotkey's latest commit on ``subnet`` (None if it has none)."""
        history = self.submission_commits(subnet=subnet, hotkey=hotkey)
        return history[-1] if history else None

    def resubmission_problem(self, *, subnet: str, hotkey: str, digest: str) -> str | None:
        """Why committing ``digest`` again changes nothing (it is the hotkey's newest commit on
        ``subnet``), or None; the CLI asks before it stores or publishes anything."""
        newest = self.newest_submission(subnet=subnet, hotkey=hotkey)
        if newest is None or newest.digest != digest:
            return None
        return (
            f"artifact {digest[:16]}… already committed at block {newest.block} by this hotkey "
            f"on {subnet!r}: nothing new to commit"
        )

    def _check_submission(self, tx: Tx) -> str | None:
        if self.uid_of(subnet=tx.subnet, hotkey=tx.hotkey) is None:
            return f"hotkey {tx.hotkey!r} is not registered on {tx.subnet!r}"
        payload = tx.payload_dict()
        digest = payload.get("digest")
        if not _is_hex_hash(digest):
            return "submission commit needs a 64-hex-digit digest"
        if payload.get("binding") != submission_binding(digest=str(digest), hotkey=tx.hotkey):
            return "binding does not match sha256(digest ‖ hotkey): not this hotkey's commit"
        again = self.resubmission_problem(subnet=tx.subnet, hotkey=tx.hotkey, digest=str(digest))
        if again is not None:
            return again
        policy = SubmissionPolicy.from_config(self.subnets[tx.subnet].config)
        this_epoch = [
            c
            for c in self.submission_commits(subnet=tx.subnet, hotkey=tx.hotkey)
            if c.block == self.block
        ]
        if len(this_epoch) >= policy.per_epoch_max:
            return (
                f"quota reached: {policy.per_epoch_max} submissions per epoch per hotkey; "
                "try again after the next epoch"
            )
        return None

    def _need_balance(self, coldkey: str, amount_rao: int) -> str | None:
        have = self.balance(coldkey)
        if amount_rao > have:
            return (
                f"insufficient balance: {coldkey!r} has {tao_text(have)} τ, "
                f"needs {tao_text(amount_rao)} τ"
            )
        return None

    def _credit(self, coldkey: str, amount_rao: int) -> None:
        self.balances[coldkey] = self.balance(coldkey) + amount_rao

    def _debit(self, coldkey: str, amount_rao: int) -> None:
        left = self.balance(coldkey) - amount_rao
        if left:
            self.balances[coldkey] = left
        else:
            self.balances.pop(coldkey, None)

    def _add_stake(self, *, coldkey: str, hotkey: str, amount_rao: int) -> None:
        key = (coldkey, hotkey)
        left = self.stakes.get(key, 0) + amount_rao
        if left:
            self.stakes[key] = left
        else:
            self.stakes.pop(key, None)

    # -- neurons, submissions, weights, governance --

    def _apply_register(self, tx: Tx) -> None:
        amount = tx.amount_rao
        self._debit(tx.coldkey, amount)
        self.burned_rao += amount
        self.hotkey_owner[tx.hotkey] = tx.coldkey
        uids = self.neurons[tx.subnet]
        uid = len(uids)
        if self._full(tx.subnet):
            replaced = self._uid_to_replace(tx.subnet)
            if replaced is None:  # guarded by _check_register
                raise SupplyIdentityViolated("registration on a full subnet with no prunable uid")
            old = uids.pop(replaced)
            self.submission_history.pop((tx.subnet, old.hotkey), None)
            self.submissions.pop((tx.subnet, old.hotkey), None)
            self.uid_emission_rao.get(tx.subnet, {}).pop(replaced, None)
            uid = replaced
        policy = RegistrationPolicy.from_config(self.subnets[tx.subnet].config)
        self.registration_cost_rao[tx.subnet] = policy.after_registration(amount)
        uids[uid] = Neuron(
            uid=uid,
            hotkey=tx.hotkey,
            coldkey=tx.coldkey,
            registered_block=self.block,
            role=str(tx.payload_dict().get("role", "miner")),
            validator_settings=dict(tx.payload_dict().get("validator_settings", {})),
        )

    def _apply_submission(self, tx: Tx) -> None:
        payload = tx.payload_dict()
        commit = SubmissionCommit(
            subnet=tx.subnet,
            hotkey=tx.hotkey,
            digest=str(payload["digest"]),
            uri=str(payload.get("uri", "")),
            block=self.block,
            tx_id=tx.tx_id,
        )
        key = (tx.subnet, tx.hotkey)
        self.submissions[key] = commit
        self.submission_history[key] = (*self.submission_history.get(key, ()), commit)[
            -HISTORY_MAX:
        ]

    def _apply_take(self, tx: Tx) -> None:
        new = int(tx.payload_dict()["take_ppm"])
        if new > self.take_ppm(tx.hotkey):
            self.take_raised_block[tx.hotkey] = self.block
        self.takes_ppm[tx.hotkey] = new

    def _check_weights_commit(self, tx: Tx) -> str | None:
        if tx.subnet not in self.subnets:
            return f"unknown subnet {tx.subnet!r}"
        if self.uid_of(subnet=tx.subnet, hotkey=tx.hotkey) is None:
            return f"hotkey {tx.hotkey!r} is not registered on {tx.subnet!r}"
        payload = tx.payload_dict()
        if not _is_hex_hash(payload.get("commit_hash")):
            return "weights commit needs a 64-hex-digit commit_hash"
        self_weight = payload.get(SELF_WEIGHT_KEY, False)
        if not isinstance(self_weight, bool):
            return f"{SELF_WEIGHT_KEY} must be true or false"
        if self_weight:
            return None  # the reveal must then be a self-weight unless the hotkey may weigh others
        problem = self.weight_setter_problem(subnet=tx.subnet, hotkey=tx.hotkey)
        if problem is not None:
            return f'{problem}; a self-weight commit says "{SELF_WEIGHT_KEY}": true'
        return None

    def _apply_weights_commit(self, tx: Tx) -> None:
        commit_hash = str(tx.payload_dict()["commit_hash"])
        self.weight_commits[(tx.subnet, tx.hotkey)] = (commit_hash, self.block)

    def _apply_reveal(self, tx: Tx) -> None:
        _, commit_block = self.weight_commits.pop((tx.subnet, tx.hotkey))
        payload = tx.payload_dict()
        self.revealed_weights[(tx.subnet, tx.hotkey)] = {
            "uids": payload["uids"],
            "weights": payload["weights"],
            "commit_block": commit_block,
            "reveal_block": self.block,
        }

    # -- epochs and emissions --

    def _check_epoch(self, tx: Tx) -> str | None:
        if tx.subnet not in self.subnets:
            return f"unknown subnet {tx.subnet!r}"
        expected = self.last_epoch.get(tx.subnet, -1) + 1
        if tx.epoch != expected:
            return f"epoch {tx.epoch} of {tx.subnet!r} out of order: next is {expected}"
        if tx.tx_id != epoch_tx_id(tx.subnet, tx.epoch):
            return f"an epoch entry's id must be {epoch_tx_id(tx.subnet, tx.epoch)!r}"
        if tx.block < self.block:
            return f"block {tx.block} is before the current block {self.block}"
        payload = tx.payload_dict()
        refs = check_refs(payload.get(RECORDS_KEY))
        if isinstance(refs, str):
            return f"epoch {tx.epoch} of {tx.subnet!r}: {refs}"
        try:
            plan = self.epoch_plan(tx.subnet, EpochShares.from_payload(payload))
        except ValueError as exc:
            return f"epoch {tx.epoch} of {tx.subnet!r}: {exc}"
        if payload.get("scheduled_rao") != plan.scheduled_rao:
            return (
                f"epoch records a schedule of {payload.get('scheduled_rao')!r} rao but "
                f"{tx.subnet!r} is owed exactly {plan.scheduled_rao} rao at this point"
            )
        if tx.amount_rao != plan.total_rao:
            return (
                f"epoch announces {tx.amount_rao} rao but the schedule and split pay exactly "
                f"{plan.total_rao} rao"
            )
        if payload.get("unissued_rao") != plan.payouts.unissued_rao:
            return (
                f"epoch records {payload.get('unissued_rao')!r} rao unissued but the split "
                f"leaves exactly {plan.payouts.unissued_rao} rao"
            )
        self._plan_memo = (tx.tx_id, plan)
        return None

    def _apply_epoch(self, tx: Tx) -> None:
        memo, self._plan_memo = self._plan_memo, None
        if memo is not None and memo[0] == tx.tx_id:
            plan = memo[1]
        else:
            plan = self.epoch_plan(tx.subnet, EpochShares.from_payload(tx.payload_dict()))
        self.block = tx.block
        self.last_epoch[tx.subnet] = tx.epoch
        policy = RegistrationPolicy.from_config(self.subnets[tx.subnet].config)
        self.registration_cost_rao[tx.subnet] = policy.after_epoch(
            self.registration_cost(tx.subnet)
        )
        self.uid_emission_rao[tx.subnet] = {}
        self.last_epoch_payload[tx.subnet] = tx.payload_dict()
        for proposal_id, record in self.proposals.items():  # an epoch boundary after a tally
            if record.status is ProposalStatus.PASSED and not record.boundary_after_tally:
                self.proposals[proposal_id] = replace(record, boundary_after_tally=True)
        if plan.entries:
            self.open_epochs[(tx.subnet, tx.epoch)] = OpenEpoch(
                due={entry.key: entry for entry in plan.entries},
                paid=set(),
                rejected_uids=plan.rejected_uids,
            )

    def _check_emission(self, tx: Tx) -> str | None:
        open_epoch = self.open_epochs.get((tx.subnet, tx.epoch))
        if open_epoch is None:
            return f"no open epoch {tx.epoch} of {tx.subnet!r} to pay"
        if not tx.tx_id.startswith(epoch_tx_id(tx.subnet, tx.epoch) + "/"):
            return f"an emission id must start with {epoch_tx_id(tx.subnet, tx.epoch) + '/'!r}"
        if tx.tx_id in open_epoch.paid_ids:
            return "transaction id already used in this epoch"
        key = (tx.kind, tx.uid, tx.coldkey)
        if key in open_epoch.paid:
            return f"{tx.kind} of uid {tx.uid} to {tx.coldkey[:16]}… already paid this epoch"
        if tx.kind == Kind.EMISSION_INCENTIVE and tx.uid in open_epoch.rejected_uids:
            return f"uid {tx.uid} is listed with an evaluation error and earns no incentive"
        if tx.kind != Kind.EMISSION_OWNER:
            neuron = self.neurons.get(tx.subnet, {}).get(tx.uid)
            if neuron is None or neuron.hotkey != tx.hotkey:
                return (
                    f"hotkey {tx.hotkey[:16]!r} is not registered on {tx.subnet!r} at uid {tx.uid}"
                )
        due = open_epoch.due.get(key)
        if due is None:
            return f"no {tx.kind} is due to {tx.coldkey[:16]}… at uid {tx.uid} in this epoch"
        if due.hotkey != tx.hotkey:
            return f"{tx.kind} of uid {tx.uid} must be paid on hotkey {due.hotkey[:16]}…"
        if tx.amount_rao != due.amount_rao:
            return (
                f"{tx.kind} of uid {tx.uid} must be exactly {due.amount_rao} rao, "
                f"not {tx.amount_rao}"
            )
        return None

    def _apply_emission(self, tx: Tx) -> None:
        amount = tx.amount_rao
        epoch_key = (tx.subnet, tx.epoch)
        open_epoch = self.open_epochs[epoch_key]
        key = (tx.kind, tx.uid, tx.coldkey)
        del open_epoch.due[key]
        open_epoch.paid.add(key)
        open_epoch.paid_ids.add(tx.tx_id)
        if not open_epoch.due:
            del self.open_epochs[epoch_key]
        self.issued_rao += amount
        if tx.kind != Kind.EMISSION_OWNER and tx.uid >= 0:
            per_uid = self.uid_emission_rao.setdefault(tx.subnet, {})
            per_uid[tx.uid] = per_uid.get(tx.uid, 0) + amount
        if tx.kind == Kind.EMISSION_OWNER:
            self._credit(tx.coldkey, amount)
        else:
            self._add_stake(coldkey=tx.coldkey, hotkey=tx.hotkey, amount_rao=amount)


from taoflow.ledger import governance_rules as gov  # noqa: E402  (its rules take a LedgerState)

Check = Callable[[LedgerState, Tx], str | None]
Change = Callable[[LedgerState, Tx], None]
_RULES: Final[dict[Kind, tuple[Check, Change]]] = {
    Kind.NETWORK: (LedgerState._check_network, LedgerState._apply_network),
    Kind.GENESIS_MINT: (LedgerState._check_mint, LedgerState._apply_mint),
    Kind.TRANSFER: (LedgerState._check_transfer, LedgerState._apply_transfer),
    Kind.ADD_STAKE: (LedgerState._check_add_stake, LedgerState._apply_add_stake),
    Kind.REMOVE_STAKE: (LedgerState._check_remove_stake, LedgerState._apply_remove_stake),
    Kind.SUBNET_CREATE: (LedgerState._check_subnet_create, LedgerState._apply_subnet_create),
    Kind.REGISTER: (LedgerState._check_register, LedgerState._apply_register),
    Kind.SUBMISSION_COMMIT: (LedgerState._check_submission, LedgerState._apply_submission),
    Kind.SET_TAKE: (LedgerState._check_take, LedgerState._apply_take),
    Kind.WEIGHTS_COMMIT: (LedgerState._check_weights_commit, LedgerState._apply_weights_commit),
    Kind.WEIGHTS_REVEAL: (LedgerState._check_reveal, LedgerState._apply_reveal),
    Kind.PROPOSAL: (gov.check_proposal, gov.apply_proposal),
    Kind.VOTE: (gov.check_vote, gov.apply_vote),
    Kind.PROPOSAL_TALLY: (gov.check_tally, gov.apply_tally),
    Kind.PROPOSAL_ACTIVATION: (gov.check_activation, gov.apply_activation),
    Kind.EPOCH: (LedgerState._check_epoch, LedgerState._apply_epoch),
    Kind.EMISSION_OWNER: (LedgerState._check_emission, LedgerState._apply_emission),
    Kind.EMISSION_INCENTIVE: (LedgerState._check_emission, LedgerState._apply_emission),
    Kind.EMISSION_DIVIDEND: (LedgerState._check_emission, LedgerState._apply_emission),
    Kind.EMISSION_DELEGATOR: (LedgerState._check_emission, LedgerState._apply_emission),
}
"""One place per kind: the rule that checks it and the change that applies it, side by side."""


def apply(state: LedgerState, tx: Tx) -> LedgerState | Rejected | Exists:
    """Pure form of ``LedgerState.apply``: the new state, or why nothing changed."""
    new_state = state.copy()
    outcome = new_state.apply(tx)
    if isinstance(outcome, Applied):
        return new_state
    return outcome


def replay(txs: Iterable[Tx]) -> LedgerState:
    """Fold ``txs`` into a state, raising ``SupplyIdentityViolated`` if any is not accepted."""
    state = LedgerState()
    for tx in txs:
        outcome = state.apply(tx)
        if isinstance(outcome, Rejected):
            raise SupplyIdentityViolated(f"replay rejected {tx.tx_id!r}: {outcome.reason}")
    state.check_supply()
    return state


def epoch_tx_id(subnet: str, epoch: int) -> str:
    """The id of ``subnet``'s ``epoch`` entry; its emission entries' ids extend it with "/…"."""
    return f"{EPOCH_ID_PREFIX}{subnet}/{epoch}"


def _is_hex_hash(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == HASH_HEX_CHARS
        and all(c in "0123456789abcdef" for c in value)
    )


def _shape_problem(tx: Tx) -> str | None:
    """Size and encoding limits every transaction must meet before any rule looks at it.

    Repeats ``Tx``'s own construction checks, because a transaction can reach the rules without
    going through its constructor (e.g. forged with ``object.__setattr__`` or ``replace``).
    """
    if not isinstance(tx.tx_id, str) or not tx.tx_id:
        return "transaction id must be a non-empty string"
    amount = tx.amount_rao
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount < 2**63:
        return "amount_rao must be an integer number of rao in [0, 2**63)"
    if len(tx.tx_id) > TX_ID_CHARS_MAX:
        return f"transaction id longer than {TX_ID_CHARS_MAX} characters"
    bound = EPOCH_PAYLOAD_CHARS_MAX if tx.kind == Kind.EPOCH else PAYLOAD_CHARS_MAX
    if len(tx.payload) > bound:
        return f"payload larger than {bound:,} characters"
    for name in ("subnet", "coldkey", "hotkey", "dest"):
        if len(getattr(tx, name)) > FIELD_CHARS_MAX:
            return f"{name} longer than {FIELD_CHARS_MAX} characters"
    try:
        tx.payload_dict()
    except ValueError:
        return "payload is not a JSON object"
    return None
