"""Stage 1 — gather: everything an epoch needs, read from the ledger.

Pure: ``build_context`` is a function of the ledger state, the head hash and the previous
epoch's consensus state (``PreviousEpoch``, read by ``previous_epoch`` from the last epoch's
payload and its hash-checked ``bonds`` and ``uids`` records), so an epoch's inputs (and its
evaluation seed) are reproducible from the ledger alone. ``gather_context`` reads all three
from an open ``Ledger``.

Invariants: the epoch number is the subnet's last committed epoch + 1; the current block is the
last epoch's block + tempo (the creation block + tempo for epoch 0; with an unchanged tempo this
is the creation block + (epoch + 1) · tempo); neurons are listed by uid; the epoch's emission is
the subnet's share of the scheduled block rewards for its tempo, as the ledger computes it
(``LedgerState.scheduled_emission_rao``, ``ledger.payouts.subnet_emission_rao``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa

from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.epoch_records import BONDS_SCHEMA
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store import Ledger
from taoflow.ledger.submissions import SubmissionPolicy, eligible
from taoflow.tasks.evaluate.sampling import derive_seed


class UnknownSubnet(KeyError):
    """The subnet named by the caller does not exist in the ledger."""


@dataclass(frozen=True)
class NeuronView:
    """One UID as the epoch sees it."""

    uid: int
    hotkey: str
    coldkey: str
    role: str
    registered_block: int
    stake_rao: int
    artifact_digest: str | None
    artifact_uri: str | None
    artifact_block: int | None = None
    validator_settings: dict[str, Any] | None = None
    stakers: tuple[tuple[str, int], ...] = ()
    """(coldkey, stake in rao) of everyone staked on this hotkey, by coldkey."""
    take_ppm: int = 0


PREVIOUS_RECORDS: Final = ("bonds", "uids")
"""The records of the last epoch that the next one reads (its bonds and validator permits)."""


@dataclass(frozen=True)
class PreviousEpoch:
    """The consensus state the last committed epoch stored (empty before the first).

    ``bonds`` has the ``bonds`` record's columns ``(validator, miner, bond_u16)``; ``permits``
    is the ``uids`` record's ``permit`` column (one bool per uid of that epoch).
    """

    block: int = 0
    bonds: pa.Table = field(default_factory=BONDS_SCHEMA.empty_table)
    permits: pa.Array = field(default_factory=lambda: pa.array([], type=pa.bool_()))


def previous_epoch(ledger: Ledger, state: LedgerState, *, subnet: str) -> PreviousEpoch:
    """What ``subnet``'s last committed epoch (in ``state``) left for the next one.

    Reads that epoch's ``bonds`` and ``uids`` records (hash-checked: a damaged record file is
    ``LedgerCorrupted``); an epoch committed without records leaves no bonds and no permits.
    """
    last = state.last_epoch.get(subnet)
    if last is None:
        return PreviousEpoch()
    payload = state.last_epoch_payload.get(subnet, {})
    records = ledger.epoch_records(subnet, last, names=PREVIOUS_RECORDS)
    empty = PreviousEpoch()
    uids = records.get("uids")
    return PreviousEpoch(
        block=int(payload.get("block", 0)),
        bonds=records.get("bonds", empty.bonds),
        permits=uids.column("permit").combine_chunks() if uids is not None else empty.permits,
    )


@dataclass(frozen=True)
class EpochContext:
    """The inputs of one epoch of one subnet."""

    subnet: str
    epoch: int
    block: int
    tempo_blocks: int
    emission_rao: int
    parent_hash: str
    seed_hex: str
    owner_coldkey: str
    owner_hotkey: str
    config: SubnetConfig
    """The subnet's validated configuration."""
    neurons: tuple[NeuronView, ...]
    previous: PreviousEpoch = field(default_factory=PreviousEpoch)
    """The consensus state of the subnet's last committed epoch (``previous_epoch``)."""
    external_weights: dict[int, tuple[dict[int, int], int]] = field(default_factory=dict)
    """Revealed weights of external validators: uid → ({miner uid: u16}, commit block)."""

    def is_hosted_validator(self, uid: int) -> bool:
        neuron = self.neurons[uid]
        return neuron.role == "validator" and bool(
            (neuron.validator_settings or {}).get("hosted", True)
        )

    @property
    def n(self) -> int:
        return len(self.neurons)

    @property
    def owner_uid(self) -> int | None:
        for neuron in self.neurons:
            if neuron.hotkey == self.owner_hotkey:
                return neuron.uid
        return None


def gather_context(ledger: Ledger, *, subnet: str) -> EpochContext:
    """The next epoch of ``subnet`` on the open ``ledger`` (state, head hash, previous records)."""
    state = ledger.state()
    return build_context(
        state,
        subnet=subnet,
        head_hash=ledger.head_hash(),
        previous=previous_epoch(ledger, state, subnet=subnet),
    )


def build_context(
    state: LedgerState, *, subnet: str, head_hash: str, previous: PreviousEpoch
) -> EpochContext:
    """The next epoch of ``subnet`` given the committed ledger ``state`` at ``head_hash`` and
    the consensus state its last epoch stored (``previous``)."""
    info = state.subnets.get(subnet)
    if info is None:
        raise UnknownSubnet(subnet)
    epoch = state.last_epoch.get(subnet, -1) + 1
    tempo = info.config.tempo_blocks
    last_block = state.last_epoch_payload.get(subnet, {}).get("block")
    if epoch > 0 and isinstance(last_block, int) and not isinstance(last_block, bool):
        block = last_block + tempo  # a tempo changed by governance applies from here on
    else:
        block = info.created_block + (epoch + 1) * tempo
    delay_blocks = SubmissionPolicy.from_config(info.config).evaluation_delay_blocks
    stakers_of: dict[str, list[tuple[str, int]]] = {}
    for (coldkey, hotkey), stake in state.stakes.items():  # one pass, not one per neuron
        if stake > 0:
            stakers_of.setdefault(hotkey, []).append((coldkey, stake))
    neurons = []
    for uid in sorted(state.neurons.get(subnet, {})):
        neuron = state.neurons[subnet][uid]
        commit = eligible(
            state.submission_commits(subnet=subnet, hotkey=neuron.hotkey),
            current_block=block,
            delay_blocks=delay_blocks,
        )
        neurons.append(
            NeuronView(
                uid=uid,
                hotkey=neuron.hotkey,
                coldkey=neuron.coldkey,
                role=neuron.role,
                registered_block=neuron.registered_block,
                stake_rao=sum(stake for _, stake in stakers_of.get(neuron.hotkey, [])),
                artifact_digest=commit.digest if commit else None,
                artifact_uri=commit.uri if commit else None,
                artifact_block=commit.block if commit else None,
                validator_settings=dict(neuron.validator_settings),
                stakers=tuple(sorted(stakers_of.get(neuron.hotkey, []))),
                take_ppm=state.take_ppm(neuron.hotkey),
            )
        )
    external: dict[int, tuple[dict[int, int], int]] = {}
    for view in neurons:
        revealed = state.revealed_weights.get((subnet, view.hotkey))
        if revealed is not None and view.role == "validator":
            row = dict(zip(revealed["uids"], revealed["weights"], strict=True))
            external[view.uid] = (
                {int(m): int(w) for m, w in row.items() if int(m) < len(neurons)},
                int(revealed["commit_block"]),
            )
    seed = derive_seed(head_hash, subnet, epoch)
    return EpochContext(
        subnet=subnet,
        epoch=epoch,
        block=block,
        tempo_blocks=tempo,
        emission_rao=state.scheduled_emission_rao(subnet),
        parent_hash=head_hash,
        seed_hex=seed.hex(),
        owner_coldkey=info.owner_coldkey,
        owner_hotkey=info.owner_hotkey,
        config=info.config,
        neurons=tuple(neurons),
        previous=previous,
        external_weights=external,
    )
