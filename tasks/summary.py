"""Human summaries of an epoch: the flow run's name, one log line per stage, the Prefect markdown
artifact and table rows. Pure (text from values; nothing is read or written here).

Invariants:

* amounts are integer rao, shown as exact τ (:func:`tao`); no float ever carries money here;
* the best miner is the miner with the highest incentive, and only when that incentive is > 0:
  an epoch that pays miners nothing (the first one: no validator holds a permit yet, so no
  weight counts) names no best miner and says why;
* every list a summary prints is bounded (``ROWS_MAX``, ``TOP_MINERS_SHOWN``,
  ``REJECTED_SHOWN``), whatever the size of the subnet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from taoflow.ledger.schema import RAO_PER_TAO

if TYPE_CHECKING:
    from taoflow.ledger.payouts import Payouts
    from taoflow.ledger.store import CommitResult
    from taoflow.tasks.consensus.types import EpochOutputs
    from taoflow.tasks.evaluate.stage import EvaluationOutcome
    from taoflow.tasks.gather import EpochContext

ROWS_MAX: Final = 256
"""Rows of the metagraph table artifact."""
TOP_MINERS_SHOWN: Final = 10
REJECTED_SHOWN: Final = 20
"""Rejected submissions listed one by one (in the summary and in the run's log)."""
HOTKEY_CHARS_SHOWN: Final = 10
NO_MINER_PAID_FIRST_EPOCH: Final = (
    "no validator held a permit before the subnet's first epoch, so no weight counted and the "
    "miners' share went to the validators by stake"
)
NO_MINER_PAID: Final = (
    "no weight counted for any miner in consensus, so the miners' share went to the validators "
    "by stake"
)


def tao(amount_rao: int) -> str:
    """``amount_rao`` as exact τ: ``41.0``, ``24.600000004``, ``1,000.5`` (no rounding)."""
    sign = "-" if amount_rao < 0 else ""
    whole, rest = divmod(abs(amount_rao), RAO_PER_TAO)
    fraction = f"{rest:09d}".rstrip("0") or "0"
    return f"{sign}{whole:,}.{fraction}"


def epoch_run_name(subnet: str, epoch: int | None) -> str:
    """The flow run's name: ``digits · epoch 3`` (``digits · next epoch`` if not known)."""
    return f"{subnet} · epoch {epoch}" if epoch is not None else f"{subnet} · next epoch"


def artifact_key(subnet: str, suffix: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    clean = "".join(c if c.isalnum() else "-" for c in subnet.lower()).strip("-") or "subnet"
    return f"{clean}-{suffix}"


def table_rows(metagraph: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    keep = (
        "uid",
        "hotkey",
        "role",
        "stake_tao",
        "score",
        "validator_trust",
        "consensus",
        "incentive",
        "dividends",
        "emission_tao",
        "error",
    )
    return [{k: row.get(k) for k in keep} for row in list(metagraph)[:ROWS_MAX]]


# ---- one log line per stage ------------------------------------------------------------------


def gather_line(ctx: EpochContext) -> str:
    miners = [n for n in ctx.neurons if n.role == "miner"]
    submissions = sum(n.artifact_digest is not None for n in ctx.neurons)
    validators = [n for n in ctx.neurons if n.role == "validator"]
    hosted = sum(ctx.is_hosted_validator(n.uid) for n in validators)
    return (
        f"gather: {ctx.subnet} epoch {ctx.epoch} at block {ctx.block}: {submissions} submissions "
        f"from {len(miners)} miners, {len(validators)} validators ({hosted} hosted, "
        f"{len(ctx.external_weights)} external weight vectors), emission {tao(ctx.emission_rao)} τ"
    )


def evaluation_lines(evaluation: EvaluationOutcome) -> list[str]:
    """A headline (models scored / rejected, best score) and one line per rejected model."""
    errors = evaluation.errors
    scores = {uid: s for uid, s in evaluation.mean_scores().items() if uid not in errors}
    head = (
        f"evaluate: {len(scores) + len(errors)} models, {len(scores)} scored, "
        f"{len(errors)} rejected; {len(evaluation.scores)} hosted validators × "
        f"{evaluation.sample_size} samples each"
    )
    if scores:
        best_uid = max(scores, key=lambda uid: (scores[uid], -uid))
        head += f"; best score uid {best_uid} {scores[best_uid]:.4f}"
    lines = [head]
    for uid in sorted(errors)[:REJECTED_SHOWN]:
        lines.append(f"evaluate: uid {uid} rejected: {errors[uid]}")
    if len(errors) > REJECTED_SHOWN:
        lines.append(f"evaluate: … and {len(errors) - REJECTED_SHOWN} more rejected")
    return lines


def _top(values: Sequence[float]) -> int | None:
    """The uid with the largest positive value (lowest uid on ties), or ``None``."""
    best = max(range(len(values)), key=lambda uid: (values[uid], -uid), default=None)
    return best if best is not None and values[best] > 0 else None


def consensus_line(ctx: EpochContext, outputs: EpochOutputs) -> str:
    incentive = [float(v) for v in outputs.incentive]
    dividends = [float(v) for v in outputs.dividends]
    permits = [uid for uid, p in enumerate(outputs.validator_permit) if bool(p)]
    trust = [float(outputs.validator_trust[uid]) for uid in permits]
    top_incentive, top_dividends = _top(incentive), _top(dividends)
    if top_incentive is None:
        reason = NO_MINER_PAID_FIRST_EPOCH if len(ctx.previous.permits) == 0 else NO_MINER_PAID
        parts = [f"no miner earned incentive ({reason})"]
    else:
        parts = [
            f"top incentive uid {top_incentive} ({incentive[top_incentive]:.4f}, "
            f"consensus {float(outputs.consensus[top_incentive]):.4f})"
        ]
    if top_dividends is not None:
        parts.append(f"top dividends uid {top_dividends} ({dividends[top_dividends]:.4f})")
    mean_trust = sum(trust) / len(trust) if trust else 0.0
    parts.append(f"{len(permits)} validator permits, mean validator trust {mean_trust:.4f}")
    return "consensus: " + "; ".join(parts)


def commit_line(*, subnet: str, epoch: int, commit: CommitResult, payouts: Payouts) -> str:
    if commit.batch_hash is None:
        return f"commit: {subnet} epoch {epoch} was already committed; nothing new written"
    return (
        f"commit: {subnet} epoch {epoch} as ledger batch {commit.batch_no} {commit.batch_hash}: "
        f"emitted {tao(payouts.total_rao)} τ (owner {tao(payouts.owner_rao)} τ, incentive "
        f"{tao(sum(payouts.incentive_rao))} τ, dividends {tao(sum(payouts.dividends_rao))} τ)"
    )


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


def tracking_line(*, run_id: str | None, error: str | None, tracking_uri: str) -> str:
    """The MLflow run of the epoch (a link when MLflow is served over HTTP), or why it is queued."""
    uri = _without_credentials(tracking_uri)
    if run_id is None:
        return (
            "track: MLflow run queued, retried by the next epoch or `taoflow track reconcile` "
            f"({error})"
        )
    if uri.startswith(("http://", "https://")):
        return f"track: MLflow run {run_id}: {uri.rstrip('/')}/#/runs/{run_id}"
    return f"track: MLflow run {run_id} in {uri}"


# ---- the markdown artifact -------------------------------------------------------------------


def _score(row: Mapping[str, Any]) -> float:
    value = row.get("score")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def _rao(row: Mapping[str, Any]) -> int:
    value = row.get("emission_rao")
    return value if isinstance(value, int) else 0


def _incentive(row: Mapping[str, Any]) -> float:
    value = row.get("incentive")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def _short(hotkey: object) -> str:
    text = str(hotkey or "")
    return text if len(text) <= HOTKEY_CHARS_SHOWN else text[:HOTKEY_CHARS_SHOWN] + "…"


def ranked_miners(metagraph: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Miners by incentive, then score (both descending), then uid."""
    miners = [r for r in metagraph if r.get("role") == "miner"]
    return sorted(miners, key=lambda r: (-_incentive(r), -_score(r), int(r["uid"])))


def best_miner(metagraph: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The miner with the highest incentive, or ``None`` when no miner earned any."""
    ranked = ranked_miners(metagraph)
    return ranked[0] if ranked and _incentive(ranked[0]) > 0 else None


def _best_lines(
    metagraph: Sequence[Mapping[str, Any]], *, epoch: int, ranked: list[Mapping[str, Any]]
) -> list[str]:
    best = best_miner(metagraph)
    if best is not None:
        return [
            "## Best miner by incentive",
            "",
            f"uid {best['uid']} (`{_short(best.get('hotkey'))}`): incentive "
            f"{_incentive(best):.4f}, score {_score(best):.4f}, emission **{tao(_rao(best))} τ**",
        ]
    reason = NO_MINER_PAID_FIRST_EPOCH if epoch == 0 else NO_MINER_PAID
    lines = ["## No miner earned incentive this epoch", "", reason[0].upper() + reason[1:] + "."]
    scored = [r for r in ranked if r.get("score") is not None and not r.get("error")]
    if scored:
        top = max(scored, key=lambda r: (_score(r), -int(r["uid"])))
        lines.append(f"Best score: uid {top['uid']} ({_score(top):.4f}).")
    return lines


def _miner_table(ranked: list[Mapping[str, Any]]) -> list[str]:
    lines = [
        f"## Miners by incentive, then score ({min(len(ranked), TOP_MINERS_SHOWN)} of "
        f"{len(ranked)})",
        "",
        "| rank | uid | hotkey | incentive | score | emission τ |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for rank, row in enumerate(ranked[:TOP_MINERS_SHOWN], start=1):
        score = "rejected" if row.get("error") else f"{_score(row):.4f}"
        lines.append(
            f"| {rank} | {row['uid']} | `{_short(row.get('hotkey'))}` | {_incentive(row):.4f} "
            f"| {score} | {tao(_rao(row))} |"
        )
    return lines


def markdown_summary(
    *,
    subnet: str,
    epoch: int,
    block: int,
    emission_rao: int,
    batch_no: int | None,
    batch_hash: str | None,
    metagraph: Sequence[Mapping[str, Any]],
) -> str:
    ranked = ranked_miners(metagraph)
    miners_rao = sum(_rao(r) for r in ranked)
    validators_rao = sum(_rao(r) for r in metagraph if r.get("role") != "miner")
    owner_rao = emission_rao - miners_rao - validators_rao
    failed = [r for r in metagraph if r.get("error")]
    batch = f"ledger batch {batch_no} `{batch_hash}`" if batch_hash else "already committed"
    lines = [
        f"# {subnet} · epoch {epoch}",
        "",
        f"* block {block}, {batch}",
        f"* emission **{tao(emission_rao)} τ**: owner {tao(owner_rao)} τ, miners "
        f"{tao(miners_rao)} τ, validators {tao(validators_rao)} τ",
        f"* {len(ranked)} miners, {len(metagraph) - len(ranked)} validators, "
        f"{len(failed)} submissions rejected",
        "",
        *_best_lines(metagraph, epoch=epoch, ranked=ranked),
    ]
    if ranked:
        lines += ["", *_miner_table(ranked)]
    if failed:
        lines += ["", f"## Rejected submissions ({len(failed)})", ""]
        lines += [f"* uid {r['uid']}: {r['error']}" for r in failed[:REJECTED_SHOWN]]
        if len(failed) > REJECTED_SHOWN:
            lines.append(f"* … and {len(failed) - REJECTED_SHOWN} more")
    return "\n".join(lines) + "\n"
