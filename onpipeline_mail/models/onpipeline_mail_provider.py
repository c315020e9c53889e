from odoo import api, fields, models

from ..engine.connection import SECURITIES
from ..engine.presets import email_domain

SECURITY_SELECTION = list(zip(SECURITIES, ("SSL/TLS", "STARTTLS", "None (unencrypted)"), strict=True))


class OnpipelineMailProvider(models.Model):
    """Host, port and security presets of a mail provider, loaded from
    ``data/onpipeline.mail.provider.csv`` (the file the engine reads too)."""

    _name = "onpipeline.mail.provider"
    _description = "Mail Provider Preset"
    _order = "sequence, name"

    name = fields.Char(required=True, translate=False)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    domains = fields.Char(help="Email domains served by this provider, separated by spaces.")
    imap_host = fields.Char("IMAP Host", required=True)
    imap_port = fields.Integer("IMAP Port", required=True, default=993)
    imap_security = fields.Selection(SECURITY_SELECTION, "IMAP Security", required=True, default="ssl")
    smtp_host = fields.Char("SMTP Host", required=True)
    smtp_port = fields.Integer("SMTP Port", required=True, default=465)
    smtp_security = fields.Selection(SECURITY_SELECTION, "SMTP Security", required=True, default="ssl")
    note = fields.Text(help="What the user must do first: app password, IMAP switch, OAuth...")

    @api.model
    def _find_by_email(self, address):
        domain = email_domain(address)
        if not domain:
            return self.browse()
        for provider in self.search([("domains", "ilike", domain)]):
            if domain in (provider.domains or "").split():
                return provider
        return self.browse()
