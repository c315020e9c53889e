import email
import email.policy

from odoo.tests import tagged

from .common import OnpipelineMailCase


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestSendTestEmail(OnpipelineMailCase):

    def send(self, mailbox, user, email_to=None):
        wizard = self.env["onpipeline.mailbox.test.email"].with_user(user).with_context(
            default_mailbox_id=mailbox.id).create({"email_to": email_to} if email_to else {})
        return wizard, wizard.action_send()

    def test_test_email_goes_out_through_the_mailbox_smtp(self):
        account = self.new_account()
        mailbox = self.create_mailbox(account)
        wizard, action = self.send(mailbox, self.user_alice)
        self.assertEqual(wizard.email_to, "alice@company.test", "defaults to the user's own address")
        self.assertEqual(action["params"]["type"], "success")
        [received] = self.smtp.messages_to("alice@company.test")[-1:]
        self.assertEqual(received.login, account.username)
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        self.assertEqual(message["From"].addresses[0].addr_spec, account.username)
        self.assertEqual(mailbox.smtp_state, "ok")
        self.assertTrue(mailbox.can_send)

    def test_smtp_login_and_password_default_to_imap_ones_and_can_differ(self):
        account = self.new_account()
        self.smtp.add_user("smtp-only-login", "smtp-only-pw")
        mailbox = self.create_mailbox(account, smtp_login="smtp-only-login", smtp_password_input="smtp-only-pw")
        _wizard, action = self.send(mailbox, self.user_alice, email_to="check-separate@example.test")
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertEqual(self.smtp.messages_to("check-separate@example.test")[0].login, "smtp-only-login")

    def test_failure_names_the_cause_and_marks_sending_unavailable(self):
        account = self.new_account()
        mailbox = self.create_mailbox(account, smtp_password_input="wrong-smtp-password")
        _wizard, action = self.send(mailbox, self.user_alice, email_to="nobody-gets-this@example.test")
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("refused the user name or password", action["params"]["message"])
        self.assertEqual(mailbox.smtp_state, "error")
        self.assertFalse(mailbox.can_send)
        self.assertIn("Sending is unavailable", mailbox.send_unavailable_reason)
        self.assertFalse(self.smtp.messages_to("nobody-gets-this@example.test"))
        # Changing the SMTP settings clears the error until the next test.
        mailbox.with_user(self.user_alice).smtp_password_input = account.password
        self.assertEqual(mailbox.smtp_state, "untested")
        _wizard, action = self.send(mailbox, self.user_alice, email_to="now-it-works@example.test")
        self.assertEqual(action["params"]["type"], "success")

    def test_without_smtp_server_sending_is_unavailable(self):
        mailbox = self.create_mailbox(self.new_account(), smtp_host=False)
        self.assertFalse(mailbox.can_send)
        self.assertIn("no SMTP server", mailbox.send_unavailable_reason)

    def test_team_member_can_send_a_test_from_the_team_mailbox(self):
        account = self.new_account()
        mailbox = self.env["onpipeline.mailbox"].with_user(self.user_sales_admin).create(
            self.mailbox_values(account, mailbox_type="team", team_id=self.team_east.id))
        _wizard, action = self.send(mailbox, self.user_alice, email_to="from-team@example.test")
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertEqual(self.smtp.messages_to("from-team@example.test")[0].login, account.username)
