"""The network entry: the parameters a ledger is born with, and the id that names the network.

A ledger's very first transaction is one ``network`` entry whose payload is
``NetworkParams.to_payload()``; it can appear only once. Its ``network_id`` (sha256 of a domain
tag and the canonical payload) is what every user transaction signs (``ledger.signing``), so a
transaction signed for one network is refused by every other.

Invariants:
- ``NetworkParams.from_payload`` accepts exactly the fields below with exact types and bounds,
  and rejects anything else with one line; ``from_payload(p.to_payload()) == p``.
- ``network_id`` is a pure function of the payload; ``salt_hex`` (32 random bytes) makes two
  networks with the same name and keys different networks.
- ``tx_fee_rao`` is burned by every signed (user) transaction. Issuance follows
  ``ledger.emission``'s schedule (block reward, halvings, supply cap), the same for every network.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from taoflow.ledger.governance import GovernanceParams
from taoflow.ledger.keys import is_account_id
from taoflow.ledger.schema import RAO_PER_TAO, canonical_json

NETWORK_ID_TAG: Final = b"taoflow-network-v1\x00"
SALT_BYTES: Final = 32
TX_FEE_DEFAULT_RAO: Final = 100_000
"""0.0001 τ burned per user transaction: negligible for use, a price on spam."""
TX_FEE_MAX_RAO: Final = RAO_PER_TAO
NETWORK_NAME_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FIELDS: Final = frozenset({"name", "writer_key", "salt_hex", "tx_fee_rao", "governance"})


@dataclass(frozen=True)
class NetworkParams:
    """What the ``network`` entry fixes for the life of a ledger."""

    name: str
    writer_key: str
    """Account id (64 hex) of the key that signs every committed batch."""
    salt_hex: str
    tx_fee_rao: int = TX_FEE_DEFAULT_RAO
    governance: GovernanceParams = field(default_factory=GovernanceParams)
    """Quorum, pass threshold, minimum deposit and voting period bounds (``ledger.governance``);
    written into the payload only when they differ from the defaults, so the id of a network
    created before governance existed is unchanged."""

    def __post_init__(self) -> None:
        problem = _params_problem(self)
        if problem is not None:
            raise ValueError(problem)

    @classmethod
    def create(
        cls,
        *,
        name: str,
        writer_key: str,
        tx_fee_rao: int = TX_FEE_DEFAULT_RAO,
        governance: GovernanceParams | None = None,
    ) -> NetworkParams:
        """New parameters with a fresh random salt."""
        return cls(
            name=name,
            writer_key=writer_key,
            salt_hex=secrets.token_hex(SALT_BYTES),
            tx_fee_rao=tx_fee_rao,
            governance=governance or GovernanceParams(),
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> NetworkParams:
        """Strictly parsed parameters; ``ValueError`` with one line if anything is off."""
        if not isinstance(payload, Mapping):
            raise ValueError("network payload must be a JSON object")
        unknown = sorted(set(payload) - _FIELDS)
        if unknown:
            raise ValueError(f"unknown network field(s) {unknown}")
        missing = sorted({"name", "writer_key", "salt_hex"} - set(payload))
        if missing:
            raise ValueError(f"network payload lacks {missing}")
        for text in ("name", "writer_key", "salt_hex"):
            if not isinstance(payload[text], str):
                raise ValueError(f"network {text} must be a string")
        fee = payload.get("tx_fee_rao", TX_FEE_DEFAULT_RAO)
        if not isinstance(fee, int) or isinstance(fee, bool):
            raise ValueError("network tx_fee_rao must be an integer")
        governance = GovernanceParams()
        if "governance" in payload:
            governance = GovernanceParams.from_payload(payload["governance"])
        return cls(
            name=payload["name"],
            writer_key=payload["writer_key"],
            salt_hex=payload["salt_hex"],
            tx_fee_rao=fee,
            governance=governance,
        )

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "name": self.name,
            "writer_key": self.writer_key,
            "salt_hex": self.salt_hex,
            "tx_fee_rao": self.tx_fee_rao,
        }
        if self.governance != GovernanceParams():
            payload["governance"] = self.governance.to_payload()
        return payload

    @property
    def network_id(self) -> str:
        """sha256 hex of the domain tag and the canonical payload."""
        return network_id_of(self.to_payload())


def network_id_of(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(NETWORK_ID_TAG + canonical_json(payload).encode()).hexdigest()


def _params_problem(p: NetworkParams) -> str | None:
    if not isinstance(p.name, str) or NETWORK_NAME_RE.fullmatch(p.name) is None:
        return "network name must be 1-64 characters from A-Z, a-z, 0-9, '_' and '-'"
    if not isinstance(p.writer_key, str) or not is_account_id(p.writer_key):
        return "network writer_key must be an account id (64 lowercase hex digits)"
    if not (
        isinstance(p.salt_hex, str)
        and len(p.salt_hex) == 2 * SALT_BYTES
        and all(c in "0123456789abcdef" for c in p.salt_hex)
    ):
        return f"network salt_hex must be {2 * SALT_BYTES} lowercase hex digits"
    fee = p.tx_fee_rao
    if not isinstance(fee, int) or isinstance(fee, bool) or not 0 <= fee <= TX_FEE_MAX_RAO:
        return f"network tx_fee_rao must be in [0, {TX_FEE_MAX_RAO}]"
    return None
