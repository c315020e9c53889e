"""The mailbox form as the web client drives it: onchange, readonly rules, defaults, buttons."""

from odoo.tests import Form, tagged

from .common import OnpipelineMailCase, append, make_message


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestMailboxForm(OnpipelineMailCase):

    def open_my_mailbox(self, user):
        """What *CRM > Mail > My Mailbox* opens: the user's mailbox, or a new form."""
        Mailbox = self.env["onpipeline.mailbox"].with_user(user)
        action = Mailbox._action_open_my_mailbox()
        record = Mailbox.browse(action["res_id"]) if action["res_id"] else Mailbox
        return Form(record.with_context(**action["context"]))

    def fill_servers(self, form, account):
        form.imap_host = "127.0.0.1"
        form.imap_port = self.dovecot.tls_port
        form.imap_security = "ssl"
        form.smtp_host = "127.0.0.1"
        form.smtp_port = self.smtp.tls_port
        form.smtp_security = "ssl"

    def test_salesperson_connects_a_personal_mailbox_from_my_mailbox(self):
        account = self.new_account(layout="gmail")
        form = self.open_my_mailbox(self.user_alice)
        self.assertTrue(form.can_manage, "a new mailbox is the user's to fill in")
        self.assertEqual(form.mailbox_type, "personal")
        form.email = account.username
        self.fill_servers(form, account)
        form.imap_password_input = "not the password"
        mailbox = form.save()
        self.assertEqual(mailbox.user_id, self.user_alice)
        self.assertEqual(mailbox.state, "error")
        self.assertIn("password", mailbox.last_error.lower())

        # The error is shown; the user fixes the password in the same form.
        form = self.open_my_mailbox(self.user_alice)
        self.assertEqual(form.id, mailbox.id, "My Mailbox opens the existing mailbox, not a list")
        form.imap_password_input = account.password
        form.save()
        self.assertEqual(mailbox.state, "connected")
        self.assertFalse(mailbox.last_error)
        self.assertEqual(sorted(mailbox.folder_ids.filtered("is_selected").mapped("role")), ["inbox", "sent"])
        self.assertEqual(mailbox.display_name, "%s (personal)" % account.username)

    def test_name_and_login_follow_a_corrected_email(self):
        form = self.open_my_mailbox(self.user_alice)
        form.email = "jane@gmial.com"
        form.email = "jane@gmail.com"
        self.assertEqual(form.imap_host, "imap.gmail.com")
        form.imap_password_input = "secret"
        # Saving checks the login against the real Gmail host: not reachable here, so point it home.
        form.imap_host = "127.0.0.1"
        form.imap_port = self.dovecot.tls_port
        mailbox = form.save()
        self.assertFalse(mailbox.name, "no copy of the first address is kept as the name")
        self.assertFalse(mailbox.imap_login)
        self.assertEqual(mailbox._imap_settings().username, "jane@gmail.com")
        self.assertEqual(mailbox.display_name, "jane@gmail.com (personal)")
        # A name the user typed stays.
        with Form(mailbox) as form:
            form.name = "Jane's inbox"
            form.email = "jane.doe@gmail.com"
        self.assertEqual(mailbox.name, "Jane's inbox")
        self.assertEqual(mailbox.display_name, "Jane's inbox <jane.doe@gmail.com> (personal)")

    def test_crm_admin_connects_the_team_mailbox_from_the_sales_team_form(self):
        account = self.new_account()
        action = self.team_east.with_user(self.user_sales_admin).action_open_onpipeline_mailbox()
        Mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin)
        form = Form(Mailbox.with_context(**action["context"]))
        self.assertTrue(form.can_manage)
        self.assertEqual(form.mailbox_type, "team")
        self.assertEqual(form.team_id, self.team_east)
        form.email = account.username
        self.fill_servers(form, account)
        form.imap_password_input = account.password
        mailbox = form.save()
        self.assertEqual((mailbox.mailbox_type, mailbox.team_id, mailbox.user_id),
                         ("team", self.team_east, self.env["res.users"]))
        self.assertEqual(mailbox.state, "connected")
        self.assertEqual(mailbox.display_name, "%s (team East)" % account.username)
        # The team form now opens that mailbox; for a member it is read-only.
        self.assertEqual(self.team_east.action_open_onpipeline_mailbox()["res_id"], mailbox.id)
        member_form = Form(mailbox.with_user(self.user_alice))
        self.assertFalse(member_form.can_manage)
        with self.assertRaises(AssertionError):
            member_form.email = "other@example.test"

    def test_smtp_password_same_as_imap_by_default_and_back(self):
        account = self.new_account()
        form = self.open_my_mailbox(self.user_alice)
        self.assertTrue(form.smtp_uses_imap_password)
        form.email = account.username
        self.fill_servers(form, account)
        form.imap_password_input = account.password
        form.smtp_uses_imap_password = False
        form.smtp_password_input = "smtp-only"
        mailbox = form.save()
        self.assertEqual(mailbox.sudo().smtp_password, "smtp-only")
        self.assertFalse(mailbox.smtp_uses_imap_password)
        with Form(mailbox) as form:
            form.smtp_uses_imap_password = True
        self.assertFalse(mailbox.sudo().smtp_password)
        self.assertEqual(mailbox._smtp_settings().password, account.password)

    def test_check_connection_says_it_worked(self):
        account = self.new_account()
        mailbox = self.create_mailbox(account)
        result = mailbox.with_user(self.user_alice).action_check_connection()
        self.assertEqual(result["tag"], "display_notification")
        self.assertEqual(result["params"]["type"], "success")
        self.assertIn("Connected to 127.0.0.1", result["params"]["message"])
        self.assertEqual(result["params"]["next"], {"type": "ir.actions.act_window_close"}, "the form reloads")
        # A failed check gives no success message: the form shows the error.
        mailbox.sudo().imap_password = "wrong"
        self.assertIs(mailbox.with_user(self.user_alice).action_check_connection(), True)
        self.assertEqual(mailbox.state, "error")

    def test_sync_now_says_what_it_did(self):
        account = self.new_account()
        append(account, "INBOX", make_message("Quote request"))
        mailbox = self.create_mailbox(account).with_user(self.user_alice)
        inbox = mailbox.folder_ids.filtered(lambda folder: folder.role == "inbox")
        self.assertEqual((inbox.display_label, inbox.sync_status), ("Inbox", "waiting"), "not 'Syncing' before a sync")
        result = mailbox.action_sync_now()
        self.assertEqual(inbox.sync_status, "ok")
        self.assertEqual(result["tag"], "display_notification")
        self.assertEqual(result["params"]["type"], "success")
        self.assertEqual(result["params"]["message"], "1 new email. The mailbox is up to date.")
        self.assertEqual(result["params"]["next"], {"type": "ir.actions.act_window_close"})
        result = mailbox.action_sync_now()
        self.assertEqual(result["params"]["message"], "No new email. The mailbox is up to date.")
        # A server that refuses the login: the user is told why, in red.
        mailbox.sudo().imap_password = "changed on the server"
        result = mailbox.action_sync_now()
        self.assertEqual(result["params"]["type"], "danger")
        self.assertIn("password", result["params"]["message"].lower())
