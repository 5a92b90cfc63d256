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
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import SupplyIdentityViolated
from ledger.schema import SYSTEM_KINDS, Kind, Tx

UIDS_MAX_DEFAULT = 256
NEURON_ROLES = frozenset({"miner", "validator"})


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


@dataclass(frozen=True)
class SubmissionCommit:
    """A miner's commitment to an artifact, by content digest."""

    subnet: str
    hotkey: str
    digest: str
    uri: str
    block: int
    tx_id: str


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
    last_epoch: dict[str, int] = field(default_factory=dict)
    last_epoch_payload: dict[str, dict[str, Any]] = field(default_factory=dict)
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

    def apply(self, tx: Tx, *, allow_system: bool = True) -> Outcome:
        """Check ``tx`` against the rules; change the state only if it is accepted."""
        seen = self.tx_contents.get(tx.tx_id)
        if seen is not None:
            if seen == tx.content():
                return Exists(tx.tx_id)
            return Rejected(tx.tx_id, "transaction id already used with different content")
        if tx.kind in SYSTEM_KINDS and not allow_system:
            return Rejected(tx.tx_id, f"{tx.kind} entries are produced only by the network")
        reason = self._check(tx)
        if reason is not None:
            return Rejected(tx.tx_id, reason)
        self._mutate(tx)
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
            if not tx.dest or tx.dest == tx.coldkey:
                return "transfer needs a destination other than the source"
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
            if not tx.subnet or tx.subnet in self.subnets:
                return f"subnet {tx.subnet!r} already exists or has no name"
            if not tx.hotkey or self.hotkey_owner.get(tx.hotkey, tx.coldkey) != tx.coldkey:
                return "owner hotkey belongs to another coldkey"
            return self._need_balance(tx.coldkey, tx.amount_rao)
        if k == Kind.REGISTER:
            return self._check_register(tx)
        if k == Kind.SUBMISSION_COMMIT:
            if self.uid_of(subnet=tx.subnet, hotkey=tx.hotkey) is None:
                return f"hotkey {tx.hotkey!r} is not registered on {tx.subnet!r}"
            payload = tx.payload_dict()
            if not isinstance(payload.get("digest"), str) or len(payload["digest"]) != 64:
                return "submission commit needs a 64-hex-digit digest"
            return None
        if k == Kind.EPOCH:
            if tx.subnet not in self.subnets:
                return f"unknown subnet {tx.subnet!r}"
            expected = self.last_epoch.get(tx.subnet, -1) + 1
            if tx.epoch != expected:
                return f"epoch {tx.epoch} of {tx.subnet!r} out of order: next is {expected}"
            if tx.block < self.block:
                return f"block {tx.block} is before the current block {self.block}"
            return None
        if k in (Kind.EMISSION_OWNER, Kind.EMISSION_INCENTIVE, Kind.EMISSION_DIVIDEND):
            unpaid = self.epoch_unpaid_rao.get((tx.subnet, tx.epoch))
            if unpaid is None:
                return f"no open epoch {tx.epoch} of {tx.subnet!r} to pay"
            if tx.amount_rao > unpaid:
                return f"pays {tx.amount_rao} rao but only {unpaid} rao remain in the epoch"
            if k != Kind.EMISSION_OWNER and self.hotkey_owner.get(tx.hotkey) != tx.coldkey:
                return f"hotkey {tx.hotkey!r} is not owned by {tx.coldkey!r}"
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
        if len(self.neurons.get(tx.subnet, {})) >= subnet.uids_max:
            return f"subnet {tx.subnet!r} is full ({subnet.uids_max} uids)"
        role = tx.payload_dict().get("role", "miner")
        if role not in NEURON_ROLES:
            return f"unknown role {role!r}: expected one of {sorted(NEURON_ROLES)}"
        cost = int(subnet.config.get("registration_cost_rao", 0))
        if tx.amount_rao != cost:
            return f"registration burns exactly {cost} rao, not {tx.amount_rao}"
        return self._need_balance(tx.coldkey, tx.amount_rao)

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
        if tx.block > self.block:
            self.block = tx.block
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
                created_block=tx.block,
                config=tx.payload_dict(),
            )
            self.neurons[tx.subnet] = {}
        elif k == Kind.REGISTER:
            self._debit(tx.coldkey, amount)
            self.burned_rao += amount
            self.hotkey_owner[tx.hotkey] = tx.coldkey
            uids = self.neurons[tx.subnet]
            uid = len(uids)
            role = str(tx.payload_dict().get("role", "miner"))
            uids[uid] = Neuron(
                uid=uid, hotkey=tx.hotkey, coldkey=tx.coldkey, registered_block=tx.block, role=role
            )
        elif k == Kind.SUBMISSION_COMMIT:
            payload = tx.payload_dict()
            self.submissions[(tx.subnet, tx.hotkey)] = SubmissionCommit(
                subnet=tx.subnet,
                hotkey=tx.hotkey,
                digest=str(payload["digest"]),
                uri=str(payload.get("uri", "")),
                block=tx.block,
                tx_id=tx.tx_id,
            )
        elif k == Kind.EPOCH:
            self.last_epoch[tx.subnet] = tx.epoch
            self.last_epoch_payload[tx.subnet] = tx.payload_dict()
            if amount:
                self.epoch_unpaid_rao[(tx.subnet, tx.epoch)] = amount
        else:  # emissions
            self.issued_rao += amount
            key = (tx.subnet, tx.epoch)
            unpaid = self.epoch_unpaid_rao[key] - amount
            if unpaid:
                self.epoch_unpaid_rao[key] = unpaid
            else:
                del self.epoch_unpaid_rao[key]
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
