"""Folder discovery and classification on real accounts laid out like Gmail, Exchange and a plain server."""

import pytest

from onpipeline_mail.engine import folders
from onpipeline_mail.engine.connection import imap_session

EXPECTED_SENT = {"plain": "Sent", "gmail": "[Gmail]/Sent Mail", "exchange": "Sent Items"}


def _listed(settings):
    with imap_session(settings) as client:
        return {folder.name: folder for folder in folders.list_folders(client)}


def test_inbox_and_sent_are_suggested(laid_out_mailbox):
    layout, settings = laid_out_mailbox
    listed = _listed(settings)
    suggested = {folder.name for folder in folders.suggested_folders(listed.values())}
    assert suggested == {"INBOX", EXPECTED_SENT[layout]}
    assert folders.find_role(listed.values(), folders.SENT).name == EXPECTED_SENT[layout]


def test_gmail_container_is_not_selectable(laid_out_mailbox):
    layout, settings = laid_out_mailbox
    if layout != "gmail":
        pytest.skip("Gmail layout only")
    listed = _listed(settings)
    assert not listed["[Gmail]"].is_selectable
    assert "Noselect" in listed["[Gmail]"].skip_reason
    assert listed["[Gmail]/All Mail"].role == folders.ALL
    assert listed["[Gmail]/Spam"].role == folders.JUNK
    assert listed["Clients"].is_selectable and listed["Clients"].role == folders.OTHER


def test_exchange_groupware_folders_are_refused_with_a_reason(laid_out_mailbox):
    layout, settings = laid_out_mailbox
    if layout != "exchange":
        pytest.skip("Exchange layout only")
    listed = _listed(settings)
    for name in ("Calendar", "Calendar/Birthdays", "Contacts", "Contacts/Recipient Cache", "Tasks", "Notes",
                 "Journal", "Sync Issues", "Sync Issues/Conflicts", "Sync Issues/Local Failures", "RSS Feeds",
                 "Conversation History", "Outbox", "Kalender"):
        assert not listed[name].is_selectable, name
        assert "Not an email folder" in listed[name].skip_reason, name
    assert listed["Calendar"].skip_reason == "Not an email folder: it holds calendar events."
    # Localized and non-ASCII names arrive decoded from modified UTF-7.
    assert listed["Gesendete Objekte"].role == folders.SENT
    assert listed["Отправленные"].role == folders.SENT
    assert listed["Clients/Société Générale"].is_selectable
    assert listed["客户"].is_selectable
    assert listed["Deleted Items"].role == folders.TRASH
    assert listed["Junk E-mail"].role == folders.JUNK


def test_special_use_wins_over_names():
    folder = folders.classify("Random", "/", (b"\\HasNoChildren", b"\\Sent"))
    assert folder.role == folders.SENT
    assert folders.classify("Sent Items", "/", ()).role == folders.SENT
    assert folders.classify("INBOX.Sent", ".", ()).role == folders.SENT


@pytest.mark.parametrize("flag", ["\\Noselect", "\\NoSelect", "\\NONEXISTENT"])
def test_not_selectable_flags_compare_case_insensitively(flag):
    assert not folders.classify("Parent", "/", (flag,)).is_selectable


@pytest.mark.parametrize("name, expected", [
    ("Posta inviata", folders.SENT), ("Éléments envoyés", folders.SENT), ("Enviados", folders.SENT),
    ("Gesendet", folders.SENT), ("Sent Messages", folders.SENT), ("[Google Mail]/Sent Mail", folders.SENT),
    ("Entwürfe", folders.DRAFTS), ("Papierkorb", folders.TRASH), ("Spam", folders.JUNK),
])
def test_localized_role_names(name, expected):
    assert folders.classify(name, "/", ()).role == expected


def test_sent_folder_with_special_use_preferred_over_name_match():
    listed = [folders.classify("Sent Items", "/", ()), folders.classify("Sent", "/", ("\\Sent",))]
    assert folders.find_role(listed, folders.SENT).name == "Sent"
    assert folders.find_role([folders.classify("INBOX", "/", ())], folders.SENT) is None
