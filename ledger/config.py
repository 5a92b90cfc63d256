"""A subnet's configuration, parsed and validated once, when its ``subnet_create`` is checked.

Invariants:
- ``SubnetConfig.from_payload`` accepts only the settings listed in ``SubnetConfig`` (unknown
  names are refused), each with its exact JSON type and within its bounds; any problem is one
  line (``ValueError``) and the subnet is not created. Every subnet in a valid ledger therefore
  has a config whose every field is in range.
- ``SubnetConfig`` is frozen and read by attribute; ``raw`` keeps the payload it was parsed from
  (for display), never for reading settings.
- Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from taoflow.ledger.schema import RAO_PER_TAO
from taoflow.ledger.validator_policy import policy_problem
from taoflow.ledger.yuma_params import InvalidHyperparameter, YumaParams

YUMA_FIELDS: Final = frozenset(f.name for f in fields(YumaParams))

PPM: Final = 1_000_000
TEMPO_BLOCKS_MAX: Final = 1_000_000
UIDS_MAX_LIMIT: Final = 4_096
EMISSION_SHARE_MAX: Final = 1_000_000
COST_RAO_MAX: Final = 21_000_000 * RAO_PER_TAO
BLOCKS_MAX: Final = 10**9
SUBMISSIONS_PER_EPOCH_LIMIT: Final = 1_000
SIZE_MAX: Final = 10**10
SAMPLE_SIZE_MAX: Final = 10**7
TEXT_CHARS_MAX: Final = 256
FAMILIES_MAX: Final = 16
OBJECT_KEYS_MAX: Final = 64
SPLIT_NAMES: Final = ("owner", "miners", "validators")
NEAR_DUPLICATE_AGREEMENT_PPM_DEFAULT: Final = 980_000
"""A later model predicting like an earlier one on ≥ 98 % of the epoch sample is checked as a
near duplicate (``tasks.evaluate.near_duplicates``); 0 turns the check off."""


@dataclass(frozen=True)
class SubnetConfig:
    """Every setting of a subnet, typed and in range (see the module docstring)."""

    tempo_blocks: int
    uids_max: int = 256
    emission_share: int = 1
    emission_split_ppm: tuple[tuple[str, int], ...] = (
        ("owner", 180_000),
        ("miners", 410_000),
        ("validators", 410_000),
    )
    registration_cost_rao: int = RAO_PER_TAO
    registration_cost_min_rao: int | None = None
    registration_cost_max_rao: int | None = None
    registration_cost_increase_ppm: int = 100_000
    registration_cost_decay_ppm: int = 50_000
    immunity_period_blocks: int = 4_096
    evaluation_delay_blocks: int = 0
    submissions_per_epoch_max: int = 2
    task: str = ""
    evaluation_set: str = ""
    evaluation_set_hash: str = ""
    metric: str = ""
    model_family: str = "mlp"
    model_families: tuple[str, ...] = ()
    params_max: int | None = None
    bytes_max: int | None = None
    layers_max: int | None = None
    sample_size: int | None = None
    validator_sample_size: int | None = None
    near_duplicate_agreement_ppm: int = NEAR_DUPLICATE_AGREEMENT_PPM_DEFAULT
    validator_policy: Mapping[str, Any] = field(default_factory=dict)
    yuma: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The payload this config was parsed from (for display only)."""

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SubnetConfig:
        """The validated config of a ``subnet_create`` payload, or one-line ``ValueError``."""
        if not isinstance(payload, Mapping):
            raise ValueError("subnet config must be a JSON object")
        known = {f.name for f in fields(cls)} - {"raw"}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(f"unknown subnet setting(s) {unknown[:8]}")
        values: dict[str, Any] = {}
        for name, value in payload.items():
            values[name] = _parse(name, value)
        if "tempo_blocks" not in values:
            raise ValueError("subnet config needs tempo_blocks")
        config = cls(**values, raw=dict(payload))
        _check_registration(config)
        return config

    def split_ppm(self) -> dict[str, int]:
        return dict(self.emission_split_ppm)


_INT_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "tempo_blocks": (1, TEMPO_BLOCKS_MAX),
    "uids_max": (1, UIDS_MAX_LIMIT),
    "emission_share": (0, EMISSION_SHARE_MAX),
    "registration_cost_rao": (0, COST_RAO_MAX),
    "registration_cost_min_rao": (0, COST_RAO_MAX),
    "registration_cost_max_rao": (0, COST_RAO_MAX),
    "registration_cost_increase_ppm": (0, 10 * PPM),
    "registration_cost_decay_ppm": (0, PPM - 1),
    "immunity_period_blocks": (0, BLOCKS_MAX),
    "evaluation_delay_blocks": (0, BLOCKS_MAX),
    "submissions_per_epoch_max": (1, SUBMISSIONS_PER_EPOCH_LIMIT),
    "params_max": (1, SIZE_MAX),
    "bytes_max": (1, SIZE_MAX),
    "layers_max": (1, 1_000),
    "sample_size": (1, SAMPLE_SIZE_MAX),
    "validator_sample_size": (1, SAMPLE_SIZE_MAX),
    "near_duplicate_agreement_ppm": (0, PPM),
}
_TEXT: Final = frozenset(
    {"task", "evaluation_set", "evaluation_set_hash", "metric", "model_family"}
)
_OBJECTS: Final = frozenset({"validator_policy", "yuma"})


def _check_yuma(value: Mapping[str, Any]) -> None:
    """Every key a Yuma hyper-parameter, every value in the range the chain accepts."""
    unknown = sorted(str(k) for k in set(value) - YUMA_FIELDS)
    if unknown:
        raise ValueError(f"subnet setting yuma has unknown field(s) {unknown[:8]}")
    try:
        YumaParams(**{str(k): v for k, v in value.items()})
    except InvalidHyperparameter as error:
        raise ValueError(f"subnet setting yuma: {error}") from None


def _parse(name: str, value: Any) -> Any:
    if name in _INT_BOUNDS:
        low, high = _INT_BOUNDS[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"subnet setting {name} must be an integer in [{low}, {high:,}]")
        return value
    if name in _TEXT:
        if not isinstance(value, str) or len(value) > TEXT_CHARS_MAX:
            raise ValueError(f"subnet setting {name} must be text of at most {TEXT_CHARS_MAX}")
        return value
    if name in _OBJECTS:
        if not isinstance(value, Mapping) or len(value) > OBJECT_KEYS_MAX:
            raise ValueError(
                f"subnet setting {name} must be an object of at most {OBJECT_KEYS_MAX}"
            )
        if name == "validator_policy":
            problem = policy_problem(value)
            if problem is not None:
                raise ValueError(f"subnet setting {problem}")
        if name == "yuma":
            _check_yuma(value)
        return dict(value)
    if name == "model_families":
        if not (
            isinstance(value, list)
            and 0 < len(value) <= FAMILIES_MAX
            and all(isinstance(v, str) and 0 < len(v) <= TEXT_CHARS_MAX for v in value)
        ):
            raise ValueError(f"subnet setting model_families must be 1-{FAMILIES_MAX} names")
        return tuple(value)
    return _parse_split(value)  # emission_split_ppm, the only other known name


def _parse_split(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Mapping) or set(value) != set(SPLIT_NAMES):
        raise ValueError("emission_split_ppm must have exactly owner, miners and validators")
    parts = [value[name] for name in SPLIT_NAMES]
    if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in parts):
        raise ValueError("emission_split_ppm values must be non-negative integers")
    if sum(parts) != PPM:
        raise ValueError("emission_split_ppm must add up to 1,000,000")
    return tuple(zip(SPLIT_NAMES, parts, strict=True))


def _check_registration(config: SubnetConfig) -> None:
    initial = config.registration_cost_rao
    low = config.registration_cost_min_rao
    high = config.registration_cost_max_rao
    if low is not None and low > initial:
        raise ValueError("registration_cost_min_rao must be ≤ registration_cost_rao")
    if high is not None and high < initial:
        raise ValueError("registration_cost_max_rao must be ≥ registration_cost_rao")
