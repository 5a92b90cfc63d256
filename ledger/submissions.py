"""Submission rules: binding an artifact to its submitter, quotas, evaluation delay.

Invariants:
- A commit binds the artifact to the hotkey: ``binding = sha256(digest ‖ hotkey)``; a copied
  commit under another hotkey has a different binding, and the ledger refuses a mismatch.
- At most ``per_epoch_max`` commits per hotkey between two epochs of the subnet.
- A commit is eligible for evaluation from block ``commit_block + evaluation_delay_blocks``;
  the newest eligible commit of a hotkey is the one evaluated. History is bounded
  (``HISTORY_MAX`` commits per hotkey).
- A commit of the digest that is already the hotkey's newest commit is refused (the ledger says
  at which block it was committed); an older digest may be committed again (a way back).
- ``evaluated_commit`` names the one commit an epoch evaluated: never a commit made after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from taoflow.ledger.config import SubnetConfig

HISTORY_MAX = 8


def submission_binding(*, digest: str, hotkey: str) -> str:
    return hashlib.sha256(f"taoflow-binding|{digest}|{hotkey}".encode()).hexdigest()


@dataclass(frozen=True)
class SubmissionPolicy:
    evaluation_delay_blocks: int = 0
    per_epoch_max: int = 2

    @classmethod
    def from_config(cls, config: SubnetConfig) -> SubmissionPolicy:
        """The policy of a subnet's validated config."""
        return cls(
            evaluation_delay_blocks=config.evaluation_delay_blocks,
            per_epoch_max=config.submissions_per_epoch_max,
        )


@dataclass(frozen=True)
class SubmissionCommit:
    """A miner's commitment to an artifact, by content digest."""

    subnet: str
    hotkey: str
    digest: str
    uri: str
    block: int
    tx_id: str


def eligible(
    history: Sequence[SubmissionCommit], *, current_block: int, delay_blocks: int
) -> SubmissionCommit | None:
    """The newest commit whose evaluation delay has passed at ``current_block``."""
    ready = [c for c in history if c.block + delay_blocks <= current_block]
    return ready[-1] if ready else None


def evaluated_commit(
    history: Sequence[SubmissionCommit], *, epoch_block: int, delay_blocks: int, digest: str
) -> SubmissionCommit | None:
    """The commit of ``history`` that the epoch at ``epoch_block`` evaluated as ``digest``.

    The ledger's block moves only with epoch entries, so a commit made after the epoch carries
    the epoch's block and one made before it an earlier block; only when another subnet's
    epoch had the same block can a commit at exactly ``epoch_block`` precede this epoch, so
    such a commit is taken only when no earlier commit explains ``digest``.
    """
    ready = [c for c in history if c.block + delay_blocks <= epoch_block]
    earlier = [c for c in ready if c.block < epoch_block]
    if earlier and earlier[-1].digest == digest:
        return earlier[-1]
    return next((c for c in ready if c.block == epoch_block and c.digest == digest), None)
