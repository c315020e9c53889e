"""Filing a sent message in Sent: servers that file it themselves, servers that do not, no Sent folder."""

import email
import email.message
import email.utils
import time

import pytest
from conftest import new_account

from onpipeline_mail.engine import errors, parse, sent_copy, smtp
from onpipeline_mail.engine.connection import ServerSettings, imap_session
from onpipeline_mail.engine.testing import sent_filing
from onpipeline_mail.engine.testing.accounts import provision
from onpipeline_mail.engine.testing.dovecot import Dovecot

SENT_OF_LAYOUT = {"plain": "Sent", "gmail": "[Gmail]/Sent Mail", "exchange": "Sent Items"}


@pytest.fixture
def filing(smtp_server):
    hook = sent_filing.install(smtp_server)
    yield hook


def account_with_smtp(dovecot, smtp_server, layout=None, prefix="sent"):
    imap = new_account(dovecot, prefix=prefix)
    smtp_server.add_user(imap.username, imap.password)
    if layout:
        provision(imap, layout)
    smtp_settings = ServerSettings("127.0.0.1", smtp_server.tls_port, "ssl", imap.username, imap.password,
                                   ca_file=smtp_server.ca_file)
    return imap, smtp_settings


def build(sender, subject="Offer", attachment=b"%PDF-1.4 offer"):
    message = email.message.EmailMessage()
    message["From"] = "Seller <%s>" % sender
    message["To"] = "Customer <customer@client.example>"
    message["Subject"] = subject
    message["Message-ID"] = email.utils.make_msgid("onp", domain=sender.rpartition("@")[2])
    message["Date"] = email.utils.formatdate()
    message.set_content("Please find our offer attached.")
    message.add_attachment(attachment, maintype="application", subtype="pdf", filename="offer.pdf")
    return message


def copies(settings, folder, message_id):
    with imap_session(settings) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["HEADER", "Message-ID", message_id])
        return {uid: data for uid, data in client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]).items()} if uids else {}


def folder_names(settings):
    with imap_session(settings) as client:
        return [name for _flags, _delim, name in client.list_folders()]


@pytest.mark.parametrize("layout", ["plain", "gmail", "exchange"])
def test_server_that_does_not_file_gets_one_appended_copy(dovecot, smtp_server, layout):
    imap, smtp_settings = account_with_smtp(dovecot, smtp_server, layout)
    message = build(imap.username)
    raw = smtp.send_message(smtp_settings, message)
    result = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], wait=0.3)
    assert result.action == sent_copy.APPENDED
    assert result.folder == SENT_OF_LAYOUT[layout]
    assert result.filed_by_server is False
    assert not result.created_folder
    [(uid, data)] = copies(imap, result.folder, message["Message-ID"]).items()
    assert uid == result.uid and result.uidvalidity
    assert b"\\Seen" in data[b"FLAGS"]
    assert data[b"BODY[]"].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")

    # Asking again (a retry) never files it twice, whatever was learned.
    again = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], server_files=False)
    assert (again.action, again.uid) == (sent_copy.ALREADY_FILED, uid)
    assert len(copies(imap, result.folder, message["Message-ID"])) == 1


def test_find_sent_tells_whether_a_send_got_through(dovecot, smtp_server, filing):
    imap, smtp_settings = account_with_smtp(dovecot, smtp_server, "gmail")
    filing.register(imap.username, imap, "[Gmail]/Sent Mail")
    try:
        message = build(imap.username)
        assert sent_copy.find_sent(imap, message["Message-ID"]) is None
        smtp.send_message(smtp_settings, message)
        found = sent_copy.find_sent(imap, message["Message-ID"])
        assert (found.folder, found.action) == ("[Gmail]/Sent Mail", sent_copy.ALREADY_FILED)
        assert found.recipients == {"customer@client.example"}
        assert found.uid in copies(imap, found.folder, message["Message-ID"])
    finally:
        filing.unregister(imap.username)
    # No Sent folder at all: nothing was filed, nothing is created.
    bare, _smtp = account_with_smtp(dovecot, smtp_server)
    assert sent_copy.find_sent(bare, "<x@example.test>") is None
    assert folder_names(bare) == ["INBOX"]


@pytest.mark.parametrize("layout", ["plain", "gmail"])
def test_server_that_files_sent_mail_is_recognised_and_not_doubled(dovecot, smtp_server, filing, layout):
    imap, smtp_settings = account_with_smtp(dovecot, smtp_server, layout)
    filing.register(imap.username, imap, SENT_OF_LAYOUT[layout])
    try:
        message = build(imap.username)
        raw = smtp.send_message(smtp_settings, message)
        result = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], wait=2)
        assert result.action == sent_copy.FILED_BY_SERVER
        assert result.filed_by_server is True
        assert result.folder == SENT_OF_LAYOUT[layout]
        [uid] = copies(imap, result.folder, message["Message-ID"])
        assert uid == result.uid
        # Once learned, nothing is done at all.
        skipped = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], server_files=True)
        assert skipped.action == sent_copy.SKIPPED
        assert len(copies(imap, result.folder, message["Message-ID"])) == 1
    finally:
        filing.unregister(imap.username)


def test_mailbox_without_sent_folder_gets_a_top_level_sent(dovecot, smtp_server):
    imap, smtp_settings = account_with_smtp(dovecot, smtp_server)
    assert folder_names(imap) == ["INBOX"]
    message = build(imap.username)
    raw = smtp.send_message(smtp_settings, message)
    result = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], wait=0)
    assert (result.action, result.folder, result.created_folder) == (sent_copy.APPENDED, "Sent", True)
    assert "Sent" in folder_names(imap)
    assert [folder.name for folder in result.folders if folder.role == "sent"] == ["Sent"]
    assert len(copies(imap, "Sent", message["Message-ID"])) == 1
    # The next send finds the folder it created.
    second = build(imap.username, subject="Second")
    raw2 = smtp.send_message(smtp_settings, second)
    result2 = sent_copy.file_sent_copy(imap, raw2, second["Message-ID"], server_files=False)
    assert (result2.action, result2.folder, result2.created_folder) == (sent_copy.APPENDED, "Sent", False)


@pytest.fixture(scope="module")
def prefixed_dovecot():
    """A server whose personal folders live under "INBOX/", as on cPanel ("INBOX.") and Courier."""
    with Dovecot(namespace_prefix="INBOX/") as server:
        yield server


def test_sent_folder_is_created_in_the_personal_namespace(prefixed_dovecot, smtp_server):
    imap = new_account(prefixed_dovecot, prefix="prefixed")
    message = build(imap.username)
    raw = message.as_bytes()
    result = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], wait=0)
    assert (result.action, result.folder, result.created_folder) == (sent_copy.APPENDED, "INBOX/Sent", True)
    assert "INBOX/Sent" in folder_names(imap)
    assert len(copies(imap, "INBOX/Sent", message["Message-ID"])) == 1
    again = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], server_files=False)
    assert (again.action, again.folder) == (sent_copy.ALREADY_FILED, "INBOX/Sent")


def test_unknown_server_waits_a_bounded_time(dovecot, smtp_server):
    imap, smtp_settings = account_with_smtp(dovecot, smtp_server, "plain")
    message = build(imap.username)
    raw = smtp.send_message(smtp_settings, message)
    started = time.monotonic()
    result = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], wait=1.0)
    elapsed = time.monotonic() - started
    assert result.action == sent_copy.APPENDED
    assert 1.0 <= elapsed < 5


def test_unreachable_imap_is_an_engine_error(dovecot, smtp_server):
    imap, _smtp = account_with_smtp(dovecot, smtp_server)
    bad = ServerSettings(imap.host, imap.port, imap.security, imap.username, "wrong", ca_file=imap.ca_file)
    with pytest.raises(errors.AuthError):
        sent_copy.file_sent_copy(bad, b"Subject: x\r\n\r\nx\r\n", "<x@example.test>")


def test_sent_copy_parses_back_with_the_same_key(dovecot, smtp_server):
    imap, smtp_settings = account_with_smtp(dovecot, smtp_server, "plain")
    message = build(imap.username)
    raw = smtp.send_message(smtp_settings, message)
    result = sent_copy.file_sent_copy(imap, raw, message["Message-ID"], wait=0)
    [data] = copies(imap, result.folder, message["Message-ID"]).values()
    assert parse.parse_message(data[b"BODY[]"]).message_id_key == parse.parse_message(raw).message_id_key
