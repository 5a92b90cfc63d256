"""Governance rules: typed proposals, voting-power snapshots and tallies, in integer rao.

A proposal asks TAO holders to change a subnet's hyper-parameters (``subnet_params``), to change
network parameters spread over subnets (``network_params``: emission shares, registration cost
dynamics, tempo) or only to state an opinion (``signal``). Voting power is what a coldkey holds
at the block the proposal opened; the tally decides whether the change passes and whether the
proposer's deposit comes back.

Invariants:
- ``ProposalSpec.from_payload`` parses a proposal once: every field has its exact JSON type and
  bound, unknown fields are refused, and any problem is one line (``ValueError``). A parameter
  change names only known, existing subnets and known settings, changes every setting it names,
  and the changed config passes ``SubnetConfig.from_payload`` of the merged payload, so every
  bound of the typed config holds for it (object settings such as ``yuma`` merge key by key).
  No change may leave every subnet of the network with a zero emission share.
- A proposal opens at ``opens_block`` and takes votes while ``opens_block ≤ block <
  closes_block`` (``closes_block = opens_block + voting_blocks``); it is tallied once the block
  reaches ``closes_block``. Its options are always ``("for", "against", "abstain")``.
- ``voting_powers`` is a pure function of balances, stakes and hotkey owners: each rao of a
  free balance or of a stake belongs to exactly one coldkey's own power or one delegation, so
  ``total_rao = Σ balances + Σ stakes`` and no rao is counted twice.
- ``tally``: a coldkey that voted casts its own power and all its delegated stake for its
  choice (overriding its validators for its share); a coldkey that did not vote has each
  delegation cast with that validator coldkey's choice if the validator voted, and not at all
  otherwise; the own power of a non-voter is never cast. Hence ``turnout_rao ≤ total_rao``.
- Quorum is met iff ``turnout_rao > 0`` and ``turnout_rao · 10⁶ ≥ quorum_ppm · total_rao``.
  A proposal passes iff quorum is met and ``for_rao · 10⁶ > pass_ppm · (for_rao + against_rao)``:
  abstentions count toward quorum, never toward the pass ratio. The deposit is returned iff
  quorum is met, burned otherwise.
- Pure: integers only, no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal

from taoflow.ledger.config import PPM, SubnetConfig
from taoflow.ledger.schema import RAO_PER_TAO

PROPOSAL_TEXT_CHARS_MAX: Final = 4_000
"""Longest title or body text of a proposal, in characters (the same bound as the ledger's)."""
PROPOSAL_OPTIONS: Final = ("for", "against", "abstain")
CHOICE_FOR: Final = 0
CHOICE_AGAINST: Final = 1
CHOICE_ABSTAIN: Final = 2
QUORUM_PPM_DEFAULT: Final = 100_000
"""10 % of all voting power must be cast (for, against or abstain) for a tally to count."""
PASS_PPM_DEFAULT: Final = 500_000
"""A change passes with strictly more than half of the for + against power."""
DEPOSIT_MIN_RAO_DEFAULT: Final = RAO_PER_TAO
VOTING_BLOCKS_MIN: Final = 100
"""One demo tempo: every proposal stays open for at least one epoch boundary."""
VOTING_BLOCKS_MAX: Final = 216_000
"""30 days of 12-second blocks."""
SUBNETS_PER_PROPOSAL_MAX: Final = 64
SETTINGS_PER_PROPOSAL_MAX: Final = 64
SHA256_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
NETWORK_SETTINGS: Final = frozenset(
    {
        "tempo_blocks",
        "registration_cost_rao",
        "registration_cost_min_rao",
        "registration_cost_max_rao",
        "registration_cost_increase_ppm",
        "registration_cost_decay_ppm",
    }
)
"""The ``SubnetConfig`` settings a ``network_params`` proposal may set across named subnets."""
SUBNET_SETTINGS: Final = frozenset(f.name for f in fields(SubnetConfig)) - {"raw"}
_OBJECT_SETTINGS: Final = frozenset({"validator_policy", "yuma"})
_COMMON_FIELDS: Final = frozenset(
    {"kind", "title", "text", "deposit_rao", "voting_blocks", "backtest_sha256", "options"}
)


@dataclass(frozen=True)
class GovernanceParams:
    """The network's governance settings (part of its ``network`` entry)."""

    quorum_ppm: int = QUORUM_PPM_DEFAULT
    pass_ppm: int = PASS_PPM_DEFAULT
    deposit_min_rao: int = DEPOSIT_MIN_RAO_DEFAULT
    voting_blocks_min: int = VOTING_BLOCKS_MIN
    voting_blocks_max: int = VOTING_BLOCKS_MAX

    def __post_init__(self) -> None:
        for name in ("quorum_ppm", "pass_ppm"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= PPM:
                raise ValueError(f"governance {name} must be an integer in [0, {PPM:,}]")
        _check_bounds(
            block=0,
            deposit_min_rao=self.deposit_min_rao,
            voting_blocks_min=self.voting_blocks_min,
            voting_blocks_max=self.voting_blocks_max,
        )

    @classmethod
    def from_payload(cls, payload: object) -> GovernanceParams:
        """Strictly parsed settings (one-line ``ValueError``); missing fields keep defaults."""
        if not isinstance(payload, Mapping):
            raise ValueError("network governance must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(name) for name in set(payload) - known)
        if unknown:
            raise ValueError(f"unknown governance field(s) {unknown}")
        return cls(**{str(k): v for k, v in payload.items()})

    def to_payload(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ProposalKind(StrEnum):
    SUBNET_PARAMS = "subnet_params"
    NETWORK_PARAMS = "network_params"
    SIGNAL = "signal"


_KIND_FIELDS: Final[dict[ProposalKind, frozenset[str]]] = {
    ProposalKind.SUBNET_PARAMS: _COMMON_FIELDS | {"subnet", "changes"},
    ProposalKind.NETWORK_PARAMS: _COMMON_FIELDS | {"emission_shares", "settings", "subnets"},
    ProposalKind.SIGNAL: _COMMON_FIELDS,
}


# ---- proposals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubnetChange:
    """New values for some settings of one subnet, and the configs before and after."""

    subnet: str
    values: tuple[tuple[str, Any], ...]
    """(setting, JSON value) sorted by setting; an object setting holds only the keys it sets."""
    before: SubnetConfig
    after: SubnetConfig

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.values)

    def apply_to(self, config: SubnetConfig) -> SubnetConfig:
        """``config`` with these values merged in and re-validated (``ValueError`` if out of
        bounds), for activation on whatever config is in effect by then."""
        return merged_config(config, dict(self.values), subnet=self.subnet)


@dataclass(frozen=True)
class ProposalSpec:
    """A validated proposal (see the module docstring)."""

    kind: ProposalKind
    title: str
    text: str
    deposit_rao: int
    voting_blocks: int
    opens_block: int
    backtest_sha256: str | None
    changes: tuple[SubnetChange, ...]
    """Sorted by subnet; empty for a signal."""
    options: tuple[str, ...] = PROPOSAL_OPTIONS

    @property
    def closes_block(self) -> int:
        return self.opens_block + self.voting_blocks

    @property
    def changes_parameters(self) -> bool:
        return self.kind is not ProposalKind.SIGNAL

    def is_open(self, block: int) -> bool:
        """Whether a vote at ``block`` is within the voting period."""
        return self.opens_block <= block < self.closes_block

    @classmethod
    def from_payload(
        cls,
        payload: Mapping[str, Any],
        *,
        subnets: Mapping[str, SubnetConfig],
        block: int,
        deposit_min_rao: int,
        voting_blocks_min: int,
        voting_blocks_max: int,
    ) -> ProposalSpec:
        """The proposal of ``payload`` opening at ``block``, or a one-line ``ValueError``."""
        _check_bounds(
            block=block,
            deposit_min_rao=deposit_min_rao,
            voting_blocks_min=voting_blocks_min,
            voting_blocks_max=voting_blocks_max,
        )
        if not isinstance(payload, Mapping):
            raise ValueError("proposal must be a JSON object")
        kind = _kind(payload.get("kind"))
        unknown = sorted(str(name) for name in set(payload) - _KIND_FIELDS[kind])
        if unknown:
            raise ValueError(f"unknown {kind} proposal field(s) {unknown[:8]}")
        title = _text(payload.get("title"), name="title", low=1)
        text = _text(payload.get("text", ""), name="text", low=0)
        deposit_rao = _deposit(payload.get("deposit_rao"), deposit_min_rao=deposit_min_rao)
        voting_blocks = _voting_blocks(
            payload.get("voting_blocks"), low=voting_blocks_min, high=voting_blocks_max
        )
        backtest_sha256 = _backtest(payload.get("backtest_sha256"))
        _check_options(payload.get("options"))
        if kind is ProposalKind.SUBNET_PARAMS:
            changes = _subnet_params(payload, subnets)
        elif kind is ProposalKind.NETWORK_PARAMS:
            changes = _network_params(payload, subnets)
        else:
            changes = ()
        _check_emission_left(subnets, changes)
        return cls(
            kind=kind,
            title=title,
            text=text,
            deposit_rao=deposit_rao,
            voting_blocks=voting_blocks,
            opens_block=block,
            backtest_sha256=backtest_sha256,
            changes=changes,
        )


def _check_bounds(
    *, block: int, deposit_min_rao: int, voting_blocks_min: int, voting_blocks_max: int
) -> None:
    if not _is_int(block) or block < 0:
        raise ValueError(f"proposal block must be a non-negative integer, got {block!r}")
    if not _is_int(deposit_min_rao) or deposit_min_rao < 0:
        raise ValueError(f"deposit_min_rao must be a non-negative integer, got {deposit_min_rao!r}")
    if not (_is_int(voting_blocks_min) and _is_int(voting_blocks_max)) or not (
        1 <= voting_blocks_min <= voting_blocks_max
    ):
        raise ValueError("voting period bounds must satisfy 1 ≤ voting_blocks_min ≤ max")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: object) -> ProposalKind:
    if not isinstance(value, str) or value not in {kind.value for kind in ProposalKind}:
        raise ValueError(f"proposal kind must be one of {[k.value for k in ProposalKind]}")
    return ProposalKind(value)


def _text(value: object, *, name: str, low: int) -> str:
    if not isinstance(value, str) or not low <= len(value) <= PROPOSAL_TEXT_CHARS_MAX:
        raise ValueError(f"proposal {name} must be text of {low}–{PROPOSAL_TEXT_CHARS_MAX} chars")
    return value


def _deposit(value: object, *, deposit_min_rao: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("proposal deposit_rao must be an integer amount of rao")
    if value < deposit_min_rao:
        raise ValueError(f"proposal deposit_rao {value:,} is below the minimum {deposit_min_rao:,}")
    return value


def _voting_blocks(value: object, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"proposal voting_blocks must be an integer in [{low:,}, {high:,}]")
    return value


def _backtest(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or SHA256_HEX_RE.fullmatch(value) is None:
        raise ValueError("proposal backtest_sha256 must be 64 lowercase hex digits")
    return value


def _check_options(value: object) -> None:
    if value is not None and value != list(PROPOSAL_OPTIONS):
        raise ValueError(f"proposal options are always {list(PROPOSAL_OPTIONS)}")


# ---- parameter changes -----------------------------------------------------------------------


def _subnet_params(
    payload: Mapping[str, Any], subnets: Mapping[str, SubnetConfig]
) -> tuple[SubnetChange, ...]:
    subnet = _known_subnet(payload.get("subnet"), subnets)
    values = payload.get("changes")
    if not isinstance(values, Mapping) or not values:
        raise ValueError("subnet_params proposal needs a non-empty changes object")
    if len(values) > SETTINGS_PER_PROPOSAL_MAX:
        raise ValueError(f"subnet_params proposal changes at most {SETTINGS_PER_PROPOSAL_MAX}")
    unknown = sorted(str(name) for name in set(values) - SUBNET_SETTINGS)
    if unknown:
        raise ValueError(f"unknown subnet setting(s) {unknown[:8]}")
    return (_change(subnet, subnets[subnet], values),)


def _network_params(
    payload: Mapping[str, Any], subnets: Mapping[str, SubnetConfig]
) -> tuple[SubnetChange, ...]:
    shares = payload.get("emission_shares", {})
    settings = payload.get("settings", {})
    if not isinstance(shares, Mapping) or not isinstance(settings, Mapping):
        raise ValueError("network_params emission_shares and settings must be JSON objects")
    if not shares and not settings:
        raise ValueError("network_params proposal needs emission_shares or settings")
    if len(shares) > SUBNETS_PER_PROPOSAL_MAX or len(settings) > SETTINGS_PER_PROPOSAL_MAX:
        raise ValueError("network_params proposal names too many subnets or settings")
    unknown = sorted(str(name) for name in set(settings) - NETWORK_SETTINGS)
    if unknown:
        raise ValueError(
            f"network_params cannot set {unknown[:8]}; it sets {sorted(NETWORK_SETTINGS)}"
        )
    targets = _settings_targets(payload.get("subnets"), settings=settings, subnets=subnets)
    per_subnet: dict[str, dict[str, Any]] = {name: dict(settings) for name in targets}
    for name, share in shares.items():
        per_subnet.setdefault(_known_subnet(name, subnets), {})["emission_share"] = share
    return tuple(
        _change(name, subnets[name], values) for name, values in sorted(per_subnet.items())
    )


def _settings_targets(
    value: object, *, settings: Mapping[str, Any], subnets: Mapping[str, SubnetConfig]
) -> tuple[str, ...]:
    if not settings:
        if value is not None:
            raise ValueError("network_params subnets name where settings apply; settings is empty")
        return ()
    if not (isinstance(value, list) and 0 < len(value) <= SUBNETS_PER_PROPOSAL_MAX):
        raise ValueError(
            f"network_params settings need subnets: a list of 1–{SUBNETS_PER_PROPOSAL_MAX} names"
        )
    names = tuple(_known_subnet(name, subnets) for name in value)
    if len(set(names)) != len(names):
        raise ValueError("network_params subnets names a subnet twice")
    return names


def _known_subnet(value: object, subnets: Mapping[str, SubnetConfig]) -> str:
    if not isinstance(value, str) or value not in subnets:
        raise ValueError(f"unknown subnet {str(value)[:64]!r}")
    return value


def _change(subnet: str, before: SubnetConfig, values: Mapping[str, Any]) -> SubnetChange:
    after = merged_config(before, values, subnet=subnet)
    for name in sorted(values):
        if getattr(after, name) == getattr(before, name):
            raise ValueError(f"subnet {subnet!r} setting {name} is unchanged by the proposal")
    return SubnetChange(
        subnet=subnet,
        values=tuple(sorted(values.items())),
        before=before,
        after=after,
    )


def merged_config(config: SubnetConfig, values: Mapping[str, Any], *, subnet: str) -> SubnetConfig:
    """``config`` with ``values`` set (object settings merged key by key), fully re-validated."""
    merged = config_payload(config)
    for name, value in values.items():
        if name in _OBJECT_SETTINGS and isinstance(value, Mapping):
            merged[name] = {**merged.get(name, {}), **value}
        else:
            merged[name] = value
    try:
        return SubnetConfig.from_payload(merged)
    except ValueError as error:
        raise ValueError(f"subnet {subnet!r}: {error}") from None


def config_payload(config: SubnetConfig) -> dict[str, Any]:
    """The ``subnet_create`` payload that parses back to ``config`` (its typed fields only)."""
    payload: dict[str, Any] = {}
    for name in sorted(SUBNET_SETTINGS):
        value = getattr(config, name)
        if value is None or (name == "model_families" and not value):
            continue
        if name == "emission_split_ppm":
            payload[name] = dict(value)
        elif name == "model_families":
            payload[name] = list(value)
        elif isinstance(value, Mapping):
            payload[name] = dict(value)
        else:
            payload[name] = value
    return payload


def _check_emission_left(
    subnets: Mapping[str, SubnetConfig], changes: tuple[SubnetChange, ...]
) -> None:
    after = {name: config.emission_share for name, config in subnets.items()}
    after.update({change.subnet: change.after.emission_share for change in changes})
    if after and not any(after.values()):
        raise ValueError("the proposal would leave every subnet with a zero emission share")


# ---- voting power ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerSnapshot:
    """Voting power at the block a proposal opened, in rao (read-only mappings)."""

    own_rao: Mapping[str, int]
    """Coldkey → free balance plus stake on hotkeys it owns (or whose owner is unknown)."""
    delegated_rao: Mapping[str, Mapping[str, int]]
    """Delegator coldkey → {validator coldkey: its stake on hotkeys that validator owns}."""
    total_rao: int
    """Σ balances + Σ stakes: every rao that could vote."""

    def __deepcopy__(self, memo: dict[int, Any]) -> PowerSnapshot:
        return self  # read-only mappings of integers

    def power_rao(self, coldkey: str) -> int:
        """What ``coldkey`` casts if it votes: its own power and all its delegations."""
        return self.own_rao.get(coldkey, 0) + sum(self.delegated_rao.get(coldkey, {}).values())


def voting_powers(
    *,
    balances: Mapping[str, int],
    stakes: Mapping[tuple[str, str], int],
    hotkey_owner: Mapping[str, str],
) -> PowerSnapshot:
    """The snapshot of ``balances`` and ``stakes`` ((coldkey, hotkey) → rao); see the module."""
    own: dict[str, int] = {}
    delegated: dict[str, dict[str, int]] = {}
    total_rao = 0
    for coldkey, amount_rao in balances.items():
        _check_amount(amount_rao, what=f"balance of {coldkey[:16]}")
        total_rao += amount_rao
        if amount_rao:
            own[coldkey] = own.get(coldkey, 0) + amount_rao
    for (coldkey, hotkey), amount_rao in stakes.items():
        _check_amount(amount_rao, what=f"stake of {coldkey[:16]} on {hotkey[:16]}")
        total_rao += amount_rao
        if not amount_rao:
            continue
        owner = hotkey_owner.get(hotkey, coldkey)
        if owner == coldkey:
            own[coldkey] = own.get(coldkey, 0) + amount_rao
        else:
            to_owner = delegated.setdefault(coldkey, {})
            to_owner[owner] = to_owner.get(owner, 0) + amount_rao
    return PowerSnapshot(
        own_rao=MappingProxyType(own),
        delegated_rao=MappingProxyType(
            {coldkey: MappingProxyType(to) for coldkey, to in delegated.items()}
        ),
        total_rao=total_rao,
    )


def _check_amount(amount_rao: object, *, what: str) -> None:
    if isinstance(amount_rao, bool) or not isinstance(amount_rao, int) or amount_rao < 0:
        raise ValueError(f"{what} must be a non-negative integer of rao, got {amount_rao!r}")


# ---- tally -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """The outcome of one proposal's vote (see the module docstring for the rules)."""

    for_rao: int
    against_rao: int
    abstain_rao: int
    turnout_rao: int
    total_rao: int
    quorum_ppm: int
    pass_ppm: int
    quorum_met: bool
    passed: bool

    def to_payload(self) -> dict[str, int | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def tally(
    snapshot: PowerSnapshot, votes: Mapping[str, int], *, quorum_ppm: int, pass_ppm: int
) -> Tally:
    """Count ``votes`` (coldkey → choice index into ``PROPOSAL_OPTIONS``) over ``snapshot``."""
    for name, ppm in (("quorum_ppm", quorum_ppm), ("pass_ppm", pass_ppm)):
        if not _is_int(ppm) or not 0 <= ppm <= PPM:
            raise ValueError(f"{name} must be an integer in [0, {PPM:,}], got {ppm!r}")
    cast = [0] * len(PROPOSAL_OPTIONS)
    for coldkey, choice in votes.items():
        if not _is_int(choice) or not 0 <= choice < len(PROPOSAL_OPTIONS):
            raise ValueError(f"choice must be an option index below {len(PROPOSAL_OPTIONS)}")
        cast[choice] += snapshot.power_rao(coldkey)
    for delegator, to_validators in snapshot.delegated_rao.items():
        if delegator in votes:
            continue
        for validator, amount_rao in to_validators.items():
            if validator in votes:
                cast[votes[validator]] += amount_rao
    for_rao, against_rao, abstain_rao = cast
    turnout_rao = for_rao + against_rao + abstain_rao
    quorum_met = turnout_rao > 0 and turnout_rao * PPM >= quorum_ppm * snapshot.total_rao
    return Tally(
        for_rao=for_rao,
        against_rao=against_rao,
        abstain_rao=abstain_rao,
        turnout_rao=turnout_rao,
        total_rao=snapshot.total_rao,
        quorum_ppm=quorum_ppm,
        pass_ppm=pass_ppm,
        quorum_met=quorum_met,
        passed=quorum_met and for_rao * PPM > pass_ppm * (for_rao + against_rao),
    )


def deposit_outcome(result: Tally) -> Literal["returned", "burned"]:
    """The proposer's deposit comes back iff the vote reached quorum; otherwise it is burned."""
    return "returned" if result.quorum_met else "burned"
