"""Fixtures of the real-browser tests: Chromium, the explorer server, a watched page.

See ``browser_harness`` for the invariants (a copy of the demo network, one server and one
browser per module, bounded waits, skip-or-fail when Chromium or Playwright is missing).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser_harness import (
    CHROMIUM_ARGS,
    CHROMIUM_ENV,
    MLFLOW_UI_URL,
    PAGE_TIMEOUT_MS,
    PREFECT_UI_URL,
    VIEWPORT,
    WATCHES,
    Explorer,
    add_hostile_proposal,
    serve,
    unavailable,
    watch,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the Chromium to drive; skips (or fails under CI) when it or Playwright is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (pip install 'playwright>=1.45')")
    found = (
        os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found or not Path(found).exists():
        unavailable(f"no chromium executable (install Debian's chromium or set ${CHROMIUM_ENV})")
    return str(found)


@pytest.fixture(scope="module")
def explorer(
    chromium_executable: str, demo_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Explorer]:
    """The explorer app served on 127.0.0.1 over a copy of the demo network (+ one proposal)."""
    from taoflow.dashboards.explorer.app import ExplorerConfig, create_app

    home = tmp_path_factory.mktemp("explorer") / "home"
    shutil.copytree(demo_home, home)
    proposal_tx_id = add_hostile_proposal(home)
    config = ExplorerConfig(
        home=home,
        prefect_ui_url=PREFECT_UI_URL,
        mlflow_ui_url=MLFLOW_UI_URL,
        mlflow_tracking_uri=None,
    )
    with serve(create_app(config)) as base_url:
        yield Explorer(base_url, home, proposal_tx_id)


@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Browser]:
    """One headless Chromium per module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_executable, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, explorer: Explorer) -> Iterator[Page]:
    """A fresh context and page (1280×900), watched for errors (see ``assert_clean``)."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    opened = context.new_page()
    watch(opened, explorer.base_url)
    try:
        yield opened
    finally:
        WATCHES.pop(id(opened), None)
        context.close()
