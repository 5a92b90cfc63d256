"""Where an epoch's log lines go: Prefect's run logs (the UI's Logs tab), not the terminal.

Invariants:

* Dask's loggers (``distributed``) pass WARNING and up only, in this process (the scheduler and
  nannies of a ``LocalCluster`` live here) and in any later import of ``distributed`` (dask config
  ``logging.distributed``, read once at that import): the scheduler's start-up, client
  connections, cancelled keys and the comm a closed client leaves behind are not printed.
  A lower level chosen by nobody is raised; a higher one (ERROR…) is kept. One WARNING is
  dropped too: a nanny of this process saying it killed a worker that did not stop within its
  close timeout (``Worker process still alive after …, killing``), which is how closing a
  cluster of our own on a busy machine ends (the epoch's results are in by then).
* Prefect's run loggers (``prefect.flow_runs``, ``prefect.task_runs``) pass INFO, so a run's
  lines reach the Prefect API; Prefect's console handler prints a run line only at or above the
  ``prefect`` logger's level (``PREFECT_LOGGING_LEVEL``, WARNING unless the user chose another).
* Both setters are idempotent; :func:`run_logger` never raises (outside a Prefect run it is the
  plain ``taoflow.epoch`` logger).

Imports only ``logging`` at module level; ``dask`` and ``prefect`` are imported when called.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

DASK_LOG_LEVEL: Final = logging.WARNING
RUN_LOG_LEVEL: Final = logging.INFO
DASK_LOGGER: Final = "distributed"
NANNY_LOGGER: Final = "distributed.nanny"
EXPECTED_AT_CLOSE: Final = ("Worker process still alive after",)
"""Starts of the nanny messages that closing a local cluster prints as WARNING, by design."""
RUN_LOGGERS: Final = ("prefect.flow_runs", "prefect.task_runs")
PREFECT_LOGGER: Final = "prefect"
FALLBACK_LOGGER: Final = "taoflow.epoch"

RunLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class _ExpectedAtClose(logging.Filter):
    """Drops the nanny's report of a worker killed at close (see the module's invariants)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(EXPECTED_AT_CLOSE)


def quiet_dask() -> None:
    """Dask's loggers at WARNING in this process (see the module's invariants)."""
    if DASK_LOGGER not in sys.modules:
        import dask.config

        dask.config.set({f"logging.{DASK_LOGGER}": logging.getLevelName(DASK_LOG_LEVEL).lower()})
    logger = logging.getLogger(DASK_LOGGER)
    if logger.getEffectiveLevel() < DASK_LOG_LEVEL:
        logger.setLevel(DASK_LOG_LEVEL)
    nanny = logging.getLogger(NANNY_LOGGER)
    if not any(isinstance(f, _ExpectedAtClose) for f in nanny.filters):
        nanny.addFilter(_ExpectedAtClose())


class _ConsoleRunFilter(logging.Filter):
    """Drops run-logger records below the ``prefect`` logger's level from the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in RUN_LOGGERS:
            return True
        return record.levelno >= logging.getLogger(PREFECT_LOGGER).getEffectiveLevel()


def route_run_logs() -> None:
    """Run loggers pass INFO to the Prefect API; the console stays at Prefect's level."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > RUN_LOG_LEVEL:
            logger.setLevel(RUN_LOG_LEVEL)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, _ConsoleRunFilter) for f in handler.filters
        ):
            handler.addFilter(_ConsoleRunFilter())


def run_logger() -> RunLogger:
    """The current Prefect run's logger, or ``taoflow.epoch`` outside a run."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(FALLBACK_LOGGER)
