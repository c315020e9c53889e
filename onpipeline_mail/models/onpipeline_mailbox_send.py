"""Sending from a mailbox: who may send from which mailbox, and the copy in Sent after a send.

The send itself is in ``mail_mail.py`` (Odoo's queue, states and Retry);
here the mailbox files the copy of what it sent (engine ``sent_copy``),
remembers whether its server files sent mail by itself, stores the message
as an outgoing ``onpipeline.mail.message`` with the same key the next sync
will compute, and keeps the copies it could not file for the next sync run.
"""

import base64
import logging

from odoo import _, api, fields, models

from ..engine import errors, parse, sent_copy
from ..models.onpipeline_mail_message import message_key

_logger = logging.getLogger(__name__)

SENT_COPY_MODES = [
    ("auto", "Automatic"),
    ("always", "Always add a copy"),
    ("never", "Never add a copy"),
]


class OnpipelineMailbox(models.Model):
    _inherit = "onpipeline.mailbox"

    sent_copy_mode = fields.Selection(
        SENT_COPY_MODES, "Copy In Sent", default="auto", required=True,
        help="After a send from the CRM, a copy is put in the mailbox's Sent folder unless the server files sent "
             "mail itself (Gmail, Microsoft 365 do). Automatic: checked at the first send and remembered.")
    server_files_sent = fields.Selection(
        [("unknown", "Not known yet"), ("yes", "Yes"), ("no", "No")], "Server Files Sent Mail",
        default="unknown", required=True, readonly=True, copy=False,
        help="What the first send showed: whether the server puts what it sends in the Sent folder by itself.")
    sent_copy_ids = fields.One2many("onpipeline.mail.sent.copy", "mailbox_id", "Copies Not Yet In Sent",
                                    groups="base.group_system")
    sent_copy_count = fields.Integer("Copies Waiting", compute="_compute_sent_copy_count", compute_sudo=True)

    @api.depends("sent_copy_ids")
    def _compute_sent_copy_count(self):
        for mailbox in self:
            mailbox.sent_copy_count = len(mailbox.sent_copy_ids)

    def write(self, vals):
        if {"sent_copy_mode", "imap_host", "smtp_host"} & set(vals):
            vals = dict(vals, server_files_sent="unknown")
        return super().write(vals)

    # ------------------------------------------------------------------
    # Who sends from what
    # ------------------------------------------------------------------

    @api.model
    def _sending_mailboxes(self, user=None):
        """The mailboxes ``user`` may send from: their personal ones and their teams' (usable or not)."""
        user = user or self.env.user
        teams = self.env["crm.team"].sudo().search(["|", ("member_ids", "in", user.ids), ("user_id", "=", user.id)])
        return self.sudo().search([
            ("active", "=", True), "|",
            "&", ("mailbox_type", "=", "personal"), ("user_id", "=", user.id),
            "&", ("mailbox_type", "=", "team"), ("team_id", "in", teams.ids),
        ]).with_env(self.env)

    @api.model
    def _default_sending_mailbox(self, user=None, team=None):
        """The personal mailbox; without one, the team mailbox of ``team`` (the deal's), else of the user's team."""
        candidates = self._sending_mailboxes(user).sudo().filtered("can_send")
        personal = candidates.filtered(lambda m: m.mailbox_type == "personal")
        if personal:
            return personal[:1].with_env(self.env)
        if team:
            of_team = candidates.filtered(lambda m: m.team_id == team)
            if of_team:
                return of_team[:1].with_env(self.env)
        return candidates[:1].with_env(self.env)

    def _check_can_send(self):
        self.ensure_one()
        mailbox = self.sudo()
        if not mailbox.active:
            raise errors.ConfigError(_("The mailbox %s is archived.", mailbox.name), reason="archived")
        if not mailbox.can_send:
            raise errors.ConfigError(mailbox.send_unavailable_reason, reason="cannot_send")

    def _record_send_outcome(self, exc=None):
        """A refused login or unusable settings make the mailbox unusable until fixed; network trouble does not."""
        if exc is None:
            if self.smtp_state != "ok":
                self.sudo().write({"smtp_state": "ok", "smtp_error": False})
        elif isinstance(exc, (errors.AuthError, errors.TLSError)) or (
                isinstance(exc, errors.ConfigError) and exc.reason not in ("cannot_send", "archived")):
            self.sudo().write({"smtp_state": "error", "smtp_error": str(exc)})

    # ------------------------------------------------------------------
    # After a send: the copy in Sent and the stored message
    # ------------------------------------------------------------------

    def _sent_copy_wait(self):
        return float(self.env["ir.config_parameter"].sudo().get_param(
            "onpipeline_mail.sent_copy_wait", sent_copy.DEFAULT_WAIT))

    def _after_send(self, raw, message_id):
        """File the copy and store the message; never fails the send (a failed copy waits for the next sync)."""
        self.ensure_one()
        mailbox = self.sudo()
        key = parse.normalize_message_id(message_id)
        if key and mailbox.env["onpipeline.mail.message"].search_count(
                [("mailbox_id", "=", mailbox.id), ("message_key", "=", key)], limit=1):
            # Odoo sends one mail per group of recipients with the same Message-ID: the first one
            # filed and stored it (or left its copy waiting); the others have nothing to add.
            return mailbox.env["onpipeline.mail.message"].search(
                [("mailbox_id", "=", mailbox.id), ("message_key", "=", key)], limit=1)
        result = None
        if mailbox.sent_copy_mode != "never" and mailbox.imap_host and mailbox._has_imap_credentials():
            result = mailbox._file_sent_copy(raw, message_id)
        return mailbox._store_sent_message(raw, result)

    def _file_sent_copy(self, raw, message_id, pending=None):
        """One attempt; returns the engine's result, or None after recording the failure."""
        self.ensure_one()
        server_files = {"always": False, "auto": {"yes": True, "no": False}.get(self.server_files_sent)}.get(
            self.sent_copy_mode)
        try:
            result = sent_copy.file_sent_copy(self._imap_settings(), raw, message_id, server_files=server_files,
                                              wait=self._sent_copy_wait(), login=self._imap_login_callable())
        except errors.MailSyncError as exc:
            _logger.info("Mailbox %s: copy of %s not filed in Sent (%s)", self.id, message_id, exc.reason)
            values = {"error": str(exc), "last_attempt_date": fields.Datetime.now()}
            if pending:
                pending.write(dict(values, attempt_count=pending.attempt_count + 1))
            else:
                parsed_subject = parse.parse_message(raw).subject
                self.env["onpipeline.mail.sent.copy"].create(dict(
                    values, mailbox_id=self.id, message_id=message_id, subject=parsed_subject,
                    raw=base64.b64encode(raw)))
            return None
        if result.filed_by_server is not None and self.sent_copy_mode == "auto":
            self.server_files_sent = "yes" if result.filed_by_server else "no"
        elif result.action == sent_copy.ALREADY_FILED and not pending and self.sent_copy_mode == "auto":
            # A fresh send found in Sent before we filed it: the server files sent mail after all.
            self._learn_server_files_sent()
        if pending:
            pending.unlink()
        return result

    def _learn_server_files_sent(self):
        if self.server_files_sent != "yes":
            self.server_files_sent = "yes"
            self.message_post(body=_(
                "This server files the mail it sends in the Sent folder by itself: the CRM stops adding copies."))

    def _learn_from_double_copies(self):
        """A server that files sent mail later than the first check: the sync then finds our copy and its
        own (two in Sent with one of our Message-IDs). Learn it, so that it happens once."""
        self.ensure_one()
        if self.sent_copy_mode != "auto" or self.server_files_sent != "no":
            return
        groups = self.env["onpipeline.mail.message.location"].sudo()._read_group(
            [("mailbox_id", "=", self.id), ("folder_id.role", "=", "sent"),
             ("message_id.message_key", "=like", "<%.onpipeline@%"), ("message_id.direction", "=", "outgoing")],
            ["message_id", "folder_id"], ["__count"], having=[("__count", ">", 1)], limit=1)
        if groups:
            self._learn_server_files_sent()

    def _sent_folder_record(self, result):
        if not result or not result.folder:
            return self.env["onpipeline.mailbox.folder"]
        folder = self.folder_ids.filtered(lambda f: f.name == result.folder)
        if not folder and result.folders:
            self._update_folders(result.folders)
            folder = self.folder_ids.filtered(lambda f: f.name == result.folder)
            if folder and result.created_folder and folder.is_selectable:
                folder.is_selected = True
        return folder

    def _store_sent_message(self, raw, result):
        """Store what was sent as an outgoing message, with the key the next sync computes."""
        Message = self.env["onpipeline.mail.message"].sudo()
        parsed = parse.parse_message(raw, size=len(raw))
        folder = self._sent_folder_record(result)
        if folder and result.uid and result.uidvalidity:
            return Message._store_batch(folder, result.uidvalidity, [(result.uid, parsed, None)])
        key = message_key(parsed)
        existing = Message.search([("mailbox_id", "=", self.id), ("message_key", "=", key)], limit=1)
        if existing:
            return existing
        values = Message._values_from_parsed(self, folder, key, parsed, None, self._own_addresses())
        attachments = values.pop("_attachments")
        values.pop("_body_html_sanitized")  # the field sanitizes it (parsed here, not by a worker)
        values["direction"] = "outgoing"
        message = Message.create(values)
        Message._create_attachments(message, {key: attachments})
        if hasattr(type(message), "_link"):
            # Linked to contacts and deals at once, as _store_batch does for synced mail.
            message._link()
        return message

    def _retry_sent_copies(self):
        """File the copies a previous send could not; the stored message gets its Sent location."""
        self.ensure_one()
        for pending in self.sudo().sent_copy_ids:
            raw = base64.b64decode(pending.raw or b"")
            result = self._file_sent_copy(raw, pending.message_id, pending=pending)
            if result is None:
                break  # the server is still unreachable: try again at the next run
            self._store_sent_message(raw, result)

    def _after_sync(self, commit):
        # Only after a run that reached the server: a server that is down is not asked twice.
        super()._after_sync(commit)
        self.sudo()._learn_from_double_copies()
        if self.sudo().sent_copy_ids:
            self.sudo()._retry_sent_copies()
            commit()
