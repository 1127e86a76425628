"""Helpers for the SDK tests (imported by name: this directory is on sys.path)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from numrep.signing.keys import Identity

SPAM_NUMBER = "+12025550143"
SPAM_NUMBER_LOCAL = "(202) 555-0143"
CLEAN_NUMBER = "+12025550188"


class FakeClock:
    """A settable clock: ``clock()`` returns the current value, ``advance(s)`` moves it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def save_identity(identity: Identity, directory: Path) -> Path:
    path = directory / f"{identity.participant_id}.json"
    identity.save(path)
    return path


def public_jwk(identity: Identity) -> str:
    return json.dumps(identity.public_jwk())
