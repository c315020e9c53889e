"""A small local OAuth2 provider for tests and demos: token endpoint, consent page and introspection.

It plays both sides a real provider plays for a mailbox:

- for the application (Odoo's ``google_gmail`` / ``microsoft_outlook``
  mixins): ``…/authorize`` (the consent page: it redirects at once to the
  ``redirect_uri`` with a code, as a user who clicked *Allow*) and
  ``…/token`` (``authorization_code`` and ``refresh_token`` grants, form
  encoded, JSON answers and ``invalid_grant`` errors as Google and Microsoft
  send them). Any path ending in ``/authorize`` or ``/token`` is served, so
  ``http://127.0.0.1:PORT/microsoft/`` works as Microsoft's endpoint prefix;
- for the mail servers: ``/introspect`` (RFC 7662, ``token=`` posted by
  Dovecot's oauth2 passdb with ``introspection_mode = post``) answering
  ``{"active": true, "email": …}`` for a live access token.

Tokens are random strings kept in memory. Tests drive time and trouble with
:meth:`OAuthServer.expire_access_tokens` and :meth:`OAuthServer.revoke`, and
read what was asked in :attr:`OAuthServer.token_requests` (no secret values).
Standard library only.
"""

import dataclasses
import http.server
import json
import secrets
import threading
import time
import urllib.parse

from .dovecot import free_port

DEFAULT_EXPIRES_IN = 3600


@dataclasses.dataclass
class _Grant:
    email: str
    client_id: str
    redirect_uri: str = ""
    scope: str = ""


@dataclasses.dataclass
class TokenRequest:
    """One call of the token endpoint, as a test checks it (no token values)."""

    path: str
    grant_type: str
    client_id: str
    redirect_uri: str
    scope: str
    status: int
    error: str = ""


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "onpipeline-oauth-test/1"

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        # Quiet: URLs carry codes and tokens.
        pass

    def _form(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return {key: values[-1] for key, values in urllib.parse.parse_qs(body, keep_blank_values=True).items()}

    def _send_json(self, status, payload, headers=()):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        query = {key: values[-1] for key, values in urllib.parse.parse_qs(url.query).items()}
        if url.path.endswith("/authorize"):
            status, location = self.server.provider.consent(query)
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if url.path.endswith("/introspect") or url.path.endswith("/userinfo"):
            # introspection_mode = auth / get: the token in the Authorization header or the query.
            token = query.get("token") or self.headers.get("Authorization", "").partition("Bearer ")[2]
            self._send_json(*self.server.provider.introspect(token.strip()))
            return
        self._send_json(404, {"error": "not_found"})

    def do_POST(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        form = self._form()
        if url.path.endswith("/token"):
            self._send_json(*self.server.provider.token(url.path, form, self.headers))
            return
        if url.path.endswith("/introspect"):
            self._send_json(*self.server.provider.introspect(form.get("token", "")))
            return
        self._send_json(404, {"error": "not_found"})


class OAuthServer:
    """One local provider. Use as a context manager or call start/stop."""

    def __init__(self, client_id="test-client-id", client_secret="test-client-secret",
                 expires_in=DEFAULT_EXPIRES_IN, rotate_refresh_tokens=False):
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        #: Microsoft returns a new refresh token with every refresh; Google keeps the first one.
        self.rotate_refresh_tokens = rotate_refresh_tokens
        #: The account that "consents" on the authorize page.
        self.consenting_email = None
        self.token_requests = []
        self.introspections = 0
        self.lock = threading.Lock()
        self._codes = {}
        self._refresh_tokens = {}
        self._access_tokens = {}  # token -> (email, expires_at)
        self._httpd = None
        self._thread = None
        self.port = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def token_url(self):
        return self.base_url + "/token"

    @property
    def introspection_url(self):
        return self.base_url + "/introspect"

    # -- what a test does --------------------------------------------------------------------

    def issue_code(self, email, redirect_uri="", client_id=None, scope=""):
        """An authorization code, as the consent page gives one to ``email``."""
        code = "code-" + secrets.token_urlsafe(16)
        with self.lock:
            self._codes[code] = _Grant(email, client_id or self.client_id, redirect_uri, scope)
        return code

    def issue_tokens(self, email, scope=""):
        """A refresh token and an access token for ``email``, as after a completed sign-in."""
        grant = _Grant(email, self.client_id, scope=scope)
        with self.lock:
            refresh_token = self._new_refresh_token(grant)
            access_token, expires_in = self._new_access_token(email)
        return refresh_token, access_token, expires_in

    def expire_access_tokens(self, email=None):
        """Every access token (of ``email``) stops working now, as after its lifetime."""
        with self.lock:
            for token, (owner, _expires) in list(self._access_tokens.items()):
                if email is None or owner == email:
                    self._access_tokens[token] = (owner, 0)

    def revoke(self, email):
        """The user revoked the app (or the admin did): refresh and access tokens of ``email`` die."""
        with self.lock:
            for token, grant in list(self._refresh_tokens.items()):
                if grant.email == email:
                    del self._refresh_tokens[token]
            for token, (owner, _expires) in list(self._access_tokens.items()):
                if owner == email:
                    del self._access_tokens[token]

    def requests_for(self, grant_type):
        with self.lock:
            return [request for request in self.token_requests if request.grant_type == grant_type]

    # -- endpoints ---------------------------------------------------------------------------

    def _new_refresh_token(self, grant):
        token = "refresh-" + secrets.token_urlsafe(24)
        self._refresh_tokens[token] = grant
        return token

    def _new_access_token(self, email):
        token = "access-" + secrets.token_urlsafe(24)
        self._access_tokens[token] = (email, time.time() + self.expires_in)
        return token, self.expires_in

    def consent(self, query):
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri:
            return 400, None
        params = {"state": query.get("state", "")}
        if self.consenting_email:
            params["code"] = self.issue_code(self.consenting_email, redirect_uri, scope=query.get("scope", ""))
        else:
            params.update(error="access_denied", error_description="The user did not consent.")
        separator = "&" if "?" in redirect_uri else "?"
        return 302, redirect_uri + separator + urllib.parse.urlencode(params)

    def token(self, path, form, headers=None):
        grant_type = form.get("grant_type", "")
        status, payload = self._token(form, grant_type)
        with self.lock:
            self.token_requests.append(TokenRequest(
                path, grant_type, form.get("client_id", ""), form.get("redirect_uri", ""), form.get("scope", ""),
                status, payload.get("error", "")))
        return status, payload

    def _token(self, form, grant_type):
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Unknown client or wrong secret."}
        with self.lock:
            if grant_type == "authorization_code":
                grant = self._codes.pop(form.get("code", ""), None)
                if grant is None:
                    return 400, {"error": "invalid_grant", "error_description": "The code is invalid or used."}
                if grant.redirect_uri and grant.redirect_uri != form.get("redirect_uri"):
                    return 400, {"error": "redirect_uri_mismatch", "error_description": "redirect_uri differs."}
                refresh_token = self._new_refresh_token(grant)
                access_token, expires_in = self._new_access_token(grant.email)
                return 200, {"access_token": access_token, "refresh_token": refresh_token,
                             "expires_in": expires_in, "token_type": "Bearer", "scope": grant.scope}
            if grant_type == "refresh_token":
                old = form.get("refresh_token", "")
                grant = self._refresh_tokens.get(old)
                if grant is None:
                    return 400, {"error": "invalid_grant",
                                 "error_description": "Token has been expired or revoked."}
                access_token, expires_in = self._new_access_token(grant.email)
                payload = {"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer",
                           "scope": grant.scope}
                if self.rotate_refresh_tokens:
                    del self._refresh_tokens[old]
                    payload["refresh_token"] = self._new_refresh_token(grant)
                return 200, payload
        return 400, {"error": "unsupported_grant_type", "error_description": grant_type}

    def token_owner(self, token):
        """The email a live access token was issued to, or None (the SMTP test server's check)."""
        status, payload = self.introspect(token)
        return payload.get("email") if payload.get("active") else None

    def introspect(self, token):
        with self.lock:
            self.introspections += 1
            owner, expires_at = self._access_tokens.get(token, (None, 0))
        if owner is None or expires_at <= time.time():
            return 200, {"active": False}
        return 200, {"active": True, "email": owner, "token_type": "Bearer",
                     "exp": int(expires_at), "client_id": self.client_id}

    # -- life cycle --------------------------------------------------------------------------

    def start(self, port=None):
        self.port = port or free_port()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.provider = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="oauth-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_shared = {}


def oauth_mail_servers(cert_dir=None):
    """One :class:`OAuthServer` and one Dovecot that checks its tokens (passwords work there too), started
    once per process and stopped at exit: the Odoo tier's fixtures for the sign-in bridges. ``cert_dir``:
    the test certificates of another test server, so that the CA the tests trust covers this one too."""
    if not _shared:
        import atexit
        import os
        import shutil
        import tempfile

        from .dovecot import Dovecot

        provider = OAuthServer().start()
        atexit.register(provider.stop)
        root = tempfile.mkdtemp(prefix="onpipeline-oauth-dovecot-")
        if cert_dir:
            shutil.copytree(cert_dir, os.path.join(root, "certs"))
        dovecot = Dovecot(root=root, oauth2_introspection_url=provider.introspection_url).start()
        atexit.register(dovecot.stop)
        _shared.update(provider=provider, dovecot=dovecot)
    return _shared["provider"], _shared["dovecot"]
