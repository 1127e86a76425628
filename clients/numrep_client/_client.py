"""A blocking client for every numrep.v1 RPC. Each call carries a fresh
single-use bearer token signed with the participant's own key."""

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
from numrep.signing.tokens import DEFAULT_AUDIENCE, mint_token
from numrep.v1 import common_pb2, flags_pb2, flags_pb2_grpc, lookup_pb2, lookup_pb2_grpc
from numrep.v1 import publish_pb2, publish_pb2_grpc, registry_pb2, registry_pb2_grpc, sync_pb2, sync_pb2_grpc

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
    mutual TLS, this participant's certificate chain and key."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        read = lambda p: p.read_bytes() if p else None  # noqa: E731
        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


def open_channel(target: str, tls: TlsFiles | None = None) -> grpc.Channel:
    return grpc.insecure_channel(target) if tls is None else grpc.secure_channel(target, tls.credentials())


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
        self._channel = channel or open_channel(target, tls)
        self._lookup = lookup_pb2_grpc.LookupServiceStub(self._channel)
        self._publish = publish_pb2_grpc.PublishServiceStub(self._channel)
        self._flags = flags_pb2_grpc.FlagsServiceStub(self._channel)
        self._sync = sync_pb2_grpc.SyncServiceStub(self._channel)
        self._registry = registry_pb2_grpc.RegistryServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ExchangeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {mint_token(self.identity, self.audience)}")]

    def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return method(request, metadata=self._metadata(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise ExchangeError.from_rpc(exc) from None

    # --- lookup ------------------------------------------------------------------
    def lookup(self, number: str) -> common_pb2.Verdict:
        return self._call(self._lookup.Lookup, lookup_pb2.LookupRequest(number=number))

    def batch_lookup(self, numbers: Sequence[str]) -> list[lookup_pb2.BatchLookupResult]:
        request = lookup_pb2.BatchLookupRequest(requests=[lookup_pb2.LookupRequest(number=n) for n in numbers])
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


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts
