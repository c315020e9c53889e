from odoo import api, fields, models

from .onpipeline_mail_message_link import DEFAULT_IGNORED
from .onpipeline_mailbox_sync import DEFAULT_MAX_MESSAGE_MB


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    group_onpipeline_personal_mailbox = fields.Boolean(
        "Personal Mailboxes", implied_group="onpipeline_mail.group_personal_mailbox", group="base.group_user",
        help="Let every user connect their own mailbox. Turn off to work with team mailboxes only.")
    onpipeline_mail_extra_ca_file = fields.Char(
        "Extra Trusted CA File", config_parameter="onpipeline_mail.extra_ca_file",
        help="Path on the Odoo server of a PEM file with a private certificate authority to trust, "
             "in addition to the system's.")
    onpipeline_mail_sync_interval = fields.Integer(
        "Sync Every (minutes)", compute="_compute_onpipeline_mail_sync_interval",
        inverse="_inverse_onpipeline_mail_sync_interval", readonly=False)
    onpipeline_mail_max_message_size_mb = fields.Float(
        "Largest Email Imported Whole (MB)", config_parameter="onpipeline_mail.max_message_size_mb",
        default=DEFAULT_MAX_MESSAGE_MB,
        help="Larger emails are kept with their headers and text, without attachments, and say so.")
    onpipeline_mail_link_by_domain = fields.Boolean(
        "Link to Companies by Domain", config_parameter="onpipeline_mail.link_by_domain",
        help="When no contact has an address, link the email to the company whose email has the same domain. "
             "Never for free-mail domains (gmail.com, outlook.com...).")
    onpipeline_mail_link_ignored_addresses = fields.Char(
        "Never Link", config_parameter="onpipeline_mail.link_ignored_addresses", default=DEFAULT_IGNORED,
        help="Addresses never linked to contacts: \"name@\" for a local part on any domain, a domain for all "
             "its addresses, or a full address; separated by spaces or commas.")

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
