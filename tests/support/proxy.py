"""A TCP proxy that a test can cut, to simulate a database outage without stopping the server."""

import socket
import threading
from contextlib import suppress

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class CuttableProxy:
    """Forwards connections to the target until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (they get an immediate close)."""
        with self._lock:
            self._cut = True
            for conn in self._connections:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
            self._connections.clear()

    def restore(self) -> None:
        """Let new connections through again (the end of the outage)."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                upstream = socket.create_connection(self._target)
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def proxy_to_postgres(url: str) -> CuttableProxy:
    """A proxy to the PostgreSQL server of `url`."""
    target = conninfo_to_dict(url)
    return CuttableProxy(str(target.get("host", "127.0.0.1")), int(target.get("port") or 5432))


def through(proxy: CuttableProxy, url: str) -> str:
    """`url` (PostgreSQL) reached through `proxy`."""
    params = conninfo_to_dict(url)
    return make_conninfo(url, host="127.0.0.1", port=str(proxy.port), dbname=params["dbname"])
