"""Opening authenticated IMAP sessions.

``imap_session(settings)`` is the only way the engine talks to an IMAP
server: it connects with a bounded timeout, verifies TLS certificates unless
the mailbox explicitly allows a self-signed server, logs in through a hook
(password today, OAuth2 later) and translates every failure into
:mod:`.errors`.
"""

import contextlib
import dataclasses
import logging
import ssl

from imapclient import IMAPClient, SocketTimeout
from imapclient import exceptions as imap_exc

from . import errors

_logger = logging.getLogger(__name__)

SSL = "ssl"
STARTTLS = "starttls"
PLAIN = "none"
SECURITIES = (SSL, STARTTLS, PLAIN)

CONNECT_TIMEOUT = 15
READ_TIMEOUT = 60


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """How to reach and log in to one IMAP or SMTP server."""

    host: str
    port: int
    security: str = SSL
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    verify_tls: bool = True
    #: Extra CA bundle to trust (a private CA); the system store is always used too.
    ca_file: str = ""
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    #: Shown after an authentication error, e.g. "Gmail needs an app password".
    provider_note: str = ""

    def __post_init__(self):
        if not self.host:
            raise errors.ConfigError("No server host is set.", reason="no_host")
        if self.security not in SECURITIES:
            raise errors.ConfigError("Unknown security %r: use one of %s." % (self.security, ", ".join(SECURITIES)))
        if not self.port or not 0 < int(self.port) < 65536:
            raise errors.ConfigError("The port %r is not valid." % (self.port,), reason="bad_port")


def make_ssl_context(settings):
    """A verifying context by default; an unverified one only when the mailbox allows it."""
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def password_login(client, settings):
    client.login(settings.username, settings.password)


def open_imap(settings, login=password_login):
    """Connect and log in; the caller owns the returned client (see :func:`imap_session`)."""
    context = make_ssl_context(settings)
    try:
        client = IMAPClient(
            settings.host,
            port=int(settings.port),
            ssl=settings.security == SSL,
            ssl_context=context,
            timeout=SocketTimeout(connect=settings.connect_timeout, read=settings.read_timeout),
        )
    except (OSError, imap_exc.IMAPClientError) as exc:
        raise _translate(exc, settings) from exc
    try:
        if settings.security == STARTTLS:
            try:
                client.starttls(context)
            except imap_exc.CapabilityError as exc:
                raise errors.TLSError(
                    "The IMAP server %s:%s does not offer STARTTLS. Choose SSL/TLS (usually port 993)."
                    % (settings.host, settings.port),
                    reason="no_starttls",
                ) from exc
        try:
            login(client, settings)
        except imap_exc.LoginError as exc:
            # imapclient wraps a connection dropped during LOGIN in LoginError
            # too: that is a network failure to retry, not a wrong password.
            if isinstance(exc.__context__, (OSError, imap_exc.IMAPClientAbortError)):
                raise _translate(exc.__context__, settings) from exc
            raise errors.translate_login_error(exc, settings.provider_note) from exc
        # Aware datetimes, as the server sent them, instead of naive local times.
        client.normalise_times = False
        return client
    except BaseException as exc:
        _close(client, clean=False)
        if isinstance(exc, errors.MailSyncError) or not isinstance(exc, (OSError, imap_exc.IMAPClientError)):
            raise
        raise _translate(exc, settings) from exc


@contextlib.contextmanager
def imap_session(settings, login=password_login):
    """Yield a logged-in :class:`IMAPClient`; network errors inside become engine errors."""
    client = open_imap(settings, login=login)
    clean = False
    try:
        yield client
        clean = True
    except (OSError, imap_exc.IMAPClientAbortError) as exc:
        raise _translate(exc, settings) from exc
    finally:
        _close(client, clean=clean)


def _close(client, clean):
    # After an abort the connection state is unknown: LOGOUT could block on a
    # half-read response, so only shut the socket down.
    if clean:
        try:
            client.logout()
            return
        except (OSError, imap_exc.IMAPClientError):
            pass
    try:
        client.shutdown()
    except OSError:
        pass


def _translate(exc, settings):
    translated = errors.translate_network_error(
        exc, settings.host, settings.port, "IMAP", timeout=settings.connect_timeout)
    if translated is not None:
        return translated
    return errors.ConnectError("IMAP error with %s:%s: %s" % (settings.host, settings.port, exc))


def check_imap(settings, login=password_login):
    """Log in and return the server's capabilities: the automatic credential check."""
    with imap_session(settings, login=login) as client:
        return tuple(sorted(cap.decode("ascii", "replace") if isinstance(cap, bytes) else cap
                            for cap in client.capabilities()))
