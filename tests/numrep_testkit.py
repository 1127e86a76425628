"""Helpers shared by the tests: hand-built JWS (for tokens the library would
refuse to produce), raw RPC calls with arbitrary metadata, and the list of
every numrep.v1 RPC read from the generated descriptors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import grpc
from google.protobuf import message_factory
from jwt.algorithms import get_default_algorithms

from numrep.core.model import Role
from numrep.signing.keys import Identity
from numrep.signing.labels import LABEL_TYPE
from numrep.signing.tokens import DEFAULT_AUDIENCE, TOKEN_TYPE
from numrep.v1 import common_pb2, flags_pb2, flags_pb2_grpc, lookup_pb2, lookup_pb2_grpc, publish_pb2, publish_pb2_grpc
from numrep.v1 import registry_pb2, registry_pb2_grpc, sync_pb2, sync_pb2_grpc
from numrep.v1 import consent_pb2, consent_pb2_grpc
from numrep.v1 import cases_pb2, cases_pb2_grpc

# --- numbers used across the tests (all valid US numbers) -----------------------
NUMBER = "+12025550143"
OTHER_NUMBER = "+12025550188"


def numbers(count: int, start: int = 100) -> list[str]:
    """``count`` distinct valid E.164 numbers in ascending order."""
    return [f"+1212555{start + i:04d}" for i in range(count)]


# --- JWS by hand ---------------------------------------------------------------------
def b64url(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")))


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def label_claims(
    issuer: str,
    number: str = NUMBER,
    category: str = "fraud.impersonation",
    confidence: Any = 1.0,
    *,
    issued_at: datetime | None = None,
    lifetime: timedelta = timedelta(days=30),
    jti: str | None = None,
) -> dict[str, Any]:
    issued = issued_at or now_utc()
    return {
        "iss": issuer,
        "num": number,
        "cat": category,
        "conf": confidence,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": jti or uuid.uuid4().hex,
    }


def token_claims(
    issuer: str,
    *,
    audience: Any = DEFAULT_AUDIENCE,
    issued_at: datetime | None = None,
    lifetime: timedelta = timedelta(seconds=60),
) -> dict[str, Any]:
    issued = issued_at or now_utc()
    return {
        "iss": issuer,
        "sub": issuer,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }


def sign_jws(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str) -> str:
    """A compact JWS with exactly ``header`` (nothing added, nothing checked),
    signed with ``key`` under ``alg``; PyJWT's encoder would refuse some headers."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = get_default_algorithms()[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def sign_as(identity: Identity, claims: dict[str, Any], typ: str = LABEL_TYPE, **header: Any) -> str:
    """Sign ``claims`` with ``identity``'s key; ``header`` entries override the defaults
    (a value of None removes the entry)."""
    full = {"alg": identity.alg, "kid": identity.kid, "typ": typ, **header}
    full = {k: v for k, v in full.items() if v is not None}
    return sign_jws(full, claims, identity.private_key, identity.alg)


def hmac_jws(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand (PyJWT refuses to use an asymmetric public key as an HMAC secret)."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned_jws(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64json(header)}.{b64json(claims)}."


def replace_payload(token: str, claims: dict[str, Any]) -> str:
    """``token`` with its payload swapped for ``claims`` and the old signature kept."""
    head, _, signature = token.split(".")
    return f"{head}.{b64json(claims)}.{signature}"


def payload_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def auth_token_header(identity: Identity) -> dict[str, Any]:
    return {"alg": identity.alg, "kid": identity.kid, "typ": TOKEN_TYPE}


# --- every numrep.v1 RPC ---------------------------------------------------------------
_MODULES = [
    (lookup_pb2, lookup_pb2_grpc),
    (publish_pb2, publish_pb2_grpc),
    (flags_pb2, flags_pb2_grpc),
    (sync_pb2, sync_pb2_grpc),
    (registry_pb2, registry_pb2_grpc),
    (consent_pb2, consent_pb2_grpc),
    (cases_pb2, cases_pb2_grpc),
]


@dataclass(frozen=True)
class RpcInfo:
    name: str  # "LookupService/Lookup", the key of numrep.core.roles.PERMISSIONS
    stub_class: type
    method: str
    request_class: type
    server_streaming: bool
    client_streaming: bool = False  # then ``RawCaller.call`` sends its one request as the whole stream


def _rpcs() -> dict[str, RpcInfo]:
    found = {}
    for pb2, pb2_grpc in _MODULES:
        for service in pb2.DESCRIPTOR.services_by_name.values():
            stub = getattr(pb2_grpc, f"{service.name}Stub")
            for method in service.methods:
                name = f"{service.name}/{method.name}"
                found[name] = RpcInfo(
                    name, stub, method.name, message_factory.GetMessageClass(method.input_type), method.server_streaming,
                    method.client_streaming,
                )
    return found


ALL_RPCS: dict[str, RpcInfo] = _rpcs()


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str
    response: Any = None  # the response (a list of chunks for a stream) when OK


class RawCaller:
    """Calls any numrep.v1 RPC through the generated stubs with exactly the
    metadata given: no token, a garbage one, a hand-crafted one."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)

    def close(self) -> None:
        self.channel.close()

    def call(self, rpc: str, request: Any = None, metadata: Sequence[tuple[str, str]] = (), timeout: float = 10.0) -> Outcome:
        info = ALL_RPCS[rpc]
        stub = info.stub_class(self.channel)
        request = request if request is not None else info.request_class()
        method = getattr(stub, info.method)
        sent = iter([request]) if info.client_streaming else request
        try:
            if info.server_streaming:
                response: Any = list(method(sent, metadata=tuple(metadata), timeout=timeout))
            else:
                response = method(request, metadata=tuple(metadata), timeout=timeout)
        except grpc.RpcError as exc:
            return Outcome(exc.code(), exc.details() or "")
        return Outcome(grpc.StatusCode.OK, "", response)


# --- registry helpers ---------------------------------------------------------------------
def public_jwk_text(identity: Identity) -> str:
    """The public JWK of ``identity`` as the registry takes it (JSON text)."""
    return json.dumps(identity.public_jwk())


ROLE_PB = {
    Role.CARRIER: common_pb2.ROLE_CARRIER,
    Role.HANDSET_VENDOR: common_pb2.ROLE_HANDSET_VENDOR,
    Role.APP_VENDOR: common_pb2.ROLE_APP_VENDOR,
    Role.REGULATOR: common_pb2.ROLE_REGULATOR,
}


def empty_keyspace(session: Any, keyspace: str) -> None:
    """Empty every table of a Cassandra test keyspace (but its migration record).
    A TRUNCATE costs ~0.2 s whatever the table holds, so look first (one row each,
    all at once) and truncate only the tables in use."""
    tables = [row.table_name for row in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
        if row.table_name != "schema_migrations"]
    probes = [(table, session.execute_async(f"SELECT * FROM {keyspace}.{table} LIMIT 1", timeout=60)) for table in tables]
    used = [table for table, probe in probes if probe.result().one() is not None]
    for truncation in [session.execute_async(f"TRUNCATE {keyspace}.{table}", timeout=60) for table in used]:
        truncation.result()
