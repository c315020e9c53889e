"""What the customer gets when a salesperson sends from the CRM, and what the salesperson is told (issue 11)."""

import email.utils
import time
from unittest.mock import patch

from odoo.tests import Form, tagged

from ..engine.connection import imap_session
from .common import append, make_message
from .test_sending import SendingCase, parse

SIGNATURE = "<p>Alice Seller, Sales Team East</p>"


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestSendingCustomerView(SendingCase):
    """The customer gets what a mail client sends; Odoo's notifications stay Odoo's."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_alice.signature = SIGNATURE
        # Bob follows the deal and wants his notifications by email.
        cls.user_bob.notification_type = "email"

    def setUp(self):
        super().setUp()
        self.lead.message_subscribe(partner_ids=self.user_bob.partner_id.ids)

    def assertMailClientLayout(self, sent, text):
        """What a mail client sends: the text and the signature, nothing about the CRM record."""
        html = sent.get_body(("html",)).get_content()
        plain = sent.get_body(("plain",)).get_content()
        self.assertIn(text, html)
        self.assertIn("Sales Team East", html, "the signature")
        for leak in ("Powered by", "Big deal", "Lead/Opportunity", "Your ", "View ", "/mail/view", "Unfollow",
                     "Mark Won", self.env.company.name):
            with self.subTest(leak=leak):
                self.assertNotIn(leak, html)
                self.assertNotIn(leak, plain)

    def sync_email_from_carl(self, account, mailbox, subject="Question"):
        append(account, "INBOX", make_message(subject, sender="Carl Customer <carl@client.example>",
                                              to=account.username, message_id="<q-%s@client.example>" % time.time()))
        mailbox._sync()
        return self.stored(mailbox).filtered(lambda m: m.subject == subject).with_user(self.user_alice)

    def reply_form(self, synced, mode="reply"):
        action = getattr(synced, "action_%s" % mode)()
        return Form(self.env["mail.compose.message"].with_user(self.user_alice).with_context(action["context"]))

    # ------------------------------------------------------------------
    # Layout: reply from a deal, from a contact, chatter
    # ------------------------------------------------------------------

    def test_reply_from_a_deal_is_laid_out_as_a_mail_client(self):
        account, mailbox = self.connect("plain")
        synced = self.sync_email_from_carl(account, mailbox)
        self.assertEqual(synced.lead_ids, self.lead, "the email is on the deal: the reply is written there")
        form = self.reply_form(synced)
        self.assertEqual((form.model, form.onpipeline_mailbox_id), ("crm.lead", mailbox))
        form.body = "<p>Thanks Carl, here is the answer.</p>"
        form.save().action_send_mail()

        [received] = self.received_from(account)
        self.assertEqual(received.rcpt_tos, ["carl@client.example"])
        sent = parse(received.data)
        self.assertEqual(sent["Subject"], "Re: Question")
        self.assertEqual(sent["In-Reply-To"], synced.message_id)
        self.assertMailClientLayout(sent, "here is the answer")

    def test_every_record_type_and_path_is_laid_out_as_a_mail_client(self):
        account, _mailbox = self.connect("plain")
        self.customer.message_subscribe(partner_ids=self.user_bob.partner_id.ids)
        for record in (self.lead, self.customer):
            with self.subTest(model=record._name, path="composer, Odoo's light layout asked"):
                self.compose(record, body="<p>Composer text</p>",
                             defaults={"email_layout_xmlid": "mail.mail_notification_light"}).action_send_mail()
                self.assertMailClientLayout(parse(self.received_from(account)[-1].data), "Composer text")
            with self.subTest(model=record._name, path="chatter"):
                record.with_user(self.user_alice).message_post(
                    body="<p>Chatter text</p>", subject="Hi", partner_ids=self.customer.ids,
                    message_type="comment", subtype_xmlid="mail.mt_comment")
                self.assertMailClientLayout(parse(self.received_from(account)[-1].data), "Chatter text")

    def test_layout_chosen_by_a_template_stays(self):
        account, _mailbox = self.connect("plain")
        self.lead.with_user(self.user_alice).message_post(
            body="<p>Quotation</p>", subject="Quotation", partner_ids=self.customer.ids,
            message_type="comment", subtype_xmlid="mail.mt_comment",
            email_layout_xmlid="mail.mail_notification_layout_with_responsible_signature")
        html = parse(self.received_from(account)[-1].data).get_body(("html",)).get_content()
        self.assertIn("Quotation", html)
        self.assertIn("Verdana", html, "the template's layout, not the personal one")

    # ------------------------------------------------------------------
    # Followers and colleagues: Odoo's notification, never the mailbox
    # ------------------------------------------------------------------

    def test_follower_is_notified_by_odoo_and_sent_and_stored_are_the_customers(self):
        account, mailbox = self.connect("plain")
        # Bob is also added as a recipient: a colleague gets Odoo's notification, not the customer's email.
        self.compose(self.lead, partners=self.customer | self.user_bob.partner_id).action_send_mail()

        self.assertFalse(self.smtp.messages_to(self.user_bob.email), "nothing to Bob through any mailbox")
        [received] = self.received_from(account)
        self.assertEqual(received.rcpt_tos, ["carl@client.example"])
        sent = parse(received.data)
        self.assertEqual([address.addr_spec for address in sent["To"].addresses], ["carl@client.example"])
        self.assertMailClientLayout(sent, "here is the offer")

        chatter = self.lead.message_ids.filtered(lambda m: m.subject == "Our offer")
        bob = chatter.notification_ids.filtered(lambda n: n.res_partner_id == self.user_bob.partner_id)
        self.assertEqual((bob.notification_type, bob.notification_status), ("email", "sent"),
                         "Bob keeps his notification, through Odoo's own mail server")
        self.assertFalse(self.env["mail.mail"].sudo().search(
            [("mail_message_id", "=", chatter.id), ("onpipeline_mailbox_id", "!=", False),
             ("recipient_ids", "in", self.user_bob.partner_id.ids)]))

        # Sent and the CRM hold what Carl got: his address, no View button.
        with self.subTest("Sent"):
            [copy] = self.fetch_sent(account, sent["Message-ID"])
            self.assertEqual(email.utils.getaddresses([str(copy["To"])]), [("Carl Customer", "carl@client.example")])
            self.assertNotIn("View", copy.get_body(("html",)).get_content())
        stored = self.stored(mailbox)
        self.assertEqual((stored.direction, stored.message_key), ("outgoing", sent["Message-ID"]))
        self.assertIn("carl@client.example", stored.email_to)
        self.assertNotIn(self.user_bob.email, stored.email_to)
        self.assertIn(self.customer, stored.partner_ids)

    def test_chatter_message_to_followers_only_does_not_use_the_mailbox(self):
        account, _mailbox = self.connect("plain")
        self.lead.with_user(self.user_alice).message_post(
            body="<p>Internal update</p>", message_type="comment", subtype_xmlid="mail.mt_comment")
        self.assertFalse(self.received_from(account))
        self.assertFalse(self.smtp.messages_to(self.user_bob.email))

    # ------------------------------------------------------------------
    # Subject
    # ------------------------------------------------------------------

    def test_empty_subject_stays_empty(self):
        account, _mailbox = self.connect("plain")
        # The chatter has no subject field: Odoo would use the deal's name.
        self.lead.with_user(self.user_alice).message_post(
            body="<p>No subject</p>", partner_ids=self.customer.ids, message_type="comment",
            subtype_xmlid="mail.mt_comment")
        sent = parse(self.received_from(account)[-1].data)
        self.assertEqual(sent["Subject"] or "", "")
        self.assertNotIn("Big deal", received_text(self.received_from(account)[-1]))

        # The composer does not propose the deal's name either; the form asks for a subject.
        form = Form(self.env["mail.compose.message"].with_user(self.user_alice).with_context(
            default_model="crm.lead", default_res_ids=self.lead.ids, default_composition_mode="comment",
            default_partner_ids=self.customer.ids))
        self.assertFalse(form.subject)
        form.body = "<p>Typed</p>"
        with self.assertRaisesRegex(AssertionError, "subject"):
            form.save()
        form.subject = "Our next step"
        form.save().action_send_mail()
        self.assertEqual(parse(self.received_from(account)[-1].data)["Subject"], "Our next step")

    def test_chatter_message_goes_on_with_the_last_email_and_names_no_record(self):
        account, mailbox = self.connect("plain")
        synced = self.sync_email_from_carl(account, mailbox, subject="Delivery dates")
        self.assertEqual(synced.lead_ids, self.lead)
        self.lead.with_user(self.user_alice).message_post(
            body="<p>Both dates work for us.</p>", partner_ids=self.customer.ids, message_type="comment",
            subtype_xmlid="mail.mt_comment")
        received = self.received_from(account)[-1]
        sent = parse(received.data)
        self.assertEqual(sent["Subject"], "Re: Delivery dates")
        self.assertEqual(sent["In-Reply-To"], synced.message_id)
        self.assertIn(synced.message_id, sent["References"])
        text = received_text(received)
        for leak in ("X-Odoo", "openerp", "crm.lead"):
            with self.subTest(leak=leak):
                self.assertNotIn(leak, text)

    def test_company_server_keeps_odoo_subject(self):
        # Without a mailbox the composer is Odoo's own.
        form = Form(self.env["mail.compose.message"].with_user(self.user_alice).with_context(
            default_model="crm.lead", default_res_ids=self.lead.ids, default_composition_mode="comment"))
        self.assertEqual(form.subject, "Big deal")

    # ------------------------------------------------------------------
    # Feedback
    # ------------------------------------------------------------------

    def test_successful_send_is_confirmed_to_the_author(self):
        account, mailbox = self.connect("plain")
        Users = type(self.env["res.users"])
        with patch.object(Users, "_bus_send", autospec=True) as bus_send:
            self.compose(self.lead).action_send_mail()
        notices = [call.args for call in bus_send.call_args_list if call.args[1] == "simple_notification"]
        [(user, _kind, notice)] = notices
        self.assertEqual((user, notice["type"]), (self.user_alice, "success"))
        self.assertIn(mailbox.email, notice["title"])
        self.assertIn("carl@client.example", notice["message"])
        self.assertEqual(len(self.received_from(account)), 1)

    def fetch_sent(self, account, message_id):
        with imap_session(account) as client:
            client.select_folder("Sent", readonly=True)
            uids = client.search(["HEADER", "Message-ID", message_id])
            return [parse(data[b"BODY[]"]) for data in client.fetch(uids, ["BODY.PEEK[]"]).values()]


def received_text(received):
    return received.data.decode("utf-8", "replace")
