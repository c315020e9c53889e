import base64
import datetime
import html as html_lib
import os
import re

import lxml.etree
import lxml.html
from markupsafe import Markup

from odoo import _, api, fields, models, tools
from odoo.tools import SQL
from odoo.tools import mail as odoo_mail_tools

from odoo.addons.base.models.ir_attachment import IrAttachment

from ..engine import parse_worker
from ..engine.parse import normalize_address
from . import sql_rows
from .fields import EmailHtml

#: A body that may load something from the internet when shown (tracking pixels, remote images).
REMOTE_CONTENT_RE = re.compile(
    r"""\b(?:src|srcset|background|poster)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE)
REMOTE_URL_RE = re.compile(r"(?:https?:)?//", re.IGNORECASE)
CSS_REMOTE_URL_RE = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//[^)]*\)""", re.IGNORECASE)
#: src="cid:..." in the sanitized body (lxml writes attributes in double quotes).
CID_SRC_RE = re.compile(r'(\bsrc=")cid:([^"]+)(")', re.IGNORECASE)


def block_remote_content(html):
    """``(html, count)``: ``html`` without what it would load from the internet when shown.

    Remote images (tracking pixels among them) tell the sender that the email was
    opened, from where and when: mail clients block them until asked. Images of
    the email itself (``/web/image/...``, ``data:``) stay. The input is already
    sanitized; only attributes and style declarations are removed.
    """
    if not html or not REMOTE_CONTENT_RE.search(html):
        return html, 0
    root = lxml.html.fragment_fromstring(str(html), create_parent="div")
    count = 0
    for node in root.iter(lxml.etree.Element):
        for attribute in ("src", "srcset", "background", "poster"):
            value = node.get(attribute)
            if value and REMOTE_URL_RE.search(value) and (attribute == "srcset" or REMOTE_URL_RE.match(value.strip())):
                del node.attrib[attribute]
                count += 1
        style = node.get("style")
        if style and CSS_REMOTE_URL_RE.search(style):
            node.set("style", CSS_REMOTE_URL_RE.sub("none", style))
            count += 1
        if node.tag == "style" and node.text and CSS_REMOTE_URL_RE.search(node.text):
            node.text = CSS_REMOTE_URL_RE.sub("none", node.text)
            count += 1
    if not count:
        return html, 0
    parts = [tools.html_escape(root.text or "")]
    parts += [lxml.html.tostring(child, encoding="unicode") for child in root]
    return Markup("".join(parts)), count


def rewrite_cid_sources(html, urls):
    """``html`` with its ``src="cid:…"`` pointing at the stored inline parts (``urls``: {Content-ID: URL})."""
    if not html or not urls:
        return html
    folded = {cid.casefold(): url for cid, url in urls.items()}

    def replace(match):
        cid = html_lib.unescape(match.group(2)).strip().strip("<>")
        url = urls.get(cid) or folded.get(cid.casefold())
        return "%s%s%s" % (match.group(1), url, match.group(3)) if url else match.group(0)

    return Markup(CID_SRC_RE.sub(replace, str(html)))


def is_shown_inline(attachment, html):
    """Whether ``attachment`` is an image of the body (``cid:`` reference) rather than a file of the email."""
    return bool(attachment.content_id) and ("cid:%s" % attachment.content_id) in (html or "")


def format_size(env, size):
    """A byte count for people: 820 bytes, 12 KB, 3.4 MB."""
    if not size:
        return ""
    if size < 1024:
        return env._("%s bytes", size)
    if size < 1024 * 1024:
        return env._("%s KB", round(size / 1024))
    return env._("%s MB", ("%.1f" % (size / (1024 * 1024))).rstrip("0").rstrip("."))


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
    size_display = fields.Char("Size", compute="_compute_size_display")
    attachment_count = fields.Integer(
        "Files", readonly=True, help="Files attached to the email; images shown in its body are not counted.")
    has_remote_content = fields.Boolean(
        "Remote Content", compute="_compute_body_view",
        help="The body loads images from the internet, which tells the sender the email was opened.")
    is_remote_content_shown = fields.Boolean("Remote Images Shown", readonly=True)
    body_view = fields.Html("Message", compute="_compute_body_view", sanitize=False)
    conversation_id = fields.Many2one("onpipeline.mail.conversation", "Conversation", readonly=True, index=True,
                                      ondelete="set null")
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

    @api.depends("subject")
    def _compute_display_name(self):
        for message in self:
            message.display_name = message.subject or _("(no subject)")

    @api.depends("size")
    def _compute_size_display(self):
        for message in self:
            message.size_display = format_size(self.env, message.size)

    @api.depends("body_html", "body_text", "is_remote_content_shown")
    def _compute_body_view(self):
        """The body as shown: remote images blocked until the user asks for them (as mail clients do)."""
        for message in self:
            message.has_remote_content = False
            if message.body_html:
                body = message.body_html
                message.has_remote_content = bool(REMOTE_CONTENT_RE.search(body))
                if not message.is_remote_content_shown:
                    body, blocked = block_remote_content(body)
                    message.has_remote_content = bool(blocked)
            else:
                body = tools.plaintext2html(message.body_text or "")
            message.body_view = body

    def action_open_email(self):
        """Open this email (the paperclip of the list)."""
        self.ensure_one()
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id, "view_mode": "form",
                "views": [(False, "form")]}

    def action_show_remote_content(self):
        """Load the remote images of these emails (button): the sender may learn that they were opened."""
        self.check_access("read")
        self.sudo().write({"is_remote_content_shown": True})
        return True

    @api.model_create_multi
    def create(self, vals_list):
        self.env["onpipeline.mail.conversation"]._assign(vals_list)
        messages = super().create(vals_list)
        messages.conversation_id._refresh_stats()
        return messages

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
        sanitized_by_key = {key: values.pop("_body_html_sanitized") for key, values in to_create.items()}
        orm_path = sql_rows.use_orm_path(self.env)
        computed = []
        if not to_create:
            created = self.browse()
        elif orm_path:
            created = self.create(list(to_create.values()))
        else:
            created, computed = self._insert_new(folder, list(to_create.values()), sanitized_by_key)
        for message in created:
            by_key[message.message_key] = message
        self._create_attachments(created, attachments_by_key)

        self._store_locations(folder, uidvalidity, [(by_key[key], uid) for key, uid in located], created, computed)
        return self.browse(list({by_key[key].id for key, _uid in located}))

    @api.model
    def _store_locations(self, folder, uidvalidity, located, created, computed):
        """Record where the emails are: ``located`` [(email, UID)], those already recorded skipped."""
        Location = self.env["onpipeline.mail.message.location"]
        stored = set(Location.search([("folder_id", "=", folder.id), ("uidvalidity", "=", uidvalidity),
                                      ("uid", "in", [uid for _message, uid in located])]).mapped("uid"))
        rows = [{"message_id": message.id, "folder_id": folder.id, "uidvalidity": uidvalidity, "uid": uid}
                for message, uid in located if uid not in stored]
        if sql_rows.use_orm_path(self.env):
            Location.create(rows)
        elif rows:
            mailbox = folder.mailbox_id
            mailbox_values = {"mailbox_id": mailbox.id, "company_id": mailbox.company_id.id or False}
            sql_rows.insert_rows(Location, [dict(row, **mailbox_values) for row in rows],
                                 computed=tuple(mailbox_values))
            # The new emails' computed fields hold their values already (their folder is this one):
            # the locations marked some of them for recomputation.
            for name in computed:
                self.env.remove_to_compute(self._fields[name], created)

    def _insert_new(self, folder, vals_list, sanitized_by_key=None):
        """Create the emails of ``vals_list`` set-based (see ``sql_rows``): the rows ``create()`` would write.

        Returns the emails and the names of the stored computed fields they hold computed.

        As ``create()`` (kept for everything else, and for the ORM path): conversations
        assigned first, their counters refreshed after. The stored computed fields are
        computed here, per batch, by ``_precomputed_values``.
        """
        self.env["onpipeline.mail.conversation"]._assign(vals_list)
        body_field = self._fields["body_html"]
        defaults = sql_rows.column_defaults(self, vals_list[0])
        ids = sql_rows.reserve_ids(self, len(vals_list))
        rows = []
        for row_id, vals in zip(ids, vals_list, strict=True):
            row = dict(defaults, **vals, id=row_id)
            # Sanitized once, by the field's own sanitizer as create() would (Odoo's html_sanitize, lxml):
            # in the parse worker, on the other core, or here.
            sanitized = (sanitized_by_key or {}).get(row["message_key"])
            if sanitized is not None:
                row["body_html"] = Markup(sanitized)
            elif row.get("body_html"):
                row["body_html"] = body_field.convert_to_cache(row["body_html"], self)
            rows.append(row)
        computed = self._precomputed_values(folder, rows)
        sql_rows.insert_rows(self, rows, sanitized=("body_html",), computed=computed)
        messages = self.browse(ids)
        # What the rest of the batch reads of them, known already: not fetched again (bodies included).
        for name in ("message_key", "body_html", "conversation_id"):
            field = self._fields[name]
            self.env.cache.update(messages, field, [field.convert_to_cache(row[name], self, validate=False)
                                                    for row in rows])
        messages.conversation_id._refresh_stats()
        return messages, computed

    @api.model
    def _body_html_filter(self):
        """``body_html``'s sanitizer, for the parse worker to apply (``parse_worker.HtmlFilter``).

        Odoo's ``html_sanitize`` with the field's own options, as ``Html._convert`` calls
        it: the body a worker sanitized is the one this field would have stored.
        """
        field = self._fields["body_html"]
        if field.sanitize_overridable or not field.sanitize:
            return None
        options = {
            "silent": True, "sanitize_tags": field.sanitize_tags, "sanitize_attributes": field.sanitize_attributes,
            "sanitize_style": field.sanitize_style, "sanitize_form": field.sanitize_form,
            "sanitize_conditional_comments": field.sanitize_conditional_comments,
            "output_method": field.sanitize_output_method, "strip_style": field.strip_style,
            "strip_classes": field.strip_classes,
        }
        odoo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(odoo_mail_tools.__file__))))
        return parse_worker.HtmlFilter(odoo_mail_tools.__name__, "html_sanitize", options, path=(odoo_root,))

    def _precomputed_values(self, folder, rows):
        """Fill in ``rows`` (new emails of ``folder``, ids reserved) the stored computed fields; their names.

        Each module that adds a stored computed field to emails fills it here, with
        the value its compute method gives a new email (a test compares them with
        what the ORM computes).
        """
        company_id = folder.mailbox_id.company_id.id or False
        for row in rows:
            row["company_id"] = company_id
        return ["company_id"]

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
            "attachment_count": sum(1 for attachment in parsed.attachments
                                    if not is_shown_inline(attachment, parsed.body_html)),
            "is_truncated": parsed.is_truncated,
            "truncation_reason": parsed.truncation_reason or False,
            "defects": "\n".join(parsed.defects) or False,
            "_attachments": parsed.attachments,
            # Sanitized by the parse worker with body_html's own sanitizer (_body_html_filter), or None.
            "_body_html_sanitized": parsed.body_html_filtered if parsed.body_html else None,
        }

    @api.model
    def _create_attachments(self, messages, attachments_by_key):
        """Store the parts of ``messages``; the images of a body are pointed to from it, not listed as files.

        An image the body shows (``src="cid:…"``) is stored against the body field
        (``res_field``), which keeps it out of the email's files as Odoo keeps the
        files of binary fields out of attachment lists, with an access token as
        Odoo's mail gives the images of a message; the body then links to it.
        One attachment INSERT (``_insert_attachments``; ``create()`` on the ORM path)
        and at most one body update per batch.
        """
        Attachment = self.env["ir.attachment"].sudo()
        values, inline = [], []
        for message in messages:
            body = message.body_html
            for attachment in attachments_by_key.get(message.message_key, ()):
                value = {
                    "name": attachment.filename or _("attachment"),
                    "raw": attachment.data,
                    "mimetype": attachment.content_type,
                    "res_model": self._name,
                    "res_id": message.id,
                }
                if is_shown_inline(attachment, body):
                    value.update(res_field="body_html", access_token=Attachment._generate_access_token())
                    inline.append((message, attachment.content_id, len(values)))
                values.append(value)
        if not values:
            return
        created = None if sql_rows.use_orm_path(self.env) else self._insert_attachments(Attachment, values)
        if created is None:
            created = Attachment.create(values)
        urls = {}
        for message, content_id, index in inline:
            # The token as given: create() stores it as it is (a Char without size).
            urls.setdefault(message, {})[content_id] = "/web/image/%s?access_token=%s" % (
                created._ids[index], values[index]["access_token"])
        bodies = {message.id: rewrite_cid_sources(message.body_html, message_urls)
                  for message, message_urls in urls.items()}
        if bodies:
            # The body was sanitized when the email was created; only cid: sources change.
            self.env.cr.execute(SQL(
                "UPDATE onpipeline_mail_message SET body_html = body.html FROM (VALUES %s) AS body(id, html) "
                "WHERE onpipeline_mail_message.id = body.id",
                SQL(", ").join(SQL("(%s, %s)", message_id, str(html)) for message_id, html in bodies.items())))
            self.browse(bodies).invalidate_recordset(["body_html"])

    @api.model
    def _insert_attachments(self, Attachment, vals_list):
        """The attachments ``Attachment.create(vals_list)`` would make, set-based (see ``sql_rows``); None when
        this ``ir.attachment`` does not create as Odoo's own does (:func:`creates_as_odoo`), or when a
        field without a column would be written: then create().

        ``ir.attachment.create()``'s own steps, by its own methods (``_attachment_rows``), then
        what ``BaseModel.create()`` adds: ``default_get`` once per set of given fields (company,
        type), access checks, constraints. Left out: the ORM's per-record bookkeeping
        (default_get, conversion and cache per record and field).
        """
        if not creates_as_odoo(Attachment):
            return None
        fields_ = Attachment._fields
        given = {name for vals in vals_list for name in vals} - {"raw", "datas"}
        if any(not fields_[name].column_type for name in given) or Attachment.default_get(
                [name for name, field in fields_.items() if not field.column_type and name not in given]):
            # Written by an inverse (datas, say), through create().
            return None
        rows = self._attachment_rows(Attachment, vals_list)
        Attachment.check_access("create")
        defaults = {}
        for index, row in enumerate(rows):
            names = frozenset(row)
            if names not in defaults:
                defaults[names] = sql_rows.column_defaults(Attachment, row)
            rows[index] = dict(defaults[names], **row)
        records = sql_rows.insert_rows(Attachment, rows)
        records._validate_fields({name for row in rows for name in row})
        records.check_access("create")
        # The cached attachment lists of the records pointed to (attachment_ids) are invalidated by
        # insert_rows' modified(), as by create()'s (test_store_rows reads one back).
        return records

    @api.model
    def _attachment_rows(self, Attachment, vals_list):
        """The rows of ``vals_list`` as ``ir.attachment.create()`` completes them, by its own methods.

        In create()'s order, on the same environment (sudo, as the real user, whom
        ``_check_contents`` asks whether they may edit views): the size, checksum and file
        name given are dropped; ``_check_contents`` (mimetype computed, XML-like types made
        text/plain for a user who may not edit views, images resized); for a non-empty content
        ``_get_datas_related_values`` (checksum, ``index_content`` by ``_index``, file size,
        the file written to the filestore and marked for its garbage collection); then
        ``check("create")`` once per record pointed to.
        """
        rows, targets = [], {}
        for vals in vals_list:
            row = Attachment._check_contents({key: value for key, value in vals.items()
                                              if key not in ("file_size", "checksum", "store_fname")})
            raw, datas = row.pop("raw", None), row.pop("datas", None)
            if raw or datas:
                if isinstance(raw, str):
                    raw = raw.encode()
                row.update(Attachment._get_datas_related_values(raw or base64.b64decode(datas or b""),
                                                                row["mimetype"]))
            targets[(row.get("res_model"), row.get("res_id"))] = None
            rows.append(row)
        for res_model, res_id in targets:
            Attachment.browse().check("create", values={"res_model": res_model, "res_id": res_id})
        return rows


#: The steps of ``ir.attachment``'s creation :meth:`OnpipelineMailMessage._insert_attachments` takes itself.
CREATE_STEPS = ("create", "_create", "_prepare_create_values", "_add_missing_default_values",
                "_add_precomputed_values")


def creates_as_odoo(Attachment):
    """Whether ``Attachment`` (``ir.attachment``) creates records as Odoo 18's own code does.

    No installed module overrides the steps of :data:`CREATE_STEPS` (base's ``ir.attachment``
    and ``BaseModel`` define them), and no field is computed and stored (``create()`` would
    compute it with the row). Otherwise the sync's attachments go through ``create()``.
    """
    owners = (IrAttachment, models.BaseModel, models.Model, models.AbstractModel)
    for cls in type(Attachment).__mro__:
        if cls not in owners and any(name in vars(cls) for name in CREATE_STEPS):
            return False
    return not any(field.store and field.compute for field in Attachment._fields.values())
