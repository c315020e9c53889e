"""Odoo's composer with a "Send from" mailbox: the message goes out through that mailbox's SMTP server."""

import ast

from odoo import _, api, fields, models
from odoo.exceptions import UserError


class MailComposeMessage(models.TransientModel):
    _inherit = "mail.compose.message"

    onpipeline_mailbox_id = fields.Many2one(
        "onpipeline.mailbox", "Send From", compute="_compute_onpipeline_mailbox_id", store=True, readonly=False,
        domain="[('id', 'in', onpipeline_usable_mailbox_ids)]",
        help="The mailbox the message is sent from, through its own SMTP server. Empty: the company's server.")
    onpipeline_usable_mailbox_ids = fields.Many2many(
        "onpipeline.mailbox", compute="_compute_onpipeline_mailboxes", string="Mailboxes You Can Send From")
    onpipeline_has_mailboxes = fields.Boolean(compute="_compute_onpipeline_mailboxes")
    onpipeline_unavailable_note = fields.Text(
        "Mailboxes Unavailable", compute="_compute_onpipeline_mailboxes",
        help="Mailboxes you may send from that cannot send right now, and why.")
    onpipeline_reply_to_id = fields.Many2one(
        "onpipeline.mail.message", "Answers", help="The synced email this message answers (threading headers).")

    def _onpipeline_applies(self):
        self.ensure_one()
        return self.composition_mode == "comment" and not self.subtype_is_log

    @api.depends("composition_mode")
    def _compute_onpipeline_mailboxes(self):
        Mailbox = self.env["onpipeline.mailbox"]
        mailboxes = Mailbox._sending_mailboxes()
        usable = mailboxes.sudo().filtered("can_send").with_env(self.env)
        note = "\n".join(
            "%s: %s" % (mailbox.name, mailbox.send_unavailable_reason) for mailbox in (mailboxes - usable).sudo())
        for composer in self:
            composer.onpipeline_usable_mailbox_ids = usable
            composer.onpipeline_has_mailboxes = bool(mailboxes)
            composer.onpipeline_unavailable_note = note or False

    @api.depends("composition_mode", "model", "res_ids")
    def _compute_onpipeline_mailbox_id(self):
        Mailbox = self.env["onpipeline.mailbox"]
        for composer in self:
            if composer.composition_mode != "comment":
                composer.onpipeline_mailbox_id = False
                continue
            team = self.env["crm.team"]
            if composer.model == "crm.lead" and composer.res_ids:
                res_ids = composer._onpipeline_res_ids()
                team = self.env["crm.lead"].browse(res_ids[:1]).exists().team_id
            composer.onpipeline_mailbox_id = Mailbox._default_sending_mailbox(team=team)

    def _compute_subject(self):
        """Through a mailbox, a new email starts without a subject (required by the form): Odoo would propose
        the record's name, which is internal ("Big deal") and which the customer would then get."""
        super()._compute_subject()
        for composer in self:
            if (not composer.subject or composer.template_id or composer.parent_id or not composer.model
                    or not composer.model_is_thread or composer.composition_batch
                    or not composer._onpipeline_applies() or not composer.onpipeline_mailbox_id):
                continue
            records = self.env[composer.model].browse(composer._evaluate_res_ids())
            if len(records) == 1 and composer.subject == records._message_compute_subject():
                composer.subject = False

    def _onpipeline_res_ids(self):
        try:
            res_ids = ast.literal_eval(self.res_ids or "[]")
        except (ValueError, SyntaxError):
            return []
        return [res_ids] if isinstance(res_ids, int) else list(res_ids)

    def _onpipeline_check_mailbox(self):
        mailbox = self.onpipeline_mailbox_id
        if mailbox not in self.env["onpipeline.mailbox"]._sending_mailboxes():
            raise UserError(_("You cannot send from the mailbox %s.", mailbox.sudo().name))
        if not mailbox.sudo().can_send:
            raise UserError(_("%(mailbox)s cannot be used to send. %(reason)s",
                              mailbox=mailbox.sudo().name, reason=mailbox.sudo().send_unavailable_reason))

    def _action_send_mail_comment(self, res_ids):
        if not self._onpipeline_applies() or "onpipeline_mailbox_id" in self.env.context:
            return super()._action_send_mail_comment(res_ids)
        if self.onpipeline_mailbox_id:
            self._onpipeline_check_mailbox()
        elif not self.onpipeline_has_mailboxes:
            # No mailbox to choose from: Odoo's own sending, chatter defaults included.
            return super()._action_send_mail_comment(res_ids)
        composer = self.with_context(onpipeline_mailbox_id=self.onpipeline_mailbox_id.id or False,
                                     onpipeline_reply_to_id=self.onpipeline_reply_to_id.id or False)
        return super(MailComposeMessage, composer)._action_send_mail_comment(res_ids)
