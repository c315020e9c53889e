"""Connecting and logging in to a real Dovecot: every failure names its cause."""

import contextlib
import dataclasses
import socket
import threading

import pytest

from onpipeline_mail.engine import connection, errors


def test_check_imap_over_implicit_tls_reports_capabilities(mailbox):
    capabilities = connection.check_imap(mailbox)
    assert "IMAP4REV1" in capabilities
    assert {"SPECIAL-USE", "CONDSTORE", "QRESYNC", "IDLE", "MOVE"} <= set(capabilities)


def test_check_imap_over_starttls(mailbox, dovecot):
    settings = dataclasses.replace(mailbox, port=dovecot.port, security=connection.STARTTLS)
    assert "IMAP4REV1" in connection.check_imap(settings)


def test_wrong_password_is_an_auth_error_with_provider_note(mailbox):
    settings = dataclasses.replace(mailbox, password="wrong", provider_note="Gmail needs an app password.")
    with pytest.raises(errors.AuthError) as caught:
        connection.check_imap(settings)
    assert caught.value.reason == "auth_failed"
    assert "Wrong user name or password" in str(caught.value)
    assert "Gmail needs an app password." in str(caught.value)
    assert "wrong" not in str(caught.value).replace("Wrong", "")  # the password is never echoed


def test_certificate_is_verified_by_default(mailbox):
    # Without the test CA the server's certificate is not trusted.
    settings = dataclasses.replace(mailbox, ca_file="")
    with pytest.raises(errors.TLSError) as caught:
        connection.check_imap(settings)
    assert caught.value.reason == "tls_untrusted"
    assert "Allow self-signed certificate" in str(caught.value)


def test_self_signed_allowed_only_when_asked(mailbox):
    settings = dataclasses.replace(mailbox, ca_file="", verify_tls=False)
    assert "IMAP4REV1" in connection.check_imap(settings)


def test_ssl_on_a_plain_port_is_a_tls_mismatch(mailbox, dovecot):
    settings = dataclasses.replace(mailbox, port=dovecot.port, security=connection.SSL)
    with pytest.raises(errors.TLSError) as caught:
        connection.check_imap(settings)
    assert caught.value.reason == "tls_failed"
    assert "993" in str(caught.value)


def test_refused_port(mailbox):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        unused = sock.getsockname()[1]
    with pytest.raises(errors.ConnectError) as caught:
        connection.check_imap(dataclasses.replace(mailbox, port=unused))
    assert caught.value.reason == "refused"


def test_unknown_host(mailbox):
    with pytest.raises(errors.ConnectError) as caught:
        connection.check_imap(dataclasses.replace(mailbox, host="no-such-host.invalid"))
    assert caught.value.reason == "host_unknown"
    assert "no-such-host.invalid" in str(caught.value)


@contextlib.contextmanager
def scripted_server(serve):
    """A one-connection TCP server on 127.0.0.1 running ``serve(conn)``; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def run():
        conn, _addr = listener.accept()
        accepted.append(conn)
        serve(conn)

    threading.Thread(target=run, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_silent_server_times_out(mailbox):
    # A server that accepts the connection and never greets.
    with scripted_server(lambda conn: None) as port:
        settings = dataclasses.replace(mailbox, port=port, security=connection.PLAIN, connect_timeout=0.5,
                                       read_timeout=0.5)
        with pytest.raises(errors.ConnectError) as caught:
            connection.check_imap(settings)
    assert caught.value.reason == "timeout"


def test_starttls_refused_by_server_without_it(mailbox):
    def greet_without_starttls(conn):
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        tag = conn.recv(1024).split(b" ")[0]
        conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
        conn.recv(1024)

    with scripted_server(greet_without_starttls) as port:
        settings = dataclasses.replace(mailbox, port=port, security=connection.STARTTLS)
        with pytest.raises(errors.TLSError) as caught:
            connection.check_imap(settings)
    assert caught.value.reason == "no_starttls"


def test_settings_are_validated():
    with pytest.raises(errors.ConfigError):
        connection.ServerSettings("", 993)
    with pytest.raises(errors.ConfigError):
        connection.ServerSettings("imap.example.com", 993, security="tls13")
    with pytest.raises(errors.ConfigError):
        connection.ServerSettings("imap.example.com", 70000)


def test_password_is_not_in_repr(mailbox):
    assert mailbox.password not in repr(mailbox)


@pytest.mark.parametrize("raw, code", [
    (b"[AUTHENTICATIONFAILED] Authentication failed.", "AUTHENTICATIONFAILED"),
    ("b'[ALERT] Application-specific password required'", "ALERT"),
    ("login failed: [PRIVACYREQUIRED] Plaintext authentication disallowed", "PRIVACYREQUIRED"),
    (b"LOGIN failed.", None),
])
def test_response_codes_are_read_from_any_imapclient_form(raw, code):
    assert errors.response_code(Exception(raw))[0] == code


def test_provider_alert_is_passed_to_the_user():
    error = errors.translate_login_error(
        Exception(b"[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings page."),
        provider_note="Turn IMAP on.")
    assert error.reason == "auth_alert"
    assert "not enabled for IMAP use" in str(error) and "Turn IMAP on." in str(error)


@pytest.mark.parametrize("cut_after", [5, 20, 35])
def test_connection_dropped_during_login_is_not_a_wrong_password(mailbox, dovecot, cut_after):
    # Dovecot's greeting carries its capabilities, so the client's first bytes are
    # the LOGIN command: cutting them mid-way drops the link during LOGIN.
    from onpipeline_mail.engine.testing.proxy import CuttingProxy

    with CuttingProxy("127.0.0.1", dovecot.port) as proxy:
        proxy.cut_next(up=cut_after)
        settings = dataclasses.replace(mailbox, port=proxy.port, security=connection.PLAIN)
        with pytest.raises(errors.ConnectError):
            connection.check_imap(settings)
