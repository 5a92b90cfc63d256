"""The pure governance core: proposal parsing, voting-power snapshots, tallies and deposits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.governance import (
    CHOICE_ABSTAIN,
    CHOICE_AGAINST,
    CHOICE_FOR,
    PROPOSAL_OPTIONS,
    PROPOSAL_TEXT_CHARS_MAX,
    PowerSnapshot,
    ProposalKind,
    ProposalSpec,
    Tally,
    config_payload,
    deposit_outcome,
    tally,
    voting_powers,
)

DEPOSIT_MIN_RAO = 5_000
VOTING_MIN_BLOCKS = 10
VOTING_MAX_BLOCKS = 1_000
OPEN_BLOCK = 700
HASH = "ab" * 32
YUMA = {"kappa_u16": 32_767, "bonds_moving_average_ppm": 900_000, "liquid_alpha": True}


def _subnet(tempo_blocks: int, *, share: int = 1) -> SubnetConfig:
    return SubnetConfig.from_payload(
        {
            "tempo_blocks": tempo_blocks,
            "emission_share": share,
            "registration_cost_rao": 1_000,
            "registration_cost_min_rao": 100,
            "registration_cost_max_rao": 100_000,
            "model_families": ["mlp", "cnn"],
            "validator_policy": {"temperature": 0.1},
            "yuma": YUMA,
        }
    )


SUBNETS = {"digits": _subnet(100, share=3), "text": _subnet(50)}


def _parse(payload: Mapping[str, Any]) -> ProposalSpec:
    return ProposalSpec.from_payload(
        payload,
        subnets=SUBNETS,
        block=OPEN_BLOCK,
        deposit_min_rao=DEPOSIT_MIN_RAO,
        voting_blocks_min=VOTING_MIN_BLOCKS,
        voting_blocks_max=VOTING_MAX_BLOCKS,
    )


def _common(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "title": "t",
        "deposit_rao": DEPOSIT_MIN_RAO,
        "voting_blocks": 20,
        **extra,
    }


def _kappa_payload(**extra: Any) -> dict[str, Any]:
    return _common(
        "subnet_params", subnet="digits", changes={"yuma": {"kappa_u16": 40_000}}, **extra
    )


# ---- parsing ---------------------------------------------------------------------------------


def test_a_signal_carries_text_only_and_the_fixed_options() -> None:
    spec = _parse(_common("signal", title="Keep κ", text="why", options=list(PROPOSAL_OPTIONS)))
    assert spec == ProposalSpec(
        kind=ProposalKind.SIGNAL,
        title="Keep κ",
        text="why",
        deposit_rao=DEPOSIT_MIN_RAO,
        voting_blocks=20,
        opens_block=OPEN_BLOCK,
        backtest_sha256=None,
        changes=(),
    )
    assert spec.options == ("for", "against", "abstain")
    assert (spec.closes_block, spec.changes_parameters) == (720, False)
    assert [spec.is_open(b) for b in (699, 700, 719, 720)] == [False, True, True, False]


def test_a_kappa_change_merges_into_the_yuma_object_and_keeps_the_rest() -> None:
    spec = _parse(_kappa_payload(backtest_sha256=HASH))
    assert spec.kind is ProposalKind.SUBNET_PARAMS
    assert spec.backtest_sha256 == HASH
    assert spec.changes_parameters
    (change,) = spec.changes
    assert change.subnet == "digits"
    assert change.values == (("yuma", {"kappa_u16": 40_000}),)
    assert change.settings == ("yuma",)
    assert change.before == SUBNETS["digits"]
    assert change.after.yuma == {**YUMA, "kappa_u16": 40_000}
    assert change.after.tempo_blocks == 100
    assert change.after.model_families == ("mlp", "cnn")


def test_a_change_applies_onto_the_config_in_effect_at_activation() -> None:
    (change,) = _parse(_kappa_payload()).changes
    moved_on = change.before.__class__.from_payload(
        {**config_payload(change.before), "tempo_blocks": 360}
    )
    activated = change.apply_to(moved_on)
    assert (activated.tempo_blocks, activated.yuma["kappa_u16"]) == (360, 40_000)
    narrowed = SubnetConfig.from_payload(
        {**config_payload(change.before), "registration_cost_rao": 100}
    )
    (cost_change,) = _parse(
        _common("subnet_params", subnet="digits", changes={"registration_cost_min_rao": 500})
    ).changes
    with pytest.raises(
        ValueError,
        match=r"^subnet 'digits': registration_cost_min_rao must be ≤ registration_cost_rao$",
    ):
        cost_change.apply_to(narrowed)


def test_network_params_set_shares_and_settings_on_every_named_subnet() -> None:
    spec = _parse(
        _common(
            "network_params",
            emission_shares={"text": 2},
            settings={"tempo_blocks": 360, "registration_cost_decay_ppm": 10_000},
            subnets=["text", "digits"],
        )
    )
    assert [c.subnet for c in spec.changes] == ["digits", "text"]
    digits, text = spec.changes
    assert digits.settings == ("registration_cost_decay_ppm", "tempo_blocks")
    assert text.settings == ("emission_share", "registration_cost_decay_ppm", "tempo_blocks")
    assert (digits.after.tempo_blocks, digits.after.emission_share) == (360, 3)
    assert (text.after.tempo_blocks, text.after.emission_share) == (360, 2)
    assert text.after.registration_cost_decay_ppm == 10_000


def test_shares_alone_need_no_subnet_list() -> None:
    spec = _parse(_common("network_params", emission_shares={"digits": 1}))
    assert [(c.subnet, c.settings, c.after.emission_share) for c in spec.changes] == [
        ("digits", ("emission_share",), 1)
    ]


def test_config_payload_parses_back_to_the_same_config() -> None:
    for config in (*SUBNETS.values(), SubnetConfig(tempo_blocks=7)):
        assert SubnetConfig.from_payload(config_payload(config)) == config


BAD_PROPOSALS: list[tuple[dict[str, Any], str]] = [
    (
        _common("subnet_params", subnet="images", changes={"tempo_blocks": 5}),
        "unknown subnet 'images'",
    ),
    (
        _common("subnet_params", subnet="digits", changes={"tempo_blocks": 0}),
        "subnet 'digits': subnet setting tempo_blocks must be an integer in [1, 1,000,000]",
    ),
    (
        _common("subnet_params", subnet="digits", changes={"registration_cost_max_rao": 10}),
        "subnet 'digits': registration_cost_max_rao must be ≥ registration_cost_rao",
    ),
    (
        _common("subnet_params", subnet="digits", changes={"colour": "red"}),
        "unknown subnet setting(s) ['colour']",
    ),
    (
        _common("subnet_params", subnet="digits", changes={"tempo_blocks": 100}),
        "subnet 'digits' setting tempo_blocks is unchanged by the proposal",
    ),
    (
        _common("subnet_params", subnet="digits", changes={"yuma": {"kappa_u16": 32_767}}),
        "subnet 'digits' setting yuma is unchanged by the proposal",
    ),
    (
        _common("subnet_params", subnet="digits", changes={}),
        "subnet_params proposal needs a non-empty changes object",
    ),
    (
        _common("subnet_params", subnet="digits", changes={"raw": {}}),
        "unknown subnet setting(s) ['raw']",
    ),
    (
        {**_kappa_payload(), "deposit_rao": DEPOSIT_MIN_RAO - 1},
        "proposal deposit_rao 4,999 is below the minimum 5,000",
    ),
    (
        {**_kappa_payload(), "deposit_rao": True},
        "proposal deposit_rao must be an integer amount of rao",
    ),
    (
        {**_kappa_payload(), "deposit_rao": "5000"},
        "proposal deposit_rao must be an integer amount of rao",
    ),
    (
        {**_kappa_payload(), "voting_blocks": 9},
        "proposal voting_blocks must be an integer in [10, 1,000]",
    ),
    (
        {**_kappa_payload(), "voting_blocks": 1_001},
        "proposal voting_blocks must be an integer in [10, 1,000]",
    ),
    (
        _kappa_payload(backtest_sha256="AB" * 32),
        "proposal backtest_sha256 must be 64 lowercase hex digits",
    ),
    (
        _kappa_payload(backtest_sha256="ab" * 31),
        "proposal backtest_sha256 must be 64 lowercase hex digits",
    ),
    (
        {**_kappa_payload(), "title": "x" * (PROPOSAL_TEXT_CHARS_MAX + 1)},
        "proposal title must be text of 1–4000 chars",
    ),
    ({**_kappa_payload(), "title": ""}, "proposal title must be text of 1–4000 chars"),
    (
        _common("referendum"),
        "proposal kind must be one of ['subnet_params', 'network_params', 'signal']",
    ),
    (_common("signal", subnet="digits"), "unknown signal proposal field(s) ['subnet']"),
    (
        _common("signal", options=["yes", "no"]),
        "proposal options are always ['for', 'against', 'abstain']",
    ),
    (
        _common("network_params", settings={"tempo_blocks": 360}),
        "network_params settings need subnets: a list of 1–64 names",
    ),
    (
        _common("network_params", settings={"uids_max": 9}, subnets=["digits"]),
        "network_params cannot set ['uids_max']; it sets ['registration_cost_decay_ppm', "
        "'registration_cost_increase_ppm', 'registration_cost_max_rao', "
        "'registration_cost_min_rao', 'registration_cost_rao', 'tempo_blocks']",
    ),
    (
        _common("network_params", settings={"tempo_blocks": 360}, subnets=["digits", "digits"]),
        "network_params subnets names a subnet twice",
    ),
    (_common("network_params"), "network_params proposal needs emission_shares or settings"),
    (
        _common("network_params", emission_shares={"digits": 1_000_001}),
        "subnet 'digits': subnet setting emission_share must be an integer in [0, 1,000,000]",
    ),
    (
        _common("network_params", emission_shares={"digits": 0, "text": 0}),
        "the proposal would leave every subnet with a zero emission share",
    ),
    (
        _common("network_params", emission_shares={"nowhere": 1}),
        "unknown subnet 'nowhere'",
    ),
]


@pytest.mark.parametrize(("payload", "message"), BAD_PROPOSALS, ids=[m for _, m in BAD_PROPOSALS])
def test_a_bad_proposal_is_one_line(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _parse(payload)


def test_a_proposal_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^proposal must be a JSON object$"):
        _parse(["signal"])  # type: ignore[arg-type]


def test_bounds_given_by_the_caller_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^voting period bounds must satisfy"):
        ProposalSpec.from_payload(
            _common("signal"),
            subnets=SUBNETS,
            block=0,
            deposit_min_rao=0,
            voting_blocks_min=30,
            voting_blocks_max=20,
        )


# ---- voting power ----------------------------------------------------------------------------

OWNERS = {"hv": "val", "hw": "wal", "hd": "del"}


def test_voting_power_splits_own_power_from_delegations() -> None:
    snapshot = voting_powers(
        balances={"val": 10, "del": 5, "nobody": 0},
        stakes={("val", "hv"): 100, ("del", "hv"): 40, ("del", "hw"): 7, ("del", "hd"): 3},
        hotkey_owner=OWNERS,
    )
    assert dict(snapshot.own_rao) == {"val": 110, "del": 8}
    assert {k: dict(v) for k, v in snapshot.delegated_rao.items()} == {"del": {"val": 40, "wal": 7}}
    assert snapshot.total_rao == 165
    assert (snapshot.power_rao("del"), snapshot.power_rao("val"), snapshot.power_rao("x")) == (
        55,
        110,
        0,
    )


def test_a_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^stake of a on h must be a non-negative integer"):
        voting_powers(balances={}, stakes={("a", "h"): -1}, hotkey_owner={})


# ---- tally -----------------------------------------------------------------------------------

DELEGATED = voting_powers(
    balances={"val": 10, "del": 5, "other": 1_000},
    stakes={("val", "hv"): 100, ("del", "hv"): 40},
    hotkey_owner=OWNERS,
)


def _count(votes: Mapping[str, int], *, quorum_ppm: int = 0, pass_ppm: int = 500_000) -> Tally:
    return tally(DELEGATED, votes, quorum_ppm=quorum_ppm, pass_ppm=pass_ppm)


def test_delegated_stake_votes_with_its_validator() -> None:
    result = _count({"val": CHOICE_FOR})
    assert (result.for_rao, result.against_rao, result.abstain_rao) == (150, 0, 0)
    assert (result.turnout_rao, result.total_rao) == (150, 1_155)


def test_a_delegator_voting_itself_moves_its_delegated_share() -> None:
    result = _count({"val": CHOICE_FOR, "del": CHOICE_AGAINST})
    assert (result.for_rao, result.against_rao, result.abstain_rao) == (110, 45, 0)
    assert (result.passed, result.turnout_rao) == (True, 155)


def test_a_non_voting_validator_leaves_its_delegators_stake_uncast() -> None:
    assert _count({"other": CHOICE_ABSTAIN}).turnout_rao == 1_000
    result = _count({"other": CHOICE_ABSTAIN, "del": CHOICE_FOR})
    assert (result.for_rao, result.abstain_rao, result.turnout_rao) == (45, 1_000, 1_045)


def test_abstentions_count_for_quorum_but_not_for_the_pass_ratio() -> None:
    result = _count({"other": CHOICE_ABSTAIN, "del": CHOICE_FOR}, quorum_ppm=900_000)
    assert (result.quorum_met, result.passed) == (True, True)
    only_abstain = _count({"other": CHOICE_ABSTAIN}, quorum_ppm=0)
    assert (only_abstain.quorum_met, only_abstain.passed) == (True, False)


def _single(*, voter_rao: int, rest_rao: int, quorum_ppm: int) -> Tally:
    snapshot = voting_powers(balances={"a": voter_rao, "b": rest_rao}, stakes={}, hotkey_owner={})
    return tally(snapshot, {"a": CHOICE_FOR}, quorum_ppm=quorum_ppm, pass_ppm=500_000)


def test_quorum_is_met_exactly_at_the_threshold_and_not_one_rao_below() -> None:
    at = _single(voter_rao=100_000, rest_rao=900_000, quorum_ppm=100_000)
    below = _single(voter_rao=99_999, rest_rao=900_001, quorum_ppm=100_000)
    assert (at.quorum_met, at.passed) == (True, True)
    assert (below.quorum_met, below.passed) == (False, False)
    assert (below.total_rao, below.turnout_rao) == (1_000_000, 99_999)
    assert _single(voter_rao=1, rest_rao=2, quorum_ppm=333_334).quorum_met is False
    assert _single(voter_rao=1, rest_rao=2, quorum_ppm=333_333).quorum_met is True


def _split(*, for_rao: int, against_rao: int) -> Tally:
    snapshot = voting_powers(
        balances={"f": for_rao, "a": against_rao, "s": 10**9}, stakes={}, hotkey_owner={}
    )
    return tally(
        snapshot,
        {"f": CHOICE_FOR, "a": CHOICE_AGAINST, "s": CHOICE_ABSTAIN},
        quorum_ppm=0,
        pass_ppm=500_000,
    )


def test_a_change_passes_only_strictly_above_the_pass_threshold() -> None:
    assert _split(for_rao=500_001, against_rao=499_999).passed is True
    assert _split(for_rao=500_000, against_rao=500_000).passed is False
    assert _split(for_rao=1, against_rao=0).passed is True
    assert _split(for_rao=0, against_rao=0).passed is False


def test_nothing_cast_is_no_quorum() -> None:
    empty = tally(
        voting_powers(balances={}, stakes={}, hotkey_owner={}), {}, quorum_ppm=0, pass_ppm=0
    )
    assert empty == Tally(
        for_rao=0,
        against_rao=0,
        abstain_rao=0,
        turnout_rao=0,
        total_rao=0,
        quorum_ppm=0,
        pass_ppm=0,
        quorum_met=False,
        passed=False,
    )
    assert deposit_outcome(empty) == "burned"


@pytest.mark.parametrize("choice", [3, -1, True, "0"])
def test_an_out_of_range_choice_is_refused(choice: Any) -> None:
    with pytest.raises(ValueError, match=r"^choice must be an option index below 3$"):
        _count({"val": choice})


@pytest.mark.parametrize(("name", "ppm"), [("quorum_ppm", -1), ("pass_ppm", 1_000_001)])
def test_thresholds_are_bounded(name: str, ppm: int) -> None:
    thresholds = {"quorum_ppm": 0, "pass_ppm": 0, name: ppm}
    with pytest.raises(ValueError, match=f"^{name} must be an integer in"):
        tally(DELEGATED, {}, **thresholds)


def test_the_deposit_comes_back_iff_quorum_is_met() -> None:
    assert deposit_outcome(_single(voter_rao=1, rest_rao=0, quorum_ppm=1_000_000)) == "returned"
    assert deposit_outcome(_single(voter_rao=1, rest_rao=9, quorum_ppm=200_000)) == "burned"
    failed = _split(for_rao=1, against_rao=5)
    assert (failed.passed, deposit_outcome(failed)) == (False, "returned")


def test_a_tally_payload_names_every_field() -> None:
    assert _count({"val": CHOICE_FOR}).to_payload() == {
        "for_rao": 150,
        "against_rao": 0,
        "abstain_rao": 0,
        "turnout_rao": 150,
        "total_rao": 1_155,
        "quorum_ppm": 0,
        "pass_ppm": 500_000,
        "quorum_met": True,
        "passed": True,
    }


# ---- property: every rao is cast at most once ------------------------------------------------

COLDKEYS = [f"c{i}" for i in range(5)]
HOTKEYS = [f"h{i}" for i in range(5)]
AMOUNTS = st.integers(min_value=0, max_value=10**15)


def _reference_cast(
    *,
    balances: Mapping[str, int],
    stakes: Mapping[tuple[str, str], int],
    hotkey_owner: Mapping[str, str],
    votes: Mapping[str, int],
) -> list[int]:
    """Walk every ledger amount once and give it to the one choice that casts it, if any."""
    cast = [0, 0, 0]
    for coldkey, amount_rao in balances.items():
        if coldkey in votes:
            cast[votes[coldkey]] += amount_rao
    for (coldkey, hotkey), amount_rao in stakes.items():
        owner = hotkey_owner.get(hotkey, coldkey)
        if coldkey in votes:
            cast[votes[coldkey]] += amount_rao
        elif owner in votes:
            cast[votes[owner]] += amount_rao
    return cast


@settings(max_examples=300, deadline=None, database=None)
@given(
    balances=st.dictionaries(st.sampled_from(COLDKEYS), AMOUNTS),
    stakes=st.dictionaries(st.tuples(st.sampled_from(COLDKEYS), st.sampled_from(HOTKEYS)), AMOUNTS),
    hotkey_owner=st.dictionaries(st.sampled_from(HOTKEYS), st.sampled_from(COLDKEYS)),
    votes=st.dictionaries(st.sampled_from([*COLDKEYS, "stranger"]), st.integers(0, 2)),
)
def test_turnout_never_exceeds_total_and_no_rao_is_cast_twice(
    balances: dict[str, int],
    stakes: dict[tuple[str, str], int],
    hotkey_owner: dict[str, str],
    votes: dict[str, int],
) -> None:
    snapshot = voting_powers(balances=balances, stakes=stakes, hotkey_owner=hotkey_owner)
    assert snapshot.total_rao == sum(balances.values()) + sum(stakes.values())
    assert (
        sum(snapshot.own_rao.values())
        + sum(sum(to.values()) for to in snapshot.delegated_rao.values())
        == snapshot.total_rao
    )
    result = tally(snapshot, votes, quorum_ppm=0, pass_ppm=500_000)
    expected = _reference_cast(
        balances=balances, stakes=stakes, hotkey_owner=hotkey_owner, votes=votes
    )
    assert [result.for_rao, result.against_rao, result.abstain_rao] == expected
    assert result.turnout_rao == sum(expected) <= result.total_rao
    assert isinstance(snapshot, PowerSnapshot)
