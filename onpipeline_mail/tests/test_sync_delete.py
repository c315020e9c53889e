"""Deleting a mailbox: its mail goes, its copies in the history of contacts and deals stay or go, as asked."""

from odoo.tests import Form, tagged

from .common import OnpipelineMailCase, append, make_message


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxDelete(OnpipelineMailCase):

    def setUp(self):
        super().setUp()
        self.account = self.new_account(layout="plain")
        self.mailbox = self.create_mailbox(self.account, sync_window="1m")
        self.jane = self.env["res.partner"].create({"name": "Jane Doe", "email": "jane@client.example"})
        self.deal = self.env["crm.lead"].create({"name": "Big deal", "type": "opportunity",
                                                 "partner_id": self.jane.id, "user_id": self.user_alice.id})
        append(self.account, "INBOX", make_message("the offer", sender="Jane Doe <jane@client.example>",
                                                   attachments=[("offer.pdf", "application/pdf", b"%PDF-1.4 offer")]))
        append(self.account, "INBOX", make_message("unlinked", sender="someone@elsewhere.example"))
        self.mailbox._sync()
        self.emails = self.env["onpipeline.mail.message"].search([("mailbox_id", "=", self.mailbox.id)])
        self.entries = self.history()
        self.assertEqual(len(self.emails), 2)
        self.assertEqual(sorted(self.entries.mapped("model")), ["crm.lead", "res.partner"])

    def history(self):
        return self.env["mail.message"].search([
            "|", "&", ("model", "=", "res.partner"), ("res_id", "=", self.jane.id),
            "&", ("model", "=", "crm.lead"), ("res_id", "=", self.deal.id), ("message_type", "=", "email")])

    def delete(self, history):
        action = self.mailbox.with_user(self.user_alice).action_open_delete()
        self.assertEqual((action["res_model"], action["target"]), ("onpipeline.mailbox.delete", "new"))
        wizard = Form(self.env[action["res_model"]].with_user(self.user_alice).with_context(action["context"]))
        self.assertEqual((wizard.message_count, wizard.history_count, wizard.history), (2, 2, "keep"))
        wizard.history = history
        result = wizard.save().action_delete()
        self.assertEqual(result["res_model"], "onpipeline.mailbox")
        self.assertFalse(self.mailbox.exists())
        self.assertFalse(self.emails.exists(), "the synced mail goes with the mailbox")
        self.assertFalse(self.env["ir.attachment"].search([("res_model", "=", "onpipeline.mail.message"),
                                                          ("res_id", "in", self.emails.ids)]))

    def test_mail_stays_in_the_history_of_contacts_and_deals(self):
        self.delete("keep")
        self.assertEqual(self.history(), self.entries)
        self.assertIn("the offer", self.entries.mapped("subject"))
        for entry in self.entries:
            # The email's own file is handed over to the record the copy is on (a copy of it for the second one).
            self.assertEqual(entry.attachment_ids.mapped("name"), ["offer.pdf"])
            self.assertEqual((entry.attachment_ids.res_model, entry.attachment_ids.res_id), (entry.model, entry.res_id))
            self.assertEqual(entry.attachment_ids.raw, b"%PDF-1.4 offer")
        self.assertEqual(len(self.entries.attachment_ids), 2)
        # The salesperson still reads them on the deal.
        self.assertEqual(self.deal.with_user(self.user_alice).message_ids.filtered(
            lambda message: message.message_type == "email").subject, "the offer")

    def test_mail_goes_with_the_mailbox(self):
        self.delete("delete")
        self.assertFalse(self.history())
        self.assertFalse(self.entries.exists())
        self.assertFalse(self.env["ir.attachment"].search([("name", "=", "offer.pdf")]))

    def test_a_plain_delete_keeps_the_history(self):
        self.mailbox.with_user(self.user_alice).unlink()
        self.assertEqual(self.history(), self.entries)

    def test_the_form_deletes_through_the_wizard(self):
        view = self.env.ref("onpipeline_mail.onpipeline_mailbox_view_form")
        arch = self.env["onpipeline.mailbox"].with_user(self.user_alice).get_views(
            [(view.id, "form")])["views"]["form"]["arch"]
        self.assertIn('name="action_open_delete"', arch)
        self.assertIn('delete="0"', arch, "the form's own Delete would not ask")
