"""A TCP proxy that cuts connections after a given number of bytes, for fault-injection tests.

::

    with CuttingProxy("127.0.0.1", dovecot.port) as proxy:
        proxy.cut_next(down=5000)      # the next connection dies after 5000 bytes server->client
        ...connect to ("127.0.0.1", proxy.port)...

Each accepted connection takes the next cut planned with :meth:`cut_next`
(or none); ``down`` counts bytes from the server to the client, ``up``
bytes from the client to the server. At the cut the proxy forwards exactly
that many bytes, then closes both sides, as a dropped link or a killed
server would. :attr:`connections` records what went through.
"""

import collections
import dataclasses
import socket
import threading


@dataclasses.dataclass
class ProxiedConnection:
    down_limit: int | None
    up_limit: int | None
    bytes_down: int = 0
    bytes_up: int = 0
    was_cut: bool = False


class CuttingProxy:
    def __init__(self, target_host, target_port, host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = None
        self.connections = []
        self._cuts = collections.deque()
        self._lock = threading.Lock()
        self._listener = None
        self._threads = []
        self._sockets = []
        self._stopping = False

    def cut_next(self, down=None, up=None):
        """Plan the cut of the next connection (None = that direction is never cut)."""
        with self._lock:
            self._cuts.append((down, up))

    def clear_cuts(self):
        with self._lock:
            self._cuts.clear()

    def start(self):
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name="cutting-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept_loop(self):
        while not self._stopping:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                down, up = self._cuts.popleft() if self._cuts else (None, None)
                record = ProxiedConnection(down_limit=down, up_limit=up)
                self.connections.append(record)
                self._sockets += [client, server]
            closed = threading.Event()
            for source, sink, direction in ((server, client, "down"), (client, server, "up")):
                thread = threading.Thread(target=self._pump, args=(source, sink, record, direction, client, server,
                                                                   closed), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source, sink, record, direction, client, server, closed):
        limit = record.down_limit if direction == "down" else record.up_limit
        attribute = "bytes_" + direction
        try:
            while not closed.is_set():
                data = source.recv(65536)
                if not data:
                    break
                with self._lock:
                    sent = getattr(record, attribute)
                    if limit is not None and sent + len(data) >= limit:
                        data = data[:max(limit - sent, 0)]
                        record.was_cut = True
                    setattr(record, attribute, sent + len(data))
                if data:
                    sink.sendall(data)
                if record.was_cut:
                    break
        except OSError:
            pass
        finally:
            closed.set()
            for sock in (client, server):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    @property
    def bytes_down(self):
        return sum(record.bytes_down for record in self.connections)

    def stop(self):
        self._stopping = True
        if self._listener:
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
