"""Real-browser harness for the explorer: Debian's Chromium driven by Playwright for Python.

Invariants:
- The demo network is never touched in place: each module works on a copy of ``demo_home``
  (under ``tmp_path_factory``) that also holds one governance proposal with a hostile title.
- One explorer server per module (uvicorn in a daemon thread, 127.0.0.1, a port the OS chose)
  and one browser per module; every test gets a fresh browser context.
- Every wait is bounded by a named constant; a server that does not start fails the module.
- Without Chromium or Playwright the tests skip with the reason, unless
  ``TAOFLOW_BROWSER_TESTS=required`` (CI), where they fail instead.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Request, Response

REQUIRED_ENV = "TAOFLOW_BROWSER_TESTS"
CHROMIUM_ENV = "TAOFLOW_CHROMIUM"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu")
SERVER_HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 30.0
SERVER_POLL_S = 0.05
SERVER_STOP_TIMEOUT_S = 10.0
PAGE_TIMEOUT_MS = 15_000
VIEWPORT = {"width": 1280, "height": 900}
PREFECT_UI_URL = "http://127.0.0.1:4200"
MLFLOW_UI_URL = "http://127.0.0.1:5000"
XSS_TITLE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
"""A proposal title that runs script if any page renders it as markup."""


@dataclass(frozen=True)
class Explorer:
    """A running explorer over a private copy of the demo network."""

    base_url: str
    home: Path
    proposal_tx_id: str


@dataclass
class Watch:
    """What went wrong while a page was open (console errors, page errors, failed requests)."""

    base_url: str
    problems: list[str] = dataclasses.field(default_factory=list)


WATCHES: dict[int, Watch] = {}


def _required() -> bool:
    return os.environ.get(REQUIRED_ENV, "") == "required"


def unavailable(reason: str) -> NoReturn:
    if _required():
        pytest.fail(f"{reason} ({REQUIRED_ENV}=required)")
    pytest.skip(reason)


def add_hostile_proposal(home: Path) -> str:
    """Commit, as the demo owner (funded), a ``signal`` proposal whose title is ``XSS_TITLE``,
    with the network's minimum deposit and shortest voting period; its tx id."""
    from taoflow.actions import commit_signed, new_tx_id
    from taoflow.ledger.schema import Kind, Tx, canonical_json
    from taoflow.ledger.store import Ledger
    from taoflow.settings import Settings
    from taoflow.wallet import DEMO_PASSPHRASE, unlock_coldkey

    settings = Settings(home=home)
    params = Ledger(settings.ledger_dir).state().governance
    owner = unlock_coldkey(settings.wallets_dir, name="owner", passphrase=DEMO_PASSPHRASE)
    payload = {
        "kind": "signal",
        "title": XSS_TITLE,
        "deposit_rao": params.deposit_min_rao,
        "voting_blocks": params.voting_blocks_min,
    }
    tx = Tx(
        new_tx_id(Kind.PROPOSAL),
        Kind.PROPOSAL,
        coldkey=owner.public_hex,
        amount_rao=params.deposit_min_rao,
        payload=canonical_json(payload),
    )
    commit_signed(settings, tx, owner)
    return tx.tx_id


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((SERVER_HOST, 0))
    return sock


@contextmanager
def serve(app: object) -> Iterator[str]:
    """Serve the ASGI ``app`` on 127.0.0.1 in a daemon thread; yields its base URL."""
    import uvicorn

    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host=SERVER_HOST, port=port, log_level="warning")  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(SERVER_POLL_S)
    try:
        if not server.started:
            pytest.fail(f"the explorer did not start within {SERVER_START_TIMEOUT_S:.0f} s")
        yield f"http://{SERVER_HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(SERVER_STOP_TIMEOUT_S)
        sock.close()


def watch(page: Page, base_url: str) -> Watch:
    """Record console errors, page errors and failed or off-origin requests of ``page``."""
    seen = Watch(base_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.problems.append(f"console error: {message.text}")

    def on_request(request: Request) -> None:
        if not request.url.startswith((base_url + "/", "data:", "about:")):
            seen.problems.append(f"request outside the explorer: {request.url}")

    def on_failed(request: Request) -> None:
        seen.problems.append(f"request failed: {request.url} ({request.failure})")

    def on_response(response: Response) -> None:
        document = response.request.resource_type == "document"
        if response.status >= 400 and response.url.startswith(base_url) and not document:
            seen.problems.append(f"HTTP {response.status} for {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    WATCHES[id(page)] = seen
    return seen


def assert_clean(page: Page) -> None:
    """No console error, page error, failed request or off-origin request happened on ``page``."""
    seen = WATCHES[id(page)]
    assert seen.problems == [], "\n".join(seen.problems)
