"""A port that refuses connections until it is opened, then forwards them to the broker.

``BrokerDoor(target)`` binds a TCP port on 127.0.0.1 without listening: a client pointed
at it gets "Connection refused", as from a broker that is down (the shared broker itself
is never stopped). ``open()`` starts listening and forwards every connection to
``target`` (``host:port``), so the client's bootstrap succeeds; the broker's metadata then
sends it to the broker's own address.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class BrokerDoor:
    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.port: int = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self.opened = False

    def open(self) -> None:
        self.opened = True
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self._spawn(self._accept)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._spawn(_pipe, client, upstream)
            self._spawn(_pipe, upstream, client)

    def close(self) -> None:
        self._closed.set()
        self.sock.close()

    def __enter__(self) -> BrokerDoor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
