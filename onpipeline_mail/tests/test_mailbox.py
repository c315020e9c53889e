from psycopg2 import IntegrityError

from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import OnpipelineMailCase


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxPresets(OnpipelineMailCase):

    def test_presets_filled_from_email(self):
        Mailbox = self.env["onpipeline.mailbox"].with_user(self.user_alice)
        cases = {
            "jane@gmail.com": ("Gmail", "imap.gmail.com", 993, "ssl", "smtp.gmail.com", 465, "ssl"),
            "jane@icloud.com": ("iCloud Mail", "imap.mail.me.com", 993, "ssl", "smtp.mail.me.com", 587, "starttls"),
            "jane@zohomail.eu": ("Zoho Mail (zoho.eu)", "imap.zoho.eu", 993, "ssl", "smtp.zoho.eu", 465, "ssl"),
            "jane@web.de": ("WEB.DE", "imap.web.de", 993, "ssl", "smtp.web.de", 587, "starttls"),
        }
        for address, expected in cases.items():
            with self.subTest(address=address):
                mailbox = Mailbox.new({"email": address})
                self.assertEqual(
                    (mailbox.provider_id.name, mailbox.imap_host, mailbox.imap_port, mailbox.imap_security,
                     mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security), expected)
                self.assertEqual(mailbox._imap_settings().username, address, "the login defaults to the address")
                self.assertTrue(mailbox.provider_note)

    def test_every_preset_of_the_data_file_is_loaded(self):
        names = set(self.env["onpipeline.mail.provider"].search([]).mapped("name"))
        for expected in ("Gmail", "Google Workspace", "Outlook.com / Hotmail", "Microsoft 365 / Exchange Online",
                         "Yahoo Mail", "AOL Mail", "iCloud Mail", "GMX (gmx.de / gmx.net)", "WEB.DE", "Fastmail",
                         "Yandex Mail", "Mail.ru", "T-Online", "Posteo", "mail.com"):
            self.assertIn(expected, names)

    def test_unknown_domain_is_other_and_keeps_a_provider_picked_by_hand(self):
        Mailbox = self.env["onpipeline.mailbox"].with_user(self.user_alice)
        mailbox = Mailbox.new({"email": "jane@acme-industries.example"})
        self.assertFalse(mailbox.provider_id)
        self.assertFalse(mailbox.imap_host)
        self.assertEqual(mailbox.imap_port, 993)
        m365 = self.env.ref("onpipeline_mail.provider_microsoft_365")
        mailbox.provider_id = m365
        self.assertEqual(mailbox.imap_host, "outlook.office365.com")
        self.assertEqual(mailbox.smtp_security, "starttls")
        mailbox.email = "john@acme-industries.example"
        self.assertEqual(mailbox.provider_id, m365, "a company domain does not reset the chosen provider")

    def test_explicit_servers_win_over_the_preset(self):
        account = self.new_account()
        mailbox = self.create_mailbox(account, email="someone@gmail.com", imap_login=account.username)
        self.assertEqual(mailbox.imap_host, "127.0.0.1")
        self.assertEqual(mailbox.state, "connected")

    def test_sync_window(self):
        mailbox = self.env["onpipeline.mailbox"].new({"email": "a@b.example", "sync_window": "3m"})
        self.assertEqual(str(mailbox._sync_window_start(today=__import__("datetime").date(2026, 5, 31))),
                         "2026-02-28")
        # What the web client gets for a new mailbox: the options, in the user's language, and the default.
        Mailbox = self.env["onpipeline.mailbox"].with_user(self.user_alice).with_context(lang="en_US")
        self.assertEqual([code for code, _label in Mailbox.fields_get(["sync_window"])["sync_window"]["selection"]],
                         ["today", "1w", "1m", "3m", "6m"])
        self.assertEqual(Mailbox.onchange({}, [], {"sync_window": {}})["value"]["sync_window"], "1m")


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxConnectionCheck(OnpipelineMailCase):

    def test_saving_checks_the_login_at_once(self):
        account = self.new_account(layout="exchange")
        mailbox = self.create_mailbox(account)
        self.assertEqual(mailbox.state, "connected")
        self.assertFalse(mailbox.last_error)
        self.assertIn("IMAP4REV1", mailbox.capabilities)
        selected = mailbox.folder_ids.filtered("is_selected").mapped("name")
        self.assertEqual(sorted(selected), ["INBOX", "Sent Items"])

    def test_wrong_password_names_cause_and_fix(self):
        account = self.new_account()
        gmail = self.env.ref("onpipeline_mail.provider_gmail")
        mailbox = self.create_mailbox(account, imap_password_input="not-the-password", provider_id=gmail.id)
        self.assertEqual(mailbox.state, "error")
        self.assertEqual(mailbox.error_reason, "auth_failed")
        self.assertIn("Wrong user name or password", mailbox.last_error)
        self.assertIn("app password", mailbox.last_error, "the provider's note is part of the advice")
        self.assertNotIn("not-the-password", mailbox.last_error)
        # Fixing the password re-checks without another click.
        mailbox.with_user(self.user_alice).write({"imap_password_input": account.password})
        self.assertEqual(mailbox.state, "connected")
        self.assertFalse(mailbox.last_error)

    def test_untrusted_certificate_and_self_signed_switch(self):
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.extra_ca_pem", False)
        account = self.new_account()
        mailbox = self.create_mailbox(account)
        self.assertEqual(mailbox.state, "error")
        self.assertEqual(mailbox.error_reason, "tls_untrusted")
        self.assertIn("Allow self-signed certificate", mailbox.last_error)
        mailbox.with_user(self.user_alice).allow_self_signed = True
        self.assertEqual(mailbox.state, "connected")

    def test_unreachable_and_mismatched_servers(self):
        account = self.new_account()
        cases = [
            ({"imap_host": "no-such-host.invalid"}, "host_unknown"),
            ({"imap_port": self.dovecot.port}, "tls_failed"),  # SSL on the plain port
            ({"imap_port": 1}, "refused"),
        ]
        for overrides, reason in cases:
            with self.subTest(reason=reason):
                mailbox = self.create_mailbox(account, **overrides)
                self.assertEqual(mailbox.state, "error")
                self.assertEqual(mailbox.error_reason, reason)
                self.assertTrue(mailbox.last_error)

    def test_starttls(self):
        account = self.new_account()
        mailbox = self.create_mailbox(account, imap_port=self.dovecot.port, imap_security="starttls")
        self.assertEqual(mailbox.state, "connected")

    def test_without_password_the_mailbox_is_not_connected(self):
        account = self.new_account()
        mailbox = self.create_mailbox(account, imap_password_input=False)
        self.assertEqual(mailbox.state, "not_connected")
        self.assertFalse(mailbox.folder_ids)


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxOwnership(OnpipelineMailCase):

    def test_one_team_mailbox_per_team(self):
        Mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin)
        first = Mailbox.create(self.mailbox_values(self.new_account(), mailbox_type="team",
                                                   team_id=self.team_east.id))
        self.assertEqual(first.state, "connected")
        self.assertFalse(first.user_id)
        self.assertEqual(self.team_east.onpipeline_mailbox_id, first)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError) as caught:
            Mailbox.create(self.mailbox_values(self.new_account(), mailbox_type="team", team_id=self.team_east.id))
        self.assertIn("team_unique", str(caught.exception))

    def test_team_mailbox_from_the_team_form(self):
        action = self.team_west.with_user(self.user_sales_admin).action_open_onpipeline_mailbox()
        self.assertEqual(action["context"], {"default_mailbox_type": "team", "default_team_id": self.team_west.id})
        mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).with_context(
            action["context"]).create(self.mailbox_values(self.new_account()))
        self.assertEqual((mailbox.mailbox_type, mailbox.team_id, mailbox.user_id),
                         ("team", self.team_west, self.env["res.users"]))
        self.assertEqual(self.team_west.action_open_onpipeline_mailbox()["res_id"], mailbox.id)

    def test_personal_mailbox_belongs_to_its_creator(self):
        mailbox = self.create_mailbox(self.new_account(), user=self.user_bob)
        self.assertEqual((mailbox.mailbox_type, mailbox.user_id), ("personal", self.user_bob))
        self.assertIn(mailbox, self.user_bob.onpipeline_mailbox_ids)

    def test_company_can_turn_personal_mailboxes_off(self):
        settings = self.env["res.config.settings"].create({"group_onpipeline_personal_mailbox": False})
        settings.execute()
        self.assertFalse(self.user_alice.has_group("onpipeline_mail.group_personal_mailbox"))
        with self.assertRaises(ValidationError) as caught:
            self.create_mailbox(self.new_account())
        self.assertIn("team mailbox", str(caught.exception))
        # Team mailboxes keep working.
        team_mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create(
            self.mailbox_values(self.new_account(), mailbox_type="team", team_id=self.team_west.id))
        self.assertEqual(team_mailbox.state, "connected")
        settings = self.env["res.config.settings"].create({"group_onpipeline_personal_mailbox": True})
        settings.execute()
        self.assertTrue(self.user_alice.has_group("onpipeline_mail.group_personal_mailbox"))
        self.assertEqual(self.create_mailbox(self.new_account()).state, "connected")
