"""Opening authenticated IMAP sessions, and the TLS trust they rely on.

``imap_session(settings)`` is the only way the engine talks to an IMAP
server: it connects with a bounded timeout, verifies TLS certificates unless
the mailbox explicitly allows a self-signed server, logs in through a hook
(password today, OAuth2 later) and translates every failure into
:mod:`.errors`.

A company's private certificate authority is trusted on top of the system's:
``read_ca_certificates()`` checks the PEM an admin uploads, and
``make_ssl_context()`` (IMAP and SMTP) loads it from ``ServerSettings.ca_data``.
A stored CA that cannot be loaded never stops a connection that does not need
it; a connection that does fails with a :class:`errors.ConfigError` naming it.
"""

import binascii
import contextlib
import dataclasses
import datetime
import functools
import logging
import re
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
    #: Extra CA certificates to trust (a private CA), as PEM text; the system store is always used too.
    ca_data: str = dataclasses.field(default="", repr=False)
    #: The same as a path to a PEM file (the command line and the test servers' own CA).
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


# ---------------------------------------------------------------------------
# Trusted certificate authorities

PEM_BLOCK_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
PRIVATE_KEY_RE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
#: Short names of the subject attributes shown to the admin (RFC 4514).
DN_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
            "stateOrProvinceName": "ST", "localityName": "L", "domainComponent": "DC", "emailAddress": "E"}


@dataclasses.dataclass(frozen=True)
class CaCertificate:
    """One certificate authority to trust, as the settings screen shows it."""

    subject: str
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def name(self):
        """The common name (or the whole subject when it has none)."""
        for part in self.subject.split(", "):
            if part.startswith("CN="):
                return part[3:]
        return self.subject


@dataclasses.dataclass(frozen=True)
class CaBundle:
    """Checked CA certificates: ``pem`` holds only their CERTIFICATE blocks, nothing else of the file."""

    pem: str
    certificates: tuple


def read_ca_certificates(data, now=None):
    """Check CA certificates as an admin uploads them and return a :class:`CaBundle`.

    ``data`` is PEM (text or bytes, several certificates allowed) or one DER
    certificate. Raises :class:`errors.ConfigError` saying what is wrong: empty,
    not a certificate (reason ``ca_not_pem``), a private key (``ca_private_key``,
    refused even next to certificates: it must not be stored), unreadable
    (``ca_unreadable``), a server's own certificate (``ca_not_ca``), expired
    (``ca_expired``) or not valid yet (``ca_not_yet_valid``).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    data = bytes(data or b"")
    if not data.strip():
        raise errors.ConfigError("The certificate file is empty.", reason="ca_not_pem")
    ders = _certificate_ders(data)
    certificates = tuple(_ca_certificate(der, number, len(ders)) for number, der in enumerate(ders, 1))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    for certificate in certificates:
        if certificate.not_after < now:
            raise errors.ConfigError(
                "The certificate authority \"%s\" expired on %s: ask its administrator for the renewed "
                "certificate." % (certificate.name, certificate.not_after.date().isoformat()), reason="ca_expired")
        if certificate.not_before > now:
            raise errors.ConfigError(
                "The certificate authority \"%s\" is not valid before %s." % (
                    certificate.name, certificate.not_before.isoformat(" ", "minutes")), reason="ca_not_yet_valid")
    return CaBundle("".join(ssl.DER_cert_to_PEM_cert(der) for der in ders), certificates)


def _certificate_ders(data):
    """The DER bytes of each certificate in ``data`` (PEM, or one DER certificate), nothing else of it."""
    text = data.decode("ascii", "replace")
    if PRIVATE_KEY_RE.search(text):
        raise errors.ConfigError(
            "The file contains a private key. Upload only the certificate of the certificate authority "
            "(-----BEGIN CERTIFICATE-----): a private key must never leave its server.", reason="ca_private_key")
    if "-----BEGIN" not in text:
        # A .cer/.crt exported from Windows is often one DER certificate.
        if not _load_der(data):
            raise errors.ConfigError(
                "The file is not a PEM certificate: it has no \"-----BEGIN CERTIFICATE-----\" line.",
                reason="ca_not_pem")
        return [data]
    blocks = PEM_BLOCK_RE.findall(text)
    bodies = [body for kind, body in blocks if kind == "CERTIFICATE"]
    if not bodies:
        others = sorted({kind for kind, _body in blocks})
        raise errors.ConfigError(
            "The file holds %s, not a certificate: upload the certificate of the certificate authority "
            "(-----BEGIN CERTIFICATE-----)." % (
                " and ".join("a %s" % kind for kind in others) if others else "no complete PEM block"),
            reason="ca_not_pem")
    ders = []
    for number, body in enumerate(bodies, 1):
        try:
            ders.append(binascii.a2b_base64(body.encode("ascii", "replace")))
        except binascii.Error as exc:
            raise errors.ConfigError("Certificate %d of the file cannot be read (%s)." % (number, exc),
                                     reason="ca_unreadable") from exc
    return ders


def _load_der(der):
    """A context trusting ``der`` alone, or None when OpenSSL cannot read it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=der)
    except (ssl.SSLError, ValueError):
        return None
    return context


def _ca_certificate(der, number, count):
    where = "The certificate" if count == 1 else "Certificate %d of the file" % number
    context = _load_der(der)
    if context is None:
        raise errors.ConfigError("%s cannot be read: it is damaged or not an X.509 certificate." % where,
                                 reason="ca_unreadable")
    # OpenSSL lists only certificates allowed to sign others (CA:TRUE).
    listed = context.get_ca_certs()
    if not listed:
        raise errors.ConfigError(
            "%s is not a certificate authority: it is a server's own certificate. Upload the certificate of "
            "the authority that signed it (or, for one server with a self-signed certificate, allow it on "
            "the mailbox)." % where, reason="ca_not_ca")
    info = listed[0]
    return CaCertificate(
        subject=_distinguished_name(info.get("subject", ())), issuer=_distinguished_name(info.get("issuer", ())),
        not_before=_cert_time(info["notBefore"]), not_after=_cert_time(info["notAfter"]))


def _distinguished_name(rdns):
    return ", ".join("%s=%s" % (DN_NAMES.get(key, key), value) for rdn in rdns for key, value in rdn)


def _cert_time(value):
    return datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(value), datetime.timezone.utc)


@functools.lru_cache(maxsize=16)
def _ca_data_problem(ca_data):
    """Why the stored CA data cannot be used, or None; logged once per distinct data."""
    try:
        read_ca_certificates(ca_data)
    except errors.ConfigError as exc:
        _logger.warning("The trusted CA certificate in Settings cannot be used: %s", exc)
        return str(exc)
    return None


def _ca_file_problem(path):
    try:
        with open(path, "rb") as handle:
            read_ca_certificates(handle.read())
    except OSError as exc:
        return exc.strerror or str(exc)
    except errors.ConfigError as exc:
        return str(exc)
    return None


def make_ssl_context(settings):
    """A verifying context by default; an unverified one only when the mailbox allows it.

    The extra CA is loaded when it can be: one that cannot is left out (the
    system's authorities still apply) and :func:`extra_ca_error` names it if
    the server's certificate then fails verification.
    """
    context = ssl.create_default_context()
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if settings.ca_data:
        try:
            context.load_verify_locations(cadata=settings.ca_data)
        except (ssl.SSLError, ValueError, TypeError) as exc:
            _ca_data_problem(settings.ca_data)
            _logger.debug("Extra CA data left out: %s", exc)
    if settings.ca_file:
        try:
            context.load_verify_locations(cafile=settings.ca_file)
        except (OSError, ValueError) as exc:
            _logger.warning("The CA file %s cannot be read (%s): left out", settings.ca_file, exc)
    return context


def extra_ca_error(exc, settings):
    """For a certificate that failed verification while the settings' extra CA is unusable: a
    :class:`errors.ConfigError` (reason ``ca_unusable``) naming the CA and its problem; else None."""
    if not isinstance(exc, ssl.SSLCertVerificationError) or not settings.verify_tls:
        return None
    where = "%s:%s" % (settings.host, settings.port)
    untrusted = "The TLS certificate of %s is not trusted (%s)" % (where, exc.verify_message or exc.reason)
    if settings.ca_data:
        problem = _ca_data_problem(settings.ca_data)
        if problem:
            return errors.ConfigError(
                "%s, and the trusted CA certificate in Settings cannot be used: %s Fix it in "
                "Settings > CRM > Mailboxes." % (untrusted, problem), reason="ca_unusable")
    if settings.ca_file:
        problem = _ca_file_problem(settings.ca_file)
        if problem:
            return errors.ConfigError("%s, and the CA file %s cannot be used: %s"
                                      % (untrusted, settings.ca_file, problem), reason="ca_unusable")
    return None


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
    translated = extra_ca_error(exc, settings) or errors.translate_network_error(
        exc, settings.host, settings.port, "IMAP", timeout=settings.connect_timeout)
    if translated is not None:
        return translated
    return errors.ConnectError("IMAP error with %s:%s: %s" % (settings.host, settings.port, exc))


def check_imap(settings, login=password_login):
    """Log in and return the server's capabilities: the automatic credential check."""
    with imap_session(settings, login=login) as client:
        return tuple(sorted(cap.decode("ascii", "replace") if isinstance(cap, bytes) else cap
                            for cap in client.capabilities()))
