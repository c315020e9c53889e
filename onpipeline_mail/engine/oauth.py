"""Logging in to IMAP and SMTP with an OAuth2 access token (XOAUTH2, OAUTHBEARER).

The engine gets no OAuth client: the caller (Odoo's ``google_gmail`` and
``microsoft_outlook`` mixins, through the bridge modules) owns the tokens and
hands over ``get_token(refresh=False)``, a callable that returns a valid
access token and, called with ``refresh=True``, a new one from the provider.
It raises :class:`~.errors.AuthError` when the provider refuses the refresh
token (revoked, expired: the user must sign in again) and
:class:`~.errors.ConnectError` when the provider cannot be reached.

:func:`imap_login` and :func:`smtp_login` build the login hooks of
:func:`.connection.open_imap` / :func:`.connection.imap_session` and
:func:`.smtp.smtp_session` / :func:`.smtp.send_message`. A token the server
refuses is refreshed once and tried again on the same connection (a token
revoked or cut short before its announced expiry); a second refusal is the
usual :class:`~.errors.AuthError`. Tokens are never logged.
"""

import logging
import smtplib

from imapclient import exceptions as imap_exc

_logger = logging.getLogger(__name__)

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = (XOAUTH2, OAUTHBEARER)


def xoauth2_string(user, access_token):
    """The client response of Google's and Microsoft's XOAUTH2 SASL mechanism."""
    return "user=%s\1auth=Bearer %s\1\1" % (user, access_token)


def oauthbearer_string(user, access_token, host="", port=None):
    """The client response of OAUTHBEARER (RFC 7628): a GS2 header naming ``user``, then key=value pairs."""
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    pairs = ["host=%s" % host] if host else []
    if port:
        pairs.append("port=%s" % port)
    pairs.append("auth=Bearer %s" % access_token)
    return "n,a=%s,\1%s\1\1" % (authzid, "\1".join(pairs))


def auth_string(mechanism, user, access_token, host="", port=None):
    if mechanism == OAUTHBEARER:
        return oauthbearer_string(user, access_token, host, port)
    return xoauth2_string(user, access_token)


def choose_mechanism(offered, preferred=None):
    """XOAUTH2 (what Google and Microsoft document), OAUTHBEARER where only that one is offered."""
    offered = {mechanism.upper() for mechanism in offered}
    if preferred:
        return preferred
    if XOAUTH2 not in offered and OAUTHBEARER in offered:
        return OAUTHBEARER
    return XOAUTH2


class _Responder:
    """The SASL client side: the auth string once; to the error report a server sends as a second
    challenge (base64 JSON, RFC 7628 3.2.2) an empty answer, after which the server says NO/535."""

    def __init__(self, response):
        self.response = response
        self.sent = False

    def __call__(self, challenge=None):
        if self.sent:
            return ""
        self.sent = True
        return self.response


def _refreshing(attempt, refused, get_token, what):
    """Try with the current token, and once more with a fresh one if the server refuses it."""
    try:
        attempt(get_token(refresh=False))
    except refused as exc:
        if _is_network_failure(exc):
            raise
        _logger.info("%s refused the access token: refreshing it and trying once more", what)
        attempt(get_token(refresh=True))


def _is_network_failure(exc):
    # imapclient wraps a connection lost during AUTHENTICATE in LoginError too.
    return isinstance(exc.__context__, (OSError, imap_exc.IMAPClientAbortError))


# ---------------------------------------------------------------------------
# IMAP


def imap_capabilities(client):
    """The SASL mechanisms the IMAP server offers before login (``AUTH=…``)."""
    mechanisms = []
    for capability in client.capabilities():
        capability = capability.decode("ascii", "replace") if isinstance(capability, bytes) else capability
        if capability.upper().startswith("AUTH="):
            mechanisms.append(capability[5:])
    return mechanisms


def imap_authenticate(client, settings, access_token, mechanism=XOAUTH2):
    """AUTHENTICATE with the token; raises imapclient's ``LoginError`` when refused."""
    response = auth_string(mechanism, settings.username, access_token, settings.host, settings.port)
    try:
        # imapclient's oauth2_login() answers the server's error challenge with the token again;
        # RFC 7628 wants an empty answer, so the AUTHENTICATE is sent through its checked command.
        client._command_and_check("authenticate", mechanism, _Responder(response))
    except imap_exc.IMAPClientError as exc:
        raise imap_exc.LoginError(str(exc)) from exc


def imap_login(get_token, mechanism=None):
    """A login hook for :func:`.connection.imap_session`: ``imap_session(settings, login=imap_login(get))``."""

    def login(client, settings):
        chosen = choose_mechanism(imap_capabilities(client), mechanism)
        _refreshing(lambda token: imap_authenticate(client, settings, token, chosen),
                    imap_exc.LoginError, get_token, "The IMAP server %s" % settings.host)

    return login


# ---------------------------------------------------------------------------
# SMTP


def smtp_authenticate(client, settings, access_token, mechanism=XOAUTH2):
    """AUTH with the token (initial response); raises ``smtplib.SMTPAuthenticationError`` when refused."""
    response = auth_string(mechanism, settings.username, access_token, settings.host, settings.port)
    client.auth(mechanism, _Responder(response), initial_response_ok=True)


def smtp_login(get_token, mechanism=None):
    """A login hook for :func:`.smtp.smtp_session` / :func:`.smtp.send_message` (``login=``)."""

    def login(client, settings):
        offered = (client.esmtp_features.get("auth") or "").split()
        chosen = choose_mechanism(offered, mechanism)
        _refreshing(lambda token: smtp_authenticate(client, settings, token, chosen),
                    smtplib.SMTPAuthenticationError, get_token, "The SMTP server %s" % settings.host)

    return login
