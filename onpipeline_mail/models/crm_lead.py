from odoo import models

#: Writing one of these may give a deal new addresses or make it an opportunity; not the stage, which
#: changes often (kanban) and never adds an address.
LINK_FIELDS = {"email_from", "partner_id", "type"}


class CrmLead(models.Model):
    _name = "crm.lead"
    _inherit = ["crm.lead", "onpipeline.mail.linked.mixin"]

    def _onpipeline_mail_domain(self):
        return [("link_ids", "any", [("is_candidate", "=", False), ("lead_id", "in", self.ids)])]

    def write(self, vals):
        result = super().write(vals)
        if LINK_FIELDS & set(vals) or vals.get("active"):
            self._onpipeline_link_late()
        return result

    def _onpipeline_link_late(self):
        """Late linking: mail synced before this deal existed (or had its address) now links to it."""
        if self.env.context.get("onpipeline_mail_no_link"):
            return
        leads = self.filtered(lambda lead: lead.type == "opportunity" and lead.active)
        company = leads.partner_id.commercial_partner_id
        partners = leads.partner_id | company | company.child_ids
        addresses = leads.mapped("email_normalized") + partners.mapped("email_normalized")
        addresses = [address for address in addresses if address]
        if addresses:
            self.env["onpipeline.mail.message"]._link_late(addresses)
