"""Odoo's outgoing mail queue, routed through a mailbox's own SMTP server.

A ``mail.mail`` with ``onpipeline_mailbox_id`` goes out through that
mailbox (engine ``smtp``), not through the company's outgoing server: the
composer sets it (``onpipeline_mailbox_id`` in the context), and a message
posted from the chatter of a contact or an opportunity gets the author's
personal mailbox when it can send. Everything else in Odoo stays: the
queue, the states (a refused send is ``exception`` with Retry and Cancel),
the notifications shown in the chatter.
"""

import logging

from odoo import _, api, fields, models, tools

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from ..engine import errors, outgoing, smtp

_logger = logging.getLogger(__name__)

#: Chatter messages posted on these models go out through the author's personal mailbox.
ROUTED_MODELS = ("crm.lead", "res.partner")


class MailMail(models.Model):
    _inherit = "mail.mail"

    onpipeline_mailbox_id = fields.Many2one(
        "onpipeline.mailbox", "Sent From Mailbox", index="btree_not_null", ondelete="set null", readonly=True,
        help="Sent through this mailbox's SMTP server instead of the company's outgoing server.")
    onpipeline_reply_to_id = fields.Many2one(
        "onpipeline.mail.message", "Answers", ondelete="set null", readonly=True,
        help="The synced email this one answers: In-Reply-To and References point to it.")

    @api.model_create_multi
    def create(self, vals_list):
        context = self.env.context
        for vals in vals_list:
            if "onpipeline_mailbox_id" not in vals and "onpipeline_mailbox_id" in context:
                vals["onpipeline_mailbox_id"] = context["onpipeline_mailbox_id"] or False
                vals.setdefault("onpipeline_reply_to_id", context.get("onpipeline_reply_to_id") or False)
        mails = super().create(vals_list)
        if "onpipeline_mailbox_id" not in context:
            for mail in mails.sudo().filtered(lambda m: not m.onpipeline_mailbox_id):
                mailbox = mail._onpipeline_default_mailbox()
                if mailbox:
                    mail.onpipeline_mailbox_id = mailbox
        return mails

    def _onpipeline_default_mailbox(self):
        """The author's personal mailbox, for a message written in the chatter of a contact or an opportunity."""
        self.ensure_one()
        if self.message_type != "comment" or self.model not in ROUTED_MODELS:
            return self.env["onpipeline.mailbox"]
        users = self.author_id.user_ids.filtered(lambda u: not u.share)
        Mailbox = self.env["onpipeline.mailbox"].sudo()
        return Mailbox.search([("mailbox_type", "=", "personal"), ("user_id", "in", users.ids),
                               ("active", "=", True)]).filtered("can_send")[:1]

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    def send(self, auto_commit=False, raise_exception=False, post_send_callback=None):
        routed = self.sudo().filtered("onpipeline_mailbox_id").with_env(self.env)
        if routed:
            routed._onpipeline_send(auto_commit=auto_commit, raise_exception=raise_exception)
            if post_send_callback:
                post_send_callback(routed.ids)
        others = self - routed
        if others:
            return super(MailMail, others).send(
                auto_commit=auto_commit, raise_exception=raise_exception, post_send_callback=post_send_callback)
        return True

    def _onpipeline_send(self, auto_commit=False, raise_exception=False):
        for mail in self:
            if mail.state != "outgoing":
                continue
            mailbox = mail.sudo().onpipeline_mailbox_id
            # As Odoo does: if anything below rolls back after the SMTP server
            # accepted the message, the mail is not left "outgoing" to be sent twice.
            mail.write({"state": "exception", "failure_reason": _("Interrupted while sending.")})
            try:
                mailbox._check_can_send()
                message, recipients, success_pids = mail._onpipeline_build_message(mailbox)
                if not recipients:
                    raise errors.SendError(_("The message has no recipient."), reason="no_recipient")
                raw = smtp.send_message(mailbox._smtp_settings(), message, from_addr=mailbox.email,
                                        to_addrs=recipients)
            except errors.MailSyncError as exc:
                _logger.info("mail.mail %s: sending through mailbox %s failed (%s)", mail.id, mailbox.id, exc.reason)
                mailbox._record_send_outcome(exc)
                # "mail_smtp" keeps the mail (Odoo deletes those failed for a missing address): nothing is lost.
                failure_type = "mail_smtp"
                mail.write({"state": "exception", "failure_reason": str(exc)})
                mail._postprocess_sent_message(success_pids=[], failure_reason=str(exc), failure_type=failure_type)
                if raise_exception:
                    raise MailDeliveryException(_("Sending through %s failed", mailbox.email), str(exc)) from exc
                if auto_commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
                continue
            mailbox._record_send_outcome()
            mail.write({"state": "sent", "failure_reason": False})
            mailbox._after_send(raw, message["Message-ID"])
            mail._postprocess_sent_message(success_pids=success_pids)
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
        return True

    def _onpipeline_build_message(self, mailbox):
        """The message as Odoo would build it (body, layout, attachments), sent as the mailbox.

        Odoo builds one email per notified partner; a mailbox sends one
        message to all of them, as a mail client does, so that the recipients
        can answer all and the Sent folder holds one copy.
        """
        self.ensure_one()
        email_list = self._prepare_outgoing_list()
        to, cc, success_pids = [], [], []
        for values in email_list:
            to += [address for address in values["email_to"] if address not in to]
            cc += [address for address in values["email_cc"] if address not in cc]
            if values.get("partner_id"):
                success_pids.append(values["partner_id"].id)
        first = email_list[0] if email_list else {
            "body": self._prepare_outgoing_body(), "attachments": [], "headers": {}, "subject": self.subject}
        body = first["body"]
        message = self.env["ir.mail_server"].build_email(
            email_from=mailbox.email, email_to=to, email_cc=cc, subject=self.subject or "", body=body,
            body_alternative=tools.html2plaintext(body or ""), subtype="html", subtype_alternative="plain",
            attachments=first["attachments"], headers={
                key: value for key, value in (first["headers"] or {}).items()
                if key.lower() not in {header.lower() for header in outgoing.OWN_HEADERS}},
        )
        message_id = self.message_id
        if not outgoing.is_own_message_id(message_id, mailbox.email):
            old = message_id
            message_id = outgoing.make_message_id(mailbox.email)
            # Kept on the chatter message: a reply naming it threads on the record.
            self.mail_message_id.sudo().message_id = message_id
            if old and self.references:
                self.references = self.references.replace(old, message_id)
        in_reply_to, references = self._onpipeline_threading(message_id)
        recipients = outgoing.readdress(message, self._onpipeline_sender_name(mailbox), mailbox.email, message_id,
                                        in_reply_to=in_reply_to, references=references)
        return message, recipients, success_pids

    def _onpipeline_threading(self, message_id):
        """(In-Reply-To, References) of the answer: the synced email answered, else the chatter parent."""
        answered = self.sudo().onpipeline_reply_to_id
        if answered:
            return answered.message_id or "", (answered.references or "").split()
        parent = self.sudo().mail_message_id.parent_id
        references = [ref for ref in (self.references or "").split() if ref != message_id]
        if parent.message_id and parent.message_type == "email":
            # Answering an email received on the record.
            return parent.message_id, references
        return "", references

    def _onpipeline_sender_name(self, mailbox):
        author = self.sudo().author_id
        if mailbox.mailbox_type == "team" and mailbox.name and mailbox.name != mailbox.email:
            return mailbox.name
        return author.name or (mailbox.name if mailbox.name != mailbox.email else "")
