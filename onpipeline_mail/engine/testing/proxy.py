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

A cut can also fall on the protocol: before the client's N-th command
(``commands=N``), before the server's N-th tagged reply (``replies=N``: the
client has the data but never the completion), or before the first command
holding some bytes (``match=b'EXAMINE "INBOX"'``); IMAP lines are counted
outside literals. ``how`` is ``close`` (both sides closed), ``reset`` (the
client gets a TCP RST) or ``stall`` (nothing more is forwarded, the
connection stays open: the client's read timeout has to notice).
``on_cut`` runs after the cut, e.g. to restart the server.
"""

import collections
import dataclasses
import re
import socket
import struct
import threading
import typing

HOWS = ("close", "reset", "stall")
_LITERAL_RE = re.compile(rb"\{(\d+)\+?\}$")


@dataclasses.dataclass
class Cut:
    """Where and how the next connection is cut (None: not on that count)."""

    down: int | None = None
    up: int | None = None
    commands: int | None = None
    replies: int | None = None
    match: bytes | None = None
    how: str = "close"
    on_cut: typing.Callable | None = None

    def __post_init__(self):
        if self.how not in HOWS:
            raise ValueError("how: one of %s" % ", ".join(HOWS))


class _LineScanner:
    """Where IMAP lines start in a byte stream, literals ({n} then n bytes) skipped."""

    def __init__(self):
        self.literal = 0
        self.tail = b""
        self.at_start = True

    def feed(self, data):
        """[(offset in data, first byte)] of the lines that start in ``data``."""
        starts, pos, size = [], 0, len(data)
        while pos < size:
            if self.literal:
                taken = min(self.literal, size - pos)
                self.literal -= taken
                pos += taken
                continue
            if self.at_start:
                starts.append((pos, data[pos:pos + 1]))
                self.at_start = False
            end = data.find(b"\n", pos)
            if end < 0:
                self.tail = (self.tail + data[pos:])[-40:]
                break
            line_end = (self.tail + data[max(pos, end - 40):end]).rstrip(b"\r")[-40:]
            self.tail = b""
            pos = end + 1
            literal = _LITERAL_RE.search(line_end)
            if literal:
                self.literal = int(literal.group(1))  # the same line goes on after the literal
            else:
                self.at_start = True
        return starts


@dataclasses.dataclass
class ProxiedConnection:
    down_limit: int | None
    up_limit: int | None
    bytes_down: int = 0
    bytes_up: int = 0
    was_cut: bool = False
    #: Commands the client started and tagged replies the server started (forwarded or not).
    commands: int = 0
    replies: int = 0
    cut: Cut | None = None
    #: Set once the connection is closed after its cut and ``on_cut`` has returned.
    cut_done: threading.Event = dataclasses.field(default_factory=threading.Event)


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

    def cut_next(self, down=None, up=None, **options):
        """Plan the cut of the next connection (None = that direction is never cut); ``options``: see :class:`Cut`."""
        with self._lock:
            self._cuts.append(Cut(down=down, up=up, **options))

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
                cut = self._cuts.popleft() if self._cuts else Cut()
                record = ProxiedConnection(down_limit=cut.down, up_limit=cut.up, cut=cut)
                self.connections.append(record)
                self._sockets += [client, server]
            closed = threading.Event()
            for source, sink, direction in ((server, client, "down"), (client, server, "up")):
                thread = threading.Thread(target=self._pump, args=(source, sink, record, direction, client, server,
                                                                   closed), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _cut_offset(self, record, direction, data, scanner, recent):
        """How much of ``data`` to forward before the cut, or None when the cut is not in it."""
        cut = record.cut
        offsets = []
        limit = record.down_limit if direction == "down" else record.up_limit
        sent = getattr(record, "bytes_" + direction)
        if limit is not None and sent + len(data) >= limit:
            offsets.append(max(limit - sent, 0))
        for offset, first in scanner.feed(data):
            if direction == "up":
                record.commands += 1
                if cut.commands is not None and record.commands == cut.commands:
                    offsets.append(offset)
            elif first not in (b"*", b"+"):
                record.replies += 1
                if cut.replies is not None and record.replies == cut.replies:
                    offsets.append(offset)
        if direction == "up" and cut.match is not None:
            found = (recent + data).find(cut.match)
            if found >= 0:
                offsets.append(max(found - len(recent), 0))
        return min(offsets) if offsets else None

    def _pump(self, source, sink, record, direction, client, server, closed):
        scanner, recent = _LineScanner(), b""
        how = record.cut.how
        try:
            while not closed.is_set():
                data = source.recv(65536)
                if not data:
                    break
                with self._lock:
                    if record.was_cut:  # the other direction was cut (a stall keeps reading, forwards nothing)
                        continue
                    offset = self._cut_offset(record, direction, data, scanner, recent)
                    recent = (recent + data)[-256:]
                    if offset is not None:
                        data = data[:offset]
                        record.was_cut = True
                    setattr(record, "bytes_" + direction, getattr(record, "bytes_" + direction) + len(data))
                if data:
                    sink.sendall(data)
                if record.was_cut and how != "stall":
                    break
        except OSError:
            pass
        finally:
            with self._lock:
                first_to_close = not closed.is_set()
                closed.set()
            reset = record.was_cut and how == "reset"
            if reset:
                try:
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            for sock in (client, server):
                try:
                    # SHUT_RD wakes the other direction's recv without sending a FIN, so that the
                    # close with SO_LINGER 0 sends the reset.
                    sock.shutdown(socket.SHUT_RD if reset and sock is client else socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            if first_to_close and record.was_cut:
                try:
                    if record.cut.on_cut is not None:
                        record.cut.on_cut()
                finally:
                    record.cut_done.set()

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
