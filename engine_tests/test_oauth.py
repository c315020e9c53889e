"""OAuth2 logins (XOAUTH2, OAUTHBEARER) against real servers.

Dovecot checks every bearer token at the introspection URL of a local OAuth
provider (:mod:`onpipeline_mail.engine.testing.oauth_server`) that also plays
the token endpoint; the SMTP test server asks the same provider. Refreshes
go over HTTP to that token endpoint: nothing is mocked.
"""

import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from onpipeline_mail.engine import connection, errors, folders, oauth, smtp
from onpipeline_mail.engine.testing.dovecot import Dovecot
from onpipeline_mail.engine.testing.oauth_server import OAuthServer
from onpipeline_mail.engine.testing.smtp_server import parse_oauth_response

from conftest import new_account


@pytest.fixture(scope="session")
def oauth_server():
    with OAuthServer() as server:
        yield server


@pytest.fixture(scope="session")
def oauth_dovecot(oauth_server):
    with Dovecot(oauth2_introspection_url=oauth_server.introspection_url) as server:
        yield server


@pytest.fixture
def oauth_smtp_server(smtp_server, oauth_server):
    smtp_server.oauth_verifier = oauth_server.token_owner
    yield smtp_server
    smtp_server.oauth_verifier = None


class TokenSource:
    """What the Odoo bridges do with Odoo's mixins, over plain HTTP: keep the token, refresh on demand."""

    def __init__(self, server, refresh_token, access_token):
        self.server = server
        self.refresh_token = refresh_token
        self.access_token = access_token
        self.refreshes = 0

    def __call__(self, refresh=False):
        if refresh:
            self.refreshes += 1
            data = urllib.parse.urlencode({
                "grant_type": "refresh_token", "refresh_token": self.refresh_token,
                "client_id": self.server.client_id, "client_secret": self.server.client_secret}).encode()
            try:
                with urllib.request.urlopen(self.server.token_url, data, timeout=10) as response:
                    payload = json.load(response)
            except urllib.error.HTTPError as exc:
                error = json.load(exc)
                raise errors.AuthError("Sign in again: %s" % error["error"], reason="oauth_expired") from exc
            self.access_token = payload["access_token"]
        return self.access_token


@pytest.fixture
def oauth_account(oauth_dovecot, oauth_server):
    """A fresh account that logs in with a token; yields (settings without password, TokenSource)."""
    settings = new_account(oauth_dovecot, prefix="oauth")
    refresh_token, access_token, _expires = oauth_server.issue_tokens(settings.username)
    return dataclasses.replace(settings, password=""), TokenSource(oauth_server, refresh_token, access_token)


def test_auth_strings():
    assert oauth.xoauth2_string("a@example.test", "tok") == "user=a@example.test\1auth=Bearer tok\1\1"
    assert oauth.oauthbearer_string("a,b=c@example.test", "tok", "imap.example.test", 993) == (
        "n,a=a=2Cb=3Dc@example.test,\1host=imap.example.test\1port=993\1auth=Bearer tok\1\1")
    assert parse_oauth_response(oauth.oauthbearer_string("a,b@x.test", "tok"), "OAUTHBEARER") == ("a,b@x.test", "tok")
    assert parse_oauth_response(oauth.xoauth2_string("a@x.test", "tok")) == ("a@x.test", "tok")


def test_mechanism_choice():
    assert oauth.choose_mechanism(["PLAIN", "XOAUTH2", "OAUTHBEARER"]) == "XOAUTH2"
    assert oauth.choose_mechanism(["PLAIN", "OAUTHBEARER"]) == "OAUTHBEARER"
    assert oauth.choose_mechanism([]) == "XOAUTH2"
    assert oauth.choose_mechanism(["XOAUTH2"], "OAUTHBEARER") == "OAUTHBEARER"


@pytest.mark.parametrize("mechanism", [oauth.XOAUTH2, oauth.OAUTHBEARER])
@pytest.mark.parametrize("security", [connection.SSL, connection.STARTTLS])
def test_imap_login_with_a_token(oauth_account, oauth_dovecot, mechanism, security):
    settings, tokens = oauth_account
    port = oauth_dovecot.tls_port if security == connection.SSL else oauth_dovecot.port
    settings = dataclasses.replace(settings, port=port, security=security)
    with connection.imap_session(settings, login=oauth.imap_login(tokens, mechanism)) as client:
        listed = folders.list_folders(client)
        assert "INBOX" in [folder.name for folder in listed]
    assert tokens.refreshes == 0


def test_imap_offers_both_mechanisms_and_xoauth2_is_chosen(oauth_account):
    settings, tokens = oauth_account
    client = connection.open_imap(settings, login=lambda client, settings: None)
    try:
        offered = oauth.imap_capabilities(client)
    finally:
        client.shutdown()
    assert {"XOAUTH2", "OAUTHBEARER"} <= set(offered)
    assert connection.check_imap(settings, login=oauth.imap_login(tokens))


def test_passwords_still_work_beside_tokens(oauth_dovecot):
    settings = new_account(oauth_dovecot, prefix="oauthpw")
    assert "IMAP4REV1" in connection.check_imap(settings)


@pytest.mark.parametrize("mechanism", [oauth.XOAUTH2, oauth.OAUTHBEARER])
def test_imap_refused_token_is_refreshed_once(oauth_account, oauth_server, mechanism):
    settings, tokens = oauth_account
    oauth_server.expire_access_tokens(settings.username)
    before = len(oauth_server.requests_for("refresh_token"))
    with connection.imap_session(settings, login=oauth.imap_login(tokens, mechanism)) as client:
        client.select_folder("INBOX")
    assert tokens.refreshes == 1
    assert len(oauth_server.requests_for("refresh_token")) == before + 1
    # The new token is kept: the next login needs no refresh.
    connection.check_imap(settings, login=oauth.imap_login(tokens, mechanism))
    assert tokens.refreshes == 1


def test_imap_token_of_another_user_is_refused(oauth_account, oauth_server):
    settings, tokens = oauth_account
    _refresh, other_token, _expires = oauth_server.issue_tokens("someone-else@example.test")
    tokens.access_token = other_token
    tokens.refresh_token = "refresh-unknown"
    with pytest.raises(errors.AuthError) as caught:
        connection.check_imap(settings, login=oauth.imap_login(tokens))
    assert caught.value.reason == "oauth_expired"
    assert tokens.refreshes == 1


def test_imap_refused_after_refresh_is_an_auth_error(oauth_account, oauth_dovecot, oauth_server):
    settings, tokens = oauth_account
    settings = dataclasses.replace(settings, username="nobody@example.test")
    with pytest.raises(errors.AuthError) as caught:
        connection.check_imap(settings, login=oauth.imap_login(tokens))
    assert caught.value.reason != "oauth_expired"
    assert tokens.refreshes == 1


def test_imap_revoked_refresh_token(oauth_account, oauth_server):
    settings, tokens = oauth_account
    oauth_server.revoke(settings.username)
    with pytest.raises(errors.AuthError) as caught:
        connection.check_imap(settings, login=oauth.imap_login(tokens))
    assert caught.value.reason == "oauth_expired"
    assert "invalid_grant" in str(caught.value)


def test_token_source_network_error_is_not_an_auth_error(oauth_account):
    settings, _tokens = oauth_account

    def unreachable(refresh=False):
        raise errors.ConnectError("The token endpoint cannot be reached.", reason="oauth_unreachable")

    with pytest.raises(errors.ConnectError):
        connection.check_imap(settings, login=oauth.imap_login(unreachable))


# ---------------------------------------------------------------------------
# SMTP


@pytest.fixture
def oauth_smtp(oauth_smtp_server, oauth_server):
    email = "oauth-sender@example.test"
    refresh_token, access_token, _expires = oauth_server.issue_tokens(email)
    settings = connection.ServerSettings("127.0.0.1", oauth_smtp_server.tls_port, connection.SSL, email, "",
                                         ca_file=oauth_smtp_server.ca_file)
    return settings, TokenSource(oauth_server, refresh_token, access_token)


@pytest.mark.parametrize("mechanism", [None, oauth.OAUTHBEARER])
@pytest.mark.parametrize("security", [connection.SSL, connection.STARTTLS])
def test_smtp_send_with_a_token(oauth_smtp, oauth_smtp_server, mechanism, security):
    settings, tokens = oauth_smtp
    port = oauth_smtp_server.tls_port if security == connection.SSL else oauth_smtp_server.port
    settings = dataclasses.replace(settings, port=port, security=security)
    recipient = "oauth-%s-%s@example.test" % (mechanism, security)
    smtp.send_message(settings, smtp.build_test_message(settings.username, recipient),
                      login=oauth.smtp_login(tokens, mechanism))
    [received] = oauth_smtp_server.messages_to(recipient)
    assert received.login == settings.username
    assert tokens.refreshes == 0


def test_smtp_refused_token_is_refreshed_once(oauth_smtp, oauth_smtp_server, oauth_server):
    settings, tokens = oauth_smtp
    oauth_server.expire_access_tokens(settings.username)
    smtp.send_message(settings, smtp.build_test_message(settings.username, "oauth-refresh@example.test"),
                      login=oauth.smtp_login(tokens))
    assert oauth_smtp_server.messages_to("oauth-refresh@example.test")
    assert tokens.refreshes == 1


def test_smtp_refused_token_after_refresh(oauth_smtp, oauth_server):
    settings, tokens = oauth_smtp
    settings = dataclasses.replace(settings, username="not-the-owner@example.test")
    with pytest.raises(errors.AuthError) as caught:
        smtp.send_message(settings, smtp.build_test_message(settings.username, "never@example.test"),
                          login=oauth.smtp_login(tokens))
    assert "535" in str(caught.value)
    assert tokens.refreshes == 1


def test_smtp_revoked_refresh_token(oauth_smtp, oauth_smtp_server, oauth_server):
    settings, tokens = oauth_smtp
    oauth_server.revoke(settings.username)
    with pytest.raises(errors.AuthError) as caught:
        smtp.send_message(settings, smtp.build_test_message(settings.username, "revoked@example.test"),
                          login=oauth.smtp_login(tokens))
    assert caught.value.reason == "oauth_expired"
    assert not oauth_smtp_server.messages_to("revoked@example.test")


def test_smtp_password_login_unchanged(oauth_smtp_server):
    oauth_smtp_server.add_user("pw-beside-oauth@example.test", "pw")
    settings = connection.ServerSettings("127.0.0.1", oauth_smtp_server.tls_port, connection.SSL,
                                         "pw-beside-oauth@example.test", "pw", ca_file=oauth_smtp_server.ca_file)
    smtp.send_message(settings, smtp.build_test_message(settings.username, "pw-ok@example.test"))
    assert oauth_smtp_server.messages_to("pw-ok@example.test")
