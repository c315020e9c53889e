"""Running an iterator on a thread, a bounded number of items ahead of its reader.

The sync fetches the next batch from IMAP this way while the caller stores the
current one: the thread mostly waits on the socket (which releases the GIL),
so the fetch overlaps the storing instead of following it.
"""

import collections
import threading

_ITEM, _END, _ERROR = "item", "end", "error"


class ReadAhead:
    """Iterate over ``iterable`` on a thread, at most ``depth`` items ahead; use as a context manager.

    ::

        with ReadAhead(fetched_batches(), depth=1) as batches:
            for batch in batches: ...

    The thread asks the iterable for an item only while fewer than ``depth``
    items are waiting or being made, so memory holds ``depth`` items beyond
    the one the reader works on. An exception raised by the iterable comes
    out of the reader's ``next()`` after the items made before it. Whatever
    the iterable uses (a connection, say) belongs to the thread until
    :meth:`close` returns: ``close`` waits for the item being made, then the
    thread ends. Leaving the ``with`` block closes.
    """

    def __init__(self, iterable, depth=1, name="onpipeline-read-ahead"):
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._iterator = iter(iterable)
        self._ready = collections.deque()  # (kind, value), oldest first
        self._changed = threading.Condition()
        self._room = depth  # items the thread may still make before the reader takes one
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __iter__(self):
        return self

    def __next__(self):
        with self._changed:
            while not self._ready and not self._closing:
                self._changed.wait()
            if not self._ready:
                raise StopIteration
            kind, value = self._ready[0]
            if kind == _ITEM:
                self._ready.popleft()
                self._room += 1
                self._changed.notify_all()
                return value
            if kind == _ERROR:
                self._ready[0] = (_END, None)  # after the error, the iteration is over
                raise value
            raise StopIteration

    def close(self):
        """Stop asking the iterable for items and wait for the thread to end; items not read are dropped."""
        with self._changed:
            self._closing = True
            self._ready.clear()
            self._changed.notify_all()
        self._thread.join()

    def _run(self):
        try:
            while self._wait_for_room():
                try:
                    item = next(self._iterator)
                except StopIteration:
                    self._hand(_END, None)
                    return
                self._hand(_ITEM, item)
        except BaseException as exc:  # the reader gets it, in order, from next()
            self._hand(_ERROR, exc)

    def _wait_for_room(self):
        with self._changed:
            while self._room <= 0 and not self._closing:
                self._changed.wait()
            if self._closing:
                return False
            self._room -= 1
            return True

    def _hand(self, kind, value):
        with self._changed:
            if not self._closing:
                self._ready.append((kind, value))
                self._changed.notify_all()
