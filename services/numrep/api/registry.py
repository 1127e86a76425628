from __future__ import annotations

from datetime import timedelta

import grpc

from numrep.api.auth import current_participant, current_proof, run_blocking
from numrep.api.convert import ROLE_FROM_PB, participant_to_pb, timestamp, trust_report_to_pb
from numrep.api.peer_identity import confidential
from numrep.core.errors import FailedPrecondition, InvalidArgument
from numrep.exchange import Exchange
from numrep.telemetry import Telemetry
from numrep.trust_job import refit
from numrep.v1 import registry_pb2, registry_pb2_grpc


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, exchange: Exchange, telemetry: Telemetry) -> None:
        self._exchange = exchange
        self._telemetry = telemetry

    async def ListParticipants(self, request, context):  # type: ignore[no-untyped-def]
        participants = await run_blocking(self._exchange.list_participants)
        return registry_pb2.ListParticipantsResponse(participants=[participant_to_pb(p) for p in participants])

    async def GetParticipant(self, request: registry_pb2.GetParticipantRequest, context: grpc.aio.ServicerContext) -> registry_pb2.Participant:
        return participant_to_pb(await run_blocking(self._exchange.get_participant, request.id))

    async def RegisterParticipant(
        self, request: registry_pb2.RegisterParticipantRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.Participant:
        role = ROLE_FROM_PB.get(request.role)
        if role is None:
            raise InvalidArgument("role must be one of carrier, handset_vendor, app_vendor, regulator", "bad_role")
        participant = await run_blocking(
            self._exchange.register_participant, request.id, role, request.display_name, list(request.jwks)
        )
        return participant_to_pb(participant)

    async def AddKey(self, request: registry_pb2.AddKeyRequest, context: grpc.aio.ServicerContext) -> registry_pb2.Participant:
        participant = await run_blocking(self._exchange.add_key, current_participant(), request.participant_id, request.jwk)
        return participant_to_pb(participant)

    async def GetTrust(self, request: registry_pb2.GetTrustRequest, context: grpc.aio.ServicerContext) -> registry_pb2.TrustReport:
        return trust_report_to_pb(await run_blocking(self._exchange.trust_snapshot))

    async def RefitTrust(self, request: registry_pb2.RefitTrustRequest, context: grpc.aio.ServicerContext) -> registry_pb2.TrustReport:
        snapshot, changed = await refit(self._exchange)
        return trust_report_to_pb(snapshot, changed)

    async def RevokeKey(self, request: registry_pb2.RevokeKeyRequest, context: grpc.aio.ServicerContext) -> registry_pb2.Participant:
        participant = await run_blocking(self._exchange.revoke_key, current_participant(), request.participant_id, request.kid)
        return participant_to_pb(participant)

    async def OpenSession(self, request: registry_pb2.OpenSessionRequest, context: grpc.aio.ServicerContext) -> registry_pb2.CallSession:
        if not confidential(context):  # the answer carries the session's key
            raise FailedPrecondition("a call session's key is sent only over TLS (or to a client on this host);"
                                     " sign a token per call on this connection", "session_needs_tls")
        lifetime = timedelta(seconds=request.lifetime_seconds) if request.lifetime_seconds else None
        session = self._exchange.open_session(current_proof(), lifetime)  # no store call: a key derivation
        return registry_pb2.CallSession(session_id=session.session_id, key=session.key, expires_at=timestamp(session.expires_at),
                                        participant_id=session.participant_id, kid=session.kid)
