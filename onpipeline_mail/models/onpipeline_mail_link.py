from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError

REASONS = [
    ("thread", "Reply in a linked thread"),
    ("contact", "Address of the contact"),
    ("company", "Contact of the company"),
    ("domain", "Company email domain"),
    ("manual", "Linked by hand"),
]


#: Links whose history entry is still to be made, as SQL on this table: the query of
#: ``_post_pending_history`` and the partial index that serves it share it, so they cannot drift apart.
PENDING_HISTORY = "mail_message_id IS NULL AND active IS TRUE AND is_candidate IS NOT TRUE"


class OnpipelineMailLink(models.Model):
    """Why a synced email belongs to a contact or a deal.

    A link either points at a contact or at a deal. The best deal of a message
    is its link with ``is_candidate`` off; the other open deals that matched
    are kept as candidates. A link removed by hand stays archived, so that
    later linking runs do not bring it back.
    """

    _name = "onpipeline.mail.link"
    _description = "Email Link"
    _order = "is_candidate, id"

    message_id = fields.Many2one("onpipeline.mail.message", "Email", required=True, index=True,
                                 ondelete="cascade", readonly=True)
    mailbox_id = fields.Many2one(related="message_id.mailbox_id", store=True, index=True)
    company_id = fields.Many2one(related="message_id.company_id", store=True)
    partner_id = fields.Many2one("res.partner", "Contact", index=True, ondelete="cascade", readonly=True)
    lead_id = fields.Many2one("crm.lead", "Deal", index=True, ondelete="cascade", readonly=True)
    reason = fields.Selection(REASONS, required=True, readonly=True)
    is_candidate = fields.Boolean("Candidate", readonly=True,
                                  help="Another open deal of the contacts; the email is not linked to it.")
    active = fields.Boolean(default=True, readonly=True, help="Off: removed by hand, never linked again.")
    mail_message_id = fields.Many2one("mail.message", "History Entry", readonly=True, ondelete="set null",
                                      help="The copy of the email in the history of the contact or deal.")
    is_readable = fields.Boolean(compute="_compute_is_readable", search="_search_is_readable")
    can_open_target = fields.Boolean(compute="_compute_target_name")
    target_name = fields.Char("Linked To", compute="_compute_target_name")

    _sql_constraints = [
        ("target_check", "CHECK((partner_id IS NULL) != (lead_id IS NULL))",
         "A link points at a contact or at a deal."),
    ]

    def init(self):
        super().init()
        # Every sync of a mailbox looks for links still without a history entry: a handful at most,
        # among all of the mailbox's links. This index holds only them.
        tools.create_index(self.env.cr, "onpipeline_mail_link_pending_history_index", self._table, ["mailbox_id"],
                           where=PENDING_HISTORY)

    def _compute_is_readable(self):
        readable = self.search([("id", "in", self.ids), ("is_readable", "=", True)])
        for link in self:
            link.is_readable = link in readable

    def _search_is_readable(self, operator, value):
        """A link is readable by whoever may read its email (record rules of the email apply)."""
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(_("Unsupported search on links."))
        messages = self.env(su=False)["onpipeline.mail.message"].with_context(active_test=False)._search([])
        positive = (operator == "=") == value
        return [("message_id", "in" if positive else "not in", messages)]

    @api.depends("partner_id", "lead_id")
    @api.depends_context("uid")
    def _compute_target_name(self):
        """The contact or deal by name when the user may open it; else what it is, never which one."""
        leads = self.mapped("lead_id")._filtered_access("read")
        partners = self.mapped("partner_id")._filtered_access("read")
        for link in self:
            target = link.lead_id or link.partner_id
            link.can_open_target = target in (leads if link.lead_id else partners)
            if link.can_open_target:
                link.target_name = target.display_name
            else:
                link.target_name = _("A deal you cannot open") if link.lead_id else _("A contact you cannot open")

    @api.depends("target_name", "reason")
    @api.depends_context("uid")
    def _compute_display_name(self):
        reasons = dict(self._fields["reason"]._description_selection(self.env))
        for link in self:
            link.display_name = "%s (%s)" % (link.target_name, reasons.get(link.reason, ""))

    def action_open_target(self):
        """Open the contact or deal of this link (button, shown only when the user may open it)."""
        self.ensure_one()
        target = self.lead_id or self.partner_id
        target.check_access("read")
        return {"type": "ir.actions.act_window", "res_model": target._name, "res_id": target.id,
                "view_mode": "form", "views": [(False, "form")]}

    # ------------------------------------------------------------------
    # Manual control
    # ------------------------------------------------------------------

    def action_unlink(self):
        """Remove these links by hand: the choice sticks, and replies in the thread follow it."""
        self.message_id.check_access("read")
        links = self.sudo()
        links.filtered(lambda link: link.lead_id and not link.is_candidate).message_id.write(
            {"is_deal_locked": True})
        links._remove_history()
        links.write({"active": False, "is_candidate": False})
        return True

    def action_make_primary(self):
        """Link the email to this candidate deal instead of the current one."""
        self.ensure_one()
        if not self.lead_id:
            raise UserError(_("Only a deal can be chosen."))
        self.message_id._link_manually(lead=self.lead_id)
        return True

    def _remove_history(self):
        entries = self.mail_message_id
        self.write({"mail_message_id": False})
        entries.sudo().unlink()
