from odoo import _, fields, models
from odoo.exceptions import UserError


class OnpipelineMailLinkWizard(models.TransientModel):
    """Link emails by hand to another deal or contact; the choice sticks for the thread."""

    _name = "onpipeline.mail.link.wizard"
    _description = "Link Email"

    message_ids = fields.Many2many("onpipeline.mail.message", string="Emails", required=True)
    lead_id = fields.Many2one("crm.lead", "Deal", help="Replaces the current deal of the emails.")
    partner_id = fields.Many2one("res.partner", "Contact")

    def action_apply(self):
        self.ensure_one()
        if not self.lead_id and not self.partner_id:
            raise UserError(_("Choose a deal or a contact."))
        self.message_ids._link_manually(lead=self.lead_id, partner=self.partner_id)
        return {"type": "ir.actions.act_window_close"}
