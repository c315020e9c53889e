import datetime

from odoo import _, api, fields, models

from ..engine.parse import normalize_address
from .fields import EmailHtml


def _format_address(pair):
    """ "Name <address>" for display; unlike formataddr, a non-ASCII name stays readable."""
    name, address = pair
    if not name:
        return address
    if any(char in name for char in ',;<>"@'):
        name = '"%s"' % name.replace('"', "'")
    return "%s <%s>" % (name, address)


def _utc_naive(value):
    if not value:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def message_key(parsed):
    """The dedupe key of a parsed message within a mailbox: its Message-ID, else a content hash."""
    return parsed.message_id_key or hash_key(parsed)


def hash_key(parsed):
    return "hash:%s" % parsed.content_hash


class OnpipelineMailMessage(models.Model):
    """A message synced from (or sent through) a mailbox, stored once per mailbox."""

    _name = "onpipeline.mail.message"
    _description = "Synced Email"
    _order = "date desc, id desc"
    _rec_name = "subject"

    mailbox_id = fields.Many2one("onpipeline.mailbox", required=True, index=True, ondelete="cascade",
                                 readonly=True)
    company_id = fields.Many2one(related="mailbox_id.company_id", store=True)
    message_key = fields.Char(required=True, readonly=True, index=True,
                              help="Normalized Message-ID, or a hash of the content when it has none.")
    message_id = fields.Char("Message-ID", readonly=True, index=True)
    content_hash = fields.Char(readonly=True)
    in_reply_to = fields.Char("In-Reply-To", readonly=True)
    references = fields.Text(readonly=True)
    subject = fields.Char(readonly=True)
    email_from = fields.Char("From", readonly=True)
    author_email = fields.Char("Sender Email", readonly=True, index=True, help="Normalized address of the sender.")
    email_to = fields.Text("To", readonly=True)
    email_cc = fields.Text("Cc", readonly=True)
    reply_to = fields.Char("Reply-To", readonly=True)
    date = fields.Datetime(readonly=True, index=True)
    direction = fields.Selection([("incoming", "Incoming"), ("outgoing", "Outgoing")], required=True,
                                 default="incoming", readonly=True)
    # Html fields are cleaned by Odoo's sanitizer (lxml) when written: scripts,
    # event handlers and dangerous URLs never reach the browser.
    # Sanitized as Odoo sanitizes incoming mail (mail.message.body): style attributes are filtered,
    # not kept as they are (position:fixed overlays); the history entries reuse this HTML as it is.
    body_html = EmailHtml("Body", readonly=True, sanitize=True, sanitize_overridable=False, sanitize_style=True)
    body_text = fields.Text("Plain Text", readonly=True)
    size = fields.Integer(readonly=True)
    is_truncated = fields.Boolean("Attachments Left Out", readonly=True)
    truncation_reason = fields.Char(readonly=True)
    defects = fields.Text("MIME Problems", readonly=True, help="What was wrong with the message as received.")
    attachment_ids = fields.One2many("ir.attachment", "res_id", domain=[("res_model", "=", "onpipeline.mail.message")],
                                     string="Attachments", readonly=True)
    location_ids = fields.One2many("onpipeline.mail.message.location", "message_id", "Locations", readonly=True)
    folder_ids = fields.Many2many("onpipeline.mailbox.folder", compute="_compute_folder_ids", string="Folders",
                                  search="_search_folder_ids")

    _sql_constraints = [
        ("mailbox_key_unique", "unique(mailbox_id, message_key)", "A message is stored once per mailbox."),
    ]

    @api.depends("location_ids.folder_id")
    def _compute_folder_ids(self):
        for message in self:
            message.folder_ids = message.location_ids.folder_id

    def _search_folder_ids(self, operator, value):
        return [("location_ids.folder_id", operator, value)]

    # ------------------------------------------------------------------
    # Storing what the engine fetched
    # ------------------------------------------------------------------

    @api.model
    def _store_batch(self, folder, uidvalidity, fetched):
        """Store ``fetched`` [(uid, ParsedMessage, fetch metadata)] of ``folder``.

        Messages already stored (same key in this mailbox) get one more
        location instead of a second record; locations already stored are
        skipped, so storing a batch twice changes nothing. Returns the
        messages of the batch, new or not.
        """
        mailbox = folder.mailbox_id
        if not fetched:
            return self.browse()
        keys = set()
        for _uid, parsed, _meta in fetched:
            keys.update((message_key(parsed), hash_key(parsed)))
        by_key = {message.message_key: message for message in self.search(
            [("mailbox_id", "=", mailbox.id), ("message_key", "in", list(keys))])}

        own_addresses = mailbox._own_addresses()
        to_create, located = {}, []
        for uid, parsed, meta in fetched:
            key = message_key(parsed)
            known_hash = by_key[key].content_hash if key in by_key else to_create.get(key, {}).get("content_hash")
            if known_hash and parsed.message_id_key and known_hash != parsed.content_hash:
                # A broken sender reuses Message-IDs: a different content is a different message.
                key = hash_key(parsed)
            located.append((key, uid))
            if key not in by_key and key not in to_create:
                to_create[key] = self._values_from_parsed(mailbox, folder, key, parsed, meta, own_addresses)

        attachments_by_key = {key: values.pop("_attachments") for key, values in to_create.items()}
        created = self.create(list(to_create.values())) if to_create else self.browse()
        for message in created:
            by_key[message.message_key] = message
        self._create_attachments(created, attachments_by_key)

        Location = self.env["onpipeline.mail.message.location"]
        uids = [uid for _key, uid in located]
        stored = set(Location.search([("folder_id", "=", folder.id), ("uidvalidity", "=", uidvalidity),
                                      ("uid", "in", uids)]).mapped("uid"))
        Location.create([
            {"message_id": by_key[key].id, "folder_id": folder.id, "uidvalidity": uidvalidity, "uid": uid}
            for key, uid in located if uid not in stored
        ])
        return self.browse(list({by_key[key].id for key, _uid in located}))

    @api.model
    def _values_from_parsed(self, mailbox, folder, key, parsed, meta, own_addresses):
        sender = parsed.from_address or ("", "")
        author = normalize_address(sender[1])
        outgoing = folder.role == "sent" or (author and author in own_addresses)
        date = _utc_naive(parsed.date) or _utc_naive(getattr(meta, "internaldate", None)) or fields.Datetime.now()
        return {
            "mailbox_id": mailbox.id,
            "message_key": key,
            "message_id": parsed.message_id or False,
            "content_hash": parsed.content_hash,
            "in_reply_to": parsed.in_reply_to or False,
            "references": " ".join(parsed.references) or False,
            "subject": parsed.subject or False,
            "email_from": _format_address(sender) if sender[1] else False,
            "author_email": author or False,
            "email_to": ", ".join(_format_address(pair) for pair in parsed.to) or False,
            "email_cc": ", ".join(_format_address(pair) for pair in parsed.cc) or False,
            "reply_to": ", ".join(_format_address(pair) for pair in parsed.reply_to) or False,
            "date": date,
            "direction": "outgoing" if outgoing else "incoming",
            "body_html": parsed.body_html or False,
            "body_text": parsed.body_text or False,
            "size": parsed.size or getattr(meta, "size", 0) or 0,
            "is_truncated": parsed.is_truncated,
            "truncation_reason": parsed.truncation_reason or False,
            "defects": "\n".join(parsed.defects) or False,
            "_attachments": parsed.attachments,
        }

    @api.model
    def _create_attachments(self, messages, attachments_by_key):
        values = []
        for message in messages:
            for attachment in attachments_by_key.get(message.message_key, ()):
                values.append({
                    "name": attachment.filename or _("attachment"),
                    "raw": attachment.data,
                    "mimetype": attachment.content_type,
                    "res_model": self._name,
                    "res_id": message.id,
                })
        if values:
            self.env["ir.attachment"].sudo().create(values)
