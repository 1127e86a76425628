"""A blocking client for every numrep.v1 RPC. Each call carries a fresh
single-use bearer token signed with the participant's own key, unless the
connection itself authenticates the participant (mutual TLS with a participant
certificate and ``TlsFiles(..., cert_identity=True)``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from numrep.core.numbers import normalize
from numrep.core.privacy import number_hash
from numrep.signing.keys import Identity
from numrep.signing.sessions import CallSession
from numrep.signing.tokens import DEFAULT_AUDIENCE, mint_token
from numrep.v1 import common_pb2, flags_pb2, flags_pb2_grpc, lookup_pb2, lookup_pb2_grpc
from numrep.v1 import publish_pb2, publish_pb2_grpc, registry_pb2, registry_pb2_grpc, sync_pb2, sync_pb2_grpc
from numrep.v1 import consent_pb2, consent_pb2_grpc
from numrep.v1 import cases_pb2, cases_pb2_grpc
from numrep_client._sessions import session_from_pb

DEFAULT_TIMEOUT_SECONDS = 10.0


class ExchangeError(Exception):
    """An RPC failed; ``code`` is the gRPC status, ``details`` the exchange's message."""

    def __init__(self, code: grpc.StatusCode, details: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.retry_after = retry_after  # seconds, when the exchange said when to retry

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> "ExchangeError":
        retry_after = None
        trailers = getattr(error, "trailing_metadata", lambda: None)() or ()
        for key, value in trailers:
            if key == "retry-after-ms":
                retry_after = int(value) / 1000
        return cls(error.code(), error.details() or "", retry_after)


@dataclass(frozen=True)
class FlagToSend:
    number: str
    category: str
    reporter_id: str
    time: datetime | None = None
    comment: str = ""


DEFAULT_PREFIX_DIGITS = 3


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for TLS: the CA that signed the exchange's certificate and, for
    mutual TLS, this participant's certificate chain and key.

    ``cert_identity``: the certificate names this participant and carries one of
    its registered keys (``numrep cert issue``), so the connection authenticates
    it once and calls carry no per-call bearer token (default: they do)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    cert_identity: bool = False

    def __post_init__(self) -> None:
        if self.cert_identity and (self.cert is None or self.key is None):
            raise ValueError("cert_identity needs a client certificate and its key (cert=..., key=...)")

    def credentials(self) -> grpc.ChannelCredentials:
        read = lambda p: p.read_bytes() if p else None  # noqa: E731
        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


# A connection that stops carrying anything without closing (a NAT or firewall
# that dropped the flow, a peer host gone) is found by an unanswered ping and
# closed: its calls fail UNAVAILABLE and the next call reconnects. Without it only
# TCP finds it, after many minutes, and a following stream waits on it all that
# time. Here a ping goes out after 20 s without hearing anything while a call is
# open, and the connection closes 20 s later if it goes unanswered. The carrier
# SDK's channels are tighter (numrep_client._carrier.CARRIER_KEEPALIVE).
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 20_000),  # also the socket's TCP_USER_TIMEOUT: sent data unacknowledged this long aborts
    # What bounds the wait for any ping's answer in gRPC 1.85 (default 60 s), the bandwidth
    # probes' too: on a slow link a probe's answer waits behind the data queued before it.
    ("grpc.http2.ping_timeout_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),  # a quiet stream is pinged too
)


def open_channel(target: str, tls: TlsFiles | None = None,
                 options: Sequence[tuple[str, object]] = KEEPALIVE_OPTIONS) -> grpc.Channel:
    """A channel to ``target``, reading the TLS files (if any) now."""
    if tls is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(target, tls.credentials(), options=list(options))


def sends_tokens(tls: TlsFiles | None) -> bool:
    """Whether calls over a connection made with ``tls`` carry per-call bearer tokens."""
    return tls is None or not tls.cert_identity


@dataclass(frozen=True)
class PrivateAnswer:
    number: str
    entry: lookup_pb2.PrefixEntry | None  # None: the number is not listed
    bucket_size: int                       # how many listed numbers the answer hid it among
    prefix_bits: int


class ExchangeClient:
    def __init__(
        self,
        target: str,
        identity: Identity,
        *,
        audience: str = DEFAULT_AUDIENCE,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        channel: grpc.Channel | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.identity = identity
        self.audience = audience
        self.timeout = timeout
        self._tokens = sends_tokens(tls)
        self._channel = channel or open_channel(target, tls)
        self._lookup = lookup_pb2_grpc.LookupServiceStub(self._channel)
        self._publish = publish_pb2_grpc.PublishServiceStub(self._channel)
        self._flags = flags_pb2_grpc.FlagsServiceStub(self._channel)
        self._sync = sync_pb2_grpc.SyncServiceStub(self._channel)
        self._registry = registry_pb2_grpc.RegistryServiceStub(self._channel)
        self._consent = consent_pb2_grpc.ConsentServiceStub(self._channel)
        self._cases = cases_pb2_grpc.CaseServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ExchangeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _metadata(self) -> list[tuple[str, str]]:
        if not self._tokens:
            return []
        return [("authorization", f"Bearer {mint_token(self.identity, self.audience)}")]

    def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return method(request, metadata=self._metadata(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise ExchangeError.from_rpc(exc) from None

    # --- lookup ------------------------------------------------------------------
    def lookup(self, number: str, callee: str = "", call_time: datetime | None = None, call_category: str = "") -> common_pb2.Verdict:
        """The verdict on ``number``; with a ``callee``, also for this one call (consent
        state and calling hours in ``verdict.consent``, BLOCK when they forbid it)."""
        context = lookup_pb2.CallContext(callee=callee, call_category=call_category)
        if call_time is not None:
            context.call_time.CopyFrom(_timestamp(call_time))
        return self._call(self._lookup.Lookup, lookup_pb2.LookupRequest(number=number, context=context))

    def batch_lookup(self, numbers: Sequence[str], contexts: Sequence[lookup_pb2.CallContext | None] = (), *,
                     basic: bool = False) -> list[lookup_pb2.BatchLookupResult]:
        """Verdicts for ``numbers`` in one call; ``contexts[i]`` (optional) is the
        call context of number i, answered as ``lookup`` answers it (consent to a
        callee, calling hours, caller-ID authentication). ``basic``: verdicts
        without contributions and explanation (``VERDICT_VIEW_BASIC``), about a
        tenth of the bytes."""
        if contexts and len(contexts) != len(numbers):
            raise ValueError("give one call context per number, or none")
        calls = contexts or [None] * len(numbers)
        request = lookup_pb2.BatchLookupRequest(
            requests=[lookup_pb2.LookupRequest(number=n, context=c) for n, c in zip(numbers, calls)],
            view=lookup_pb2.VERDICT_VIEW_BASIC if basic else lookup_pb2.VERDICT_VIEW_FULL)
        return list(self._call(self._lookup.BatchLookup, request).results)

    def prefix_lookup(self, hash_prefix: str) -> lookup_pb2.PrefixLookupResponse:
        return self._call(self._lookup.PrefixLookup, lookup_pb2.PrefixLookupRequest(hash_prefix=hash_prefix))

    def private_lookup(self, number: str, prefix_digits: int = DEFAULT_PREFIX_DIGITS, region: str = "US") -> PrivateAnswer:
        """Look ``number`` up without telling the exchange which number it is:
        only the first ``prefix_digits`` hex digits of its hash leave this process.
        Fewer digits hide the number among more others and cost more data."""
        e164 = normalize(number, region)
        full = number_hash(e164)
        response = self.prefix_lookup(full[:prefix_digits])
        match = next((e for e in response.entries if e.number_hash == full), None)
        return PrivateAnswer(e164, match, len(response.entries), response.prefix_bits)

    # --- publish -----------------------------------------------------------------
    def publish(self, tokens: Sequence[str]) -> list[publish_pb2.ItemResult]:
        return list(self._call(self._publish.Publish, publish_pb2.PublishRequest(labels=list(tokens))).results)

    def retract(self, label_ids: Sequence[str], reason: str = "") -> list[publish_pb2.ItemResult]:
        request = publish_pb2.RetractRequest(label_ids=list(label_ids), reason=reason)
        return list(self._call(self._publish.Retract, request).results)

    # --- flags -------------------------------------------------------------------
    def submit_flags(self, flags: Sequence[FlagToSend], batch_id: str | None = None) -> flags_pb2.FlagBatchResult:
        batch = flags_pb2.FlagBatch(batch_id=batch_id or uuid.uuid4().hex)
        for flag in flags:
            item = batch.flags.add(number=flag.number, category=flag.category, reporter_id=flag.reporter_id, comment=flag.comment)
            if flag.time is not None:
                item.time.CopyFrom(_timestamp(flag.time))
        return self._call(self._flags.SubmitFlags, batch)

    # --- sync --------------------------------------------------------------------
    def sync(self, cursor: str = "", chunk_size: int = 0) -> Iterator[sync_pb2.SyncChunk]:
        """Chunks from ``cursor`` until caught up. Stop anywhere and resume later
        from the last chunk's cursor."""
        try:
            stream = self._sync.Sync(
                sync_pb2.SyncRequest(cursor=cursor, chunk_size=chunk_size), metadata=self._metadata(), timeout=None
            )
            yield from stream
        except grpc.RpcError as exc:
            raise ExchangeError.from_rpc(exc) from None

    # --- consent ledger --------------------------------------------------------------
    def register_consent(self, records: Sequence[str]) -> list[publish_pb2.ItemResult]:
        """Signed consent records (``numrep.signing.consent.sign_consent``); one result each."""
        request = consent_pb2.RegisterConsentRequest(records=list(records))
        return list(self._call(self._consent.RegisterConsent, request).results)

    def record_refusal(self, refusals: Sequence[str]) -> list[publish_pb2.ItemResult]:
        """Signed refusals (``numrep.signing.consent.sign_refusal``); one result each."""
        request = consent_pb2.RecordRefusalRequest(refusals=list(refusals))
        return list(self._call(self._consent.RecordRefusal, request).results)

    def revoke_consent(self, record_ids: Sequence[str], reason: str = "") -> list[publish_pb2.ItemResult]:
        request = consent_pb2.RevokeConsentRequest(record_ids=list(record_ids), reason=reason)
        return list(self._call(self._consent.RevokeConsent, request).results)

    def consent_state(self, caller: str, callee: str, at: datetime | None = None, category: str = "") -> consent_pb2.ConsentCheck:
        request = consent_pb2.GetConsentStateRequest(caller=caller, callee=callee, category=category)
        if at is not None:
            request.time.CopyFrom(_timestamp(at))
        return self._call(self._consent.GetConsentState, request)

    # --- complaints and disputes -------------------------------------------------------
    def file_complaint(self, number: str, category: str, text: str, occurred_at: datetime | None = None,
                       reporter_id: str = "") -> cases_pb2.Case:
        """File a complaint for a user; keep the returned ``case_id``: it is the only key to the case."""
        request = cases_pb2.FileComplaintRequest(number=number, category=category, text=text, reporter_id=reporter_id)
        if occurred_at is not None:
            request.occurred_at.CopyFrom(_timestamp(occurred_at))
        return self._call(self._cases.FileComplaint, request)

    def file_dispute(self, number: str, contact: str, evidence: str, reporter_id: str = "") -> cases_pb2.Case:
        """File a number owner's dispute of the labels behind its verdict."""
        request = cases_pb2.FileDisputeRequest(number=number, contact=contact, evidence=evidence, reporter_id=reporter_id)
        return self._call(self._cases.FileDispute, request)

    def get_case(self, case_id: str) -> cases_pb2.Case:
        return self._call(self._cases.GetCase, cases_pb2.GetCaseRequest(case_id=case_id))

    def list_cases(self, kind: int = 0, status: int = 0, limit: int = 0) -> list[cases_pb2.Case]:
        """Regulator only; ``kind`` and ``status`` are ``cases_pb2`` enum values (0: any)."""
        request = cases_pb2.ListCasesRequest(kind=kind, status=status, limit=limit)
        return list(self._call(self._cases.ListCases, request).cases)

    def resolve_case(self, case_id: str, outcome: int, message: str) -> cases_pb2.Case:
        """Regulator only; ``outcome`` is a ``cases_pb2.CASE_STATUS_*`` value."""
        request = cases_pb2.ResolveCaseRequest(case_id=case_id, outcome=outcome, message=message)
        return self._call(self._cases.ResolveCase, request)

    def list_disputes(self) -> list[cases_pb2.Case]:
        """The disputes linked to this participant's own labels."""
        return list(self._call(self._cases.ListDisputes, cases_pb2.ListDisputesRequest()).cases)

    def watch_disputes(self, follow: bool = False) -> Iterator[cases_pb2.Case]:
        """The disputes of this participant's labels, oldest first; with ``follow``,
        then each new dispute and each status change as it happens, until the
        iterator is closed (which cancels the stream)."""
        stream = self._cases.WatchDisputes(cases_pb2.WatchDisputesRequest(follow=follow), metadata=self._metadata(), timeout=None)
        try:
            yield from stream
        except grpc.RpcError as exc:
            raise ExchangeError.from_rpc(exc) from None
        finally:
            stream.cancel()

    # --- registry ----------------------------------------------------------------
    def list_participants(self) -> list[registry_pb2.Participant]:
        return list(self._call(self._registry.ListParticipants, registry_pb2.ListParticipantsRequest()).participants)

    def get_participant(self, participant_id: str) -> registry_pb2.Participant:
        return self._call(self._registry.GetParticipant, registry_pb2.GetParticipantRequest(id=participant_id))

    def register_participant(self, participant_id: str, role: int, jwks: Sequence[str], display_name: str = "") -> registry_pb2.Participant:
        request = registry_pb2.RegisterParticipantRequest(id=participant_id, role=role, display_name=display_name, jwks=list(jwks))
        return self._call(self._registry.RegisterParticipant, request)

    def add_key(self, participant_id: str, jwk: str) -> registry_pb2.Participant:
        return self._call(self._registry.AddKey, registry_pb2.AddKeyRequest(participant_id=participant_id, jwk=jwk))

    def revoke_key(self, participant_id: str, kid: str) -> registry_pb2.Participant:
        return self._call(self._registry.RevokeKey, registry_pb2.RevokeKeyRequest(participant_id=participant_id, kid=kid))

    def open_session(self, lifetime_seconds: int = 0) -> CallSession:
        """A call session (``numrep.signing.sessions``): mint each call's token with
        ``mint_call_token(session)`` instead of signing it. 0: the exchange's default lifetime."""
        return session_from_pb(self._call(self._registry.OpenSession, registry_pb2.OpenSessionRequest(lifetime_seconds=lifetime_seconds)))

    def trust_report(self) -> registry_pb2.TrustReport:
        """The learned trust per participant (regulator only)."""
        return self._call(self._registry.GetTrust, registry_pb2.GetTrustRequest())

    def refit_trust(self) -> registry_pb2.TrustReport:
        """Fit a new trust epoch now (regulator only)."""
        return self._call(self._registry.RefitTrust, registry_pb2.RefitTrustRequest())


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts
