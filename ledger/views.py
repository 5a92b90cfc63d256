"""Read-only views of the ledger in DuckDB SQL over the memory-mapped Arrow batches.

Every view takes an optional ``as_of_batch`` bound (rows of later batches are ignored), so
"as of epoch N" is the same query bounded at the batch that committed epoch N. Views never
write. Invariant: they agree with the state machine's fold (tested), and amounts stay integers
(HUGEINT sums).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from taoflow.ledger.schema import Kind

_ROWS = "SELECT * FROM ledger_rows WHERE batch_no <= $as_of_batch"

BALANCES_SQL = f"""
WITH tx AS ({_ROWS}),
-- Δbalance(coldkey): mints, owner cuts, unstakes and returned deposits add; transfers, stakes,
-- burns and proposal deposits subtract
moves AS (
    SELECT coldkey AS coldkey,
           CASE WHEN kind IN ('{Kind.GENESIS_MINT}', '{Kind.EMISSION_OWNER}',
                              '{Kind.REMOVE_STAKE}') THEN amount_rao
                WHEN kind = '{Kind.PROPOSAL_TALLY}'
                     AND json_extract_string(payload, '$.deposit') = 'returned' THEN amount_rao
                WHEN kind IN ('{Kind.TRANSFER}', '{Kind.ADD_STAKE}', '{Kind.REGISTER}',
                              '{Kind.SUBNET_CREATE}', '{Kind.PROPOSAL}') THEN -amount_rao
                ELSE 0 END AS delta_rao
    FROM tx
    UNION ALL
    SELECT dest, amount_rao FROM tx WHERE kind = '{Kind.TRANSFER}'
)
SELECT coldkey, SUM(delta_rao)::HUGEINT AS balance_rao
FROM moves GROUP BY coldkey HAVING SUM(delta_rao) <> 0 ORDER BY coldkey
"""

STAKES_SQL = f"""
WITH tx AS ({_ROWS}),
-- Δstake(coldkey, hotkey): stakes and emissions to stake add; unstakes subtract
moves AS (
    SELECT coldkey, hotkey,
           CASE WHEN kind = '{Kind.REMOVE_STAKE}' THEN -amount_rao ELSE amount_rao END AS delta_rao
    FROM tx
    WHERE kind IN ('{Kind.ADD_STAKE}', '{Kind.REMOVE_STAKE}', '{Kind.EMISSION_INCENTIVE}',
                   '{Kind.EMISSION_DIVIDEND}', '{Kind.EMISSION_DELEGATOR}')
)
SELECT coldkey, hotkey, SUM(delta_rao)::HUGEINT AS stake_rao
FROM moves GROUP BY coldkey, hotkey HAVING SUM(delta_rao) <> 0 ORDER BY coldkey, hotkey
"""

SUPPLY_SQL = f"""
WITH tx AS ({_ROWS})
SELECT
    -- issued = Σ genesis mints + Σ emissions
    COALESCE(SUM(amount_rao) FILTER (WHERE kind IN ('{Kind.GENESIS_MINT}',
        '{Kind.EMISSION_OWNER}', '{Kind.EMISSION_INCENTIVE}', '{Kind.EMISSION_DIVIDEND}',
        '{Kind.EMISSION_DELEGATOR}')), 0)::HUGEINT AS issued_rao,
    -- burned = Σ registration burns + Σ deposits of proposals that missed quorum
    COALESCE(SUM(amount_rao) FILTER (WHERE kind = '{Kind.REGISTER}'
        OR (kind = '{Kind.PROPOSAL_TALLY}'
            AND json_extract_string(payload, '$.deposit') = 'burned')), 0)::HUGEINT AS burned_rao,
    -- locked = Σ subnet lock costs + Σ proposal deposits − Σ deposits released by tallies
    COALESCE(SUM(CASE WHEN kind IN ('{Kind.SUBNET_CREATE}', '{Kind.PROPOSAL}') THEN amount_rao
                      WHEN kind = '{Kind.PROPOSAL_TALLY}' THEN -amount_rao END), 0)::HUGEINT
        AS locked_rao
FROM tx
"""

EMISSIONS_SQL = f"""
WITH tx AS ({_ROWS})
SELECT subnet, epoch,
       COALESCE(SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_OWNER}'), 0)::HUGEINT
           AS owner_rao,
       COALESCE(SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_INCENTIVE}'), 0)::HUGEINT
           AS miners_rao,
       COALESCE(SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_DIVIDEND}'), 0)::HUGEINT
           AS validators_rao,
       COALESCE(SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_DELEGATOR}'), 0)::HUGEINT
           AS delegators_rao,
       SUM(amount_rao)::HUGEINT AS total_rao
FROM tx
WHERE kind IN ('{Kind.EMISSION_OWNER}', '{Kind.EMISSION_INCENTIVE}', '{Kind.EMISSION_DIVIDEND}',
               '{Kind.EMISSION_DELEGATOR}')
GROUP BY subnet, epoch ORDER BY subnet, epoch
"""

REGISTRATIONS_SQL = f"""
WITH tx AS ({_ROWS})
-- uid = order of registration within the subnet (0, 1, 2, …)
SELECT subnet,
       (ROW_NUMBER() OVER (PARTITION BY subnet ORDER BY batch_no, row_no) - 1)::BIGINT AS uid,
       hotkey, coldkey, json_extract_string(payload, '$.role') AS role,
       amount_rao::HUGEINT AS burned_rao, batch_no
FROM tx WHERE kind = '{Kind.REGISTER}'
ORDER BY subnet, uid
"""

LOG_SQL = """
SELECT batch_no, row_no, tx_id, kind, subnet, epoch, coldkey, hotkey, dest, uid,
       amount_rao::HUGEINT AS amount_rao, nonce, payload
FROM ledger_rows
WHERE batch_no <= $as_of_batch AND ($kind = '' OR kind = $kind)
  AND ($account = '' OR coldkey = $account OR hotkey = $account OR dest = $account)
ORDER BY batch_no DESC, row_no DESC
LIMIT $limit
"""

AS_OF_ALL = 2**62


class LedgerViews:
    """DuckDB views over an Arrow table of ledger rows (``Ledger.table()``)."""

    def __init__(self, rows: pa.Table) -> None:
        self.connection = duckdb.connect(":memory:")
        self.connection.register("ledger_rows", rows)

    def _query(self, sql: str, as_of_batch: int | None, **params: object) -> list[dict[str, Any]]:
        bound = AS_OF_ALL if as_of_batch is None else as_of_batch
        cursor = self.connection.execute(sql, {"as_of_batch": bound, **params})
        names = [column[0] for column in cursor.description or []]
        return [
            {
                k: (int(v) if k.endswith("_rao") and v is not None else v)
                for k, v in zip(names, row, strict=True)
            }
            for row in cursor.fetchall()
        ]

    def batch_of_epoch(self, *, subnet: str, epoch: int) -> int | None:
        """The batch that committed ``epoch`` of ``subnet`` (for "as of epoch N" queries)."""
        row = self.connection.execute(
            "SELECT MIN(batch_no) FROM ledger_rows WHERE kind = $kind AND subnet = $subnet "
            "AND epoch = $epoch",
            {"kind": str(Kind.EPOCH), "subnet": subnet, "epoch": epoch},
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def balances(self, *, as_of_batch: int | None = None) -> list[dict[str, Any]]:
        return self._query(BALANCES_SQL, as_of_batch)

    def stakes(self, *, as_of_batch: int | None = None) -> list[dict[str, Any]]:
        return self._query(STAKES_SQL, as_of_batch)

    def registrations(self, *, as_of_batch: int | None = None) -> list[dict[str, Any]]:
        return self._query(REGISTRATIONS_SQL, as_of_batch)

    def log(
        self, *, limit: int, kind: str = "", account: str = "", as_of_batch: int | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (optionally of one kind / touching one account)."""
        return self._query(LOG_SQL, as_of_batch, limit=limit, kind=kind, account=account)

    def emissions(self, *, as_of_batch: int | None = None) -> list[dict[str, Any]]:
        return self._query(EMISSIONS_SQL, as_of_batch)

    def supply(self, *, as_of_batch: int | None = None) -> dict[str, int]:
        row = self._query(SUPPLY_SQL, as_of_batch)[0]
        balances = sum(r["balance_rao"] for r in self.balances(as_of_batch=as_of_batch))
        stakes = sum(r["stake_rao"] for r in self.stakes(as_of_batch=as_of_batch))
        return {**row, "balances_rao": balances, "stakes_rao": stakes}
