"""A real SMTP server for tests and demos: aiosmtpd with AUTH, STARTTLS and implicit TLS.

Two listeners share one mailbag: ``port`` (STARTTLS, AUTH only after it)
and ``tls_port`` (implicit TLS). Every accepted message is kept in
:attr:`SmtpServer.received`; ``on_message`` lets a test act like a provider
that files sent mail itself (Gmail, Microsoft 365).
"""

import base64
import binascii
import dataclasses
import json
import logging
import ssl
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

from .certs import make_test_certificates
from .dovecot import free_port

# aiosmtpd warns on every implicit-TLS session that AUTH without STARTTLS is
# unsafe; the session is encrypted, so the warning is noise here.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
logging.getLogger("mail.log").setLevel(logging.ERROR)


@dataclasses.dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list
    data: bytes
    login: str


def parse_oauth_response(text, mechanism="XOAUTH2"):
    """``(user, token)`` from an XOAUTH2 or OAUTHBEARER client response, or ``("", "")``."""
    fields = text.split("\1")
    user = ""
    if mechanism == "OAUTHBEARER":
        gs2 = fields.pop(0) if fields else ""
        for part in gs2.split(","):
            if part.startswith("a="):
                user = part[2:].replace("=2C", ",").replace("=3D", "=")
    pairs = dict(field.partition("=")[::2] for field in fields if "=" in field)
    user = pairs.get("user", user)
    scheme, _space, token = pairs.get("auth", "").partition(" ")
    return (user, token) if scheme.lower() == "bearer" else ("", "")


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.server.refused_recipients:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    # SASL XOAUTH2 (Google, Microsoft) and OAUTHBEARER (RFC 7628): the bearer token is checked by
    # SmtpServer.oauth_verifier, e.g. OAuthServer.token_owner; a refusal sends the error challenge
    # (base64 JSON) that real providers send, reads the client's empty answer, then 535.
    async def auth_XOAUTH2(self, server, args):
        return await self._oauth(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server, args):
        return await self._oauth(server, args, "OAUTHBEARER")

    async def _oauth(self, server, args, mechanism):
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        user, token = parse_oauth_response(blob.decode("utf-8", "replace"), mechanism)
        if user and token and self.server.verify_oauth(user, token):
            return AuthResult(success=True, auth_data=user)
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "Bearer", "scope": "mail"}))
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data or ""
        message = ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or
                                  envelope.content, login)
        with self.server.lock:
            self.server.received.append(message)
        if self.server.on_message:
            self.server.on_message(message)
        return "250 2.0.0 Ok: queued"


class SmtpServer:
    def __init__(self, cert_dir):
        self.certs = make_test_certificates(cert_dir)
        self.users = {}
        self.received = []
        self.refused_recipients = set()
        self.on_message = None
        #: ``verify(token) -> email or None`` for XOAUTH2/OAUTHBEARER (e.g. ``OAuthServer.token_owner``).
        self.oauth_verifier = None
        self.lock = threading.Lock()
        self._controllers = []

    @property
    def ca_file(self):
        return self.certs["ca.pem"]

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def verify_oauth(self, user, token):
        return bool(self.oauth_verifier) and self.oauth_verifier(token) == user

    def add_user(self, login, password):
        self.users[login] = password

    def start(self):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certs["server.pem"], self.certs["server.key"])
        common = dict(authenticator=self._authenticate, auth_required=True, hostname="127.0.0.1")
        handler = _Handler(self)
        self.port, self.tls_port = free_port(), free_port()
        starttls = Controller(handler, port=self.port, tls_context=context, require_starttls=True,
                              auth_require_tls=True, **common)
        # With implicit TLS the whole session is encrypted, which aiosmtpd's
        # auth_require_tls (a STARTTLS check) does not see.
        implicit = Controller(handler, port=self.tls_port, ssl_context=context, auth_require_tls=False, **common)
        for controller in (starttls, implicit):
            controller.start()
            self._controllers.append(controller)
        return self

    def messages_to(self, address):
        with self.lock:
            return [message for message in self.received if address in message.rcpt_tos]

    def stop(self):
        for controller in self._controllers:
            controller.stop()
        self._controllers.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
