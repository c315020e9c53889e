from odoo import _, api, fields, models


class CrmTeam(models.Model):
    _inherit = "crm.team"

    onpipeline_mailbox_ids = fields.One2many("onpipeline.mailbox", "team_id", "Team Mailboxes")
    onpipeline_mailbox_id = fields.Many2one("onpipeline.mailbox", "Team Mailbox",
                                            compute="_compute_onpipeline_mailbox_id")

    @api.depends("onpipeline_mailbox_ids")
    def _compute_onpipeline_mailbox_id(self):
        for team in self:
            team.onpipeline_mailbox_id = team.onpipeline_mailbox_ids[:1]

    def action_open_onpipeline_mailbox(self):
        self.ensure_one()
        action = {
            "type": "ir.actions.act_window",
            "name": _("Team Mailbox"),
            "res_model": "onpipeline.mailbox",
            "view_mode": "form",
            "context": {"default_mailbox_type": "team", "default_team_id": self.id},
        }
        if self.onpipeline_mailbox_id:
            action["res_id"] = self.onpipeline_mailbox_id.id
        return action
