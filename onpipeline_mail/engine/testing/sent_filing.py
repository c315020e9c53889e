"""Make the test SMTP server behave like Gmail or Microsoft 365: file what it sends in Sent.

``ServerSideFiling`` is an ``SmtpServer.on_message`` hook: for each message
sent by a registered login, it APPENDs the message as received (``\\Seen``)
to that account's Sent folder over IMAP, before the SMTP server answers
250, as those providers do.
"""

import datetime
import threading

from ..connection import imap_session


class ServerSideFiling:
    def __init__(self):
        self._accounts = {}
        self._lock = threading.Lock()
        #: (login, folder) of every message filed, in order.
        self.filed = []

    def register(self, smtp_login, imap_settings, folder="Sent", delay=0.0):
        """File what ``smtp_login`` sends; ``delay`` seconds after the SMTP answer if given (a slow provider)."""
        with self._lock:
            self._accounts[smtp_login] = (imap_settings, folder, delay)

    def unregister(self, smtp_login):
        with self._lock:
            self._accounts.pop(smtp_login, None)

    def __call__(self, message):
        with self._lock:
            account = self._accounts.get(message.login)
        if not account:
            return
        settings, folder, delay = account
        if delay:
            timer = threading.Timer(delay, self._file, (settings, folder, message))
            timer.daemon = True
            timer.start()
            return
        self._file(settings, folder, message)

    def _file(self, settings, folder, message):
        with imap_session(settings) as client:
            client.append(folder, message.data, flags=[b"\\Seen"],
                          msg_time=datetime.datetime.now(datetime.timezone.utc))
        with self._lock:
            self.filed.append((message.login, folder))


def install(smtp_server):
    """The server's ServerSideFiling hook, installed once and shared by the tests of a run."""
    hook = smtp_server.on_message
    if not isinstance(hook, ServerSideFiling):
        hook = ServerSideFiling()
        smtp_server.on_message = hook
    return hook
