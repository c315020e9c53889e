"""Sending through a mailbox's own SMTP server."""

import contextlib
import email.message
import email.utils
import smtplib

from . import errors
from .connection import SSL, STARTTLS, extra_ca_error, make_ssl_context

#: ``SendError.reason`` when the message was handed over (DATA) but no answer came back: it may have gone out.
OUTCOME_UNKNOWN = "outcome_unknown"


class _DataTracking:
    """Remembers that DATA was started: a connection lost from then on leaves the outcome unknown."""

    data_started = False

    def data(self, msg):
        self.data_started = True
        return super().data(msg)


class _SMTP(_DataTracking, smtplib.SMTP):
    pass


class _SMTP_SSL(_DataTracking, smtplib.SMTP_SSL):
    pass


def password_login(client, settings):
    client.login(settings.username, settings.password)


@contextlib.contextmanager
def smtp_session(settings, login=password_login):
    """Yield a connected, authenticated :class:`smtplib.SMTP`; failures become engine errors.

    ``login(client, settings)`` authenticates (a password, or :func:`.oauth.smtp_login`)."""
    context = make_ssl_context(settings)
    timeout = settings.connect_timeout
    client = None
    try:
        if settings.security == SSL:
            client = _SMTP_SSL(settings.host, int(settings.port), timeout=timeout, context=context)
        else:
            client = _SMTP(settings.host, int(settings.port), timeout=timeout)
            if settings.security == STARTTLS:
                client.starttls(context=context)
        # The connect timeout only bounds the handshake; a DATA phase with a
        # large attachment may legitimately take longer.
        client.sock.settimeout(settings.read_timeout)
        if settings.username:
            client.ehlo_or_helo_if_needed()
            if not client.has_extn("auth"):
                raise errors.ConfigError(
                    "The SMTP server %s:%s offers no login%s. Choose %s."
                    % (settings.host, settings.port,
                       " on an unencrypted connection" if settings.security not in (SSL, STARTTLS) else "",
                       "STARTTLS or SSL/TLS" if settings.security not in (SSL, STARTTLS) else "another port"),
                    reason="no_auth")
            (login or password_login)(client, settings)
        yield client
    except errors.MailSyncError:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        raise (extra_ca_error(exc, settings)
               or errors.translate_smtp_error(exc, settings.host, settings.port, timeout)) from exc
    finally:
        if client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()
            with contextlib.suppress(OSError):
                client.close()


def send_message(settings, message, from_addr=None, to_addrs=None, login=password_login):
    """Send ``message`` (an :class:`email.message.EmailMessage`) and return its bytes as sent.

    Raises :class:`errors.SendError` when any recipient is refused: a partial
    delivery is reported, never silently accepted. When the connection is
    lost or times out after the message was handed over (DATA), the server
    may have accepted it: the error's reason is :data:`OUTCOME_UNKNOWN`.
    """
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    with smtp_session(settings, login=login) as client:
        try:
            refused = client.sendmail(from_addr or _bare(message["From"]), to_addrs or _recipients(message), raw)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            if not client.data_started:
                raise errors.translate_smtp_error(exc, settings.host, settings.port, settings.read_timeout) from exc
            raise errors.SendError(
                "The message was handed over to the SMTP server %s:%s, but no answer came back (%s)."
                % (settings.host, settings.port, exc), reason=OUTCOME_UNKNOWN) from exc
        except smtplib.SMTPException as exc:
            raise errors.translate_smtp_error(exc, settings.host, settings.port) from exc
    if refused:
        raise errors.SendError(
            "The message was sent, but the SMTP server refused: %s."
            % ", ".join("%s (%s)" % (address, code) for address, (code, _msg) in refused.items()),
            reason="recipients_refused",
        )
    return raw


def _bare(address):
    return email.utils.parseaddr(str(address or ""))[1]


def _recipients(message):
    fields = [str(value) for header in ("To", "Cc", "Bcc") for value in message.get_all(header, [])]
    return [address for _name, address in email.utils.getaddresses(fields) if address]


def build_test_message(from_addr, to_addr, mailbox_name=""):
    message = email.message.EmailMessage()
    message["From"] = from_addr
    message["To"] = to_addr
    message["Subject"] = "onpipeline mail: test email%s" % (" from %s" % mailbox_name if mailbox_name else "")
    message["Date"] = email.utils.formatdate(localtime=True)
    domain = _bare(from_addr).rpartition("@")[2] or None
    message["Message-ID"] = email.utils.make_msgid("onpipeline-test", domain=domain)
    message.set_content(
        "This test email was sent through the SMTP settings of your mailbox.\n"
        "If you can read it, the CRM can send as %s.\n" % from_addr
    )
    return message
