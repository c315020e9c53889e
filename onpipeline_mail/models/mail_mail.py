"""Odoo's outgoing mail queue, routed through a mailbox's own SMTP server.

A ``mail.mail`` with ``onpipeline_mailbox_id`` goes out through that
mailbox (engine ``smtp``), not through the company's outgoing server: the
composer sets it (``onpipeline_mailbox_id`` in the context), and a message
posted from the chatter of a contact or an opportunity gets the author's
personal mailbox when it can send. Everything else in Odoo stays: the
queue, the states (a refused send is ``exception`` with Retry and Cancel),
the notifications shown in the chatter.
"""

import email.utils
import logging

import psycopg2

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, UserError

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from ..engine import errors, outgoing, sent_copy, smtp
from ..engine.parse import normalize_address

_logger = logging.getLogger(__name__)

#: Chatter messages posted on these models go out through the author's personal mailbox.
ROUTED_MODELS = ("crm.lead", "res.partner")


class MailMail(models.Model):
    _inherit = "mail.mail"

    onpipeline_mailbox_id = fields.Many2one(
        "onpipeline.mailbox", "Sent From Mailbox", index="btree_not_null", ondelete="set null", readonly=True,
        help="Sent through this mailbox's SMTP server instead of the company's outgoing server.")
    onpipeline_attempt_count = fields.Integer("Send Attempts", readonly=True, copy=False)
    onpipeline_reply_to_id = fields.Many2one(
        "onpipeline.mail.message", "Answers", ondelete="set null", readonly=True,
        help="The synced email this one answers: In-Reply-To and References point to it.")
    onpipeline_may_be_delivered = fields.Boolean(
        "May Already Be Delivered", readonly=True, copy=False,
        help="The SMTP server took the message but never answered, and the mailbox's Sent folder cannot tell "
             "whether it went out: sending it again may deliver it twice, so a retry must be confirmed.")

    @api.model_create_multi
    def create(self, vals_list):
        context = self.env.context
        if context.get("onpipeline_mailbox_id"):
            self._onpipeline_check_context_mailbox(context["onpipeline_mailbox_id"])
        reply_to = context.get("onpipeline_reply_to_id") or False
        if reply_to:
            answered = self.env["onpipeline.mail.message"].browse(reply_to).exists()
            reply_to = answered.id if answered and answered.has_access("read") else False
        for vals in vals_list:
            if "onpipeline_mailbox_id" not in vals and "onpipeline_mailbox_id" in context:
                vals["onpipeline_mailbox_id"] = context["onpipeline_mailbox_id"] or False
                vals.setdefault("onpipeline_reply_to_id", reply_to)
        mails = super().create(vals_list)
        if "onpipeline_mailbox_id" not in context:
            for mail in mails.sudo().filtered(lambda m: not m.onpipeline_mailbox_id):
                if mail._onpipeline_take_over_failed(exclude=mails):
                    continue
                mailbox = mail._onpipeline_default_mailbox()
                if mailbox:
                    mail.onpipeline_mailbox_id = mailbox
        return mails

    def _onpipeline_take_over_failed(self, exclude):
        """Odoo's "Resend" (chatter) makes a new mail for a failed message: it goes out as the failed
        one would have (same mailbox, same answer), and the failed one is cancelled so that it cannot be
        retried as well."""
        self.ensure_one()
        if not self.mail_message_id:
            return False
        previous = self.search([("mail_message_id", "=", self.mail_message_id.id), ("id", "not in", exclude.ids),
                                ("onpipeline_mailbox_id", "!=", False)], order="id desc")
        if not previous:
            return False
        self.write({
            "onpipeline_mailbox_id": previous[0].onpipeline_mailbox_id.id,
            "onpipeline_reply_to_id": previous[0].onpipeline_reply_to_id.id,
            "onpipeline_attempt_count": max(previous.mapped("onpipeline_attempt_count")),
        })
        # The Resend wizard asked for these explicitly (it unticks them and says why): see mail_resend_message.
        previous.filtered(lambda mail: mail.state == "exception").cancel()
        return True

    @api.model
    def _onpipeline_check_context_mailbox(self, mailbox_id):
        """The context comes from the client: only a mailbox the user may send from is accepted."""
        user = self.env.user
        if user._is_superuser():
            return
        if mailbox_id not in self.env["onpipeline.mailbox"]._sending_mailboxes(user).ids:
            raise AccessError(_("You cannot send from this mailbox."))

    def _onpipeline_default_mailbox(self):
        """The author's personal mailbox, for a message written in the chatter of a contact or an opportunity."""
        self.ensure_one()
        return self._onpipeline_author_mailbox(self.message_type, self.model, self.author_id)

    @api.model
    def _onpipeline_author_mailbox(self, message_type, model, author):
        Mailbox = self.env["onpipeline.mailbox"].sudo()
        if message_type != "comment" or model not in ROUTED_MODELS or not author:
            return Mailbox
        users = author.sudo().user_ids.filtered(lambda u: not u.share)
        if not users:
            return Mailbox
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
            attempted = mail.onpipeline_attempt_count
            mail.write({"state": "exception", "failure_reason": _("Interrupted while sending."),
                        "onpipeline_attempt_count": attempted + 1, "onpipeline_may_be_delivered": False})
            try:
                mailbox._check_can_send()
                if attempted and mail._onpipeline_delivered_before(mailbox):
                    mail.write({"state": "sent", "failure_reason": False})
                    mail._postprocess_sent_message(success_pids=mail.recipient_ids.ids)
                    continue
                message, recipients, success_pids = mail._onpipeline_build_message(mailbox)
                if not recipients:
                    raise errors.SendError(_("The message has no recipient."), reason="no_recipient")
                raw = smtp.send_message(mailbox._smtp_settings(), message, from_addr=mailbox.email,
                                        to_addrs=recipients, login=mailbox._smtp_login_callable())
            except (MemoryError, psycopg2.Error):
                raise  # the transaction is unusable: Odoo's queue rolls back and tries again later
            except Exception as exc:  # as Odoo's _send: one broken mail must not block the queue
                mail._onpipeline_fail(mailbox, exc, raise_exception)
                if auto_commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
                continue
            mail.write({"state": "sent", "failure_reason": False})
            if auto_commit:
                # Sent is sent: whatever happens next, the queue must not send it again.
                self.env.cr.commit()  # pylint: disable=invalid-commit
            mailbox._record_send_outcome()
            mail._onpipeline_after_send(mailbox, raw, message["Message-ID"])
            # Said before the post-processing, which deletes the mail when it is to be auto-deleted.
            mail._onpipeline_tell_author("success", _("Email sent from %s", mailbox.email),
                                         _("To %s.", ", ".join(recipients)))
            mail._postprocess_sent_message(success_pids=success_pids)
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
        return True

    def _onpipeline_tell_author(self, kind, title, text, sticky=False):
        """A notification in the author's browser, as Odoo's ``display_notification`` shows it."""
        self.ensure_one()
        user = self.sudo().author_id.user_ids.filtered(lambda user: not user.share)[:1]
        if user:
            user._bus_send("simple_notification", {"type": kind, "sticky": sticky, "title": title, "message": text})

    def _onpipeline_sent_proves_delivery(self, mailbox):
        """The mailbox's server files what it sends and its Sent folder can be read: a copy there proves it."""
        files = mailbox.sent_copy_mode == "never" or (
            mailbox.sent_copy_mode == "auto" and mailbox.server_files_sent == "yes")
        return bool(files and mailbox.imap_host and mailbox._has_imap_credentials()
                    and outgoing.is_own_message_id(self.message_id, mailbox.email))

    def mark_outgoing(self):
        """Retry (the mail's form and list): a mail that may already have been delivered goes out again only
        when the user confirms it ("Send Again Anyway")."""
        unsure = self.filtered("onpipeline_may_be_delivered")
        if unsure and not self.env.context.get("onpipeline_confirm_resend"):
            raise UserError(_(
                "The SMTP server took \"%(subject)s\" but never answered, and the Sent folder of the mailbox "
                "cannot tell whether it went out: it may already have been delivered. Check with the recipients, "
                "then use \"Send Again Anyway\" to send it a second time.",
                subject=unsure[0].subject or ""))
        unsure.write({"onpipeline_may_be_delivered": False})
        return super().mark_outgoing()

    def _onpipeline_delivered_before(self, mailbox):
        """A retry: did an earlier attempt get through after all (the answer lost on the way back)?

        A server that files what it sends proves it with its copy in Sent; then
        the mail is marked sent instead of being sent twice. For other servers
        nothing can tell, and the retry sends.
        """
        if not self._onpipeline_sent_proves_delivery(mailbox):
            return False
        try:
            found = sent_copy.find_sent(mailbox._imap_settings(), self.message_id,
                                        login=mailbox._imap_login_callable())
        except errors.MailSyncError as exc:
            _logger.info("mail.mail %s: cannot look in Sent before the retry (%s)", self.id, exc.reason)
            return False
        # Another group of recipients of the same message may be what is in Sent: ours must be there too.
        ours = {address.lower() for address in self._onpipeline_build_message(mailbox)[1]}
        delivered = bool(found) and bool(ours) and ours <= found.recipients
        if delivered:
            _logger.info("mail.mail %s: an earlier attempt was delivered (in %s): not sent again",
                         self.id, found.folder)
        return delivered

    def _onpipeline_fail(self, mailbox, exc, raise_exception=False):
        """The mail stays, failed with the reason (Retry and Cancel as any Odoo mail); nothing was sent,
        unless the server never answered the message itself: then it says that it may have gone out."""
        may_be_delivered = False
        if isinstance(exc, errors.MailSyncError):
            _logger.info("mail.mail %s: sending through mailbox %s failed (%s)", self.id, mailbox.id, exc.reason)
            mailbox._record_send_outcome(exc)
            reason = str(exc)
            if exc.reason == smtp.OUTCOME_UNKNOWN and not self._onpipeline_sent_proves_delivery(mailbox):
                may_be_delivered = True
                reason = _("%s This mailbox's Sent folder cannot tell whether it went out: it may already have "
                           "been delivered, and sending it again may deliver it twice. Check with the recipients "
                           "before retrying.", reason)
        else:
            _logger.exception("mail.mail %s: sending through mailbox %s failed", self.id, mailbox.id)
            reason = tools.exception_to_unicode(exc)
        # "mail_smtp" keeps the mail (Odoo deletes those failed for a missing address): nothing is lost.
        self.write({"state": "exception", "failure_reason": reason, "onpipeline_may_be_delivered": may_be_delivered})
        self._postprocess_sent_message(success_pids=[], failure_reason=reason, failure_type="mail_smtp")
        # Tell the author now, as the connection checks do; the chatter keeps the failure with Retry.
        self._onpipeline_tell_author(
            "danger", _("Email not sent from %s", mailbox.email),
            _("%s It stays in the chatter as failed: open it to retry or cancel.", reason), sticky=True)
        if raise_exception:
            raise MailDeliveryException(_("Sending through %s failed", mailbox.email), reason) from exc

    def _onpipeline_after_send(self, mailbox, raw, message_id):
        """The copy in Sent and the stored message; a failure here never turns a sent mail into a failed one."""
        try:
            with self.env.cr.savepoint():
                mailbox._after_send(raw, message_id)
        except Exception:  # the message is out: log, the next sync stores what the server has
            _logger.exception("mail.mail %s: sent through mailbox %s, but storing it failed", self.id, mailbox.id)

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
        subject = self.subject or ""
        if not subject and not self.sudo().onpipeline_reply_to_id:
            # A chatter message has no subject field: it goes on with the last email exchanged with these
            # recipients on the record, as "Re:", rather than under the record's name or no subject.
            continued = self._onpipeline_last_email_with(to + cc)
            if continued:
                self.sudo().onpipeline_reply_to_id = continued
                subject = outgoing.prefixed_subject(_("Re:"), continued.subject)
        own = {header.lower() for header in outgoing.OWN_HEADERS}
        message = self.env["ir.mail_server"].build_email(
            email_from=mailbox.email, email_to=to, email_cc=cc, subject=subject, body=body,
            body_alternative=tools.html2plaintext(body or ""), subtype="html", subtype_alternative="plain",
            attachments=first["attachments"], headers={
                # Odoo's X-Odoo-* headers name the record's model and id: nothing for the customer.
                key: value for key, value in (first["headers"] or {}).items()
                if key.lower() not in own and not key.lower().startswith("x-odoo-")},
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

    def _onpipeline_last_email_with(self, addresses):
        """The latest synced email linked to this mail's record that one of ``addresses`` wrote or got."""
        self.ensure_one()
        target = {"crm.lead": "lead_id", "res.partner": "partner_id"}.get(self.model)
        wanted = {normalize_address(address) for _name, address in email.utils.getaddresses(addresses)} - {""}
        if not target or not self.res_id or not wanted:
            return self.env["onpipeline.mail.message"]
        links = self.env["onpipeline.mail.link"].sudo().search(
            [(target, "=", self.res_id), ("is_candidate", "=", False)], order="id desc", limit=50)
        for synced in links.message_id.sorted("date", reverse=True):
            correspondents = {normalize_address(address) for _name, address in email.utils.getaddresses(
                [synced.email_from or "", synced.email_to or "", synced.email_cc or ""])}
            if correspondents & wanted:
                return synced
        return self.env["onpipeline.mail.message"]

    def _onpipeline_threading(self, message_id):
        """(In-Reply-To, References) of the answer: the synced email answered, else the chatter parent."""
        answered = self.sudo().onpipeline_reply_to_id
        if answered:
            return answered.message_id or "", (answered.references or "").split()
        parent = self.sudo().mail_message_id.parent_id
        # Odoo's own ids (<…-openerp-<id>-<model>@…>) would tell the customer the record's model and id.
        references = [ref for ref in (self.references or "").split()
                      if ref != message_id and "-openerp-" not in ref]
        if parent.message_id and parent.message_type == "email":
            # Answering an email received on the record.
            return parent.message_id, references
        return "", references

    def _onpipeline_sender_name(self, mailbox):
        author = self.sudo().author_id
        if mailbox.mailbox_type == "team" and mailbox.name and mailbox.name != mailbox.email:
            return mailbox.name
        return author.name or (mailbox.name if mailbox.name != mailbox.email else "")
