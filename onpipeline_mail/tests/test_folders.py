from odoo.exceptions import ValidationError
from odoo.tests import tagged

from ..engine.connection import imap_session
from .common import OnpipelineMailCase


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxFolders(OnpipelineMailCase):

    def folders_by_name(self, mailbox):
        return {folder.name: folder for folder in mailbox.folder_ids}

    def test_gmail_layout(self):
        mailbox = self.create_mailbox(self.new_account(layout="gmail"))
        folders = self.folders_by_name(mailbox)
        self.assertEqual(sorted(mailbox.folder_ids.filtered("is_selected").mapped("name")),
                         ["INBOX", "[Gmail]/Sent Mail"])
        self.assertFalse(folders["[Gmail]"].is_selectable)
        self.assertIn("Noselect", folders["[Gmail]"].skip_reason)
        self.assertEqual(folders["[Gmail]/Sent Mail"].parent_id, folders["[Gmail]"])
        self.assertEqual(folders["[Gmail]/All Mail"].role, "all")
        self.assertEqual(folders["[Gmail]/Sent Mail"].display_label.strip(), "Sent Mail")
        # The form lists Inbox and Sent first.
        listed = mailbox.with_user(self.user_alice).web_read({"folder_ids": {"fields": {"name": {}}}})[0]["folder_ids"]
        self.assertEqual([folder["name"] for folder in listed][:2], ["INBOX", "[Gmail]/Sent Mail"])

    def test_exchange_layout_refuses_non_mail_folders_with_a_reason(self):
        mailbox = self.create_mailbox(self.new_account(layout="exchange"))
        folders = self.folders_by_name(mailbox)
        for name in ("Calendar", "Contacts", "Tasks", "Notes", "Journal", "Sync Issues", "Outbox", "RSS Feeds",
                     "Calendar/Birthdays", "Kalender"):
            with self.subTest(folder=name):
                self.assertFalse(folders[name].is_selectable)
                self.assertTrue(folders[name].skip_reason)
                with self.assertRaises(ValidationError):
                    folders[name].with_user(self.user_alice).is_selected = True
        self.assertEqual(folders["Отправленные"].role, "sent")
        self.assertTrue(folders["Clients/Société Générale"].is_selectable)

    def test_refresh_keeps_the_selection_and_follows_the_server(self):
        account = self.new_account(layout="plain")
        mailbox = self.create_mailbox(account)
        folders = self.folders_by_name(mailbox)
        as_alice = mailbox.with_user(self.user_alice)
        folders["INBOX"].with_user(self.user_alice).is_selected = False
        folders["Archive"].with_user(self.user_alice).is_selected = True
        with imap_session(account) as client:
            client.create_folder("Deals 2026")
            client.delete_folder("Projects/Acme")
        as_alice.action_refresh_folders()
        folders = self.folders_by_name(mailbox)
        self.assertFalse(folders["INBOX"].is_selected)
        self.assertTrue(folders["Archive"].is_selected)
        self.assertTrue(folders["Sent"].is_selected)
        self.assertFalse(folders["Deals 2026"].is_selected, "new folders wait for the user")
        self.assertFalse(folders["Projects/Acme"].is_present)
        self.assertEqual(len(mailbox.folder_ids), len(set(mailbox.folder_ids.mapped("name"))))
