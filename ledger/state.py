"""The network's rules as a state machine over plain data.

``LedgerState`` is the fold of every committed transaction. ``LedgerState.apply(tx)`` checks a
transaction against the rules and, only if every check passes, changes the state: a rejected or
duplicate transaction leaves the state exactly as it was. ``apply(state, tx)`` is the pure form
(it works on a copy) used by tests and what-if questions.

Invariants (checked with explicit exceptions, see ``check_supply``):
- Balances, stakes and locks are non-negative integer rao; no transaction can overdraw them.
- Supply identity: ``issued_rao − burned_rao == Σ balances + Σ stakes + Σ locked``.
- Transaction ids are idempotent: the same id with the same content is ``Exists``; the same id
  with other content is ``Rejected``.
- An epoch of a subnet is paid at most once, in order (epoch k+1 only after epoch k), and the
  emission entries of an epoch add up exactly to the amount its ``epoch`` entry announces.
- Every user transaction is signed by its signer (``ledger.signing``) and carries the signer's
  next nonce (1, 2, 3, …), so a signed transaction cannot be replayed under another id.
- Only ``epoch`` entries move the block height; registrations and subnets record the block at
  which they were applied, never a block the sender chose.
- A validator's take is within [0, ``TAKE_MAX_PPM``]; it can be lowered at any time but raised
  only once per ``TAKE_INCREASE_INTERVAL_BLOCKS``.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import SupplyIdentityViolated
from ledger.keys import is_account_id
from ledger.names import check_subnet_name
from ledger.registration import Candidate, RegistrationPolicy, uid_to_prune
from ledger.schema import EMISSION_KINDS, SYSTEM_KINDS, Kind, Tx, canonical_json
from ledger.signing import signature_problem, signer_of
from ledger.submissions import HISTORY_MAX, SubmissionCommit, SubmissionPolicy, submission_binding

UIDS_MAX_DEFAULT = 256
NEURON_ROLES = frozenset({"miner", "validator"})
TAKE_DEFAULT_PPM = 180_000
TAKE_MAX_PPM = 180_000
TAKE_INCREASE_INTERVAL_BLOCKS = 1_000
HASH_HEX_CHARS = 64
TX_ID_CHARS_MAX = 256
PAYLOAD_CHARS_MAX = 64 * 1024
EPOCH_PAYLOAD_CHARS_MAX = 64 * 1024 * 1024
"""Epoch entries carry the consensus state (bonds, permits, outputs), hence the larger bound."""
FIELD_CHARS_MAX = 128
PROPOSAL_TEXT_CHARS_MAX = 4_000
PROPOSAL_OPTIONS_MAX = 16


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
    """A subnet as created: its owner and its configuration (the create entry's payload)."""

    name: str
    owner_coldkey: str
    owner_hotkey: str
    created_block: int
    config: dict[str, Any]

    @property
    def uids_max(self) -> int:
        return int(self.config.get("uids_max", UIDS_MAX_DEFAULT))


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
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)
    votes: dict[tuple[str, str], int] = field(default_factory=dict)
    epoch_unpaid_rao: dict[tuple[str, int], int] = field(default_factory=dict)
    tx_contents: dict[str, tuple[object, ...]] = field(default_factory=dict)

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
        for (subnet, epoch), unpaid in self.epoch_unpaid_rao.items():
            if unpaid != 0:
                raise SupplyIdentityViolated(
                    f"epoch {epoch} of {subnet!r}: {unpaid} rao announced but not paid"
                )

    # ---- rules ---------------------------------------------------------------------------

    def apply(self, tx: Tx, *, allow_system: bool = True, check_signatures: bool = True) -> Outcome:
        """Check ``tx`` against the rules; change the state only if it is accepted.

        ``check_signatures=False`` is only for replaying batches whose signatures were checked
        when they were committed and whose bytes are covered by the hash chain.
        """
        seen = self.tx_contents.get(tx.tx_id)
        if seen is not None:
            if seen == tx.content():
                return Exists(tx.tx_id)
            return Rejected(tx.tx_id, "transaction id already used with different content")
        if tx.kind in SYSTEM_KINDS and not allow_system:
            return Rejected(tx.tx_id, f"{tx.kind} entries are produced only by the network")
        shape = _shape_problem(tx)
        if shape is not None:
            return Rejected(tx.tx_id, shape)
        if check_signatures:
            problem = signature_problem(tx)
            if problem is not None:
                return Rejected(tx.tx_id, problem)
        signer = signer_of(tx)
        if signer is not None and tx.nonce != self.next_nonce(signer):
            return Rejected(
                tx.tx_id,
                f"nonce {tx.nonce} is not the signer's next nonce {self.next_nonce(signer)}",
            )
        reason = self._check(tx)
        if reason is not None:
            return Rejected(tx.tx_id, reason)
        self._mutate(tx)
        if signer is not None:
            self.nonces[signer] = tx.nonce
        self.tx_contents[tx.tx_id] = tx.content()
        return Applied(tx.tx_id)

    def _check(self, tx: Tx) -> str | None:
        k = tx.kind
        if k == Kind.GENESIS_MINT:
            if not tx.coldkey:
                return "genesis mint needs a coldkey"
            if self.last_epoch:
                return "genesis mints are only allowed before the first epoch"
            return None
        if k == Kind.TRANSFER:
            if not is_account_id(tx.dest) or tx.dest == tx.coldkey:
                return "transfer needs a destination account other than the source"
            return self._need_balance(tx.coldkey, tx.amount_rao)
        if k == Kind.ADD_STAKE:
            if tx.hotkey not in self.hotkey_owner:
                return f"hotkey {tx.hotkey!r} is not registered"
            if tx.amount_rao == 0:
                return "stake amount must be positive"
            return self._need_balance(tx.coldkey, tx.amount_rao)
        if k == Kind.REMOVE_STAKE:
            have = self.stake(coldkey=tx.coldkey, hotkey=tx.hotkey)
            if tx.amount_rao == 0 or tx.amount_rao > have:
                return f"cannot unstake {tx.amount_rao} rao: {have} rao staked"
            return None
        if k == Kind.SUBNET_CREATE:
            if (name_problem := check_subnet_name(tx.subnet)) is not None:
                return name_problem
            if tx.subnet in self.subnets:
                return f"subnet {tx.subnet!r} already exists or has no name"
            if not tx.hotkey or self.hotkey_owner.get(tx.hotkey, tx.coldkey) != tx.coldkey:
                return "owner hotkey belongs to another coldkey"
            return self._need_balance(tx.coldkey, tx.amount_rao)
        if k == Kind.REGISTER:
            return self._check_register(tx)
        if k == Kind.SUBMISSION_COMMIT:
            return self._check_submission(tx)
        if k == Kind.EPOCH:
            if tx.subnet not in self.subnets:
                return f"unknown subnet {tx.subnet!r}"
            expected = self.last_epoch.get(tx.subnet, -1) + 1
            if tx.epoch != expected:
                return f"epoch {tx.epoch} of {tx.subnet!r} out of order: next is {expected}"
            if tx.block < self.block:
                return f"block {tx.block} is before the current block {self.block}"
            return None
        if k == Kind.SET_TAKE:
            return self._check_take(tx)
        if k == Kind.WEIGHTS_COMMIT:
            if self.uid_of(subnet=tx.subnet, hotkey=tx.hotkey) is None:
                return f"hotkey {tx.hotkey!r} is not registered on {tx.subnet!r}"
            if not _is_hex_hash(tx.payload_dict().get("commit_hash")):
                return "weights commit needs a 64-hex-digit commit_hash"
            return None
        if k == Kind.WEIGHTS_REVEAL:
            return self._check_reveal(tx)
        if k == Kind.PROPOSAL:
            return _proposal_problem(tx.payload_dict())
        if k == Kind.VOTE:
            return self._check_vote(tx)
        if k in EMISSION_KINDS:
            unpaid = self.epoch_unpaid_rao.get((tx.subnet, tx.epoch))
            if unpaid is None:
                return f"no open epoch {tx.epoch} of {tx.subnet!r} to pay"
            if tx.amount_rao > unpaid:
                return f"pays {tx.amount_rao} rao but only {unpaid} rao remain in the epoch"
            if k in (Kind.EMISSION_INCENTIVE, Kind.EMISSION_DIVIDEND) and (
                self.hotkey_owner.get(tx.hotkey) != tx.coldkey
            ):
                return f"hotkey {tx.hotkey!r} is not owned by {tx.coldkey!r}"
            if k == Kind.EMISSION_DELEGATOR and tx.hotkey not in self.hotkey_owner:
                return f"hotkey {tx.hotkey!r} is not registered"
            return None
        return f"unknown transaction kind {k!r}"

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
        if not isinstance(tx.payload_dict().get("validator_settings", {}), dict):
            return "validator_settings must be a JSON object"
        cost = self.registration_cost(tx.subnet)
        if tx.amount_rao != cost:
            return f"registration burns exactly {cost} rao, not {tx.amount_rao}"
        return self._need_balance(tx.coldkey, tx.amount_rao)

    def _check_take(self, tx: Tx) -> str | None:
        if self.hotkey_owner.get(tx.hotkey) != tx.coldkey:
            return f"hotkey {tx.hotkey!r} is not owned by the signing coldkey"
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
        if len(uids) != len(weights) or len(set(uids)) != len(uids):
            return "uids and weights must have the same length and distinct uids"
        n = len(self.neurons.get(tx.subnet, {}))
        for uid, weight in zip(uids, weights, strict=True):
            if not (isinstance(uid, int) and 0 <= uid < n):
                return f"uid {uid!r} is not a uid of {tx.subnet!r}"
            if not (isinstance(weight, int) and 0 <= weight <= 65535):
                return f"weight {weight!r} is not a u16"
        body = canonical_json({"uids": uids, "weights": weights, "salt": salt}).encode()
        if hashlib.sha256(body).hexdigest() != commit[0]:
            return "revealed weights do not match the commit"
        return None

    def _check_vote(self, tx: Tx) -> str | None:
        payload = tx.payload_dict()
        proposal = self.proposals.get(str(payload.get("proposal_id")))
        if proposal is None:
            return f"unknown proposal {payload.get('proposal_id')!r}"
        choice = payload.get("choice")
        if not isinstance(choice, int) or not 0 <= choice < len(proposal["options"]):
            return f"choice must be an option index below {len(proposal['options'])}"
        if (str(payload["proposal_id"]), tx.coldkey) in self.votes:
            return "this coldkey already voted on the proposal"
        return None

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

    def _check_submission(self, tx: Tx) -> str | None:
        if self.uid_of(subnet=tx.subnet, hotkey=tx.hotkey) is None:
            return f"hotkey {tx.hotkey!r} is not registered on {tx.subnet!r}"
        payload = tx.payload_dict()
        digest = payload.get("digest")
        if not _is_hex_hash(digest):
            return "submission commit needs a 64-hex-digit digest"
        if payload.get("binding") != submission_binding(digest=str(digest), hotkey=tx.hotkey):
            return "binding does not match sha256(digest ‖ hotkey): not this hotkey's commit"
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
            return f"insufficient balance: {coldkey!r} has {have} rao, needs {amount_rao}"
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

    def _mutate(self, tx: Tx) -> None:
        k, amount = tx.kind, tx.amount_rao
        if k == Kind.GENESIS_MINT:
            self.issued_rao += amount
            self._credit(tx.coldkey, amount)
        elif k == Kind.TRANSFER:
            self._debit(tx.coldkey, amount)
            self._credit(tx.dest, amount)
        elif k == Kind.ADD_STAKE:
            self._debit(tx.coldkey, amount)
            self._add_stake(coldkey=tx.coldkey, hotkey=tx.hotkey, amount_rao=amount)
        elif k == Kind.REMOVE_STAKE:
            self._add_stake(coldkey=tx.coldkey, hotkey=tx.hotkey, amount_rao=-amount)
            self._credit(tx.coldkey, amount)
        elif k == Kind.SUBNET_CREATE:
            self._debit(tx.coldkey, amount)
            self.locked[tx.subnet] = amount
            self.hotkey_owner[tx.hotkey] = tx.coldkey
            self.subnets[tx.subnet] = Subnet(
                name=tx.subnet,
                owner_coldkey=tx.coldkey,
                owner_hotkey=tx.hotkey,
                created_block=self.block,
                config=tx.payload_dict(),
            )
            self.neurons[tx.subnet] = {}
        elif k == Kind.REGISTER:
            self._debit(tx.coldkey, amount)
            self.burned_rao += amount
            self.hotkey_owner[tx.hotkey] = tx.coldkey
            uids = self.neurons[tx.subnet]
            uid = len(uids)
            if self._full(tx.subnet):
                replaced = self._uid_to_replace(tx.subnet)
                if replaced is None:  # guarded by _check_register
                    raise SupplyIdentityViolated(
                        "registration on a full subnet with no prunable uid"
                    )
                old = uids.pop(replaced)
                self.submission_history.pop((tx.subnet, old.hotkey), None)
                self.submissions.pop((tx.subnet, old.hotkey), None)
                self.uid_emission_rao.get(tx.subnet, {}).pop(replaced, None)
                uid = replaced
            policy = RegistrationPolicy.from_config(self.subnets[tx.subnet].config)
            self.registration_cost_rao[tx.subnet] = policy.after_registration(amount)
            role = str(tx.payload_dict().get("role", "miner"))
            settings = tx.payload_dict().get("validator_settings", {})
            uids[uid] = Neuron(
                uid=uid,
                hotkey=tx.hotkey,
                coldkey=tx.coldkey,
                registered_block=self.block,
                role=role,
                validator_settings=dict(settings),
            )
        elif k == Kind.SUBMISSION_COMMIT:
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
        elif k == Kind.SET_TAKE:
            new = int(tx.payload_dict()["take_ppm"])
            if new > self.take_ppm(tx.hotkey):
                self.take_raised_block[tx.hotkey] = self.block
            self.takes_ppm[tx.hotkey] = new
        elif k == Kind.WEIGHTS_COMMIT:
            commit_hash = str(tx.payload_dict()["commit_hash"])
            self.weight_commits[(tx.subnet, tx.hotkey)] = (commit_hash, self.block)
        elif k == Kind.WEIGHTS_REVEAL:
            _, commit_block = self.weight_commits.pop((tx.subnet, tx.hotkey))
            payload = tx.payload_dict()
            self.revealed_weights[(tx.subnet, tx.hotkey)] = {
                "uids": payload["uids"],
                "weights": payload["weights"],
                "commit_block": commit_block,
                "reveal_block": self.block,
            }
        elif k == Kind.PROPOSAL:
            self.proposals[tx.tx_id] = {
                **tx.payload_dict(),
                "proposer": tx.coldkey,
                "block": self.block,
            }
        elif k == Kind.VOTE:
            payload = tx.payload_dict()
            self.votes[(str(payload["proposal_id"]), tx.coldkey)] = int(payload["choice"])
        elif k == Kind.EPOCH:
            self.block = tx.block
            self.last_epoch[tx.subnet] = tx.epoch
            policy = RegistrationPolicy.from_config(self.subnets[tx.subnet].config)
            self.registration_cost_rao[tx.subnet] = policy.after_epoch(
                self.registration_cost(tx.subnet)
            )
            self.uid_emission_rao[tx.subnet] = {}
            self.last_epoch_payload[tx.subnet] = tx.payload_dict()
            if amount:
                self.epoch_unpaid_rao[(tx.subnet, tx.epoch)] = amount
        else:  # emissions
            self.issued_rao += amount
            epoch_key = (tx.subnet, tx.epoch)
            unpaid = self.epoch_unpaid_rao[epoch_key] - amount
            if unpaid:
                self.epoch_unpaid_rao[epoch_key] = unpaid
            else:
                del self.epoch_unpaid_rao[epoch_key]
            if k != Kind.EMISSION_OWNER and tx.uid >= 0:
                per_uid = self.uid_emission_rao.setdefault(tx.subnet, {})
                per_uid[tx.uid] = per_uid.get(tx.uid, 0) + amount
            if k == Kind.EMISSION_OWNER:
                self._credit(tx.coldkey, amount)
            else:
                self._add_stake(coldkey=tx.coldkey, hotkey=tx.hotkey, amount_rao=amount)


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


def _is_hex_hash(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == HASH_HEX_CHARS
        and all(c in "0123456789abcdef" for c in value)
    )


def _proposal_problem(payload: dict[str, Any]) -> str | None:
    title, options = payload.get("title"), payload.get("options")
    if not isinstance(title, str) or not 0 < len(title) <= PROPOSAL_TEXT_CHARS_MAX:
        return f"proposal title must be 1–{PROPOSAL_TEXT_CHARS_MAX} characters"
    if not isinstance(options, list) or not 2 <= len(options) <= PROPOSAL_OPTIONS_MAX:
        return f"proposal needs 2–{PROPOSAL_OPTIONS_MAX} options"
    if not all(isinstance(o, str) and o for o in options):
        return "proposal options must be non-empty strings"
    return None


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
