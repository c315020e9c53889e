"""Sending through a real SMTP server with AUTH and TLS."""

import dataclasses
import email
import email.policy
import time

import pytest

from onpipeline_mail.engine import connection, errors, smtp
from onpipeline_mail.engine.testing.dovecot import free_port


@pytest.fixture
def smtp_settings(smtp_server):
    smtp_server.add_user("sender@example.test", "smtp-pw")
    return connection.ServerSettings("127.0.0.1", smtp_server.tls_port, connection.SSL, "sender@example.test",
                                     "smtp-pw", ca_file=smtp_server.ca_file)


@pytest.mark.parametrize("security", [connection.SSL, connection.STARTTLS])
def test_test_email_arrives_with_headers(smtp_server, smtp_settings, security):
    port = smtp_server.tls_port if security == connection.SSL else smtp_server.port
    settings = dataclasses.replace(smtp_settings, port=port, security=security)
    recipient = "check-%s@example.test" % security
    message = smtp.build_test_message("Sender <sender@example.test>", recipient, "Sales")
    smtp.send_message(settings, message)
    [received] = smtp_server.messages_to(recipient)
    assert received.login == "sender@example.test"
    assert received.mail_from == "sender@example.test"
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert parsed["Subject"] == "onpipeline mail: test email from Sales"
    assert parsed["Message-ID"].endswith("@example.test>")


def test_wrong_smtp_password(smtp_settings):
    with pytest.raises(errors.AuthError) as caught:
        smtp.send_message(dataclasses.replace(smtp_settings, password="nope"),
                          smtp.build_test_message("sender@example.test", "a@example.test"))
    assert "535" in str(caught.value)


def test_smtp_certificate_verified_by_default(smtp_settings):
    with pytest.raises(errors.TLSError):
        smtp.send_message(dataclasses.replace(smtp_settings, ca_file=""),
                          smtp.build_test_message("sender@example.test", "a@example.test"))


@pytest.mark.parametrize("security", [connection.SSL, connection.STARTTLS])
def test_smtp_trusts_a_private_ca_given_as_pem_data(smtp_server, smtp_settings, security):
    with open(smtp_server.ca_file) as handle:
        ca_data = handle.read()
    port = smtp_server.tls_port if security == connection.SSL else smtp_server.port
    settings = dataclasses.replace(smtp_settings, ca_file="", ca_data=ca_data, port=port, security=security)
    recipient = "ca-data-%s@example.test" % security
    smtp.send_message(settings, smtp.build_test_message("sender@example.test", recipient))
    assert smtp_server.messages_to(recipient)


def test_smtp_with_an_unreadable_ca_names_it(smtp_settings):
    settings = dataclasses.replace(smtp_settings, ca_file="", ca_data="-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(errors.ConfigError) as caught:
        smtp.send_message(settings, smtp.build_test_message("sender@example.test", "a@example.test"))
    assert caught.value.reason == "ca_unusable"
    assert "the trusted CA certificate in Settings cannot be used" in str(caught.value)


def test_login_over_plain_text_is_refused_with_advice(smtp_server, smtp_settings):
    settings = dataclasses.replace(smtp_settings, port=smtp_server.port, security=connection.PLAIN)
    with pytest.raises(errors.ConfigError) as caught:
        smtp.send_message(settings, smtp.build_test_message("sender@example.test", "a@example.test"))
    assert "STARTTLS or SSL/TLS" in str(caught.value)


def test_refused_recipient_is_an_error_not_a_silent_partial_send(smtp_server, smtp_settings):
    smtp_server.refused_recipients.add("ghost@example.test")
    with pytest.raises(errors.SendError) as caught:
        smtp.send_message(smtp_settings, smtp.build_test_message("sender@example.test", "ghost@example.test"))
    assert "ghost@example.test" in str(caught.value) and "550" in str(caught.value)


def test_no_answer_after_the_message_is_an_unknown_outcome(smtp_server, smtp_settings):
    # The server takes the message, then answers too late: it may have gone out.
    smtp_server.on_message = lambda _message: time.sleep(1.5)
    try:
        with pytest.raises(errors.SendError) as caught:
            smtp.send_message(dataclasses.replace(smtp_settings, read_timeout=0.5),
                              smtp.build_test_message("sender@example.test", "late@example.test"))
    finally:
        smtp_server.on_message = None
    assert caught.value.reason == smtp.OUTCOME_UNKNOWN
    assert "no answer came back" in str(caught.value)
    assert smtp_server.messages_to("late@example.test"), "the server did get it"


def test_connection_refused_before_the_message_is_not_an_unknown_outcome(smtp_settings):
    with pytest.raises(errors.ConnectError) as caught:
        smtp.send_message(dataclasses.replace(smtp_settings, port=free_port()),
                          smtp.build_test_message("sender@example.test", "a@example.test"))
    assert caught.value.reason != smtp.OUTCOME_UNKNOWN
