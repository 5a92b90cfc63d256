"""Chaos: a miner's artifact uri cannot stall the epoch or send validators anywhere.

Real servers on 127.0.0.1: one that accepts and never answers, two that trickle (headers or
body) one byte at a time, one that redirects, and a plain HTTP server over a published store.
Every test is guarded by ``signal.alarm`` so a hang fails instead of blocking the suite; no
assertion is about timing: each asserts the exact reason and what the servers saw.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import torch
from hang_guard import hang_guard

from taoflow.ledger.config import SubnetConfig
from taoflow.tasks.artifact_store import locate
from taoflow.tasks.evaluate.stage import plan_jobs
from taoflow.tasks.gather import EpochContext, NeuronView
from taoflow.tasks.models import ModelConfig, build_model, submission_bytes
from taoflow.tasks.models.artifacts import artifact_digest
from taoflow.tasks.remote_store import (
    FetchPolicy,
    FetchRequest,
    artifact_url,
    fetch_many,
    publish,
    resolve_checked,
)

ALARM_S: Final = 60
DEADLINE_S: Final = 2.0
READ_TIMEOUT_S: Final = 30.0  # longer than the deadline: only the deadline can end a tarpit
TRICKLE_INTERVAL_S: Final = 0.25
TARPIT_CONNECTIONS_MAX: Final = 32
TRICKLE_BYTES_MAX: Final = 100_000
DIGEST_A: Final = "ab" * 32
DIGEST_B: Final = "cd" * 32
DIGEST_C: Final = "ef" * 32


@pytest.fixture(autouse=True)
def alarm_guard() -> Iterator[None]:
    with hang_guard(ALARM_S):
        yield


class Tarpit:
    """A TCP server on 127.0.0.1 that accepts and then never answers (``mode="silent"``), or
    trickles a response one byte per ``TRICKLE_INTERVAL_S`` (``"headers"``/``"body"``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepts = 0
        self.open_max = 0
        self._open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/store"
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set() and self.accepts < TARPIT_CONNECTIONS_MAX:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by ``close``
                return
            with self._lock:
                self.accepts += 1
                self._open += 1
                self.open_max = max(self.open_max, self._open)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            if self.mode == "silent":
                self._read_until_closed(conn)
            else:
                self._trickle(conn)
        with self._lock:
            self._open -= 1

    def _read_until_closed(self, conn: socket.socket) -> None:
        """Never answer; return when the client gives up (or the server stops)."""
        conn.settimeout(0.1)
        while not self._stop.is_set():
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _trickle(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
        if self.mode == "body":
            conn.sendall(head)
            head = b""
        for byte in head + b"\0" * TRICKLE_BYTES_MAX:
            if self._stop.wait(TRICKLE_INTERVAL_S):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:  # the client gave up
                return

    def close(self) -> None:
        self._stop.set()
        self.server.close()


@pytest.fixture
def tarpits() -> Iterator[dict[str, Tarpit]]:
    servers = {mode: Tarpit(mode) for mode in ("silent", "headers", "body")}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture(scope="module")
def artifact() -> tuple[bytes, bytes]:
    config = ModelConfig("mlp", 64, (8,), 10)
    torch.manual_seed(0)
    return submission_bytes(build_model(config), config)


class Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_store(tmp_path: Path, artifact: tuple[bytes, bytes]) -> Iterator[tuple[str, str]]:
    """(store URL served over HTTP on 127.0.0.1, digest of the artifact published there)."""
    root = tmp_path / "served"
    model_bytes, config_bytes = artifact
    publish((root / "store").as_uri(), model_bytes=model_bytes, config_bytes=config_bytes)
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield (
        f"http://127.0.0.1:{server.server_address[1]}/store",
        artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes),
    )
    server.shutdown()
    server.server_close()


def _private_policy(*urls: str, **kwargs: float) -> FetchPolicy:
    return FetchPolicy(
        store_urls=urls,
        allow_private=True,
        model_deadline_s=DEADLINE_S,
        read_timeout_s=READ_TIMEOUT_S,
        **kwargs,  # type: ignore[arg-type]
    )


def _fetch_one(uri: str, digest: str, policy: FetchPolicy, cache: Path) -> str | None:
    [outcome] = fetch_many([FetchRequest(7, uri, digest)], policy=policy, cache_root=cache)
    assert outcome.uid == 7
    assert (outcome.artifact is None) == (outcome.error is not None)
    return outcome.error


@pytest.mark.parametrize("mode", ["silent", "headers", "body"])
def test_a_tarpit_ends_at_the_model_deadline(
    mode: str, tarpits: dict[str, Tarpit], tmp_path: Path
) -> None:
    tarpit = tarpits[mode]
    uri = artifact_url(tarpit.url, DIGEST_A)
    error = _fetch_one(uri, DIGEST_A, _private_policy(tarpit.url), tmp_path / "cache")
    assert error == f"artifact not fetched within {DEADLINE_S:g} s"
    assert tarpit.accepts == 1  # it really was contacted (and then given up on)
    assert not locate(tmp_path / "cache", DIGEST_A).model_path.exists()


def test_tarpits_do_not_serialise_the_fetches(
    tarpits: dict[str, Tarpit], http_store: tuple[str, str], tmp_path: Path
) -> None:
    silent = tarpits["silent"]
    store_url, digest = http_store
    requests = [
        FetchRequest(uid, artifact_url(silent.url, tarpit_digest), tarpit_digest)
        for uid, tarpit_digest in enumerate((DIGEST_A, DIGEST_B, DIGEST_C))
    ]
    requests.append(FetchRequest(9, artifact_url(store_url, digest), digest))
    outcomes = fetch_many(
        requests, policy=_private_policy(silent.url, store_url), cache_root=tmp_path / "cache"
    )
    assert [o.error for o in outcomes[:3]] == [f"artifact not fetched within {DEADLINE_S:g} s"] * 3
    assert outcomes[3].error is None and outcomes[3].artifact is not None
    assert silent.open_max == 3  # all three held at once: none waited behind another


def test_the_default_policy_contacts_nobody(tarpits: dict[str, Tarpit], tmp_path: Path) -> None:
    silent = tarpits["silent"]
    uri = artifact_url(silent.url, DIGEST_A)
    error = _fetch_one(uri, DIGEST_A, FetchPolicy(), tmp_path / "cache")
    assert error == f"artifact uri not in the network's allowed stores: {uri}"
    time.sleep(0.3)  # let a connection, had one been made, reach accept()
    assert silent.accepts == 0


def test_a_loopback_store_is_refused_unless_private_stores_are_allowed(
    tarpits: dict[str, Tarpit], tmp_path: Path
) -> None:
    silent = tarpits["silent"]
    uri = artifact_url(silent.url, DIGEST_A)
    policy = FetchPolicy(store_urls=(silent.url,), model_deadline_s=DEADLINE_S)
    error = _fetch_one(uri, DIGEST_A, policy, tmp_path / "cache")
    assert error == (
        "artifact store host 127.0.0.1 resolves to a private or local address 127.0.0.1 "
        "(allow it with TAOFLOW_ALLOW_PRIVATE_STORES=1)"
    )
    time.sleep(0.3)
    assert silent.accepts == 0


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "169.254.169.254",
        "192.168.0.1",
        "100.64.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ],
)
def test_private_link_local_and_mapped_addresses_are_refused(address: str) -> None:
    with pytest.raises(Exception, match="resolves to a private or local address"):
        resolve_checked(address, 80, allow_private=False)
    assert resolve_checked("8.8.8.8", 80, allow_private=False) == ("8.8.8.8", 80)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/store/ab/" + DIGEST_A,
        "http://attacker.example/store/ab/" + DIGEST_A,
        "http://store.example.evil/store/ab/" + DIGEST_A,
        "http://store.example@127.0.0.1/store/ab/" + DIGEST_A,
        "https://store.example/store/ab/" + DIGEST_A,
        "s3://bucket/ab/" + DIGEST_A,
    ],
)
def test_uris_outside_the_allow_list_are_refused(uri: str, tmp_path: Path) -> None:
    policy = FetchPolicy(store_urls=("http://store.example/store",))
    error = _fetch_one(uri, DIGEST_A, policy, tmp_path / "cache")
    assert error == f"artifact uri not in the network's allowed stores: {uri}"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "suffix",
    [
        "/ab/" + DIGEST_B,  # another artifact than the committed one
        "/ab/../../etc/passwd",
        "/ab/" + DIGEST_A + "?x=1",
        "/ab/" + DIGEST_A + "/../../" + DIGEST_A,
    ],
)
def test_paths_inside_a_store_must_name_the_committed_digest(suffix: str, tmp_path: Path) -> None:
    uri = "http://store.example/store" + suffix
    policy = FetchPolicy(store_urls=("http://store.example/store",))
    error = _fetch_one(uri, DIGEST_A, policy, tmp_path / "cache")
    assert error == f"artifact uri does not name the committed digest in its store: {uri}"


def test_an_oversized_artifact_is_refused(http_store: tuple[str, str], tmp_path: Path) -> None:
    store_url, digest = http_store
    uri = artifact_url(store_url, digest)
    error = _fetch_one(uri, digest, _private_policy(store_url, bytes_max=100), tmp_path / "cache")
    assert error == f"{uri}/model.safetensors is larger than 100 bytes"
    assert not locate(tmp_path / "cache", digest).model_path.exists()


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store_url = f"http://127.0.0.1:{server.server_address[1]}/store"
        uri = artifact_url(store_url, DIGEST_A)
        error = _fetch_one(uri, DIGEST_A, _private_policy(store_url), tmp_path / "cache")
    finally:
        server.shutdown()
        server.server_close()
    assert error == (f"{uri}/model.safetensors answered HTTP 302 (redirects are not followed)")


def test_a_good_artifact_from_the_configured_store_is_fetched(
    http_store: tuple[str, str], artifact: tuple[bytes, bytes], tmp_path: Path
) -> None:
    store_url, digest = http_store
    [outcome] = fetch_many(
        [FetchRequest(3, artifact_url(store_url, digest), digest)],
        policy=_private_policy(store_url),
        cache_root=tmp_path / "cache",
    )
    assert outcome.error is None and outcome.artifact is not None
    assert outcome.artifact.digest == digest
    assert outcome.artifact.model_path.read_bytes() == artifact[0]
    assert outcome.artifact.config_path.read_bytes() == artifact[1]


def _neuron(uid: int, *, digest: str, uri: str) -> NeuronView:
    return NeuronView(
        uid=uid,
        hotkey=f"h{uid}",
        coldkey=f"c{uid}",
        role="miner",
        registered_block=0,
        stake_rao=0,
        artifact_digest=digest,
        artifact_uri=uri,
    )


def test_planning_marks_the_tarpit_model_and_goes_on(
    tarpits: dict[str, Tarpit], http_store: tuple[str, str], tmp_path: Path
) -> None:
    silent = tarpits["silent"]
    store_url, digest = http_store
    ctx = EpochContext(
        subnet="s",
        epoch=0,
        block=1,
        tempo_blocks=1,
        emission_rao=0,
        parent_hash="0" * 64,
        seed_hex="00",
        owner_coldkey="",
        owner_hotkey="",
        config=SubnetConfig.from_payload({"tempo_blocks": 100}),
        neurons=(
            _neuron(0, digest=DIGEST_A, uri=artifact_url(silent.url, DIGEST_A)),
            _neuron(1, digest=digest, uri=artifact_url(store_url, digest)),
            _neuron(2, digest=DIGEST_B, uri="file:///etc/passwd"),
        ),
    )
    policy = _private_policy(silent.url, store_url)
    jobs, errors = plan_jobs(ctx, artifacts_root=tmp_path / "cache", fetch_policy=policy)
    assert [job.uid for job in jobs] == [1]
    assert errors == {
        0: f"unreadable: artifact not fetched within {DEADLINE_S:g} s",
        2: "unreadable: artifact uri not in the network's allowed stores: file:///etc/passwd",
    }
    default_jobs, default_errors = plan_jobs(
        dataclasses.replace(ctx, neurons=ctx.neurons[:1]), artifacts_root=tmp_path / "other"
    )
    assert default_jobs == [] and default_errors[0].startswith(
        "unreadable: artifact uri not in the network's allowed stores: http://127.0.0.1:"
    )


def test_settings_build_the_policy_from_the_configured_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taoflow.settings import Settings

    for name in ("TAOFLOW_ALLOWED_STORES", "TAOFLOW_ALLOW_PRIVATE_STORES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TAOFLOW_ARTIFACT_STORE", raising=False)
    monkeypatch.delenv("TAOFLOW_FETCH_DEADLINE_S", raising=False)
    settings = Settings.load(tmp_path)
    assert settings.fetch_policy() == FetchPolicy()
    monkeypatch.setenv("TAOFLOW_ARTIFACT_STORE", "s3://bucket/taoflow")
    monkeypatch.setenv("TAOFLOW_ALLOWED_STORES", " https://mirror.example/a/ ,")
    monkeypatch.setenv("TAOFLOW_ALLOW_PRIVATE_STORES", "1")
    monkeypatch.setenv("TAOFLOW_FETCH_DEADLINE_S", "5")
    policy = settings.fetch_policy()
    assert policy.store_urls == ("s3://bucket/taoflow", "https://mirror.example/a/")
    assert policy.allow_private and policy.model_deadline_s == 5.0
    assert policy.allowed_schemes == frozenset({"s3", "https"})
    monkeypatch.setenv("TAOFLOW_ALLOWED_STORES", "ftp://mirror.example/a")
    with pytest.raises(ValueError) as caught:
        settings.fetch_policy()
    assert str(caught.value) == (
        "artifact store ftp://mirror.example/a: scheme must be one of "
        "['az', 'file', 'gcs', 'gs', 'http', 'https', 'memory', 's3']"
    )
