"""A call session kept open for a client, so that its calls carry MAC'd call
tokens instead of a signature each (``numrep.signing.sessions``).

Opening and renewing a session are RPCs, and no call waits for them: the client
asks ``due()`` as it mints a call's token and, when it says so, opens a session
in the background. Until a session is open, and whenever the exchange refuses
one, calls carry tokens signed with the key, as before sessions. An exchange
that does not hand out sessions (``UNIMPLEMENTED``; ``FAILED_PRECONDITION`` on a
plaintext connection from another host) is asked again after a long pause.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timezone
from typing import Callable

import grpc

from numrep.signing.keys import Identity
from numrep.signing.sessions import CallSession, mint_call_token
from numrep.signing.tokens import mint_token
from numrep.v1 import registry_pb2

log = logging.getLogger("numrep_client.sessions")

RENEW_WHEN_LEFT = 0.25   # of a session's lifetime: renewed in the background from then on
RETRY_AFTER = 30.0       # seconds before asking again after a failed open
RETRY_UNSUPPORTED = 600.0  # ... after the exchange said it hands out no sessions here
_UNSUPPORTED = frozenset({grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.FAILED_PRECONDITION})


class SessionKeeper:
    def __init__(self, identity: Identity, audience: str, *, clock: Callable[[], float] = time.time) -> None:
        self.identity = identity
        self.audience = audience
        self._clock = clock
        self._lock = threading.Lock()
        self._held: tuple[CallSession, float] | None = None  # the session and its expiry (epoch s), replaced together
        self._renew_at = 0.0
        self._opening = False
        self._retry_at = 0.0

    @property
    def session(self) -> CallSession | None:
        return self._usable(self._clock())

    @property
    def opening(self) -> bool:
        return self._opening

    def token(self) -> str:
        """A token for one call: in the open session, else signed with the key."""
        session = self._usable(self._clock())
        if session is None:
            return mint_token(self.identity, self.audience)
        return mint_call_token(session, self.audience)

    def due(self) -> bool:
        """Should the caller open a session now (none open, or in its last quarter)?
        True at most once until ``opened`` or ``failed`` is called."""
        now = self._clock()
        with self._lock:
            if self._opening or now < self._retry_at:
                return False
            if self._held is not None and now < self._renew_at:
                return False
            self._opening = True
            return True

    def request(self) -> tuple[registry_pb2.OpenSessionRequest, tuple[tuple[str, str], ...]]:
        """The OpenSession request and its metadata: a token signed with the key
        (a session cannot open another)."""
        return registry_pb2.OpenSessionRequest(), (("authorization", f"Bearer {mint_token(self.identity, self.audience)}"),)

    def opened(self, reply: registry_pb2.CallSession) -> None:
        session = session_from_pb(reply)
        expires = session.expires_at.timestamp()
        now = self._clock()
        with self._lock:
            self._held = (session, expires)
            self._renew_at = now + (expires - now) * (1 - RENEW_WHEN_LEFT)
            self._opening = False

    def failed(self, code: grpc.StatusCode | None, details: str = "") -> None:
        """Opening failed (``code`` None: not even sent); calls go on signed."""
        pause = RETRY_UNSUPPORTED if code in _UNSUPPORTED else RETRY_AFTER
        with self._lock:
            self._opening = False
            self._retry_at = self._clock() + pause
        log.warning("no call session (%s: %s); signing each call, asking again in %.0f s",
                    code.name if code is not None else "not sent", details, pause)

    def refused(self) -> None:
        """The exchange refused a call (``UNAUTHENTICATED``): the session may be why
        (its key revoked, the exchange's secret changed). Calls go signed again
        until a new session opens."""
        with self._lock:
            self._held = None

    def _usable(self, now: float) -> CallSession | None:
        """The session, unless it ends within a second (a token minted now could
        arrive after it)."""
        held = self._held
        return held[0] if held is not None and now + 1.0 < held[1] else None


def session_from_pb(reply: registry_pb2.CallSession) -> CallSession:
    return CallSession(reply.session_id, bytes(reply.key), reply.participant_id, reply.kid,
                       reply.expires_at.ToDatetime(tzinfo=timezone.utc))
