"""The ``explain`` flow: one reward explained (``tasks.audit.explain``) as a Prefect artifact.

Run from the Prefect UI (or ``explain_flow(subnet=…, hotkey=…, epoch=…)``) it publishes the same
content as ``taoflow explain`` as a markdown artifact under the key ``explain-<subnet>-<uid>``
(``tasks.summary.artifact_key``: lowercase letters, digits, dashes), and returns the
explanation's JSON content. The subnet may be left out when the hotkey is on exactly one.

Invariants: the flow only orders steps and is read-only on the ledger. The home is the one the
serving process is bound to (``TAOFLOW_HOME``, as for the deployed epoch flow; the default home
when unset), never a run parameter. A hotkey may be an id, ``wallet/hotkey`` or a wallet name
(``tasks.audit.explain.hotkeys_named``); an unknown hotkey, subnet or epoch fails the run with
one line and publishes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prefect import flow

from taoflow.ledger.store import Ledger
from taoflow.names import account_labels
from taoflow.settings import HOME_ENV, Settings, require_network
from taoflow.tasks.audit.explain import Explanation, choose_hotkey, explain, hotkeys_named
from taoflow.tasks.summary import artifact_key

Publish = Callable[..., Any]


def explanation_of(
    settings: Settings, *, subnet: str | None, hotkey: str, epoch: int
) -> Explanation:
    """``hotkey``'s reward in ``subnet``'s ``epoch`` on the network at ``settings``."""
    require_network(settings)
    labels = account_labels(settings.wallets_dir)
    ledger = Ledger.open(settings.ledger_dir)
    candidates = hotkeys_named(hotkey, labels)
    chosen_subnet, chosen = choose_hotkey(ledger.state(), candidates, subnet=subnet, given=hotkey)
    return explain(ledger, subnet=chosen_subnet, hotkey=chosen, epoch=epoch, labels=labels)


def explain_key(explanation: Explanation) -> str:
    """The artifact key: ``explain-<subnet>-<uid>`` (one artifact per neuron, newest on top)."""
    return f"explain-{artifact_key(explanation.subnet, str(explanation.uid))}"


def publish(explanation: Explanation, *, create: Publish) -> None:
    """The explanation's markdown as an artifact (``create``: ``create_markdown_artifact``)."""
    create(
        markdown=explanation.to_markdown(),
        key=explain_key(explanation),
        description=(
            f"{explanation.subnet} epoch {explanation.epoch}: uid {explanation.uid} "
            f"({explanation.hotkey.name}) from artifact to reward"
        ),
    )


@flow(name="explain", flow_run_name="explain · epoch {epoch}")
def explain_flow(hotkey: str, epoch: int, subnet: str | None = None) -> dict[str, Any]:
    """Explain one neuron's reward in one committed epoch: the submission evaluated, each
    validator's score and weight, consensus clipping, incentive or dividends, the ledger rows."""
    from prefect.artifacts import create_markdown_artifact

    settings = Settings.load(os.environ.get(HOME_ENV))
    explanation = explanation_of(settings, subnet=subnet, hotkey=hotkey, epoch=epoch)
    publish(explanation, create=create_markdown_artifact)
    return explanation.to_dict()
