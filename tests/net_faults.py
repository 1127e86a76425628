"""Network faults between a real client and a real exchange.

``BlackHoleProxy`` forwards TCP connections to an exchange. ``black_hole()``
makes the connections open at that moment stop carrying bytes either way while
staying open: nothing is closed and nothing is refused, as when a NAT or a
firewall drops a flow's state or the peer's host vanishes. Only a keepalive
ping that goes unanswered (or TCP's own timers, after many minutes) can tell.
Connections made afterwards are forwarded as before. A silenced connection's
bytes are read and dropped, so the proxy sees when the exchange closes its end
(``exchange_closed``) while the client hears nothing of it.
"""

from __future__ import annotations

import socket
import threading
from typing import Iterator


class _Link:
    """One client connection and its connection to the exchange."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.holed = threading.Event()
        self.exchange_closed = threading.Event()


class BlackHoleProxy:
    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="black-hole-proxy", daemon=True).start()

    @property
    def connections(self) -> int:
        """Connections made through the proxy so far."""
        with self._lock:
            return len(self._links)

    @property
    def closed_by_exchange(self) -> int:
        """Connections the exchange has closed so far (a GOAWAY, a failed ping, its stop)."""
        with self._lock:
            return sum(link.exchange_closed.is_set() for link in self._links)

    def exchange_closed(self, timeout: float) -> bool:
        """Has the exchange closed every silenced connection (waiting up to ``timeout`` s)?"""
        with self._lock:
            holed = [link for link in self._links if link.holed.is_set()]
        return all(link.exchange_closed.wait(timeout) for link in holed)

    def black_hole(self) -> int:
        """Silence every connection open now; returns how many."""
        with self._lock:
            for link in self._links:
                link.holed.set()
            return len(self._links)

    def close(self) -> None:
        """Stop accepting and close every connection (the threads blocked on them wake and end)."""
        self._closed.set()
        with self._lock:
            sockets = [self._listener] + [sock for link in self._links for sock in link.sockets]
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # close() alone wakes no thread blocked in accept() or recv()
            except OSError:
                pass
            sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:  # the exchange is down: this client is refused, the next may not be
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.append(link)
            for source, sink in (link.sockets, reversed(link.sockets)):
                threading.Thread(target=self._pump, args=(link, source, sink), daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            for data in _chunks(source):
                if not link.holed.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        if source is link.sockets[1]:
            link.exchange_closed.set()
        if not link.holed.is_set():
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while data := sock.recv(65536):
        yield data
