"""Settings > CRM > Mailboxes as an admin uses it: the private CA upload, the email size, the Never Link list."""

import base64
import datetime
import logging
import os
import tempfile
from pathlib import Path
from unittest.mock import patch

from lxml import etree

from odoo.exceptions import ValidationError
from odoo.modules.migration import load_script
from odoo.tests import Form, tagged
from odoo.tools import mute_logger

from ..models.res_config_settings import CA_FILENAME_PARAM, CA_PARAM, MAX_SIZE_PARAM
from .common import OnpipelineMailCase

MIGRATION = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations", "18.0.1.1.0", "post-migrate.py")
MIGRATION_LOGGER = "odoo.addons.onpipeline_mail.migrations"


def make_ca(common_name, not_before, not_after):
    """A self-signed CA certificate (PEM) valid between the two dates; the test servers' CA is current."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestSettings(OnpipelineMailCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = os.path.dirname(cls.dovecot.ca_file)
        cls.ca_pem = Path(cls.dovecot.ca_file).read_bytes()
        cls.private_key = Path(certs, "ca.key").read_bytes()
        cls.server_certificate = Path(certs, "server.pem").read_bytes()
        now = datetime.datetime.now(datetime.timezone.utc)
        cls.expired_ca = make_ca("expired test CA", now - datetime.timedelta(days=400),
                                 now - datetime.timedelta(days=30))
        cls.admin = cls.env.ref("base.user_admin")
        cls.account = cls.new_account()

    def setUp(self):
        super().setUp()
        self.params = self.env["ir.config_parameter"].sudo()
        # Each test starts as a company that trusts no private authority yet.
        self.params.set_param(CA_PARAM, False)
        self.params.set_param(CA_FILENAME_PARAM, False)

    def settings_form(self):
        return Form(self.env["res.config.settings"].with_user(self.admin))

    def save(self, form):
        """Save as the Save button does: create the settings record, then execute it."""
        settings = form.save()
        settings.execute()
        return settings

    def upload(self, data):
        form = self.settings_form()
        form.onpipeline_mail_ca_file = base64.b64encode(data).decode() if data else False
        return form

    # ------------------------------------------------------------------
    # Private certificate authority
    # ------------------------------------------------------------------

    def test_uploaded_ca_is_trusted_by_imap_and_smtp(self):
        mailbox = self.create_mailbox(self.account)
        self.assertEqual(mailbox.state, "error", "without the private CA the test server is not trusted")
        self.assertEqual(mailbox.error_reason, "tls_untrusted")
        self.assertIn("is not trusted", mailbox.last_error)

        form = self.upload(self.ca_pem)
        self.assertIn("Trusted: onpipeline test CA, valid until", form.onpipeline_mail_ca_trusted,
                      "the screen shows what will be trusted before it is saved")
        self.assertFalse(form.onpipeline_mail_ca_problem)
        self.save(form)
        self.assertEqual(self.params.get_param(CA_PARAM), self.ca_pem.decode())

        form = self.settings_form()
        self.assertTrue(form.onpipeline_mail_ca_file, "the stored certificate is shown, so it can be removed")
        self.assertEqual(form.onpipeline_mail_ca_filename, "ca.pem")
        self.assertIn("onpipeline test CA", form.onpipeline_mail_ca_trusted)

        mailbox.with_user(self.user_alice).action_check_connection()
        self.assertEqual(mailbox.state, "connected")
        sent, message = mailbox.with_user(self.user_alice)._send_test_email("someone@example.test")
        self.assertTrue(sent, message)

    def test_what_is_not_a_ca_certificate_is_refused_on_save(self):
        cases = [
            ("garbage", b"this is not a certificate\n", "not a PEM certificate"),
            ("binary", bytes(range(256)) * 4, "not a PEM certificate"),
            ("damaged", b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n", "cannot be read"),
            ("private key", self.private_key, "private key"),
            ("certificate and its key", self.ca_pem + self.private_key, "private key"),
            ("server certificate", self.server_certificate, "not a certificate authority"),
            ("expired", self.expired_ca, "expired on"),
        ]
        for name, data, words in cases:
            with self.subTest(name):
                form = self.upload(data)
                self.assertIn(words, form.onpipeline_mail_ca_problem, "shown as soon as the file is chosen")
                self.assertFalse(form.onpipeline_mail_ca_trusted)
                with self.assertRaises(ValidationError) as caught:
                    self.save(form)
                self.assertIn("cannot be trusted", str(caught.exception))
                self.assertIn(words, str(caught.exception))
                self.assertFalse(self.params.get_param(CA_PARAM), "nothing is stored")

    def test_removing_the_ca(self):
        self.save(self.upload(self.ca_pem))
        mailbox = self.create_mailbox(self.account)
        self.assertEqual(mailbox.state, "connected")
        form = self.settings_form()
        form.onpipeline_mail_ca_file = False  # the trash button of the file field
        self.save(form)
        self.assertFalse(self.params.get_param(CA_PARAM))
        self.assertFalse(self.params.get_param(CA_FILENAME_PARAM))
        self.assertFalse(self.settings_form().onpipeline_mail_ca_trusted)
        mailbox.with_user(self.user_alice).action_check_connection()
        self.assertEqual(mailbox.error_reason, "tls_untrusted")

    def test_a_stored_ca_expired_since_is_shown_and_does_not_block_other_settings(self):
        self.params.set_param(CA_PARAM, self.expired_ca.decode())
        form = self.settings_form()
        self.assertIn("expired on", form.onpipeline_mail_ca_problem)
        self.assertIn("upload its current certificate, or remove this one", form.onpipeline_mail_ca_problem)
        form.onpipeline_mail_sync_interval = 7
        self.save(form)
        self.assertEqual(self.params.get_param(CA_PARAM), self.expired_ca.decode(), "kept until the admin acts")
        self.assertEqual(self.env.ref("onpipeline_mail.ir_cron_onpipeline_mail_sync").interval_number, 7)

    def test_an_unusable_stored_ca_puts_the_mailbox_in_a_clear_error(self):
        mailbox = self.create_mailbox(self.account, allow_self_signed=True)
        self.assertEqual(mailbox.state, "connected")
        for name, stored, words in [
            ("damaged", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be read"),
            ("a path, as the old setting held", self.dovecot.ca_file, "not a PEM certificate"),
            ("expired", self.expired_ca.decode(), "expired on"),
        ]:
            with self.subTest(name), mute_logger("odoo.addons.onpipeline_mail.engine.connection"):
                self.params.set_param(CA_PARAM, stored)
                mailbox.with_user(self.user_alice).allow_self_signed = False  # re-checks the connection
                self.assertEqual(mailbox.state, "error")
                self.assertEqual(mailbox.error_reason, "ca_unusable")
                self.assertIn("the trusted CA certificate in Settings cannot be used", mailbox.last_error)
                self.assertIn(words, mailbox.last_error)
                self.assertIn("Settings > CRM > Mailboxes", mailbox.last_error)
                sent, message = mailbox.with_user(self.user_alice)._send_test_email("someone@example.test")
                self.assertFalse(sent)
                self.assertIn("the trusted CA certificate in Settings cannot be used", message)
                mailbox.with_user(self.user_alice).allow_self_signed = True

    def test_sync_cron_with_an_unusable_ca_does_not_raise(self):
        self.save(self.upload(self.ca_pem))
        mailbox = self.create_mailbox(self.account)
        self.assertEqual(mailbox.state, "connected")
        self.params.set_param(CA_PARAM, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        with patch.object(self.env.cr, "commit"), mute_logger("odoo.addons.onpipeline_mail.engine.connection"):
            self.env["onpipeline.mailbox"]._cron_sync_mailboxes()
        self.assertIn("the trusted CA certificate in Settings cannot be used", mailbox.last_sync_error)

    # ------------------------------------------------------------------
    # Migration of the old path parameter
    # ------------------------------------------------------------------

    def migrate(self, old_value):
        self.params.set_param("onpipeline_mail.extra_ca_file", old_value)
        load_script(MIGRATION, "onpipeline_mail_post_migrate_18_0_1_1_0").migrate(self.env.cr, "18.0.1.0.0")
        self.assertFalse(self.params.get_param("onpipeline_mail.extra_ca_file"), "the old parameter is gone")

    def test_migration_reads_an_existing_ca_file_once(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "company-ca.pem")
            Path(path).write_bytes(self.ca_pem + self.private_key)  # a bundle: the key stays out of the database
            # logging.INFO, not "INFO": Odoo names its level 25 "INFO" too.
            with self.assertLogs(MIGRATION_LOGGER, logging.INFO) as logs:
                self.migrate(path)
        self.assertIn("moved into the database", "\n".join(logs.output))
        self.assertEqual(self.params.get_param(CA_PARAM), self.ca_pem.decode())
        self.assertEqual(self.params.get_param(CA_FILENAME_PARAM), "company-ca.pem")
        self.assertEqual(self.create_mailbox(self.account).state, "connected")

    def test_migration_drops_a_missing_or_useless_file_with_a_log_line(self):
        with tempfile.TemporaryDirectory() as directory:
            garbage = os.path.join(directory, "garbage.pem")
            Path(garbage).write_bytes(b"not a certificate")
            for path, words in [(os.path.join(directory, "missing.pem"), "cannot be read"),
                                (garbage, "holds no usable CA certificate")]:
                with self.subTest(path), self.assertLogs(MIGRATION_LOGGER, logging.WARNING) as logs:
                    self.migrate(path)
                self.assertIn(words, "\n".join(logs.output))
                self.assertIn("dropped", "\n".join(logs.output))
                self.assertFalse(self.params.get_param(CA_PARAM))

    # ------------------------------------------------------------------
    # The rest of the screen
    # ------------------------------------------------------------------

    def test_largest_email_in_whole_megabytes(self):
        self.params.set_param(MAX_SIZE_PARAM, False)
        form = self.settings_form()
        self.assertEqual(form.onpipeline_mail_max_message_size_mb, 25)
        form.onpipeline_mail_max_message_size_mb = 10
        self.save(form)
        self.assertEqual(self.params.get_param(MAX_SIZE_PARAM), "10")
        # A value with decimals set by hand is shown rounded up and kept while it is not changed.
        self.params.set_param(MAX_SIZE_PARAM, "2.5")
        form = self.settings_form()
        self.assertEqual(form.onpipeline_mail_max_message_size_mb, 3)
        form.onpipeline_mail_sync_interval = 6
        self.save(form)
        self.assertEqual(self.params.get_param(MAX_SIZE_PARAM), "2.5")
        form = self.settings_form()
        form.onpipeline_mail_max_message_size_mb = 0
        with self.assertRaises(ValidationError):
            self.save(form)

    def test_screen_layout(self):
        arch = etree.fromstring(self.env["res.config.settings"].with_user(self.admin).get_views(
            [(False, "form")])["views"]["form"]["arch"])
        [never_link] = arch.xpath("//setting[@id='onpipeline_link_ignored']/field")
        self.assertEqual(never_link.get("widget"), "text", "several lines")
        self.assertIn("w-100", never_link.get("class"), "the whole width")
        [size] = arch.xpath("//setting[@id='onpipeline_max_size']//field[@name='onpipeline_mail_max_message_size_mb']")
        self.assertEqual(size.getparent().tag, "div", "in a div, the unit after the field is shown")
        self.assertIn("MB", "".join(size.getparent().itertext()))
        [ca_file] = arch.xpath("//setting[@id='onpipeline_extra_ca']//field[@name='onpipeline_mail_ca_file']")
        self.assertEqual(ca_file.get("filename"), "onpipeline_mail_ca_filename")
        self.assertEqual(ca_file.get("widget"), "list.binary",
                         "the settings screen's binary widget offers a download that fails on a field of no record")
        form = self.settings_form()
        form.onpipeline_mail_link_ignored_addresses = "noreply@\nbilling@example.com\nexample.org"
        self.save(form)
        self.assertEqual(self.params.get_param("onpipeline_mail.link_ignored_addresses"),
                         "noreply@\nbilling@example.com\nexample.org")
