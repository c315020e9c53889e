import base64
import binascii
import math

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import format_date

from ..engine import connection, errors
from .onpipeline_mail_message_link import DEFAULT_IGNORED
from .onpipeline_mailbox_sync import DEFAULT_MAX_MESSAGE_MB

#: The private CA's certificates as PEM text (only CERTIFICATE blocks), read by every mailbox.
CA_PARAM = "onpipeline_mail.extra_ca_pem"
#: The name of the file it came from, shown on the settings screen.
CA_FILENAME_PARAM = "onpipeline_mail.extra_ca_filename"
MAX_SIZE_PARAM = "onpipeline_mail.max_message_size_mb"


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    group_onpipeline_personal_mailbox = fields.Boolean(
        "Personal Mailboxes", implied_group="onpipeline_mail.group_personal_mailbox", group="base.group_user",
        help="Let every user connect their own mailbox. Turn off to work with team mailboxes only.")
    onpipeline_mail_ca_file = fields.Binary(
        "Trusted CA Certificate", attachment=False,
        help="The certificate (PEM: -----BEGIN CERTIFICATE-----, or a single DER .cer/.crt) of your private "
             "certificate authority. Mail servers whose certificate it signed are trusted, in addition to the "
             "authorities the server trusts anyway. Never upload a private key.")
    onpipeline_mail_ca_filename = fields.Char("Trusted CA Certificate File Name")
    onpipeline_mail_ca_trusted = fields.Text("Trusted Authorities", compute="_compute_onpipeline_mail_ca_status")
    onpipeline_mail_ca_problem = fields.Text("CA Certificate Problem", compute="_compute_onpipeline_mail_ca_status")
    onpipeline_mail_sync_interval = fields.Integer(
        "Sync Every (minutes)", compute="_compute_onpipeline_mail_sync_interval",
        inverse="_inverse_onpipeline_mail_sync_interval", readonly=False)
    onpipeline_mail_max_message_size_mb = fields.Integer(
        "Largest Email Imported Whole (MB)", default=DEFAULT_MAX_MESSAGE_MB,
        help="In megabytes. Larger emails are kept with their headers and text, without attachments, and say so.")
    onpipeline_mail_link_by_domain = fields.Boolean(
        "Link to Companies by Domain", config_parameter="onpipeline_mail.link_by_domain",
        help="When no contact has an address, link the email to the company whose email has the same domain. "
             "Never for free-mail domains (gmail.com, outlook.com...).")
    onpipeline_mail_link_ignored_addresses = fields.Char(
        "Never Link", config_parameter="onpipeline_mail.link_ignored_addresses", default=DEFAULT_IGNORED,
        help="Addresses never linked to contacts: \"name@\" for a local part on any domain, a domain for all "
             "its addresses, or a full address; separated by spaces, commas or new lines.")

    @api.depends("company_id")
    def _compute_onpipeline_mail_sync_interval(self):
        crons = self.env["onpipeline.mailbox"]._sync_crons()
        for settings in self:
            settings.onpipeline_mail_sync_interval = crons[:1].interval_number or 5

    def _inverse_onpipeline_mail_sync_interval(self):
        crons = self.env["onpipeline.mailbox"]._sync_crons()
        for settings in self:
            if settings.onpipeline_mail_sync_interval > 0:
                crons.write({"interval_number": settings.onpipeline_mail_sync_interval, "interval_type": "minutes"})

    # ------------------------------------------------------------------
    # Trusted CA certificate
    # ------------------------------------------------------------------

    def _onpipeline_mail_ca_upload(self):
        """The uploaded file's bytes (b"" when there is none)."""
        self.ensure_one()
        value = self.with_context(bin_size=False).onpipeline_mail_ca_file
        if not value:
            return b""
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value if isinstance(value, bytes) else value.encode()

    def _onpipeline_mail_ca_changed(self):
        stored = self.env["ir.config_parameter"].sudo().get_param(CA_PARAM) or ""
        return self._onpipeline_mail_ca_upload() != stored.encode()

    @api.depends("onpipeline_mail_ca_file")
    def _compute_onpipeline_mail_ca_status(self):
        for settings in self:
            settings.onpipeline_mail_ca_trusted = settings.onpipeline_mail_ca_problem = False
            data = settings._onpipeline_mail_ca_upload()
            if not data:
                continue
            try:
                bundle = connection.read_ca_certificates(data)
            except errors.ConfigError as exc:
                settings.onpipeline_mail_ca_problem = str(exc) if settings._onpipeline_mail_ca_changed() else _(
                    "%s Mailboxes whose server this authority signed cannot connect: upload its current "
                    "certificate, or remove this one.", exc)
                continue
            settings.onpipeline_mail_ca_trusted = "\n".join(
                _("Trusted: %(name)s, valid until %(date)s", date=format_date(self.env, certificate.not_after.date()),
                  name=certificate.name if certificate.subject == "CN=" + certificate.name else "%s (%s)" % (
                      certificate.name, certificate.subject))
                for certificate in bundle.certificates)

    @api.constrains("onpipeline_mail_ca_file")
    def _check_onpipeline_mail_ca_file(self):
        # Only a new upload is checked: a stored certificate that has expired since must not
        # block saving the other settings (the screen shows its problem).
        for settings in self:
            if settings._onpipeline_mail_ca_changed():
                settings._onpipeline_mail_ca_bundle()

    def _onpipeline_mail_ca_bundle(self):
        """The checked upload (a :class:`CaBundle`), or None when there is none."""
        data = self._onpipeline_mail_ca_upload()
        if not data:
            return None
        try:
            return connection.read_ca_certificates(data)
        except errors.ConfigError as exc:
            if self.onpipeline_mail_ca_filename:
                raise ValidationError(_("The CA certificate %(file)s cannot be trusted: %(problem)s",
                                        file=self.onpipeline_mail_ca_filename, problem=exc)) from exc
            raise ValidationError(_("The CA certificate cannot be trusted: %s", exc)) from exc

    @api.constrains("onpipeline_mail_max_message_size_mb")
    def _check_onpipeline_mail_max_message_size_mb(self):
        for settings in self:
            if settings.onpipeline_mail_max_message_size_mb < 1:
                raise ValidationError(_("The largest email imported whole must be at least 1 MB."))

    def _onpipeline_mail_max_size_shown(self):
        # Stored as a number of MB, possibly with decimals (set by hand); shown in whole MB.
        raw = self.env["ir.config_parameter"].sudo().get_param(MAX_SIZE_PARAM)
        try:
            return max(1, math.ceil(float(raw))) if raw else DEFAULT_MAX_MESSAGE_MB
        except ValueError:
            return DEFAULT_MAX_MESSAGE_MB

    def get_values(self):
        values = super().get_values()
        params = self.env["ir.config_parameter"].sudo()
        pem = params.get_param(CA_PARAM) or ""
        values.update(
            onpipeline_mail_ca_file=base64.b64encode(pem.encode()).decode() if pem else False,
            onpipeline_mail_ca_filename=(params.get_param(CA_FILENAME_PARAM) or "ca.pem") if pem else False,
            onpipeline_mail_max_message_size_mb=self._onpipeline_mail_max_size_shown(),
        )
        return values

    def set_values(self):
        super().set_values()
        params = self.env["ir.config_parameter"].sudo()
        if self._onpipeline_mail_ca_changed():
            bundle = self._onpipeline_mail_ca_bundle()
            params.set_param(CA_PARAM, bundle.pem if bundle else False)
            params.set_param(CA_FILENAME_PARAM, (self.onpipeline_mail_ca_filename or "ca.pem") if bundle else False)
        elif self.onpipeline_mail_ca_file and self.onpipeline_mail_ca_filename:
            params.set_param(CA_FILENAME_PARAM, self.onpipeline_mail_ca_filename)
        if self.onpipeline_mail_max_message_size_mb != self._onpipeline_mail_max_size_shown():
            params.set_param(MAX_SIZE_PARAM, str(self.onpipeline_mail_max_message_size_mb))
