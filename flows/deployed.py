"""The flows as Prefect deployments run them: the home is never a run parameter.

``epoch``'s only run parameter is the subnet; ``replay`` takes the subnet, the epoch range and
the stage to start from (the audit flows ``explain``, ``whatif`` and ``audit`` read the bound
home themselves and are deployed as they are).

Invariants:
- The home and the Dask scheduler are bound by the process that serves the deployment
  (``taoflow serve`` exports ``TAOFLOW_HOME`` and, when it has one, ``TAOFLOW_DASK_ADDRESS``;
  the runs it spawns inherit them). They are never run parameters, so no form or API call can
  point a run at another directory: Prefect refuses a run whose parameters name anything but the
  subnet (the deployment enforces the schema below, and the flow's signature has nothing else).
- A bound home that holds no network, or a subnet the network does not have, fails the run with
  one line before anything is written.
- Everything that changes an epoch's result (evaluation sample, validator policy, consensus
  parameters, tempo) is a subnet setting in the ledger, not a run parameter.
"""

from __future__ import annotations

import os
from typing import Literal

from prefect import flow
from prefect.runtime import flow_run

from taoflow.flows.epoch import EpochResult, epoch_flow, next_epoch
from taoflow.flows.parameters import EpochNumber, SubnetName
from taoflow.flows.replay import replay, replay_run_name
from taoflow.ledger.store import Ledger
from taoflow.settings import HOME_ENV, Settings, require_network
from taoflow.tasks.audit.replay import ReplayReport
from taoflow.tasks.summary import epoch_run_name


class NoBoundHome(LookupError):
    """The process running a deployed epoch was not started for a home."""


def bound_settings(subnet: str) -> Settings:
    """The serving process's settings, checked: its home holds a network with ``subnet``.

    Raises ``NoBoundHome``, ``NoNetwork`` or ``LookupError`` (one line each); writes nothing.
    """
    home = os.environ.get(HOME_ENV)
    if not home:
        raise NoBoundHome(f"no home bound ({HOME_ENV} unset): serve with `taoflow serve --home`")
    settings = Settings.load(home)
    require_network(settings)
    if subnet not in Ledger.shared(settings.ledger_dir).state().subnets:
        raise LookupError(f"no subnet {subnet!r} in {settings.home}")
    return settings


def deployed_run_name() -> str:
    """``<subnet> · epoch <n>`` for the run starting now, read from the bound home."""
    subnet = str(flow_run.parameters.get("subnet", "digits"))
    home = os.environ.get(HOME_ENV)
    try:
        epoch = next_epoch(subnet=subnet, home=home) if home else None
    except Exception:  # a name must never fail the run: bound_settings reports the reason
        epoch = None
    return epoch_run_name(subnet, epoch)


@flow(name="epoch", flow_run_name=deployed_run_name, log_prints=False, persist_result=False)
def deployed_epoch_flow(subnet: SubnetName = "digits") -> EpochResult:
    """Run the next epoch of a subnet of the network this deployment serves.

    Args:
        subnet: The subnet whose next epoch runs (1-64 characters from A-Z a-z 0-9 _ -). The
            network's home is fixed by the process serving this deployment; everything that
            changes the epoch's result is a subnet setting in the ledger.
    """
    settings = bound_settings(subnet)
    return epoch_flow.fn(subnet=subnet, home=str(settings.home), dask_address=settings.dask_address)


@flow(name="replay", flow_run_name=replay_run_name, log_prints=False, persist_result=False)
def deployed_replay_flow(
    subnet: SubnetName = "digits",
    first: EpochNumber = 0,
    last: EpochNumber = 0,
    stage: Literal["evaluate", "consensus", "emit"] = "evaluate",
) -> list[ReplayReport]:
    """Replay committed epochs of a subnet from their stored inputs and compare with the ledger.

    Args:
        subnet: The subnet whose epochs are replayed (1-64 characters from A-Z a-z 0-9 _ -).
        first: The first epoch of the range.
        last: The last epoch of the range (inclusive).
        stage: Where the replay starts: evaluate (re-fetch and re-score every artifact),
            consensus (from the stored scores) or emit (from the stored consensus shares).
    """
    settings = bound_settings(subnet)
    return replay.fn(
        subnet=subnet,
        first=first,
        last=last,
        home=str(settings.home),
        dask_address=settings.dask_address,
        stage=stage,
    )
