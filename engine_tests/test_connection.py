"""Connecting and logging in to a real Dovecot: every failure names its cause."""

import contextlib
import dataclasses
import datetime
import os
import socket
import ssl
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


# ---------------------------------------------------------------------------
# A private certificate authority, given as PEM data (as the addon stores it)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_private_ca_as_pem_data_is_trusted(mailbox, dovecot):
    settings = dataclasses.replace(mailbox, ca_file="", ca_data=read(dovecot.ca_file).decode())
    assert "IMAP4REV1" in connection.check_imap(settings)
    starttls = dataclasses.replace(settings, port=dovecot.port, security=connection.STARTTLS)
    assert "IMAP4REV1" in connection.check_imap(starttls)


def test_ca_data_is_not_in_repr(mailbox, dovecot):
    settings = dataclasses.replace(mailbox, ca_data=read(dovecot.ca_file).decode())
    assert "BEGIN CERTIFICATE" not in repr(settings)


@pytest.mark.parametrize("ca_data", [
    "not a certificate",
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
])
def test_unreadable_ca_data_is_a_config_error_naming_it(mailbox, ca_data):
    # Not FileNotFoundError or ssl.SSLError escaping: the engine's error, which the mailbox shows.
    settings = dataclasses.replace(mailbox, ca_file="", ca_data=ca_data)
    with pytest.raises(errors.ConfigError) as caught:
        connection.check_imap(settings)
    assert caught.value.reason == "ca_unusable"
    message = str(caught.value)
    assert "is not trusted" in message
    assert "the trusted CA certificate in Settings cannot be used" in message
    assert "Settings > CRM > Mailboxes" in message


def test_unreadable_ca_does_not_stop_a_connection_that_does_not_need_it(mailbox, dovecot):
    # A broken extra CA is left out: the authorities that remain still apply (here, the CA file).
    settings = dataclasses.replace(mailbox, ca_data="not a certificate")
    assert "IMAP4REV1" in connection.check_imap(settings)
    insecure = dataclasses.replace(mailbox, ca_file="", ca_data="not a certificate", verify_tls=False)
    assert "IMAP4REV1" in connection.check_imap(insecure)


def test_missing_ca_file_is_a_config_error(mailbox, tmp_path):
    settings = dataclasses.replace(mailbox, ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(errors.ConfigError) as caught:
        connection.check_imap(settings)
    assert caught.value.reason == "ca_unusable"
    assert "missing.pem cannot be used: No such file" in str(caught.value)


def test_a_valid_ca_that_does_not_sign_the_server_stays_tls_untrusted(mailbox, dovecot, tmp_path):
    from onpipeline_mail.engine.testing.certs import make_test_certificates

    other = make_test_certificates(str(tmp_path / "other"))
    settings = dataclasses.replace(mailbox, ca_file="", ca_data=read(other["ca.pem"]).decode())
    with pytest.raises(errors.TLSError) as caught:
        connection.check_imap(settings)
    assert caught.value.reason == "tls_untrusted"


def test_read_ca_certificates_returns_subject_and_validity(dovecot):
    bundle = connection.read_ca_certificates(read(dovecot.ca_file))
    [certificate] = bundle.certificates
    assert certificate.subject == "CN=onpipeline test CA"
    assert certificate.name == "onpipeline test CA"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert certificate.not_before <= now < certificate.not_after
    assert bundle.pem == read(dovecot.ca_file).decode().replace("\r\n", "\n")
    # What the addon stores loads as cadata.
    ssl.create_default_context().load_verify_locations(cadata=bundle.pem)


def test_read_ca_certificates_keeps_only_the_certificates(dovecot, tmp_path):
    from onpipeline_mail.engine.testing.certs import make_test_certificates

    other = make_test_certificates(str(tmp_path / "other"))
    text = "Bag Attributes: junk\n" + read(dovecot.ca_file).decode() + "comment\n" + read(other["ca.pem"]).decode()
    bundle = connection.read_ca_certificates(text)
    assert len(bundle.certificates) == 2
    assert bundle.pem.count("-----BEGIN CERTIFICATE-----") == 2
    assert "junk" not in bundle.pem and "comment" not in bundle.pem


def test_read_ca_certificates_accepts_one_der_certificate(dovecot):
    der = ssl.PEM_cert_to_DER_cert(read(dovecot.ca_file).decode())
    bundle = connection.read_ca_certificates(der)
    assert bundle.certificates[0].name == "onpipeline test CA"
    assert bundle.pem.startswith("-----BEGIN CERTIFICATE-----")


def certs_dir(dovecot):
    return os.path.dirname(dovecot.ca_file)


@pytest.mark.parametrize("name, data, reason, words", [
    ("empty", b"", "ca_not_pem", "empty"),
    ("text", b"hello, I am not a certificate", "ca_not_pem", "not a PEM certificate"),
    ("binary", bytes(range(256)), "ca_not_pem", "not a PEM certificate"),
    ("damaged", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "ca_unreadable",
     "cannot be read"),
    ("private key", "ca.key", "ca_private_key", "private key"),
    ("request", "server.csr", "ca_not_pem", "CERTIFICATE REQUEST"),
    ("server certificate", "server.pem", "ca_not_ca", "not a certificate authority"),
])
def test_read_ca_certificates_says_what_is_wrong(dovecot, name, data, reason, words):
    if isinstance(data, str):
        data = read(os.path.join(certs_dir(dovecot), data))
    with pytest.raises(errors.ConfigError) as caught:
        connection.read_ca_certificates(data)
    assert caught.value.reason == reason, name
    assert words in str(caught.value)


def test_certificate_and_private_key_together_are_refused(dovecot):
    # A bundle of the CA and its key: the key must not end up stored in the database.
    data = read(dovecot.ca_file) + read(os.path.join(certs_dir(dovecot), "ca.key"))
    with pytest.raises(errors.ConfigError) as caught:
        connection.read_ca_certificates(data)
    assert caught.value.reason == "ca_private_key"


def test_expired_or_not_yet_valid_ca_is_refused(dovecot):
    certificate = connection.read_ca_certificates(read(dovecot.ca_file)).certificates[0]
    later = certificate.not_after + datetime.timedelta(days=1)
    with pytest.raises(errors.ConfigError) as caught:
        connection.read_ca_certificates(read(dovecot.ca_file), now=later)
    assert caught.value.reason == "ca_expired"
    assert "expired on %s" % certificate.not_after.date().isoformat() in str(caught.value)
    earlier = certificate.not_before - datetime.timedelta(days=1)
    with pytest.raises(errors.ConfigError) as caught:
        connection.read_ca_certificates(read(dovecot.ca_file), now=earlier)
    assert caught.value.reason == "ca_not_yet_valid"


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
