"""Remote artifact stores: any fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``file:///…``).

The local content-addressed store (``tasks.artifact_store``) stays the evaluation cache; a remote
store is where miners publish and where validators fetch from.

Invariants / fault model:

* an artifact lives at ``<url>/<digest[:2]>/<digest>/{model.safetensors, config.json}``; it is
  uploaded to temporary names and moved into place; a fetched artifact is accepted only if its
  content hashes to the digest committed on the ledger -- a store cannot substitute other bytes.
  Nothing is deserialised here.
* the ``uri`` in a submission commit is chosen by the miner, so it is never trusted: a validator
  fetches only ``artifact_url(store, digest)`` for a store in its :class:`FetchPolicy` (the
  network's configured stores).  Any other uri -- another scheme, host, prefix, path, a query,
  ``..`` -- is refused before any connection is made.  HTTP(S) hosts are resolved once and
  every address is checked (loopback, private, link-local, multicast, reserved and unspecified
  addresses are refused unless the policy allows private stores); the connection goes to the
  checked address (no second resolution) and redirects are not followed.
* every fetch is bounded: connect and read timeouts per socket operation, ``bytes_max`` per
  file, and ``model_deadline_s`` for the whole fetch of one model (a watchdog shuts the socket
  down at the deadline, so a server trickling one byte per second cannot hold it longer; a
  backend that ignores that is abandoned on a daemon thread).  At most ``FETCH_PARALLEL_MAX``
  fetches run at once, so ``k`` stalling servers delay the others by at most
  ``ceil(k / FETCH_PARALLEL_MAX) * model_deadline_s``; a model not fetched in time gets the
  reason ``artifact not fetched within N s`` and the epoch goes on.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import math
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import fsspec

from taoflow.tasks.artifact_store import CONFIG_FILE, MODEL_FILE, StoredArtifact, locate, store
from taoflow.tasks.errors import StageError
from taoflow.tasks.models.artifacts import artifact_digest

FETCH_BYTES_MAX: Final = 64 * 1024 * 1024
CONNECT_TIMEOUT_S_DEFAULT: Final = 5.0
READ_TIMEOUT_S_DEFAULT: Final = 10.0
MODEL_DEADLINE_S_DEFAULT: Final = 60.0
FETCH_PARALLEL_MAX: Final = 8
"""Fetches in flight at once (I/O bound; a tarpit holds one slot for at most one deadline)."""
READ_CHUNK_BYTES: Final = 64 * 1024
DEADLINE_SLACK_S: Final = 0.05
"""A socket timeout this close to the model's deadline is the deadline."""
URI_SHOWN_CHARS_MAX: Final = 200
URL_SCHEME_SEPARATOR: Final = "://"
LOCAL_URI_SCHEME: Final = "artifact://"
STORE_SCHEMES: Final = frozenset({"file", "memory", "http", "https", "s3", "gs", "gcs", "az"})
"""Schemes a configured store may use; only HTTP(S) hosts are network addresses we resolve."""
HTTP_SCHEMES: Final = frozenset({"http", "https"})
HTTP_OK: Final = 200


class RemoteArtifactError(StageError):
    """A remote artifact could not be published or fetched; the message says why."""


class FetchDeadline(RemoteArtifactError):
    """The fetch of one model ran into its deadline."""


def shown(uri: str) -> str:
    """``uri`` as safe to print in one line: ASCII escapes, bounded length."""
    text = ascii(uri)[1:-1]
    return text if len(text) <= URI_SHOWN_CHARS_MAX else text[:URI_SHOWN_CHARS_MAX] + "…"


def _store_key(url: str, *, keep_query: bool = False) -> str:
    """A URL without its trailing slash, scheme and host lower-cased (for comparison); with
    ``keep_query`` a query or fragment stays in (so that it can never compare equal)."""
    parts = urlsplit(url.strip())
    key = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}".rstrip("/")
    if keep_query and ("?" in url or "#" in url):
        key += f"?{parts.query}#{parts.fragment}"
    return key


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


@dataclass(frozen=True)
class FetchPolicy:
    """Where validators may fetch artifacts from, and how long and how much they wait for.

    ``store_urls`` are the network's configured remote stores (fsspec URLs); with none, only the
    local content-addressed store is used and every remote uri is refused.
    """

    store_urls: tuple[str, ...] = ()
    allow_private: bool = False
    connect_timeout_s: float = CONNECT_TIMEOUT_S_DEFAULT
    read_timeout_s: float = READ_TIMEOUT_S_DEFAULT
    bytes_max: int = FETCH_BYTES_MAX
    model_deadline_s: float = MODEL_DEADLINE_S_DEFAULT

    def __post_init__(self) -> None:
        for url in self.store_urls:
            parts = urlsplit(url.strip())
            if parts.scheme.lower() not in STORE_SCHEMES:
                raise ValueError(
                    f"artifact store {shown(url)}: scheme must be one of {sorted(STORE_SCHEMES)}"
                )
            if parts.query or parts.fragment or "@" in parts.netloc:
                raise ValueError(f"artifact store {shown(url)}: no query, fragment or user info")
        _positive("connect_timeout_s", self.connect_timeout_s)
        _positive("read_timeout_s", self.read_timeout_s)
        _positive("model_deadline_s", self.model_deadline_s)
        if self.bytes_max < 1:
            raise ValueError(f"bytes_max must be >= 1, got {self.bytes_max}")

    @property
    def allowed_schemes(self) -> frozenset[str]:
        return frozenset(_store_key(url).split(URL_SCHEME_SEPARATOR)[0] for url in self.store_urls)

    @property
    def allowed_prefixes(self) -> tuple[str, ...]:
        return tuple(_store_key(url) for url in self.store_urls)

    def refusal(self, uri: str, *, digest: str) -> str | None:
        """Why ``uri`` may not be fetched for ``digest`` (``None``: it may)."""
        try:
            self.location(uri, digest=digest)
        except RemoteArtifactError as exc:
            return str(exc)
        return None

    def location(self, uri: str, *, digest: str) -> str:
        """The URL to fetch for ``uri``: ``artifact_url(store, digest)`` built from the
        configured store URL (never the miner's spelling of it).

        ``uri`` must be exactly that URL (scheme and host compared case-insensitively, a query,
        fragment or any other path refused); else :class:`RemoteArtifactError` says why.
        """
        not_allowed = f"artifact uri not in the network's allowed stores: {shown(uri)}"
        if any(ord(char) < 0x21 or ord(char) > 0x7E for char in uri):
            raise RemoteArtifactError(not_allowed)
        try:
            key = _store_key(uri, keep_query=True)
        except ValueError:
            raise RemoteArtifactError(not_allowed) from None
        for url in self.store_urls:
            prefix = _store_key(url)
            if key == artifact_url(prefix, digest):
                return artifact_url(url.strip(), digest)
            if key.startswith(prefix + "/"):
                raise RemoteArtifactError(
                    f"artifact uri does not name the committed digest in its store: {shown(uri)}"
                )
        raise RemoteArtifactError(not_allowed)


def artifact_url(store_url: str, digest: str) -> str:
    return f"{store_url.rstrip('/')}/{digest[:2]}/{digest}"


def is_remote_uri(uri: str | None) -> bool:
    return (
        bool(uri) and URL_SCHEME_SEPARATOR in str(uri) and not str(uri).startswith(LOCAL_URI_SCHEME)
    )


def publish(store_url: str, *, model_bytes: bytes, config_bytes: bytes) -> str:
    """Upload an artifact by content; return its URL (the uri committed to the ledger)."""
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    base = artifact_url(store_url, digest)
    try:
        fs, root = fsspec.core.url_to_fs(base)
        fs.makedirs(root, exist_ok=True)
        for name, data in ((MODEL_FILE, model_bytes), (CONFIG_FILE, config_bytes)):
            final = f"{root}/{name}"
            if fs.exists(final):
                continue
            tmp = f"{root}/.{name}.{secrets.token_hex(6)}.tmp"
            with fs.open(tmp, "wb") as handle:
                handle.write(data)
            fs.mv(tmp, final)
    except (OSError, ValueError, ImportError) as exc:
        raise RemoteArtifactError(f"cannot publish to {store_url}: {exc}") from exc
    return base


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Not globally routable covers loopback, private, link-local, shared (CGNAT), reserved,
    # documentation and unspecified ranges.
    return not ip.is_global or ip.is_multicast


def resolve_checked(host: str, port: int, *, allow_private: bool) -> tuple[str, int]:
    """The address to connect to for ``host``: every resolved address must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise RemoteArtifactError(f"cannot resolve {shown(host)}: {exc}") from None
    if not infos:
        raise RemoteArtifactError(f"cannot resolve {shown(host)}")
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if _refused_address(address):
                raise RemoteArtifactError(
                    f"artifact store host {shown(host)} resolves to a private or local address "
                    f"{address} (allow it with TAOFLOW_ALLOW_PRIVATE_STORES=1)"
                )
    return addresses[0], port


class _Watchdog:
    """Shuts a socket down at a deadline, so no read can outlive it."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(deadline_s - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        self._sockets.append(sock)
        if self.fired:
            self._fire()

    def _fire(self) -> None:
        self.fired = True
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()

    def remaining_s(self, cap_s: float) -> float:
        left_s = self.deadline_s - time.monotonic()
        if left_s <= 0 or self.fired:
            raise FetchDeadline("deadline")
        return min(cap_s, left_s)


def _http_connection(
    url: str, *, policy: FetchPolicy, watchdog: _Watchdog
) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_checked(host, port, allow_private=policy.allow_private)
    sock = socket.create_connection(address, timeout=watchdog.remaining_s(policy.connect_timeout_s))
    watchdog.watch(sock)
    if parts.scheme == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        watchdog.watch(sock)
    conn_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_class(host, port)
    conn.sock = sock  # connected to the checked address; ``connect`` is never called
    return conn, parts.path or "/"


def _http_get(url: str, *, policy: FetchPolicy, watchdog: _Watchdog) -> bytes:
    """GET ``url`` (no redirects), at most ``policy.bytes_max`` bytes, within the watchdog."""
    conn, path = _http_connection(url, policy=policy, watchdog=watchdog)
    sock = conn.sock  # ours: ``http.client`` drops its reference once the response is read
    try:
        assert sock is not None
        sock.settimeout(watchdog.remaining_s(policy.read_timeout_s))
        conn.request("GET", path, headers={"Accept-Encoding": "identity"})
        response = conn.getresponse()
        if response.status != HTTP_OK:
            raise RemoteArtifactError(
                f"{shown(url)} answered HTTP {response.status} (redirects are not followed)"
            )
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > policy.bytes_max:
            raise RemoteArtifactError(f"{shown(url)} is larger than {policy.bytes_max:,} bytes")
        chunks: list[bytes] = []
        total_bytes = 0
        while total_bytes <= policy.bytes_max:
            sock.settimeout(watchdog.remaining_s(policy.read_timeout_s))
            chunk = response.read1(READ_CHUNK_BYTES)
            if not chunk:
                break
            chunks.append(chunk)
            total_bytes += len(chunk)
        if total_bytes > policy.bytes_max:
            raise RemoteArtifactError(f"{shown(url)} is larger than {policy.bytes_max:,} bytes")
        return b"".join(chunks)
    finally:
        conn.close()


def _fsspec_get(url: str, *, policy: FetchPolicy) -> bytes:
    fs, path = fsspec.core.url_to_fs(url)
    with fs.open(path, "rb") as handle:
        data: bytes = handle.read(policy.bytes_max + 1)
    if len(data) > policy.bytes_max:
        raise RemoteArtifactError(f"{shown(url)} is larger than {policy.bytes_max:,} bytes")
    return data


def _download(uri: str, *, policy: FetchPolicy, deadline_s: float) -> tuple[bytes, bytes]:
    """Both files of the artifact at ``uri`` (already allowed by ``policy``)."""
    watchdog = _Watchdog(deadline_s)
    try:
        files = []
        for name in (MODEL_FILE, CONFIG_FILE):
            url = f"{uri.rstrip('/')}/{name}"
            if urlsplit(uri).scheme.lower() in HTTP_SCHEMES:
                files.append(_http_get(url, policy=policy, watchdog=watchdog))
            else:
                files.append(_fsspec_get(url, policy=policy))
        return files[0], files[1]
    except FetchDeadline:
        raise
    except (OSError, ValueError, ImportError, http.client.HTTPException) as exc:
        if watchdog.fired or time.monotonic() >= deadline_s - DEADLINE_SLACK_S:
            raise FetchDeadline("deadline") from None  # a socket timeout cut to the deadline
        raise RemoteArtifactError(f"cannot fetch {shown(uri)}: {exc}") from None
    finally:
        watchdog.cancel()


def fetch(
    uri: str,
    *,
    digest: str,
    cache_root: Path,
    policy: FetchPolicy,
    deadline_s: float | None = None,
) -> StoredArtifact:
    """Fetch the artifact at ``uri`` into the local cache, checking it hashes to ``digest``.

    ``deadline_s`` is a ``time.monotonic()`` instant (default: ``policy.model_deadline_s`` from
    now).  Raises :class:`RemoteArtifactError` (refused, unreachable, too large, wrong bytes) or
    :class:`FetchDeadline`.
    """
    cached = locate(cache_root, digest)
    if cached.model_path.exists() and cached.config_path.exists():
        return cached
    url = policy.location(uri, digest=digest)
    if deadline_s is None:
        deadline_s = time.monotonic() + policy.model_deadline_s
    model_bytes, config_bytes = _download(url, policy=policy, deadline_s=deadline_s)
    if artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes) != digest:
        raise RemoteArtifactError(
            f"{shown(uri)} does not hash to the committed digest {digest[:12]}…"
        )
    return store(cache_root, model_bytes=model_bytes, config_bytes=config_bytes)


@dataclass(frozen=True)
class FetchRequest:
    uid: int
    uri: str
    digest: str


@dataclass(frozen=True)
class FetchOutcome:
    """Exactly one of ``artifact`` (fetched into the cache) and ``error`` (a one-line reason)."""

    uid: int
    artifact: StoredArtifact | None
    error: str | None


def _in_daemon_thread(function: Callable[[], StoredArtifact]) -> Future[StoredArtifact]:
    """Run ``function`` on a daemon thread (an abandoned fetch never blocks process exit)."""
    future: Future[StoredArtifact] = Future()

    def run() -> None:
        try:
            future.set_result(function())
        except BaseException as exc:  # handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=run, name="taoflow-fetch", daemon=True).start()
    return future


def _outcome(
    request: FetchRequest, future: Future[StoredArtifact], *, policy: FetchPolicy
) -> FetchOutcome:
    try:
        return FetchOutcome(request.uid, future.result(timeout=0), None)
    except FetchDeadline:
        return FetchOutcome(request.uid, None, _not_in_time(policy))
    except RemoteArtifactError as exc:
        return FetchOutcome(request.uid, None, str(exc))
    except Exception as exc:  # a store backend's own error: the model fails, not the epoch
        return FetchOutcome(request.uid, None, f"cannot fetch {shown(request.uri)}: {exc}")


def _not_in_time(policy: FetchPolicy) -> str:
    return f"artifact not fetched within {policy.model_deadline_s:g} s"


def fetch_many(
    requests: Sequence[FetchRequest], *, policy: FetchPolicy, cache_root: Path
) -> list[FetchOutcome]:
    """Fetch every request under ``policy``; one outcome per request, in request order.

    Refused uris fail at once (nothing is contacted); the others run at most
    ``FETCH_PARALLEL_MAX`` at a time, each under its own ``policy.model_deadline_s``.
    """
    outcomes: dict[int, FetchOutcome] = {}
    queue: list[tuple[int, FetchRequest]] = []
    for index, request in enumerate(requests):
        refusal = policy.refusal(request.uri, digest=request.digest)
        if refusal is None:
            queue.append((index, request))
        else:
            outcomes[index] = FetchOutcome(request.uid, None, refusal)
    queue.reverse()
    running: dict[Future[StoredArtifact], tuple[int, FetchRequest, float]] = {}
    while queue or running:
        while queue and len(running) < FETCH_PARALLEL_MAX:
            index, request = queue.pop()
            deadline_s = time.monotonic() + policy.model_deadline_s
            future = _in_daemon_thread(
                lambda r=request, d=deadline_s: fetch(  # type: ignore[misc]
                    r.uri, digest=r.digest, cache_root=cache_root, policy=policy, deadline_s=d
                )
            )
            running[future] = (index, request, deadline_s)
        earliest_s = min(deadline for _, _, deadline in running.values())
        done, _ = wait(
            list(running),
            timeout=max(earliest_s - time.monotonic(), 0.0),
            return_when=FIRST_COMPLETED,
        )
        now_s = time.monotonic()
        for future, (index, request, deadline_s) in list(running.items()):
            if future in done:
                outcomes[index] = _outcome(request, future, policy=policy)
            elif now_s >= deadline_s:  # abandoned; its watchdog ends its socket
                outcomes[index] = FetchOutcome(request.uid, None, _not_in_time(policy))
            else:
                continue
            del running[future]
    return [outcomes[index] for index in range(len(requests))]
