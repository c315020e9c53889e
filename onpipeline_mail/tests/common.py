"""Odoo tier fixtures: real Dovecot and SMTP servers, shared by every test of the run."""

import atexit
import datetime
import email.message
import email.utils
import itertools
import os
import tempfile
from pathlib import Path

from odoo.addons.mail.tests.common import MailCommon, mail_new_test_user

from ..engine.connection import ServerSettings, imap_session
from ..engine.testing.accounts import provision
from ..engine.testing.dovecot import Dovecot
from ..engine.testing.smtp_server import SmtpServer

_servers = {}
_account_numbers = itertools.count(1)


def mail_servers():
    """Start Dovecot and the SMTP server once per test run; they stop at exit."""
    if not _servers:
        dovecot = Dovecot(root=tempfile.mkdtemp(prefix="onpipeline-odoo-dovecot-")).start()
        atexit.register(dovecot.stop)
        smtp = SmtpServer(os.path.join(dovecot.root, "certs")).start()
        atexit.register(smtp.stop)
        _servers.update(dovecot=dovecot, smtp=smtp)
    return _servers["dovecot"], _servers["smtp"]


class OnpipelineMailCase(MailCommon):
    """Users, a sales team and helpers to make real accounts on the test servers."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dovecot, cls.smtp = mail_servers()
        # Trust the test CA the way a company trusts its private CA.
        cls.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.extra_ca_pem",
                                                         Path(cls.dovecot.ca_file).read_text())
        cls.user_sales_admin = mail_new_test_user(
            cls.env, login="crm_admin", name="Carla Admin", email="carla@company.test",
            groups="base.group_user,sales_team.group_sale_manager")
        cls.user_alice = mail_new_test_user(
            cls.env, login="alice", name="Alice Seller", email="alice@company.test",
            groups="base.group_user,sales_team.group_sale_salesman")
        cls.user_bob = mail_new_test_user(
            cls.env, login="bob", name="Bob Seller", email="bob@company.test",
            groups="base.group_user,sales_team.group_sale_salesman")
        cls.team_east = cls.env["crm.team"].create({"name": "East", "member_ids": [(6, 0, cls.user_alice.ids)]})
        cls.team_west = cls.env["crm.team"].create({"name": "West", "member_ids": [(6, 0, cls.user_bob.ids)]})

    @classmethod
    def new_account(cls, layout=None, prefix="odoo"):
        """A fresh account on the test Dovecot (and SMTP), optionally laid out like a provider."""
        username = "%s%d@example.test" % (prefix, next(_account_numbers))
        password = "pw-%s" % username
        cls.dovecot.add_user(username, password)
        cls.smtp.add_user(username, password)
        settings = ServerSettings("127.0.0.1", cls.dovecot.tls_port, "ssl", username, password,
                                  ca_file=cls.dovecot.ca_file)
        if layout:
            provision(settings, layout)
        return settings

    def mailbox_values(self, account, **overrides):
        values = {
            "email": account.username,
            "imap_host": "127.0.0.1", "imap_port": self.dovecot.tls_port, "imap_security": "ssl",
            "imap_password_input": account.password,
            "smtp_host": "127.0.0.1", "smtp_port": self.smtp.tls_port, "smtp_security": "ssl",
        }
        values.update(overrides)
        return values

    def create_mailbox(self, account, user=None, **overrides):
        Mailbox = self.env["onpipeline.mailbox"].with_user(user or self.user_alice)
        return Mailbox.create(self.mailbox_values(account, **overrides))


def make_message(subject, sender="Customer <customer@client.example>", to="odoo@example.test", date=None,
                 message_id=True, body="Hello", html=None, attachments=(), **headers):
    """A simple email as bytes; ``message_id=True`` makes a unique one, a string sets it, False leaves it out."""
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(date or datetime.datetime.now(datetime.timezone.utc))
    if message_id is True:
        message["Message-ID"] = email.utils.make_msgid(domain="client.example")
    elif message_id:
        message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    if html:
        message.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def append(account, folder, raw, date=None, flags=()):
    """APPEND ``raw`` to ``folder`` with INTERNALDATE ``date`` (what SEARCH SINCE looks at)."""
    with imap_session(account) as client:
        client.append(folder, raw, flags=flags, msg_time=date or datetime.datetime.now(datetime.timezone.utc))
