"""Yuma consensus epoch in DuckDB SQL — the production implementation (shared/yuma-spec.md §4).

The epoch is a sequence of SQL statements over Arrow tables registered with a DuckDB connection
(zero copy). Each statement materialises one symbol of the spec, or a few, as a temp table;
inside a statement every further symbol is a CTE, preceded by a one-line comment with its formula
and the spec section. Python only registers the inputs, runs the statements in order, picks the
one bond statement that applies, and reads the results back.

Invariants
----------
* Arithmetic is float64 (DOUBLE), not the chain's I32F32 fixed point; continuous outputs therefore
  differ from the chain by O(n·2^-32) (spec §9).
* Cost grows with the number of non-zero weights and bonds: matrices stay sparse
  (validator, miner, value) tables, vectors are per-uid tables; nothing materialises n×n. Only W
  (``yuma_W``) and the bonds (``yuma_B``) are materialised as matrices: W̄ = min(W, C) and W_b are
  evaluated on the fly from ``yuma_W ⋈ yuma_C`` (a broadcast join on the miner), so the only
  (validator, miner) join is the one of W_b with the old bonds. Per-row / per-column sums are
  GROUP BY aggregates joined back, not windows over every entry.
* Discrete decisions are exact, never float comparisons near a boundary:
  - κ test (§4.6). With a_i the integer stake in rao of a validator that takes part in consensus
    (stake after the threshold mask, zero unless active and permitted), the re-normalised stake is
    a_i / Σa, and κ = kappa_u16 / 65535. So "Σ_{i: W_ij ≥ v} a_i / Σa ≥ κ" is the integer test
    ``65535 · x ≥ K`` with x = Σ_{i: W_ij ≥ v} a_i and K = kappa_u16 · Σa. Because x is an
    integer, 65535·x ≥ K ⇔ x ≥ K/65535 ⇔ x ≥ ⌈K/65535⌉, so the test is ``x ≥ thr`` with the
    integer threshold thr = ⌈kappa_u16·Σa / 65535⌉ = (K + 65534) // 65535, computed once in
    HUGEINT (exact integer division, K ≥ 0); stake exactly at κ counts. (The chain compares I32F32
    sums; ours is the exact-rational version of that test.)
  - Stake-weighted median (§4.6): C_j = max{v : x_j(v) ≥ thr}. Levels are first bucketed per miner
    by floor(w·s_j) with s_j = 2^(6 − ⌈log2 max_i W_ij⌉) (~64 buckets). Any s_j > 0 keeps the
    bucket monotone (non-decreasing) in w, so the stake at-or-above a bucket is a lower bound of
    x_j(v) for every v in it and an upper bound for every v above it: C_j lies in the highest
    bucket whose at-or-above stake reaches thr, and only that bucket's weights get an exact
    (integer, ties pooled) running sum. The buckets only narrow the search; no float is compared
    against κ.
  - Candidate levels v are row-normalised weights u_ij / Σ_k u_ik of integer u16 weights; each is a
    single correctly rounded division of exact integers, so equal rationals compare equal, and
    different ones (relative difference ≥ 1/(65535²·n), far above float64 resolution for any
    n < 10^5) keep their order.
  - Top-k permits (§4.3) rank the integer stakes s_i (ties: the lower uid loses), which orders
    exactly like S = s / Σs without float ties between different stakes.
* Stored u16 bonds are the chain's integers: x floored to I32F32, then ``floor(x_fixed·65535)``
  (``fixed.SQL_U16_OF``), so a proportion that is mathematically k/65535 stores k − 1, as on chain.
* Sparse matrices follow the chain's sparse code entry by entry, not just value by value: explicit
  zero weights survive masking, normalisation and clipping (``col_clip_sparse`` keeps an entry
  w ≤ C_j, drops a positive one clipped to C_j = 0). Only the Yuma3 liquid-alpha EMA can tell
  an explicit zero from an absent entry (§4.9 "Sparse-path quirk"); R, VT and D are sums, in which
  an entry of value 0 and an absent one are the same.
* The bond path is one isolated block, chosen by ``_bond_path``: the legacy path (``yuma3=False``,
  §4.9a) or Yuma3 (``yuma3=True``, §4.9b), whose liquid / fixed-α choice (``_LIQUID_IS_ON``) is
  made in Python before its one bond statement runs, so the other branch is never planned. Each
  path produces ``yuma_B`` (float bonds) and ``yuma_D`` (normalised dividends), and one read-back
  returns the float bonds with their u16 storage value (0 for validators without a new permit);
  nothing outside the block reads its intermediate tables.
* No statement sorts the bonds: rows leave in yuma_W's order, i.e. the weights' order, and
  ``_sorted_bonds`` confirms (validator, miner) order in one O(N) pass, sorting only when the
  input was not sorted (EpochState keeps bonds sorted).
* Yuma3 comparisons that pick a branch (W_b ≥ B_old in liquid alpha, β ∈ {0, 1} short-cuts) see
  bit-identical operands in every implementation: W is one division of integers, B_old = u/65535,
  W̄ = min(W, C) and W_b = W + β(W̄ − W) is evaluated in exactly that operation order.
* The four weight masks of §4.5.2–5 (forbid, outdated, commit-reveal) reduce to one per-validator
  integer, ``weight_limit_block``: W_ij survives iff reg_j ≤ limit_i (−1 for a forbidden
  validator), plus the diagonal rule; commit-reveal masking (§4.5.5) enters that limit when
  ``commit_reveal`` is on. Mechanisms (§5) are not modelled here.
* yuma_W holds (validator, miner, w) only; per-validator values (a_i, A_i) are joined from
  yuma_V, the permitted validators only (the only rows W can have), where a statement needs them:
  a build side of at most a few thousand rows, not copied into every entry.
* A connection passed in is only used through a private ``cursor()``: registered inputs and temp
  tables live in that cursor and disappear when the epoch returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.tasks.consensus.fixed import SQL_U16_OF
from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.types import (
    BONDS_FLOAT_SCHEMA,
    BONDS_U16_SCHEMA,
    EpochInputs,
    EpochOutputs,
    EpochState,
)

# ------------------------------------------------------------------------------------------------
# §3 scalars: one row of hyper-parameters and block numbers.
# ------------------------------------------------------------------------------------------------
_SCALARS = """
CREATE OR REPLACE TEMP TABLE yuma_p AS
SELECT
    *,
    -- β = bonds_penalty / 65535                                                       §3
    bonds_penalty_u16 / 65535.0 AS beta,
    -- α = 1 − bonds_moving_average / 10^6                                             §4.9a.3
    1.0 - bonds_moving_average_ppm / 1000000.0 AS alpha,
    -- liquid-alpha bounds alpha_low/high = u16 / 65535                                §4.9b
    alpha_low_u16 / 65535.0 AS alpha_low,
    alpha_high_u16 / 65535.0 AS alpha_high,
    -- sigmoid steepness = alpha_sigmoid_steepness / 100                               §4.9b
    alpha_sigmoid_steepness / 100.0 AS steepness,
    -- last_tempo = lms + 1, or max(0, current_block − tempo) when lms = 0             §4.9
    CASE
        WHEN last_step_block = 0 THEN greatest(current_block - tempo_blocks, 0)
        ELSE last_step_block + 1
    END AS last_tempo_block
FROM epoch_params_in
"""

# ------------------------------------------------------------------------------------------------
# §4.1–§4.4 per-uid vectors: activity, stake, permits, active stake.
# ------------------------------------------------------------------------------------------------
_NEURON_VECTORS = """
CREATE OR REPLACE TEMP TABLE yuma_neuron AS
WITH
-- is_owner_i = (i = owner_uid)
neuron AS (
    SELECT nrn.*, coalesce(nrn.uid = p.owner_uid, FALSE) AS is_owner
    FROM neuron_in AS nrn CROSS JOIN yuma_p AS p
),
-- active_i = ¬(last_update_i + cutoff < current_block)                                §4.1
active AS (
    SELECT neuron.*,
        NOT (neuron.last_update_block + p.activity_cutoff_blocks < p.current_block) AS active
    FROM neuron CROSS JOIN yuma_p AS p
),
-- s_i = 0 if stake_i < StakeThreshold ∧ i ≠ owner, else stake_i   (integer rao)         §4.2.1
stake AS (
    SELECT active.*,
        CASE WHEN active.stake_rao < p.stake_threshold_rao AND NOT active.is_owner
            THEN 0 ELSE active.stake_rao END AS s_rao
    FROM active CROSS JOIN yuma_p AS p
),
-- S_i = s_i / Σ_k s_k   (all 0 when Σ s = 0)                                            §4.2.2
S AS (
    SELECT stake.*,
        CASE WHEN total.s_total_rao = 0 THEN 0.0
            ELSE stake.s_rao::DOUBLE / total.s_total_rao::DOUBLE END AS S
    FROM stake CROSS JOIN (SELECT sum(s_rao)::HUGEINT AS s_total_rao FROM stake) AS total
),
-- permit_eff_i = permit_old_i ∨ is_owner_i   (forbid_i = ¬permit_eff_i)                 §4.3
permit_eff AS (
    SELECT S.*, S.permit_old OR S.is_owner AS permit_eff
    FROM S
),
-- permit_new_i = (s_i > 0 ∧ i among the k largest by (s_i, i)) ∨ is_owner_i            §4.3
permit_new AS (
    SELECT permit_eff.*,
        (permit_eff.s_rao > 0
            AND row_number() OVER (ORDER BY permit_eff.s_rao DESC, permit_eff.uid DESC)
                <= p.max_validators)
        OR permit_eff.is_owner AS permit_new
    FROM permit_eff CROSS JOIN yuma_p AS p
),
-- a_i = s_i · [active_i ∧ permit_eff_i]   (integer rao numerator of A)                  §4.4
active_stake AS (
    SELECT permit_new.*,
        CASE WHEN permit_new.active AND permit_new.permit_eff
            THEN permit_new.s_rao ELSE 0 END AS a_rao
    FROM permit_new
),
-- A_i = a_i / Σ_k a_k   (all 0 when Σ a = 0)                                            §4.4
A AS (
    SELECT active_stake.*,
        CASE WHEN total.a_total_rao = 0 THEN 0.0
            ELSE active_stake.a_rao::DOUBLE / total.a_total_rao::DOUBLE END AS A
    FROM active_stake
    CROSS JOIN (SELECT sum(a_rao)::HUGEINT AS a_total_rao FROM active_stake) AS total
),
-- limit_i: W_ij survives the forbid, outdated and commit-reveal masks iff reg_j ≤ limit_i, with
--   limit_i = −1 if forbid_i, else min(last_update_i − 1, commit_block_i if CR)     §4.5.2–5
weight_limit AS (
    SELECT A.*,
        CASE WHEN NOT A.permit_eff THEN -1
            WHEN p.commit_reveal THEN least(A.last_update_block - 1, A.commit_block)
            ELSE A.last_update_block - 1 END AS weight_limit_block
    FROM A CROSS JOIN yuma_p AS p
)
SELECT * FROM weight_limit
"""

_VALIDATOR_VECTORS = """
CREATE OR REPLACE TEMP TABLE yuma_V AS
-- the validators whose rows of W can be non-empty: permit_eff_i (a forbidden row is masked);
--   a small build side for every join of a W entry with its validator's a_i, A_i      §4.5.2
SELECT uid, a_rao, A FROM yuma_neuron WHERE permit_eff
"""

# ------------------------------------------------------------------------------------------------
# §4.5 weights W (sparse), carrying the validator's stake a_i (rao) and A_i.
# ------------------------------------------------------------------------------------------------
_WEIGHTS = """
CREATE OR REPLACE TEMP TABLE yuma_W AS
WITH
-- W_masked_ij = W_raw_ij unless reg_j > limit_i ∨ (i = j ∧ i ≠ owner); j ≥ n has no
--   yuma_neuron row (dropped by the inner join)                                   §4.5.1–5
W_masked AS MATERIALIZED (
    SELECT w.validator, w.miner, w.weight_u16
    FROM weights_in AS w
    JOIN yuma_neuron AS vi ON vi.uid = w.validator
    JOIN yuma_neuron AS mj ON mj.uid = w.miner
    WHERE mj.registered_block <= vi.weight_limit_block
        AND (w.validator <> w.miner OR vi.is_owner)
),
-- Σ_k W_masked_ik per validator (integer)                                               §4.5.6
row_sum AS (
    SELECT validator, sum(weight_u16) AS row_sum_u16 FROM W_masked GROUP BY validator
),
-- W_ij = W_masked_ij / Σ_k W_masked_ik   (a row with Σ = 0 stays all-zero)               §4.5.6
W AS (
    SELECT m.validator, m.miner,
        CASE WHEN r.row_sum_u16 > 0 THEN m.weight_u16 / r.row_sum_u16::DOUBLE ELSE 0.0 END AS w
    FROM W_masked AS m JOIN row_sum AS r ON r.validator = m.validator
)
SELECT * FROM W
"""

# ------------------------------------------------------------------------------------------------
# §4.6 consensus C (per miner; absent miner ⇒ C_j = 0).
# ------------------------------------------------------------------------------------------------
_CONSENSUS = """
CREATE OR REPLACE TEMP TABLE yuma_C AS
WITH
-- thr = ⌈kappa_u16·Σa / 65535⌉: 65535·x ≥ kappa_u16·Σa ⇔ x ≥ thr for integer x (exact)   §4.6
thr AS (
    SELECT (p.kappa_u16::HUGEINT * sum(v.a_rao)::HUGEINT + 65534) // 65535 AS t
    FROM yuma_neuron AS v CROSS JOIN yuma_p AS p
    GROUP BY p.kappa_u16
),
-- scores W_ij > 0 of validators with a_i > 0 (missing entries are level 0, always a candidate) §4.6
W_staked AS MATERIALIZED (
    SELECT W.miner, W.w, v.a_rao
    FROM yuma_W AS W JOIN yuma_V AS v ON v.uid = W.validator
    WHERE v.a_rao > 0 AND W.w > 0
),
-- s_j = 2^(6 − ⌈log2 max_i W_ij⌉) for miners whose whole column reaches thr (others: C_j = 0)
scale AS (
    SELECT ws.miner, pow(2.0, 6 - ceil(log2(max(ws.w)))) AS s
    FROM W_staked AS ws CROSS JOIN thr
    GROUP BY ws.miner, thr.t
    HAVING sum(ws.a_rao) >= thr.t
),
-- bucket_ij = floor(W_ij·s_j)   (~64 buckets per miner, non-decreasing in W_ij)
bucketed AS MATERIALIZED (
    SELECT ws.miner, ws.w, ws.a_rao, floor(ws.w * sc.s)::INTEGER AS bucket
    FROM W_staked AS ws JOIN scale AS sc ON sc.miner = ws.miner
),
-- stake_at(j, b) = Σ_{i: bucket_ij = b} a_i,  stake_ge(j, b) = Σ_{b' ≥ b} stake_at(j, b')
bucket_ge AS (
    SELECT miner, bucket, stake_at,
        sum(stake_at) OVER (
            PARTITION BY miner ORDER BY bucket DESC
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS stake_ge
    FROM (SELECT miner, bucket, sum(a_rao) AS stake_at FROM bucketed GROUP BY miner, bucket)
),
-- b*_j = max{b : stake_ge(j, b) ≥ thr}, above_j = stake strictly above bucket b*_j
crossing AS (
    SELECT bg.miner, max(bg.bucket) AS bucket,
        arg_max(bg.stake_ge - bg.stake_at, bg.bucket) AS above
    FROM bucket_ge AS bg CROSS JOIN thr
    WHERE bg.stake_ge >= thr.t
    GROUP BY bg.miner
),
-- x_j(v) = Σ_{i: W_ij ≥ v} a_i = above_j + Σ_{i in b*_j: W_ij ≥ v} a_i   (equal levels pooled)
stake_ge_level AS (
    SELECT bk.miner, bk.w AS level,
        cr.above + sum(bk.a_rao) OVER (
            PARTITION BY bk.miner ORDER BY bk.w DESC
            RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS stake_ge
    FROM bucketed AS bk
    JOIN crossing AS cr ON cr.miner = bk.miner AND cr.bucket = bk.bucket
),
-- C_j = max{v : x_j(v) ≥ thr}   (else 0: no row)                                         §4.6
C AS (
    SELECT lv.miner, max(lv.level) AS C
    FROM stake_ge_level AS lv CROSS JOIN thr
    WHERE lv.stake_ge >= thr.t
    GROUP BY lv.miner
)
SELECT * FROM C
"""

# ------------------------------------------------------------------------------------------------
# §4.8 ranks and incentive (per miner; absent miner ⇒ I_j = 0).
# ------------------------------------------------------------------------------------------------
_INCENTIVE = """
CREATE OR REPLACE TEMP TABLE yuma_I AS
WITH
-- R_j = Σ_i A_i · W̄_ij,  W̄_ij = min(W_ij, C_j) on the fly (C_j = 0 entries add 0)   §4.7–4.8
R AS (
    SELECT W.miner AS uid, sum(v.A * least(W.w, C.C)) AS R
    FROM yuma_W AS W
    JOIN yuma_C AS C ON C.miner = W.miner
    JOIN yuma_V AS v ON v.uid = W.validator
    GROUP BY W.miner
),
-- I_j = R_j / Σ_k R_k   (all 0 when Σ R = 0)                                            §4.8
I AS (
    SELECT R.uid, CASE WHEN total.R_total > 0 THEN R.R / total.R_total ELSE 0.0 END AS I
    FROM R CROSS JOIN (SELECT sum(R) AS R_total FROM R) AS total
)
SELECT * FROM I
"""

# ------------------------------------------------------------------------------------------------
# §4.9a legacy bond path: produces yuma_B, yuma_D.
# ------------------------------------------------------------------------------------------------
_LEGACY_BONDS = """
CREATE OR REPLACE TEMP TABLE yuma_B AS
WITH
-- W_b_ij = (1 − β)·W_ij + β·W̄_ij, W̄_ij = min(W_ij, C_j) (0 where C_j = 0); entries ≤ 0 dropped
--   (= W + β(W̄ − W), exact at β ∈ {0, 1})                                              §4.9
W_b AS (
    SELECT * FROM (
        SELECT W.validator, W.miner, v.A,
            (1.0 - p.beta) * W.w + p.beta * least(W.w, coalesce(C.C, 0.0)) AS w
        FROM yuma_W AS W
        LEFT JOIN yuma_C AS C ON C.miner = W.miner
        JOIN yuma_V AS v ON v.uid = W.validator
        CROSS JOIN yuma_p AS p
    )
    WHERE w > 0
),
-- stored u16 bonds u_ij, columns with reg_j ≥ last_tempo removed                       §4.9a.1
B_u AS MATERIALIZED (
    SELECT bnd.validator, bnd.miner, bnd.bond_u16
    FROM bonds_in AS bnd
    JOIN yuma_neuron AS mj ON mj.uid = bnd.miner
    CROSS JOIN yuma_p AS p
    WHERE bnd.bond_u16 > 0 AND NOT (mj.registered_block >= p.last_tempo_block)
),
-- B_old_ij = u_ij / Σ_k u_kj                                                             §4.9a.1
B_old AS (
    SELECT Bu.validator, Bu.miner, Bu.bond_u16 / col.u_sum::DOUBLE AS b
    FROM B_u AS Bu
    JOIN (SELECT miner, sum(bond_u16) AS u_sum FROM B_u GROUP BY miner) AS col
        ON col.miner = Bu.miner
),
-- W_b_ij·A_i, entries > 0 kept
WA AS MATERIALIZED (
    SELECT validator, miner, w * A AS wA FROM W_b WHERE w * A > 0
),
-- ΔB_ij = W_b_ij·A_i / Σ_k W_b_kj·A_k                                                  §4.9a.2
delta_B AS (
    SELECT WA.validator, WA.miner, WA.wA / col.wA_sum AS b
    FROM WA JOIN (SELECT miner, sum(wA) AS wA_sum FROM WA GROUP BY miner) AS col
        ON col.miner = WA.miner
),
-- B_ema_ij = α·ΔB_ij + (1 − α)·B_old_ij, entries > 0 kept                               §4.9a.3
B_ema AS MATERIALIZED (
    SELECT * FROM (
        SELECT coalesce(dB.validator, Bo.validator) AS validator,
            coalesce(dB.miner, Bo.miner) AS miner,
            p.alpha * coalesce(dB.b, 0.0) + (1.0 - p.alpha) * coalesce(Bo.b, 0.0) AS b
        FROM delta_B AS dB
        FULL OUTER JOIN B_old AS Bo ON Bo.validator = dB.validator AND Bo.miner = dB.miner
        CROSS JOIN yuma_p AS p
    )
    WHERE b > 0
),
-- B_ij = B_ema_ij / Σ_k B_ema_kj                                                        §4.9a.3
B AS (
    SELECT Be.validator, Be.miner, Be.b / col.b_sum AS b
    FROM B_ema AS Be
    JOIN (SELECT miner, sum(b) AS b_sum FROM B_ema GROUP BY miner) AS col ON col.miner = Be.miner
)
SELECT * FROM B
"""

_LEGACY_DIVIDENDS = """
CREATE OR REPLACE TEMP TABLE yuma_D AS
WITH
-- D_i = Σ_j B_ij · I_j                                                                  §4.9a.4
D_raw AS (
    SELECT B.validator AS uid, sum(B.b * I.I) AS d
    FROM yuma_B AS B JOIN yuma_I AS I ON I.uid = B.miner
    GROUP BY B.validator
),
-- D_i = D_raw_i / Σ_k D_raw_k   (all 0 when Σ D_raw = 0)                                §4.9a.4
D AS (
    SELECT D_raw.uid, CASE WHEN total.d_total > 0 THEN D_raw.d / total.d_total ELSE 0.0 END AS D
    FROM D_raw CROSS JOIN (SELECT sum(d) AS d_total FROM D_raw) AS total
)
SELECT * FROM D
"""

_LEGACY_BONDS_READBACK = """
WITH
-- B_up_ij = B_ij / max_k B_kj   (column max-upscale)                                    §4.9a.5
B_up AS (
    SELECT B.validator, B.miner, B.b, B.b / col.b_max AS b_up
    FROM yuma_B AS B
    JOIN (SELECT miner, max(b) AS b_max FROM yuma_B GROUP BY miner) AS col ON col.miner = B.miner
),
-- B_u16_ij = u16(B_up_ij) if permit_new_i, else 0 (not stored), u16(x) = ⌊⌊x·2^32⌋·65535 / 2^32⌋:
--   the chain's floor to I32F32, then fixed_proportion_to_u16 (fixed.py)             §2, §4.10
B_u16 AS (
    SELECT Bu.validator, Bu.miner, Bu.b AS bond,
        CASE WHEN v.permit_new THEN {u16_of_b_up}::INTEGER ELSE 0 END AS bond_u16
    FROM B_up AS Bu
    JOIN yuma_neuron AS v ON v.uid = Bu.validator
)
SELECT * FROM B_u16
""".format(u16_of_b_up=SQL_U16_OF.format(x="Bu.b_up"))

# ------------------------------------------------------------------------------------------------
# §4.9b Yuma3 bond path: produces yuma_B (liquid or fixed α, chosen in Python), yuma_D.
# ------------------------------------------------------------------------------------------------
_LIQUID_IS_ON = """
-- liquid = liquid_alpha ∧ ∃j: C_j ≠ 0                                                   §4.9b.2
SELECT p.liquid_alpha AND EXISTS (SELECT 1 FROM yuma_C WHERE C <> 0) AS is_on FROM yuma_p AS p
"""

_YUMA3_BOND_INPUTS = """
-- W_b_ij = W_ij (β = 0), W̄_ij (β = 1), else W_ij + β·(W̄_ij − W_ij) with entries ≤ 0 dropped,
--   W̄_ij = min(W_ij, C_j) on the fly; entry sets as interpolate_sparse                §4.7, §4.9
W_b AS (
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
-- B_old_ij = u_ij / 65535 (absolute, not normalised); reg_j ≥ last_tempo removed     §4.9b.1
B_old AS (
    SELECT bnd.validator, bnd.miner, bnd.bond_u16 / 65535.0 AS b
    FROM bonds_in AS bnd
    JOIN yuma_neuron AS mj ON mj.uid = bnd.miner
    CROSS JOIN yuma_p AS p
    WHERE bnd.bond_u16 > 0 AND NOT (mj.registered_block >= p.last_tempo_block)
)"""

_YUMA3_BONDS_LIQUID = f"""
CREATE OR REPLACE TEMP TABLE yuma_B AS
WITH
{_YUMA3_BOND_INPUTS},
-- (W_b_ij, B_old_ij, C_j) over the W_b entries only: the sparse liquid EMA emits nothing else,
-- so a bond without a W_b entry is dropped to 0 (chain's mat_ema_alpha_sparse)    §4.9 quirk
--   (the liquid-alpha scalars ride along from the one yuma_p row)
liquid_entries AS (
    SELECT Wb.validator, Wb.miner, Wb.w_b, coalesce(Bo.b, 0.0) AS b_old, Wb.c,
        p.steepness, p.alpha_low, p.alpha_high
    FROM W_b AS Wb
    LEFT JOIN B_old AS Bo ON Bo.validator = Wb.validator AND Bo.miner = Wb.miner
    CROSS JOIN yuma_p AS p
),
-- d_ij = clamp(W_b − C_j, 0, 1) if W_b_ij ≥ B_old_ij else clamp(B_old − W_b, 0, 1)     §4.9b
liquid_d AS (
    SELECT *,
        CASE
            WHEN w_b >= b_old THEN least(greatest(w_b - c, 0.0), 1.0)
            ELSE least(greatest(b_old - w_b, 0.0), 1.0)
        END AS d
    FROM liquid_entries
),
-- σ_ij = 1 / (1 + exp(clamp(−steepness·(d_ij − 0.5), −20, 20)))                          §4.9b
liquid_sigma AS (
    SELECT *, 1.0 / (1.0 + exp(least(greatest(-steepness * (d - 0.5), -20.0), 20.0))) AS sigma
    FROM liquid_d
),
-- α_ij = clamp(alpha_low + σ_ij·(alpha_high − alpha_low), alpha_low, alpha_high)         §4.9b
liquid_alpha_ij AS (
    SELECT *,
        least(greatest(alpha_low + sigma * (alpha_high - alpha_low), alpha_low), alpha_high)
            AS alpha
    FROM liquid_sigma
),
-- B_ij = min(1, (1 − α_ij)·B_old_ij + max(0, α_ij·W_b_ij)), entries > 0 kept            §4.9b.2
B AS (
    SELECT validator, miner,
        least(1.0, (1.0 - alpha) * b_old + greatest(0.0, alpha * w_b)) AS b
    FROM liquid_alpha_ij
)
SELECT * FROM B WHERE b > 0
"""

_YUMA3_BONDS_FIXED = f"""
CREATE OR REPLACE TEMP TABLE yuma_B AS
WITH
{_YUMA3_BOND_INPUTS},
-- B_ij = α·W_b_ij + (1 − α)·B_old_ij over the union of entries, entries > 0 kept         §4.9b.2
B AS (
    SELECT coalesce(Wb.validator, Bo.validator) AS validator,
        coalesce(Wb.miner, Bo.miner) AS miner,
        p.alpha * coalesce(Wb.w_b, 0.0) + (1.0 - p.alpha) * coalesce(Bo.b, 0.0) AS b
    FROM W_b AS Wb
    FULL OUTER JOIN B_old AS Bo ON Bo.validator = Wb.validator AND Bo.miner = Wb.miner
    CROSS JOIN yuma_p AS p
)
SELECT * FROM B WHERE b > 0
"""

_YUMA3_DIVIDENDS = """
CREATE OR REPLACE TEMP TABLE yuma_D AS
WITH
-- f_j = I_j / Σ_k B_kj, so Σ_j B̂_ij·I_j = Σ_j B_ij·f_j with B̂_ij = B_ij / Σ_k B_kj   §4.9b.3
f AS (
    SELECT col.miner, I.I / col.b_sum AS f
    FROM (SELECT miner, sum(b) AS b_sum FROM yuma_B GROUP BY miner) AS col
    JOIN yuma_I AS I ON I.uid = col.miner
),
-- D_raw_i = A_i · Σ_j B_ij·f_j   (grouped first, A joined on one row per validator)     §4.9b.4
D_raw AS (
    SELECT s.uid, v.A * s.bf AS d
    FROM (
        SELECT B.validator AS uid, sum(B.b * f.f) AS bf
        FROM yuma_B AS B JOIN f ON f.miner = B.miner
        GROUP BY B.validator
    ) AS s
    JOIN yuma_neuron AS v ON v.uid = s.uid
),
-- D_i = D_raw_i / Σ_k D_raw_k   (all 0 when Σ D_raw = 0)                                §4.9b.4
D AS (
    SELECT D_raw.uid, CASE WHEN total.d_total > 0 THEN D_raw.d / total.d_total ELSE 0.0 END AS D
    FROM D_raw CROSS JOIN (SELECT sum(d) AS d_total FROM D_raw) AS total
)
SELECT * FROM D
"""

_YUMA3_BONDS_READBACK = """
WITH
-- B_u16_ij = u16(B_ij) if permit_new_i, else 0 (no upscale), u16(x) = ⌊⌊x·2^32⌋·65535 / 2^32⌋:
--   the chain's floor to I32F32, then fixed_proportion_to_u16 (fixed.py)              §4.9b.5
B_u16 AS (
    SELECT B.validator, B.miner, B.b AS bond,
        CASE WHEN v.permit_new THEN {u16_of_b}::INTEGER ELSE 0 END AS bond_u16
    FROM yuma_B AS B
    JOIN yuma_neuron AS v ON v.uid = B.validator
)
SELECT * FROM B_u16
""".format(u16_of_b=SQL_U16_OF.format(x="B.b"))

# ------------------------------------------------------------------------------------------------
# §4.7 validator trust and §4.10 emission shares: the per-uid output vectors.
# ------------------------------------------------------------------------------------------------
_OUTPUT_VECTORS = """
WITH
-- VT_i = Σ_j W̄_ij,  W̄_ij = min(W_ij, C_j) on the fly (C_j = 0 entries add 0)         §4.7
VT AS (
    SELECT W.validator AS uid, sum(least(W.w, C.C)) AS VT
    FROM yuma_W AS W JOIN yuma_C AS C ON C.miner = W.miner
    GROUP BY W.validator
),
-- E_sum = Σ_j (I_j + D_j)                                                             §4.10
E_sum AS (
    SELECT (SELECT coalesce(sum(I), 0.0) FROM yuma_I)
        + (SELECT coalesce(sum(D), 0.0) FROM yuma_D) AS E_sum
),
-- fallback_i = A_i, or S_i when Σ A = 0   (validator share when E_sum = 0)              §4.10
fallback AS (
    SELECT v.uid,
        CASE WHEN total.a_total_rao > 0 THEN v.A ELSE v.S END AS share
    FROM yuma_neuron AS v
    CROSS JOIN (SELECT sum(a_rao)::HUGEINT AS a_total_rao FROM yuma_neuron) AS total
),
-- per-uid outputs; a uid absent from a sparse result has VT = C = I = D = 0
vectors AS (
    SELECT v.uid, v.S AS stake_weight, v.A AS active_stake, v.active,
        v.permit_new AS validator_permit,
        coalesce(VT.VT, 0.0) AS validator_trust,
        coalesce(C.C, 0.0) AS consensus,
        coalesce(I.I, 0.0) AS incentive,
        coalesce(D.D, 0.0) AS dividends,
        fb.share AS fallback_share
    FROM yuma_neuron AS v
    JOIN fallback AS fb ON fb.uid = v.uid
    LEFT JOIN VT ON VT.uid = v.uid
    LEFT JOIN yuma_C AS C ON C.miner = v.uid
    LEFT JOIN yuma_I AS I ON I.uid = v.uid
    LEFT JOIN yuma_D AS D ON D.uid = v.uid
)
SELECT vectors.uid, stake_weight, active_stake, active, validator_permit, validator_trust,
    consensus, incentive, dividends,
    -- server_share_j = I_j / E_sum   (0 when E_sum = 0)                                §4.10
    CASE WHEN E_sum > 0 THEN incentive / E_sum ELSE 0.0 END AS server_emission_share,
    -- validator_share_i = D_i / E_sum, or fallback_i when E_sum = 0                    §4.10
    CASE WHEN E_sum > 0 THEN dividends / E_sum ELSE fallback_share END
        AS validator_emission_share
FROM vectors CROSS JOIN E_sum
ORDER BY vectors.uid
"""


_BEFORE_BONDS: tuple[str, ...] = (
    _SCALARS,
    _NEURON_VECTORS,
    _VALIDATOR_VECTORS,
    _WEIGHTS,
    _CONSENSUS,
    _INCENTIVE,
)
"""Statements up to and including I: everything the bond path reads."""


@dataclass(frozen=True)
class _BondPath:
    """One bond path: statements producing yuma_B and yuma_D, and the sorted bond read-back
    (validator, miner, bond, bond_u16; bond_u16 = 0 is not stored)."""

    statements: tuple[str, ...]
    readback: str


_LEGACY_BOND_PATH = _BondPath((_LEGACY_BONDS, _LEGACY_DIVIDENDS), _LEGACY_BONDS_READBACK)
_YUMA3_LIQUID_BOND_PATH = _BondPath((_YUMA3_BONDS_LIQUID, _YUMA3_DIVIDENDS), _YUMA3_BONDS_READBACK)
_YUMA3_FIXED_BOND_PATH = _BondPath((_YUMA3_BONDS_FIXED, _YUMA3_DIVIDENDS), _YUMA3_BONDS_READBACK)


def _bond_path(params: YumaParams, liquid: bool) -> _BondPath:
    """The bond block for ``params``; ``liquid`` is ``_LIQUID_IS_ON`` (read only for Yuma3)."""
    if not params.yuma3:
        return _LEGACY_BOND_PATH
    return _YUMA3_LIQUID_BOND_PATH if liquid else _YUMA3_FIXED_BOND_PATH


def _liquid_is_on(cursor: duckdb.DuckDBPyConnection, params: YumaParams) -> bool:
    """``_LIQUID_IS_ON`` on a cursor where yuma_C exists (False without a query when it cannot
    apply)."""
    if not (params.yuma3 and params.liquid_alpha):
        return False
    row = cursor.execute(_LIQUID_IS_ON).fetchone()
    return bool(row is not None and row[0])


def _epoch_params_table(inputs: EpochInputs, params: YumaParams) -> pa.Table:
    row: dict[str, pa.Array] = {
        "n": pa.array([inputs.n_uids], pa.int64()),
        "current_block": pa.array([inputs.current_block], pa.int64()),
        "last_step_block": pa.array([inputs.last_step_block], pa.int64()),
        "tempo_blocks": pa.array([inputs.tempo_blocks], pa.int64()),
        "owner_uid": pa.array([inputs.owner_uid], pa.int32()),
        "activity_cutoff_blocks": pa.array([params.activity_cutoff_blocks], pa.int64()),
        "stake_threshold_rao": pa.array([params.stake_threshold_rao], pa.int64()),
        "max_validators": pa.array([params.max_validators], pa.int64()),
        "kappa_u16": pa.array([params.kappa_u16], pa.int64()),
        "bonds_penalty_u16": pa.array([params.bonds_penalty_u16], pa.int64()),
        "bonds_moving_average_ppm": pa.array([params.bonds_moving_average_ppm], pa.int64()),
        "liquid_alpha": pa.array([params.liquid_alpha], pa.bool_()),
        "alpha_low_u16": pa.array([params.alpha_low_u16], pa.int64()),
        "alpha_high_u16": pa.array([params.alpha_high_u16], pa.int64()),
        "alpha_sigmoid_steepness": pa.array([params.alpha_sigmoid_steepness], pa.int64()),
        "commit_reveal": pa.array([params.commit_reveal], pa.bool_()),
    }
    return pa.table(row)


def _neuron_table(inputs: EpochInputs, state: EpochState) -> pa.Table:
    return pa.table(
        {
            "uid": pa.array(np.arange(inputs.n_uids, dtype=np.int32)),
            "stake_rao": pa.array(inputs.stake_rao),
            "last_update_block": pa.array(inputs.last_update_block),
            "registered_block": pa.array(inputs.registered_block),
            "commit_block": pa.array(inputs.commit_blocks()),
            "permit_old": pa.array(state.validator_permit),
        }
    )


def _register_inputs(
    cursor: duckdb.DuckDBPyConnection, inputs: EpochInputs, params: YumaParams, state: EpochState
) -> None:
    """Register the epoch's inputs (zero copy) under the names the statements read."""
    cursor.register("epoch_params_in", _epoch_params_table(inputs, params))
    cursor.register("neuron_in", _neuron_table(inputs, state))
    cursor.register("weights_in", inputs.weights)
    cursor.register("bonds_in", state.bonds)


def _sorted_bonds(bonds: pa.Table) -> pa.Table:
    """``bonds`` in (validator, miner) order, as EpochState keeps them.

    The bond statements emit rows in yuma_W's order, which is the weights' order, so with weights
    sorted by (validator, miner) the rows arrive sorted and one O(N) pass confirms it (key =
    validator·2^32 + miner, strictly increasing); only otherwise is the table sorted.
    """
    if bonds.num_rows < 2:
        return bonds
    validator = bonds.column("validator").to_numpy().astype(np.int64)
    key = (validator << 32) | bonds.column("miner").to_numpy()
    if bool(np.all(key[1:] > key[:-1])):
        return bonds
    return bonds.sort_by([("validator", "ascending"), ("miner", "ascending")])


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


CONSENSUS_THREADS: Final = 1
"""DuckDB threads of an epoch: one, so float sums add in one order (see ``run_epoch``)."""


def run_epoch(
    inputs: EpochInputs,
    params: YumaParams,
    state: EpochState,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> tuple[EpochOutputs, EpochState]:
    """Run one Yuma epoch in DuckDB (legacy or Yuma3 bond path, per ``params.yuma3``).

    Returns the epoch's outputs and the state for the next epoch (new permits, stored u16 bonds).
    ``connection`` is used through a private cursor, so the caller's catalogue is left untouched;
    without one, a fresh in-memory database is used.

    Determinism: a float sum depends on the order its terms are added, and DuckDB's parallel
    aggregates add in the order threads finish (at 256 miners × 64 validators, 13 of 15 runs
    gave different last bits of dividends). The epoch therefore runs with
    ``CONSENSUS_THREADS`` (1) thread — set on the database it runs in, the caller's included —
    so the same inputs give the same bits every time: a retried epoch proposes the identical
    batch and ``taoflow replay`` compares consensus bit for bit.
    """
    state = state.for_uids(inputs.n_uids)
    owns_connection = connection is None
    database = duckdb.connect() if connection is None else connection
    cursor = database.cursor()
    try:
        cursor.execute(f"SET threads = {CONSENSUS_THREADS}")
        _register_inputs(cursor, inputs, params, state)
        for statement in _BEFORE_BONDS:
            cursor.execute(statement)
        bond_path = _bond_path(params, _liquid_is_on(cursor, params))
        for statement in bond_path.statements:
            cursor.execute(statement)
        vectors = cursor.sql(_OUTPUT_VECTORS).to_arrow_table()
        bonds = _sorted_bonds(cursor.sql(bond_path.readback).to_arrow_table())
    finally:
        cursor.close()  # drops the registered inputs and every yuma_* temp table
        if owns_connection:
            database.close()

    if vectors.num_rows != inputs.n_uids:
        raise RuntimeError(f"epoch SQL returned {vectors.num_rows} uids, expected {inputs.n_uids}")
    stored = bonds.filter(pc.greater(bonds.column("bond_u16"), 0))  # keeps the sorted order
    outputs = EpochOutputs(
        stake_weight=_column(vectors, "stake_weight"),
        active_stake=_column(vectors, "active_stake"),
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


__all__ = ["run_epoch"]
