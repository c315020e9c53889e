"""The command line, run as a subprocess against the real Dovecot and SMTP servers."""

import os
import subprocess
import sys

import pytest

from onpipeline_mail.engine.testing.accounts import provision
from onpipeline_mail.engine.testing.dovecot import free_port

CLI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "onpipeline_mail", "engine",
                   "__main__.py")
PASSWORD_VAR = "ONPIPELINE_TEST_PASSWORD"


def run_cli(*args, password=None, tmp_path=None, timeout=60):
    env = dict(os.environ)
    env.pop(PASSWORD_VAR, None)
    if password is not None:
        env[PASSWORD_VAR] = password
    # From an unrelated folder, with no terminal: the CLI must work from anywhere and never prompt.
    result = subprocess.run([sys.executable, CLI, *args], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=timeout)
    if password:
        assert password not in result.stdout + result.stderr
    return result


def imap_args(settings, *extra):
    return ["--host", settings.host, "--port", str(settings.port), "--security", settings.security,
            "--user", settings.username, "--password-env", PASSWORD_VAR, "--ca-file", settings.ca_file, *extra]


def test_check_prints_the_capabilities(mailbox, tmp_path):
    result = run_cli("check", *imap_args(mailbox), password=mailbox.password, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "IMAP login OK: %s at 127.0.0.1:%s (ssl)" % (mailbox.username, mailbox.port) in result.stdout
    assert "IMAP4REV1" in result.stdout


def test_check_over_starttls(dovecot, mailbox, tmp_path):
    args = imap_args(mailbox)
    args[args.index("--port") + 1], args[args.index("--security") + 1] = str(dovecot.port), "starttls"
    result = run_cli("check", *args, password=mailbox.password, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(starttls)" in result.stdout


def test_check_with_a_wrong_password_exits_2(mailbox, tmp_path):
    result = run_cli("check", *imap_args(mailbox), password="not-" + mailbox.password, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("check failed (auth_failed): Wrong user name or password")
    assert "Traceback" not in result.stderr


def test_check_refuses_an_untrusted_certificate_unless_insecure(mailbox, tmp_path):
    args = imap_args(mailbox)
    del args[args.index("--ca-file"):args.index("--ca-file") + 2]
    result = run_cli("check", *args, password=mailbox.password, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "(tls_untrusted)" in result.stderr
    result = run_cli("check", *args, "--insecure", password=mailbox.password, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "certificate not verified" in result.stdout


def test_check_on_a_closed_port_says_refused(mailbox, tmp_path):
    args = imap_args(mailbox)
    args[args.index("--port") + 1] = str(free_port())
    result = run_cli("check", *args, password=mailbox.password, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "check failed (refused)" in result.stderr


def test_password_is_never_an_argument(mailbox, tmp_path):
    result = run_cli("check", "--host", "127.0.0.1", "--user", mailbox.username, "--password", mailbox.password,
                     tmp_path=tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments: --password <value hidden>" in result.stderr
    assert mailbox.password not in result.stdout + result.stderr


def test_password_given_as_the_variable_name_is_not_echoed(mailbox, tmp_path):
    result = run_cli("check", "--host", "127.0.0.1", "--user", mailbox.username, "--password-env", mailbox.password,
                     tmp_path=tmp_path)
    assert result.returncode == 2
    assert "--password-env is not set" in result.stderr
    assert mailbox.password not in result.stdout + result.stderr


@pytest.mark.parametrize("password_env", [None, "UNSET_VARIABLE_FOR_ONPIPELINE"])
def test_missing_password_is_explained_without_prompting(mailbox, tmp_path, password_env):
    args = ["check", "--host", "127.0.0.1", "--port", str(mailbox.port), "--user", mailbox.username]
    if password_env:
        args += ["--password-env", password_env]
    result = run_cli(*args, tmp_path=tmp_path, timeout=20)
    assert result.returncode == 2
    assert "--password-env" in result.stderr
    assert "Traceback" not in result.stderr


def test_folders_classifies_a_gmail_layout(mailbox, tmp_path):
    provision(mailbox, "gmail")
    result = run_cli("folders", *imap_args(mailbox), password=mailbox.password, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split("  ")[0].strip(): line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["INBOX"][1:4] == ["inbox", "yes", "yes"]
    assert rows["[Gmail]/Sent Mail"][2:5] == ["sent", "yes", "yes"]
    assert rows["[Gmail]/All Mail"][2:4] == ["all", "yes"]
    assert rows["[Gmail]"][1:3] == ["other", "no"] and "\\Noselect" in " ".join(rows["[Gmail]"])
    assert "suggested for sync: INBOX, [Gmail]/Sent Mail" in result.stdout


def test_folders_with_a_wrong_password_exits_2(mailbox, tmp_path):
    result = run_cli("folders", *imap_args(mailbox), password="wrong", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "folders failed (auth_failed)" in result.stderr


def smtp_args(smtp_server, mailbox, *extra):
    return ["--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_server.port), "--security", "starttls",
            "--user", mailbox.username, "--password-env", PASSWORD_VAR, "--ca-file", smtp_server.ca_file, *extra]


def test_send_test_delivers_to_the_smtp_server(smtp_server, mailbox, tmp_path):
    smtp_server.add_user(mailbox.username, mailbox.password)
    recipient = "cli-recipient-%s" % mailbox.username
    result = run_cli("send-test", *smtp_args(smtp_server, mailbox, "--to", recipient), password=mailbox.password,
                     tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Test email sent through 127.0.0.1:%s (starttls)" % smtp_server.port in result.stdout
    received = smtp_server.messages_to(recipient)
    assert len(received) == 1
    assert received[0].login == mailbox.username
    assert b"Subject: onpipeline mail: test email" in received[0].data


def test_send_test_with_a_wrong_password_exits_2(smtp_server, mailbox, tmp_path):
    smtp_server.add_user(mailbox.username, mailbox.password)
    recipient = "cli-refused-%s" % mailbox.username
    result = run_cli("send-test", *smtp_args(smtp_server, mailbox, "--to", recipient), password="wrong",
                     tmp_path=tmp_path)
    assert result.returncode == 2
    assert "send-test failed (auth_failed)" in result.stderr
    assert smtp_server.messages_to(recipient) == []


def test_presets(tmp_path):
    result = run_cli("presets", "someone@GMAIL.com", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Provider: Gmail" in result.stdout and "imap.gmail.com:993 ssl" in result.stdout
    result = run_cli("presets", "someone@unknown-domain.example", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "No preset for unknown-domain.example" in result.stdout


def test_demo_runs_the_whole_path(tmp_path):
    result = run_cli("demo", tmp_path=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IMAP login OK" in result.stdout
    assert "suggested for sync: INBOX, [Gmail]/Sent Mail" in result.stdout
    assert "Delivered to INBOX and found over IMAP" in result.stdout
    assert "Servers stopped" in result.stdout
