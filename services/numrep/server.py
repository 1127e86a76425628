"""The gRPC server: any subset of the microservices in one grpc.aio process."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from typing import Any, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from numrep.api.auth import IN_FLIGHT, ExchangeInterceptor, run_blocking
from numrep.api.cases import CaseServicer
from numrep.api.consent import ConsentServicer
from numrep.api.flags import FlagsServicer
from numrep.api.lookup import LookupServicer, add_to_server as add_lookup_service
from numrep.api.peer_identity import PeerIdentity
from numrep.api.publish import PublishServicer
from numrep.api.registry import RegistryServicer
from numrep.api.sync import SyncServicer, add_to_server as add_sync_service
from numrep.cases import CaseDesk
from numrep.config import ServerConfig, pseudonym_secret
from numrep.consent import ConsentLedger
from numrep.core.consent import CallingHours, ConsentPolicy
from numrep.core.errors import NumrepError
from numrep.core.pseudonym import Pseudonymizer
from numrep.exchange import Exchange, ExchangeConfig
from numrep.gc_tuning import YoungPasses, tune_for_serving
from numrep.limits import RateLimits
from numrep.shaken import TrustAnchors
from numrep.signing.tokens import TokenPolicy
from numrep.store import Store, open_store
from numrep.store.factory import open_consent_store
from numrep.telemetry import Telemetry
from numrep.telemetry.store import TracedStore
from numrep.trust_job import RefitJob, refit
from numrep.web import WebServer, serve_exchange_page
from numrep.v1 import flags_pb2, flags_pb2_grpc, lookup_pb2, publish_pb2, publish_pb2_grpc
from numrep.v1 import registry_pb2, registry_pb2_grpc, sync_pb2
from numrep.v1 import consent_pb2, consent_pb2_grpc
from numrep.v1 import cases_pb2, cases_pb2_grpc

log = logging.getLogger("numrep.server")

_SERVICES = {
    "lookup": (lookup_pb2, "LookupService", LookupServicer, add_lookup_service),  # BatchLookup sends its bytes
    "publish": (publish_pb2, "PublishService", PublishServicer, publish_pb2_grpc.add_PublishServiceServicer_to_server),
    "flags": (flags_pb2, "FlagsService", FlagsServicer, flags_pb2_grpc.add_FlagsServiceServicer_to_server),
    "sync": (sync_pb2, "SyncService", SyncServicer, add_sync_service),  # streams stored bytes verbatim
    "registry": (registry_pb2, "RegistryService", RegistryServicer, registry_pb2_grpc.add_RegistryServiceServicer_to_server),
    "consent": (consent_pb2, "ConsentService", ConsentServicer, consent_pb2_grpc.add_ConsentServiceServicer_to_server),
    "cases": (cases_pb2, "CaseService", CaseServicer, cases_pb2_grpc.add_CaseServiceServicer_to_server),
}

# Services gRPC registers method by method; the others it finds by name, through
# their generic handlers. grpc.aio keeps a pending request for every registered
# method and waits on all of them for each call that arrives, so every registered
# method costs every call something (benchmarks/RESULTS.md, session 11): only the
# per-call path is registered.
REGISTERED_SERVICES = frozenset({"lookup"})


class _ByName:
    """``server`` as a service that is found by name sees it: its registered-method handlers are not kept."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        pass


@dataclass
class RunningServer:
    server: grpc.aio.Server
    exchange: Exchange
    store: Store
    address: str
    health: health.aio.HealthServicer
    service_names: list[str]
    owns_store: bool = True
    _watch: asyncio.Task[None] | None = None
    _trust: asyncio.Task[None] | None = None
    _young: YoungPasses | None = None  # the collector's young passes at a steady pace (numrep.gc_tuning)
    _refits: RefitJob | None = None  # trust refits in a process of their own (numrep.trust_job)
    web: WebServer | None = None  # the public web page on its HTTP side-port (config.http_listen)

    async def stop(self, grace: float | None = 5.0) -> None:
        for task in (self._watch, self._trust):
            if task is not None:
                task.cancel()
        if self._refits is not None:
            self._refits.stop()
        if self.web is not None:
            await asyncio.to_thread(self.web.stop)
        await self.server.stop(grace)
        if self._young is not None:
            self._young.stop()
        if self.owns_store:
            if not await IN_FLIGHT.drained(timeout=30.0):
                log.warning("closing the store while store calls are still running")
            self.store.close()
            if self.exchange.consent is not None:
                self.exchange.consent.store.close()
            CaseDesk.release(self.exchange)


def build_exchange(config: ServerConfig, store: Store | None = None, telemetry: Telemetry | None = None) -> Exchange:
    store = store or open_store(config.store, config.data_dir)
    if telemetry is not None:
        store = TracedStore(store, telemetry, "cassandra" if config.store.startswith("cassandra") else "sqlite")
    exchange_config = ExchangeConfig(default_region=config.default_region, token_policy=TokenPolicy(audience=config.audience),
                                     reconciler=config.reconciler, verdict_cache_entries=config.verdict_cache_entries,
                                     rate_limits=RateLimits().with_overrides(config.rate_limits))
    anchors = TrustAnchors.from_directory(config.shaken_anchors) if config.shaken_anchors else TrustAnchors()
    if config.shaken_cert_cache:
        anchors.load_cache(config.shaken_cert_cache)
    exchange = Exchange(store, Pseudonymizer(pseudonym_secret(config.data_dir)), exchange_config, shaken_anchors=anchors)
    policy = ConsentPolicy(default_hours=CallingHours.parse(config.calling_hours)) if config.calling_hours else ConsentPolicy()
    exchange.consent = ConsentLedger(open_consent_store(store), exchange.pseudonym, exchange.participant, exchange.clock,
                                     policy, config.default_region)
    CaseDesk.of(exchange)  # complaints and disputes: one desk for the gRPC service and the web page
    return exchange


def keepalive_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Pings both ways. The exchange's own find a client that vanished without closing
    its connection (a crashed host, a NAT that dropped the flow), so that its calls end
    rather than wait on TCP for hours. Clients may ping as often as the carrier SDK does,
    also between calls: at gRPC's defaults (one ping in 5 minutes, none without a call
    open) the third quicker ping gets the connection closed ("too_many_pings"), taking
    every call on it along. So upgrade the exchange before its carriers' SDKs."""
    every, timeout = round(config.keepalive_seconds * 1000), round(config.keepalive_timeout_seconds * 1000)
    return [
        ("grpc.keepalive_time_ms", every),
        # Also the socket's TCP_USER_TIMEOUT: sent data unacknowledged this long aborts the connection.
        ("grpc.keepalive_timeout_ms", timeout),
        ("grpc.http2.ping_timeout_ms", timeout),  # what bounds the wait for a ping's answer in gRPC 1.85 (default 60 s)
        ("grpc.http2.min_ping_interval_without_data_ms", round(config.min_client_ping_seconds * 1000)),
        # Accept pings on a connection with no call open (and ping such a connection too, every
        # keepalive_seconds): a carrier between two checks finds a dead connection before the next.
        ("grpc.keepalive_permit_without_calls", 1),
    ]


async def start_server(
    config: ServerConfig, exchange: Exchange | None = None, telemetry: Telemetry | None = None, *, tune_gc: bool = False
) -> RunningServer:
    """Start the configured services. A server given an ``exchange`` leaves its store open on stop.
    ``tune_gc``: set the process's garbage collector for serving (``numrep.gc_tuning``) before the
    first call can arrive; for a process that only serves, never for one that hosts tests."""
    telemetry = telemetry or Telemetry.disabled()
    owns_store = exchange is None
    exchange = exchange or build_exchange(config, telemetry=telemetry if telemetry.enabled else None)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        *keepalive_options(config),
    ]
    # With mutual TLS, gRPC has verified each client's chain: its certificate may stand in for per-call tokens.
    peers = PeerIdentity(exchange) if config.tls_cert is not None and config.tls_client_ca is not None else None
    interceptors: list[grpc.aio.ServerInterceptor] = [ExchangeInterceptor(exchange, telemetry, peers)]
    if telemetry.tracing:  # spans cost ~0.2 ms a call: only when someone collects them
        interceptors.insert(0, aio_server_interceptor(tracer_provider=telemetry.tracer_provider))
    server = grpc.aio.server(interceptors=interceptors, options=options)
    names = []
    for name in config.services:
        module, service, servicer, add = _SERVICES[name]
        add(servicer(exchange, telemetry), server if name in REGISTERED_SERVICES else _ByName(server))
        names.append(module.DESCRIPTOR.services_by_name[service].full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, _ByName(server))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer([*names, health.SERVICE_NAME, reflection.SERVICE_NAME]), _ByName(server))
    port = _add_port(server, config)
    if port == 0:
        raise NumrepError(f"cannot listen on {config.listen}")
    if tune_gc:
        tune_for_serving()
    web = serve_exchange_page(config.http_listen, exchange) if config.http_listen else None
    await server.start()
    host = config.listen.rsplit(":", 1)[0]
    running = RunningServer(server, exchange, exchange.store, f"{host}:{port}", health_servicer, names, owns_store, web=web)
    if tune_gc:
        running._young = YoungPasses()
    await _set_health(running)
    running._watch = asyncio.create_task(_watch_store(running, config.health_interval_seconds))
    if exchange.trust is not None:
        if owns_store:  # the job opens the same store from the same configuration
            running._refits = RefitJob(config, exchange)
            exchange.refit_apart = running._refits.refit
        running._trust = asyncio.create_task(_keep_trust(exchange, config.trust_refit_seconds, config.trust_reload_seconds))
    return running


def _add_port(server: grpc.aio.Server, config: ServerConfig) -> int:
    if config.tls_cert is None:
        if config.tls_client_ca is not None:
            raise NumrepError("mutual TLS (--tls-client-ca) needs --tls-cert and --tls-key")
        return server.add_insecure_port(config.listen)
    if config.tls_key is None:
        raise NumrepError("--tls-cert needs --tls-key")
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    credentials = grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
    return server.add_secure_port(config.listen, credentials)


async def _set_health(running: RunningServer) -> bool:
    try:
        await asyncio.to_thread(running.store.ping)
        status = health_pb2.HealthCheckResponse.SERVING
    except NumrepError as exc:
        log.warning("store unavailable: %s", exc.message)
        status = health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *running.service_names]:
        await running.health.set(name, status)
    return status == health_pb2.HealthCheckResponse.SERVING


async def _watch_store(running: RunningServer, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await _set_health(running)


REFIT_RETRY_SECONDS = 30.0  # after a failed refit; doubled after each further failure, at most the refit interval


async def _keep_trust(exchange: Exchange, refit_every: float, reload_every: float) -> None:
    """Refit the learned trust on a schedule, and meanwhile pick up epochs other
    replicas (or ``numrep trust refit``) stored. A failed refit is logged and tried
    again after a pause that grows; the current epoch keeps serving."""
    loop = asyncio.get_running_loop()
    next_refit = loop.time() + refit_every if refit_every > 0 else float("inf")
    failures = 0
    while True:
        await asyncio.sleep(max(0.05, min(reload_every, next_refit - loop.time())))
        refitting = loop.time() >= next_refit
        try:
            if refitting:
                snapshot, changed = await refit(exchange)
                log.info("trust: refit to epoch %d (%d labels, %d flags; %d verdicts changed)",
                         snapshot.epoch, snapshot.labels, snapshot.flags, changed)
                failures = 0
                next_refit = loop.time() + refit_every
            else:
                await run_blocking(exchange.reload_trust)
        except Exception as exc:  # noqa: BLE001 - this loop must outlive any one failure
            if isinstance(exc, NumrepError):
                log.warning("trust: %s", exc.message)
            else:
                log.exception("trust: %s failed", "refit" if refitting else "reload")
            if refitting:
                failures += 1
                next_refit = loop.time() + min(refit_every, REFIT_RETRY_SECONDS * 2 ** (failures - 1))


async def serve_forever(
    config: ServerConfig, announce: Callable[[RunningServer], None] | None = None, telemetry: Telemetry | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, then let in-flight calls finish (grace period)."""
    running = await start_server(config, telemetry=telemetry, tune_gc=True)
    log.info("numrep serving %s on %s", ",".join(config.services), running.address)
    if announce is not None:
        announce(running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: letting in-flight calls finish (up to %.0f s)", config.grace_seconds)
    await running.stop(config.grace_seconds)
