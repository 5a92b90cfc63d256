"""The explorer web app: read-only pages over one home's ledger, each with a JSON twin.

Invariants:
- Only GET and HEAD are answered (anything else: 405 with ``Allow: GET, HEAD``); nothing
  under the home is written (``ExplorerData`` reads through the ledger's read API).
- Every query parameter is known, typed and bounded (``params``); a bad one is a 400 with one
  line (JSON ``{"error": …}`` under ``/api``, an HTML page otherwise); an unknown subnet,
  hotkey, epoch or transaction is a 404 the same way; a ledger file that fails its check (a
  damaged epoch record) is a 500 with that one line, never a traceback.
- Every string from the ledger is escaped by Jinja's autoescape; pages send a
  Content-Security-Policy that allows scripts, styles and images from this origin only (no
  inline script can run even if one got through), and load nothing from another host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from taoflow.dashboards.explorer import params, views
from taoflow.dashboards.explorer.data import ExplorerData, Verifier
from taoflow.dashboards.explorer.governance_pages import Backtests, governance, proposal_page
from taoflow.dashboards.explorer.ledger_pages import StatesAsOf, ledger_page, tx_page
from taoflow.dashboards.explorer.links import EpochLinks
from taoflow.dashboards.explorer.pages import Labels, NotFound, network
from taoflow.dashboards.explorer.subnet_pages import ExplainCache, neuron_page, subnet_page
from taoflow.ledger.errors import LedgerError

DEFAULT_PORT: Final = 8790
HERE: Final = Path(__file__).resolve().parent
ALLOWED_METHODS: Final = ("GET", "HEAD")
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class ExplorerConfig:
    """Where the explorer reads from and which UIs it links to (None: no links)."""

    home: Path
    prefect_ui_url: str | None = None
    mlflow_ui_url: str | None = None
    mlflow_tracking_uri: str | None = None


class Explorer:
    """What the routes share: the read model, the verifier, links, names and cached states."""

    def __init__(self, config: ExplorerConfig) -> None:
        from taoflow.names import account_labels
        from taoflow.settings import Settings

        self.config = config
        self.data = ExplorerData(config.home)
        self.labels = Labels(account_labels(Path(config.home) / "wallets"))
        self.backtests = Backtests(
            Settings(home=Path(config.home)).governance_backtests_dir, labels=self.labels.names
        )
        self.verifier = Verifier(self.data.home)
        self.links = EpochLinks(
            prefect_ui_url=config.prefect_ui_url,
            mlflow_ui_url=config.mlflow_ui_url,
            mlflow_tracking_uri=config.mlflow_tracking_uri,
        )
        self.links.warm_up(sorted(self.data.state().subnets))
        self.states = StatesAsOf()
        self.explained = ExplainCache(self.labels)
        import taoflow.tasks.audit.explain  # noqa: F401  (loaded now, not by the first visitor)

    def footer(self) -> dict[str, Any]:
        head = self.data.refresh()
        return {"head_batch": head.batches, "head_hash": head.head_hash, "epochs": head.epochs}

    def verify_status(self) -> dict[str, Any]:
        result = self.verifier.check(self.data.head())
        return {**result.__dict__, "running": self.verifier.running}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, templates: Jinja2Templates, status: int, message: str) -> Response:
    line = message.splitlines()[0] if message else "error"
    if _is_api(request):
        return JSONResponse({"error": line}, status_code=status)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": line, "footer": None},
        status_code=status,
    )


def create_app(config: ExplorerConfig) -> FastAPI:
    """The app over ``config.home`` (loads the ledger's history before returning)."""
    explorer = Explorer(config)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    views.install_filters(templates.env)
    app = FastAPI(title="taoflow explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.explorer = explorer
    for name in templates.env.list_templates():  # compiled now, not by the first visitor
        templates.env.get_template(name)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def read_only(request: Request, call_next: Any) -> Response:
        if request.method not in ALLOWED_METHODS:
            response: Response = JSONResponse(
                {"error": f"{request.method} not allowed: the explorer is read-only"},
                status_code=405,
                headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(params.BadParameter)
    async def bad_parameter(request: Request, exc: params.BadParameter) -> Response:
        return _error(request, templates, 400, str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, templates, 404, str(exc))

    @app.exception_handler(LedgerError)
    async def damaged(request: Request, exc: LedgerError) -> Response:
        # a damaged ledger file (e.g. an epoch record that fails its hash): one line, no trace
        return _error(request, templates, 500, f"the ledger is damaged: {exc}")

    @app.exception_handler(404)
    async def no_route(request: Request, exc: Exception) -> Response:
        return _error(request, templates, 404, f"no page at {request.url.path}")

    _routes(app, explorer, templates)
    return app


def _respond(
    request: Request,
    templates: Jinja2Templates,
    explorer: Explorer,
    *,
    template: str,
    page: dict[str, Any],
) -> Response:
    if _is_api(request):
        return JSONResponse(views.jsonable(page))
    context = views.context(template, page, explorer)
    context["footer"] = explorer.footer()
    return templates.TemplateResponse(request, template, context)


def _routes(app: FastAPI, explorer: Explorer, templates: Jinja2Templates) -> None:
    def get(*paths: str) -> Any:
        def register(handler: Any) -> Any:
            for path in paths:
                app.add_api_route(path, handler, methods=list(ALLOWED_METHODS))
            return handler

        return register

    @get("/", "/api/network")
    def network_route(request: Request) -> Response:
        params.only(request, ())
        explorer.data.refresh()
        page = network(explorer.data, explorer.labels, explorer.verify_status())
        return _respond(request, templates, explorer, template="network.html", page=page)

    @get("/subnet/{name}", "/api/subnet/{name}")
    def subnet_route(request: Request, name: str) -> Response:
        sort, descending = params.sort(request)
        explorer.data.refresh()
        page = subnet_page(explorer.data, name, explorer.labels, sort=sort, descending=descending)
        page["links"] = explorer.links.for_epoch(name, page["last_epoch"])
        return _respond(request, templates, explorer, template="subnet.html", page=page)

    @get("/subnet/{name}/neuron/{hotkey}", "/api/subnet/{name}/neuron/{hotkey}")
    def neuron_route(request: Request, name: str, hotkey: str) -> Response:
        epoch = params.epoch(request)
        explorer.data.refresh()
        page = neuron_page(
            explorer.data, name, hotkey, explorer.labels, epoch=epoch, explained=explorer.explained
        )
        page["links"] = explorer.links.for_epoch(name, page["explain_epoch"])
        return _respond(request, templates, explorer, template="neuron.html", page=page)

    @get("/ledger", "/api/ledger")
    def ledger_route(request: Request) -> Response:
        query = params.ledger_query(request, labels=explorer.labels)
        explorer.data.refresh()
        page = ledger_page(explorer.data, query, explorer.labels, explorer.states)
        return _respond(request, templates, explorer, template="ledger.html", page=page)

    @get("/ledger/tx/{tx_id:path}", "/api/ledger/tx/{tx_id:path}")
    def tx_route(request: Request, tx_id: str) -> Response:
        params.only(request, ())
        params.check_tx_id(tx_id)
        explorer.data.refresh()
        page = tx_page(explorer.data, tx_id, explorer.labels)
        if page.get("subnet") and page.get("epoch") is not None:
            page["links"] = explorer.links.for_epoch(page["subnet"], page["epoch"])
        return _respond(request, templates, explorer, template="tx.html", page=page)

    @get("/governance", "/api/governance")
    def governance_route(request: Request) -> Response:
        params.only(request, ())
        explorer.data.refresh()
        page = governance(explorer.data, explorer.labels, explorer.backtests)
        for proposal in page["proposals"]:
            _backtest_links(explorer, proposal)
        return _respond(request, templates, explorer, template="governance.html", page=page)

    @get("/governance/proposal/{proposal_id:path}", "/api/governance/proposal/{proposal_id:path}")
    def proposal_route(request: Request, proposal_id: str) -> Response:
        params.only(request, ())
        params.check_tx_id(proposal_id)
        explorer.data.refresh()
        page = proposal_page(explorer.data, proposal_id, explorer.labels, explorer.backtests)
        _backtest_links(explorer, page["proposal"])
        return _respond(request, templates, explorer, template="proposal.html", page=page)


def _backtest_links(explorer: Explorer, proposal: dict[str, Any]) -> None:
    """The MLflow link of ``proposal``'s backtest run, when the background lookup found one."""
    backtest = proposal.get("backtest")
    if backtest and proposal["changes"]:
        subnet = proposal["changes"][0]["subnet"]
        backtest["links"] = explorer.links.for_backtest(subnet, backtest["sha256"])


def serve(config: ExplorerConfig, *, host: str, port: int) -> None:
    """Serve the explorer until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)
