"""A store wrapped so that every call is a child span (and failures a metric),
without touching the stores themselves."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

from numrep.core.errors import NumrepError
from numrep.store.base import Store
from numrep.telemetry.instruments import Telemetry


class TracedStore(Store):
    def __init__(self, inner: Store, telemetry: Telemetry, system: str) -> None:
        self.inner = inner
        self.reads_are_local = inner.reads_are_local
        self.prompt_feed = inner.prompt_feed
        self.serial_rewrites = inner.serial_rewrites
        self._telemetry = telemetry
        self._attributes = {"db.system": system}

    def _call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._span(operation):
            return method(*args, **kwargs)

    @contextlib.contextmanager
    def _span(self, operation: str) -> Iterator[None]:
        """A span for one store operation; a refusal is counted by kind and noted on the span."""
        with self._telemetry.tracer.start_as_current_span(f"store.{operation}", attributes=self._attributes) as span:
            try:
                yield
            except NumrepError as exc:
                span.set_attribute("numrep.error", exc.reason)
                self._telemetry.store_errors.add(1, {"operation": operation, "kind": type(exc).__name__})
                raise

    def close(self) -> None:
        self.inner.close()

    async def get_verdict_async(self, number: str) -> Any:
        with self._span("get_verdict"):
            return await self.inner.get_verdict_async(number)


def _traced(name: str) -> Callable[..., Any]:
    @functools.wraps(getattr(Store, name))
    def method(self: TracedStore, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, getattr(self.inner, name), *args, **kwargs)

    return method


for _name in sorted(Store.__abstractmethods__ | {"ping", "evidence_many", "rewrite_verdicts"}):
    setattr(TracedStore, _name, _traced(_name))
TracedStore.__abstractmethods__ = frozenset()
