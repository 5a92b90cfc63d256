"""Proposed rewrites of the DuckDB epoch's hot statements (Yuma3 path), runnable side by side.

``tasks/consensus/sql.py`` is owned elsewhere; this module only *proposes* replacement statements
found by profiling ``benchmarks/consensus.py --profile`` and lets the benchmark time them against
the current ones on the same inputs (``--proposed``). :func:`proposed_run_epoch` has the contract
of ``run_epoch`` for ``yuma3=True`` and reuses sql.py's unchanged statements (scalars, neuron
vectors, liquid-alpha formulas) read-only.

What changes, and why (each is exact, not an approximation):

* ``_WEIGHTS``: row sums by GROUP BY + join instead of a window partitioned by validator; the
  ``miner < n`` filter is implied by the join with ``yuma_neuron``; the validator's integer
  stake ``a_rao`` is carried along so consensus does not re-join.
* ``_CONSENSUS``: the stake-weighted median without a window over every weight. The integer
  threshold thr = ⌈kappa_u16·Σa / 65535⌉ is computed once, so the κ test becomes
  ``stake_ge >= thr`` (65535·x ≥ kappa_u16·Σa ⇔ x ≥ thr for an integer x) with no per-row
  HUGEINT multiplication. Levels are bucketed per miner by floor(w·s_j), s_j = 2^(6 − ⌈log2
  max_j w⌉) (~64 buckets; any s_j > 0 keeps the bucket monotone in w, since multiplying by a
  positive constant and floor are both monotone); one GROUP BY sums stake per bucket, a window
  over the few bucket rows finds the crossing bucket, and only the weights inside that bucket
  get an exact running sum. Miners whose total stake is below thr (C_j = 0) are dropped before
  any sorting.
* ``_CLIPPED_WEIGHTS`` + ``_YUMA3_BOND_WEIGHTS`` + ``_YUMA3_OLD_BONDS`` + ``_YUMA3_BONDS``: W̄ and
  W_b are computed on the fly from ``yuma_W ⋈ yuma_C`` (a broadcast join on miner) instead of
  being materialised and re-joined on (validator, miner); the only (validator, miner) join left
  is the unavoidable one with the old bonds. The liquid / fixed-α branch is chosen before the
  statement runs (``LIQUID_IS_ON``): in sql.py the FULL OUTER JOIN of the unused fixed-α branch
  is executed and only then filtered away.
* ``_YUMA3_DIVIDENDS``: Σ_j B̂_ij·I_j = Σ_j B_ij·(I_j / Σ_k B_kj): per-miner factors from one
  GROUP BY, no window; stake is joined after grouping by validator.
* Read-back: one sorted query returns the float bonds and their u16 storage values together
  (``_YUMA3_STORED_BONDS`` and the second ORDER BY disappear); Arrow splits them.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.consensus import sql as consensus_sql
from tasks.consensus.params import YumaParams
from tasks.consensus.types import (
    BONDS_FLOAT_SCHEMA,
    BONDS_U16_SCHEMA,
    EpochInputs,
    EpochOutputs,
    EpochState,
)

PROPOSED_WEIGHTS = """
CREATE OR REPLACE TEMP TABLE yuma_W AS
WITH
-- W_masked_ij = W_raw_ij unless forbid_i ∨ (i = j ∧ i ≠ owner) ∨ last_update_i ≤ reg_j
--              ∨ (commit_reveal ∧ commit_block_i < reg_j); j ≥ n has no yuma_neuron row   §4.5.1–5
W_masked AS MATERIALIZED (
    SELECT w.validator, w.miner, w.weight_u16, vi.a_rao
    FROM weights_in AS w
    JOIN yuma_neuron AS vi ON vi.uid = w.validator
    JOIN yuma_neuron AS mj ON mj.uid = w.miner
    CROSS JOIN yuma_p AS p
    WHERE vi.permit_eff
        AND (w.validator <> w.miner OR vi.is_owner)
        AND vi.last_update_block > mj.registered_block
        AND NOT (p.commit_reveal AND vi.commit_block < mj.registered_block)
),
-- Σ_k W_masked_ik per validator (one hash aggregate, no window)                         §4.5.6
row_sum AS (
    SELECT validator, sum(weight_u16) AS row_sum_u16 FROM W_masked GROUP BY validator
)
-- W_ij = W_masked_ij / Σ_k W_masked_ik   (a row with Σ = 0 stays all-zero); a_i carried along
SELECT m.validator, m.miner,
    CASE WHEN r.row_sum_u16 > 0 THEN m.weight_u16 / r.row_sum_u16::DOUBLE ELSE 0.0 END AS w,
    m.a_rao
FROM W_masked AS m JOIN row_sum AS r ON r.validator = m.validator
"""

PROPOSED_CONSENSUS = """
CREATE OR REPLACE TEMP TABLE yuma_C AS
WITH
-- thr = ⌈kappa_u16·Σa / 65535⌉: 65535·x ≥ kappa_u16·Σa ⇔ x ≥ thr for integer x; computed once,
-- so no per-row HUGEINT multiplication remains (thr ≤ Σa)
thr AS (
    SELECT (p.kappa_u16::HUGEINT * sum(v.a_rao) + 65534) // 65535 AS t
    FROM yuma_neuron AS v CROSS JOIN yuma_p AS p
    GROUP BY p.kappa_u16
),
-- scores W_ij > 0 of validators with a_i > 0                                              §4.6
W_staked AS MATERIALIZED (
    SELECT miner, w, a_rao FROM yuma_W WHERE a_rao > 0 AND w > 0
),
-- miners whose whole column reaches thr (others: C_j = 0), with a bucket scale s_j = 2^k
-- putting their levels into ~64 buckets floor(w·s_j) (monotone in w for any s_j > 0)
miner_scale AS (
    SELECT ws.miner, pow(2.0, 6 - ceil(log2(max(ws.w)))) AS s
    FROM W_staked AS ws CROSS JOIN thr
    GROUP BY ws.miner, thr.t
    HAVING sum(ws.a_rao) >= thr.t
),
bucketed AS MATERIALIZED (
    SELECT ws.miner, ws.w, ws.a_rao, floor(ws.w * ms.s)::INTEGER AS bucket
    FROM W_staked AS ws JOIN miner_scale AS ms ON ms.miner = ws.miner
),
-- stake at and at-or-above each bucket
bucket_ge AS (
    SELECT miner, bucket, stake_at,
        sum(stake_at) OVER (
            PARTITION BY miner ORDER BY bucket DESC
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS stake_ge
    FROM (SELECT miner, bucket, sum(a_rao) AS stake_at FROM bucketed GROUP BY miner, bucket)
),
-- C_j lies in the highest bucket whose at-or-above stake reaches thr
crossing AS (
    SELECT bg.miner, max(bg.bucket) AS bucket,
        arg_max(bg.stake_ge - bg.stake_at, bg.bucket) AS above
    FROM bucket_ge AS bg CROSS JOIN thr
    WHERE bg.stake_ge >= thr.t
    GROUP BY bg.miner
),
-- stake_ge(j, v) = stake above the bucket + stake at levels ≥ v inside it (ties pooled)
inside AS (
    SELECT bk.miner, bk.w,
        cr.above + sum(bk.a_rao) OVER (
            PARTITION BY bk.miner ORDER BY bk.w DESC
            RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS stake_ge
    FROM bucketed AS bk
    JOIN crossing AS cr ON cr.miner = bk.miner AND cr.bucket = bk.bucket
)
-- C_j = max{v : stake_ge(j, v) ≥ thr}                                                    §4.6
SELECT inside.miner, max(inside.w) AS C
FROM inside CROSS JOIN thr
WHERE inside.stake_ge >= thr.t
GROUP BY inside.miner
"""

PROPOSED_INCENTIVE = """
CREATE OR REPLACE TEMP TABLE yuma_I AS
WITH
-- R_j = Σ_i A_i · min(W_ij, C_j)   (W̄ on the fly; an entry clipped to C_j = 0 adds 0)     §4.8
R AS (
    SELECT W.miner AS uid, sum(v.A * least(W.w, C.C)) AS R
    FROM yuma_W AS W
    JOIN yuma_C AS C ON C.miner = W.miner
    JOIN yuma_neuron AS v ON v.uid = W.validator
    WHERE C.C > 0
    GROUP BY W.miner
),
-- I_j = R_j / Σ_k R_k   (all 0 when Σ R = 0)                                            §4.8
I AS (
    SELECT R.uid, CASE WHEN total.R_total > 0 THEN R.R / total.R_total ELSE 0.0 END AS I
    FROM R CROSS JOIN (SELECT sum(R) AS R_total FROM R) AS total
)
SELECT * FROM I
"""

_YUMA3_BOND_INPUTS = """
-- W̄ and W_b per weight entry, straight from W ⋈ C (no W ⋈ W̄ join on (validator, miner)):
-- W_b = W (β = 0), W̄ (β = 1), else W + β(W̄ − W); entry sets as interpolate_sparse   §4.7, §4.9
Wb AS (
    SELECT W.validator, W.miner, W.c,
        CASE
            WHEN p.bonds_penalty_u16 = 0 THEN W.w
            WHEN p.bonds_penalty_u16 = 65535 THEN least(W.w, W.c)
            ELSE W.w + p.beta * (least(W.w, W.c) - W.w)
        END AS w_b
    FROM (
        SELECT W.validator, W.miner, W.w, coalesce(C.C, 0.0) AS c
        FROM yuma_W AS W LEFT JOIN yuma_C AS C ON C.miner = W.miner
    ) AS W
    CROSS JOIN yuma_p AS p
    WHERE CASE
        WHEN p.bonds_penalty_u16 = 0 THEN TRUE
        WHEN p.bonds_penalty_u16 = 65535 THEN W.w = 0 OR W.c > 0
        ELSE W.w + p.beta * (least(W.w, W.c) - W.w) > 0
    END
),
-- B_old_ij = u_ij / 65535, reg_j ≥ last_tempo removed                                  §4.9b.1
B_old AS (
    SELECT bnd.validator, bnd.miner, bnd.bond_u16 / 65535.0 AS b
    FROM bonds_in AS bnd
    JOIN yuma_neuron AS mj ON mj.uid = bnd.miner
    CROSS JOIN yuma_p AS p
    WHERE bnd.bond_u16 > 0 AND mj.registered_block < p.last_tempo_block
)"""

PROPOSED_YUMA3_BONDS_LIQUID = f"""
CREATE OR REPLACE TEMP TABLE yuma_B AS
WITH
{_YUMA3_BOND_INPUTS},
-- liquid EMA over the W_b entries only (sparse-path quirk)                         §4.9 quirk
liquid_entries AS (
    SELECT Wb.validator, Wb.miner, Wb.w_b, coalesce(Bo.b, 0.0) AS b_old, Wb.c
    FROM Wb LEFT JOIN B_old AS Bo ON Bo.validator = Wb.validator AND Bo.miner = Wb.miner
),
liquid_d AS (
    SELECT *,
        CASE
            WHEN w_b >= b_old THEN least(greatest(w_b - c, 0.0), 1.0)
            ELSE least(greatest(b_old - w_b, 0.0), 1.0)
        END AS d
    FROM liquid_entries
),
liquid_sigma AS (
    SELECT ld.*,
        1.0 / (1.0 + exp(least(greatest(-p.steepness * (ld.d - 0.5), -20.0), 20.0))) AS sigma
    FROM liquid_d AS ld CROSS JOIN yuma_p AS p
),
liquid_alpha_ij AS (
    SELECT ls.*,
        least(
            greatest(p.alpha_low + ls.sigma * (p.alpha_high - p.alpha_low), p.alpha_low),
            p.alpha_high
        ) AS alpha
    FROM liquid_sigma AS ls CROSS JOIN yuma_p AS p
),
B AS (
    SELECT validator, miner,
        least(1.0, (1.0 - alpha) * b_old + greatest(0.0, alpha * w_b)) AS b
    FROM liquid_alpha_ij
)
SELECT * FROM B WHERE b > 0
"""

PROPOSED_YUMA3_BONDS_FIXED = f"""
CREATE OR REPLACE TEMP TABLE yuma_B AS
WITH
{_YUMA3_BOND_INPUTS},
-- B_ij = α·W_b_ij + (1 − α)·B_old_ij over the union of entries, entries > 0 kept         §4.9b.2
B AS (
    SELECT coalesce(Wb.validator, Bo.validator) AS validator,
        coalesce(Wb.miner, Bo.miner) AS miner,
        p.alpha * coalesce(Wb.w_b, 0.0) + (1.0 - p.alpha) * coalesce(Bo.b, 0.0) AS b
    FROM Wb
    FULL OUTER JOIN B_old AS Bo ON Bo.validator = Wb.validator AND Bo.miner = Wb.miner
    CROSS JOIN yuma_p AS p
)
SELECT * FROM B WHERE b > 0
"""

LIQUID_IS_ON = """
SELECT p.liquid_alpha AND EXISTS (SELECT 1 FROM yuma_C WHERE C <> 0) FROM yuma_p AS p
"""
"""Whether the liquid-alpha EMA applies (§4.9b.2); decides which bond statement runs, so the
other branch's join is never planned (in sql.py both branches' joins execute and one is filtered
to nothing afterwards)."""


PROPOSED_YUMA3_DIVIDENDS = """
CREATE OR REPLACE TEMP TABLE yuma_D AS
WITH
-- f_j = I_j / Σ_k B_kj, so Σ_j B̂_ij·I_j = Σ_j B_ij·f_j (no window)                  §4.9b.3–4
f AS (
    SELECT col.miner, I.I / col.b_sum AS f
    FROM (SELECT miner, sum(b) AS b_sum FROM yuma_B GROUP BY miner) AS col
    JOIN yuma_I AS I ON I.uid = col.miner
),
-- D_raw_i = A_i · Σ_j B_ij·f_j   (grouped first, stake joined on the 1-row-per-validator result)
D_raw AS (
    SELECT s.uid, v.A * s.bf AS d
    FROM (
        SELECT B.validator AS uid, sum(B.b * f.f) AS bf
        FROM yuma_B AS B JOIN f ON f.miner = B.miner
        GROUP BY B.validator
    ) AS s
    JOIN yuma_neuron AS v ON v.uid = s.uid
),
D AS (
    SELECT D_raw.uid, CASE WHEN total.d_total > 0 THEN D_raw.d / total.d_total ELSE 0.0 END AS D
    FROM D_raw CROSS JOIN (SELECT sum(d) AS d_total FROM D_raw) AS total
)
SELECT * FROM D
"""

PROPOSED_OUTPUT_VECTORS = consensus_sql._OUTPUT_VECTORS.replace(
    "SELECT validator AS uid, sum(w) AS VT FROM yuma_W_clipped GROUP BY validator",
    "SELECT W.validator AS uid, sum(least(W.w, C.C)) AS VT\n"
    "    FROM yuma_W AS W JOIN yuma_C AS C ON C.miner = W.miner\n"
    "    WHERE C.C > 0\n"
    "    GROUP BY W.validator",
)

PROPOSED_BONDS_READBACK = """
SELECT B.validator, B.miner, B.b AS bond,
    CASE WHEN v.permit_new
        THEN least(65535, floor(B.b * 65535 + p.u16_floor_snap_lsb))::INTEGER
        ELSE 0 END AS bond_u16
FROM yuma_B AS B
JOIN yuma_neuron AS v ON v.uid = B.validator
CROSS JOIN yuma_p AS p
ORDER BY B.validator, B.miner
"""

PROPOSED_STATEMENTS_BEFORE_BONDS: tuple[tuple[str, str], ...] = (
    ("_SCALARS (unchanged)", consensus_sql._SCALARS),
    ("_NEURON_VECTORS (unchanged)", consensus_sql._NEURON_VECTORS),
    ("PROPOSED_WEIGHTS", PROPOSED_WEIGHTS),
    ("PROPOSED_CONSENSUS", PROPOSED_CONSENSUS),
    ("PROPOSED_INCENTIVE", PROPOSED_INCENTIVE),
)


def proposed_bond_statements(liquid: bool) -> tuple[tuple[str, str], ...]:
    """The proposed Yuma3 bond block, given whether liquid alpha applies (``LIQUID_IS_ON``)."""
    bonds = (
        ("PROPOSED_YUMA3_BONDS_LIQUID", PROPOSED_YUMA3_BONDS_LIQUID)
        if liquid
        else ("PROPOSED_YUMA3_BONDS_FIXED", PROPOSED_YUMA3_BONDS_FIXED)
    )
    return (bonds, ("PROPOSED_YUMA3_DIVIDENDS", PROPOSED_YUMA3_DIVIDENDS))


PROPOSED_READBACKS: tuple[tuple[str, str], ...] = (
    ("output vectors (VT from W ⋈ C)", PROPOSED_OUTPUT_VECTORS),
    ("bonds + u16 in one sorted read", PROPOSED_BONDS_READBACK),
)


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def register_inputs(
    cursor: duckdb.DuckDBPyConnection, inputs: EpochInputs, params: YumaParams, state: EpochState
) -> None:
    """Register the epoch's inputs on ``cursor`` exactly as ``run_epoch`` does."""
    cursor.register("epoch_params_in", consensus_sql._epoch_params_table(inputs, params))
    cursor.register("neuron_in", consensus_sql._neuron_table(inputs, state))
    cursor.register("weights_in", inputs.weights)
    cursor.register("bonds_in", state.bonds)


def proposed_run_epoch(
    inputs: EpochInputs,
    params: YumaParams,
    state: EpochState,
    *,
    connection: duckdb.DuckDBPyConnection,
) -> tuple[EpochOutputs, EpochState]:
    """``run_epoch`` with the proposed statements (Yuma3 path only)."""
    if not params.yuma3:
        raise NotImplementedError("the proposed rewrites cover the Yuma3 bond path")
    state = state.for_uids(inputs.n_uids)
    cursor = connection.cursor()
    try:
        register_inputs(cursor, inputs, params, state)
        for _, statement in PROPOSED_STATEMENTS_BEFORE_BONDS:
            cursor.execute(statement)
        liquid = bool(cursor.execute(LIQUID_IS_ON).fetchall()[0][0])
        for _, statement in proposed_bond_statements(liquid):
            cursor.execute(statement)
        vectors = cursor.sql(PROPOSED_OUTPUT_VECTORS).to_arrow_table()
        bonds = cursor.sql(PROPOSED_BONDS_READBACK).to_arrow_table()
    finally:
        cursor.close()
    stored = bonds.filter(pc.greater(bonds.column("bond_u16"), 0))
    outputs = EpochOutputs(
        stake_weight=_column(vectors, "stake_weight"),
        active=_column(vectors, "active").astype(np.bool_),
        validator_permit=_column(vectors, "validator_permit").astype(np.bool_),
        validator_trust=_column(vectors, "validator_trust"),
        consensus=_column(vectors, "consensus"),
        incentive=_column(vectors, "incentive"),
        dividends=_column(vectors, "dividends"),
        server_emission_share=_column(vectors, "server_emission_share"),
        validator_emission_share=_column(vectors, "validator_emission_share"),
        bonds=bonds.select(["validator", "miner", "bond"]).cast(BONDS_FLOAT_SCHEMA),
    )
    next_state = EpochState(
        bonds=stored.select(["validator", "miner", "bond_u16"]).cast(BONDS_U16_SCHEMA),
        validator_permit=outputs.validator_permit,
    )
    return outputs, next_state


__all__ = [
    "LIQUID_IS_ON",
    "PROPOSED_READBACKS",
    "PROPOSED_STATEMENTS_BEFORE_BONDS",
    "proposed_bond_statements",
    "proposed_run_epoch",
    "register_inputs",
]
