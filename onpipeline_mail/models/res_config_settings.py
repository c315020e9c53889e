from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    group_onpipeline_personal_mailbox = fields.Boolean(
        "Personal Mailboxes", implied_group="onpipeline_mail.group_personal_mailbox", group="base.group_user",
        help="Let every user connect their own mailbox. Turn off to work with team mailboxes only.")
    onpipeline_mail_extra_ca_file = fields.Char(
        "Extra Trusted CA File", config_parameter="onpipeline_mail.extra_ca_file",
        help="Path on the Odoo server of a PEM file with a private certificate authority to trust, "
             "in addition to the system's.")
