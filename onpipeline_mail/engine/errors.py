"""Errors raised by the engine, one class per decision the caller has to make.

Every low-level failure (socket, TLS, imapclient, smtplib) is translated in
one place, here, into a :class:`MailSyncError` subclass whose ``reason`` is a
stable code and whose message tells the user what is wrong and what to do.
Callers branch on the class (retry, stop and tell the owner, pause a folder),
never on the text.
"""

import re
import smtplib
import socket
import ssl

from imapclient import exceptions as imap_exc

# RFC 5530 response codes, e.g. ``NO [AUTHENTICATIONFAILED] Authentication failed.``
RESPONSE_CODE_RE = re.compile(rb"\[([A-Z][A-Z0-9-]*)(?:\s[^\]]*)?\]\s*(.*)$", re.S)


class MailSyncError(Exception):
    """Base class. ``reason`` is a short stable code, ``str(err)`` is for humans."""

    reason = "error"

    def __init__(self, message, reason=None):
        super().__init__(message)
        if reason:
            self.reason = reason


class ConnectError(MailSyncError):
    """The server could not be reached or dropped the connection: retry later."""

    reason = "connect"


class TLSError(ConnectError):
    """The TLS handshake failed or the certificate is not trusted."""

    reason = "tls"


class AuthError(MailSyncError):
    """The server refused the credentials: stop and tell the owner."""

    reason = "auth"


class ConfigError(MailSyncError):
    """The settings cannot work (missing host, unsupported security...)."""

    reason = "config"


class FolderMissingError(MailSyncError):
    """A folder disappeared or cannot be selected any more: pause it."""

    reason = "folder_missing"


class UidValidityError(MailSyncError):
    """The folder's UIDVALIDITY changed: its UIDs must be matched again."""

    reason = "uidvalidity"


class MessageError(MailSyncError):
    """One message could not be fetched or parsed: record it and retry it."""

    reason = "message"


class SendError(MailSyncError):
    """The SMTP server refused the message or a recipient."""

    reason = "send"


def _endpoint(host, port):
    return "%s:%s" % (host, port)


def translate_network_error(exc, host, port, protocol, timeout=None):
    """Map a socket or TLS exception raised while connecting to an engine error."""
    where = _endpoint(host, port)
    if isinstance(exc, socket.gaierror):
        return ConnectError(
            "The %s server name %r could not be found. Check the spelling of the host "
            "(for example imap.example.com), or pick your provider from the list." % (protocol, host),
            reason="host_unknown",
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(
            "%s connection refused by %s. The port is probably wrong: SSL/TLS usually "
            "uses %s, STARTTLS %s." % (protocol, where, *(("993", "143") if protocol == "IMAP" else ("465", "587"))),
            reason="refused",
        )
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return ConnectError(
            "No answer from the %s server %s%s. Check the host and port, and that a firewall "
            "allows outgoing connections to it." % (protocol, where, " within %s s" % timeout if timeout else ""),
            reason="timeout",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(
            "The TLS certificate of %s is not trusted (%s). If this is your own server with "
            "a self-signed certificate, enable \"Allow self-signed certificate\" on the mailbox."
            % (where, exc.verify_message or exc.reason),
            reason="tls_untrusted",
        )
    if isinstance(exc, ssl.SSLError):
        return TLSError(
            "The TLS handshake with %s failed (%s). The security setting probably does not match "
            "the port: SSL/TLS on %s, STARTTLS on %s."
            % (where, exc.reason or exc, *(("993", "143") if protocol == "IMAP" else ("465", "587"))),
            reason="tls_failed",
        )
    if isinstance(exc, (ConnectionError, EOFError, imap_exc.IMAPClientAbortError)):
        return ConnectError("The %s server %s closed the connection (%s). Try again later." % (protocol, where, exc),
                            reason="dropped")
    if isinstance(exc, OSError):
        return ConnectError("Cannot reach the %s server %s: %s." % (protocol, where, exc.strerror or exc),
                            reason="unreachable")
    return None


def response_code(exc):
    """Return (CODE, text) of an IMAP NO/BAD response carried by ``exc``."""
    raw = exc.args[0] if exc.args else b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    # imapclient's LoginError wraps imaplib's error text, which is a repr of bytes
    if raw.startswith(b"b'") or raw.startswith(b'b"'):
        raw = raw[2:-1]
    match = RESPONSE_CODE_RE.search(raw)
    if not match:
        return None, raw.decode("utf-8", "replace").strip()
    return match.group(1).decode("ascii"), match.group(2).decode("utf-8", "replace").strip()


def translate_login_error(exc, provider_note=None):
    """Map a refused IMAP LOGIN to an :class:`AuthError` with a useful message."""
    code, text = response_code(exc)
    note = (" " + provider_note) if provider_note else ""
    if code == "PRIVACYREQUIRED":
        return AuthError(
            "The server refuses passwords over an unencrypted connection. Choose SSL/TLS or STARTTLS.",
            reason="privacy_required",
        )
    if code == "ALERT":
        # Providers explain themselves in ALERTs ("Application-specific password
        # required", "Your account is not enabled for IMAP use"): pass it on.
        return AuthError("The server refused the login: %s%s" % (text, note), reason="auth_alert")
    if code in ("UNAVAILABLE", "CONTACTADMIN", "EXPIRED", "AUTHORIZATIONFAILED"):
        return AuthError("The server refused the login (%s: %s). Ask the mail administrator.%s" % (code, text, note),
                         reason="auth_" + code.lower())
    return AuthError(
        "Wrong user name or password (the server said: %s). Check them; many providers require "
        "an app password and IMAP to be switched on.%s" % (text or "login failed", note),
        reason="auth_failed",
    )


def translate_smtp_error(exc, host, port, timeout=None):
    """Map an smtplib or network exception to an engine error, one message per class."""
    network = translate_network_error(exc, host, port, "SMTP", timeout) if not isinstance(
        exc, smtplib.SMTPException) else None
    if network:
        return network
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return AuthError(
            "The SMTP server refused the user name or password (%s %s). Check them; many providers "
            "require an app password." % (exc.smtp_code, _smtp_text(exc.smtp_error)),
            reason="auth_failed",
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ConfigError("The SMTP server does not support %s. Check the security setting and the port." % exc,
                           reason="not_supported")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ConnectError("The SMTP server %s closed the connection (%s)." % (_endpoint(host, port), exc),
                            reason="dropped")
    if isinstance(exc, smtplib.SMTPConnectError):
        return ConnectError("The SMTP server %s refused the session (%s %s)."
                            % (_endpoint(host, port), exc.smtp_code, _smtp_text(exc.smtp_error)), reason="refused")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join("%s (%s %s)" % (address, code, _smtp_text(text))
                            for address, (code, text) in exc.recipients.items())
        return SendError("The SMTP server refused the recipients: %s." % refused, reason="recipients_refused")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return SendError(
            "The SMTP server refused the sender %s (%s %s). The From address must be one the account "
            "may send as." % (exc.sender, exc.smtp_code, _smtp_text(exc.smtp_error)),
            reason="sender_refused",
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return SendError("The SMTP server refused the message (%s %s)." % (exc.smtp_code, _smtp_text(exc.smtp_error)),
                         reason="data_refused")
    if isinstance(exc, smtplib.SMTPResponseException):
        return SendError("The SMTP server answered %s %s." % (exc.smtp_code, _smtp_text(exc.smtp_error)))
    return SendError("Sending failed: %s" % exc)


def _smtp_text(raw):
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
