"""A first sync writes the same rows set-based as through the ORM (issue 14).

The same mailbox (threads, attachments, inline images, Message-IDs reused,
mail in two folders, fuzzed and hostile MIME, mail between colleagues) is
synced twice in one transaction: through ``create()``/``write()`` (context key
``sql_rows.ORM_PATH``), then, after a rollback to a savepoint, set-based as
every first sync does. Every column of every row written is compared, with
ids replaced by what they point at.
"""

import datetime
import hashlib
import io
import os
import re
import uuid

from PIL import Image

from odoo.tests import tagged

from ..engine import parse, parse_worker
from ..engine.testing import mailgen
from ..models import sql_rows
from ..models.onpipeline_mail_message import creates_as_odoo
from .common import OnpipelineMailCase, append, make_message

UTC = datetime.timezone.utc

#: Columns whose value is random, or the clock's when the row was written: compared as "set or not".
RANDOM_COLUMNS = {"access_token", "link_date"}
#: A Message-ID Odoo makes up for a history entry of an email that has none (random part).
GENERATED_MESSAGE_ID = re.compile(r"^<\d+\.\d+\.\d+(?=-openerp-)")
#: A body's link to one of its stored inline images (attachment id and random token).
IMAGE_URL = re.compile(r"/web/image/(\d+)\?access_token=[\w-]+")


def generated(message_id):
    return GENERATED_MESSAGE_ID.sub("<generated", message_id or "")


def png(width, height):
    data = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(data, "PNG")
    return data.getvalue()


#: Files ir.attachment.create() does something with: XML-like types made text/plain for a user who may
#: not edit views, text indexed, an empty file (no checksum, no file), an image resized (wider than
#: 1920 px), a type guessed from the content or the name.
HOSTILE_FILES = [
    ("evil.svg", "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ("page.html", "text/html", b"<html><body onload='steal()'><script>x()</script>Invoice</body></html>"),
    ("notes.txt", "text/plain", b"Quote number Q-2024-117 for the yearly licence\n"),
    ("empty.bin", "application/octet-stream", b""),
    ("wide.png", "image/png", png(2100, 6)),
    ("scan", "application/octet-stream", png(4, 4)),
    ("report.xml", "application/octet-stream", b"<?xml version='1.0'?><report/>"),
]


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestStoreRows(OnpipelineMailCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.account = cls.new_account(layout="plain", prefix="rows")
        me = ("Alice Seller", cls.account.username)
        now = datetime.datetime.now(UTC)
        contacts = mailgen.make_contacts(count=8, seed=14)
        generated = mailgen.generate_messages(60, seed=14, start=now - datetime.timedelta(days=20),
                                              end=now - datetime.timedelta(days=1), mailbox=me, contacts=contacts)
        raws = [message.raw for message in generated]
        received = [m.raw for m in generated if m.sender != me[1]]
        sent = [m.raw for m in generated if m.sender == me[1]]
        hostile = mailgen.mutated(raws, 12, seed=14) + mailgen.broken_headers(raws, 8, seed=14)
        extra = [
            make_message("hostile", html='<p onclick="steal()" style="position:fixed">Offer</p><script>x()</script>'
                         '<img src="https://tracker.example/p.gif"><img src="x" onerror="steal()">',
                         sender="Jane <%s>" % contacts[0][1], to=me[1],
                         attachments=[("quote.pdf", "application/pdf", b"%PDF-1.4 quote")]),
            make_message("no id", message_id=False, sender=contacts[1][1], to=me[1]),
            make_message("first of a reused id", message_id="<reused@client.example>", sender=contacts[2][1]),
            make_message("second of a reused id", message_id="<reused@client.example>", sender=contacts[2][1],
                         body="Another content"),
            make_message("between colleagues", sender="Bob <bob@company.test>", to=me[1]),
            make_message("hostile files", sender="Jane <%s>" % contacts[0][1], to=me[1], attachments=HOSTILE_FILES),
            make_message("caf\u00e9 \u2014 \u00e9t\u00e9", sender="\u00c9lodie <%s>" % contacts[3][1], to=me[1],
                         html="<p>caf\u00e9</p>"),
        ]
        date = now - datetime.timedelta(days=2)
        cls.raws = received + hostile + extra
        for raw in received + hostile + extra:
            append(cls.account, "INBOX", raw, date=date)
        for raw in sent + [received[0]]:  # one email in both folders
            append(cls.account, "Sent", raw, date=date)
        # Contacts, a company and deals to link to (two open deals of one contact: a candidate).
        Partner = cls.env["res.partner"]
        domain = contacts[0][1].split("@")[1]
        company = Partner.create({"name": "Acme", "is_company": True, "email": "info@%s" % domain})
        partners = Partner.create([{"name": name, "email": address, "parent_id": company.id if index == 0 else False}
                                   for index, (name, address) in enumerate(contacts[:6])])
        cls.env["crm.lead"].create([{"name": "Deal %s" % partner.name, "type": "opportunity",
                                     "partner_id": partner.id} for partner in partners[:4]]
                                   + [{"name": "Second deal", "type": "opportunity", "partner_id": partners[0].id}])

    def setUp(self):
        super().setUp()
        # Small batches: later ones are parsed (and their bodies sanitized) in the parse worker.
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.sync_batch_size", "15")
        self.env["ir.config_parameter"].sudo().set_param("onpipeline_mail.parse_worker_sanitize_min", "0")

    def sync_and_read(self, orm_path):
        mailbox = self.create_mailbox(self.account, sync_window="1m")
        for folder in mailbox.folder_ids.filtered(lambda folder: folder.name in ("INBOX", "Sent")):
            folder.is_selected = True
        mailbox = mailbox.sudo().with_context({sql_rows.ORM_PATH: True} if orm_path else {})
        for _run in range(3):  # the history of a first sync is posted once it has caught up
            mailbox._sync()
        self.assertTrue(mailbox.is_sync_complete)
        self.env.flush_all()
        return self.read_rows(mailbox.id)

    def select(self, query, *params):
        self.env.cr.execute(query, params)
        columns = [column.name for column in self.env.cr.description]
        return [dict(zip(columns, row, strict=True)) for row in self.env.cr.fetchall()]

    def read_rows(self, mailbox_id):
        folder_of = {row["id"]: row["name"] for row in self.select(
            "SELECT id, name FROM onpipeline_mailbox_folder WHERE mailbox_id = %s", mailbox_id)}
        messages = self.select("SELECT * FROM onpipeline_mail_message WHERE mailbox_id = %s", mailbox_id)
        key_of = {row["id"]: row["message_key"] for row in messages}
        conversations = self.select("SELECT * FROM onpipeline_mail_conversation WHERE mailbox_id = %s", mailbox_id)
        conversation_of = {row["id"]: row["thread_key"] for row in conversations}
        attachments = self.select("SELECT * FROM ir_attachment WHERE res_model = 'onpipeline.mail.message' "
                                  "AND res_id = ANY(%s)", list(key_of))
        attachment_of = {row["id"]: (key_of[row["res_id"]], row["name"], row["checksum"]) for row in attachments}
        Attachment = self.env["ir.attachment"]
        for row in attachments:
            # What the filestore holds for the row: the file its checksum names.
            content = Attachment._file_read(row["store_fname"]) if row["store_fname"] else None
            row["stored file"] = content and hashlib.sha1(content).hexdigest()
        links = self.select("SELECT * FROM onpipeline_mail_link WHERE mailbox_id = %s", mailbox_id)
        entries = self.select("SELECT * FROM mail_message WHERE id = ANY(%s)",
                              [link["mail_message_id"] for link in links if link["mail_message_id"]])
        entry_of = {row["id"]: (row["model"], row["res_id"], generated(row["message_id"])) for row in entries}
        entry_files = self.select("SELECT * FROM message_attachment_rel WHERE message_id = ANY(%s)", list(entry_of))

        def image(match):
            return "/web/image/%s" % (attachment_of[int(match.group(1))],)

        def plain(row, refs, drop=("id",)):
            values = {}
            for column, value in row.items():
                if column in drop:
                    continue
                if column in RANDOM_COLUMNS:
                    value = bool(value)
                elif column in refs and value is not None:
                    value = refs[column][value]
                elif isinstance(value, str) and "/web/image/" in value:
                    value = IMAGE_URL.sub(image, value)
                values[column] = value
            return values

        message_refs = {"thread_id": key_of, "conversation_id": conversation_of, "folder_id": folder_of}
        return {
            "messages": sorted((plain(row, message_refs) for row in messages), key=lambda row: row["message_key"]),
            "conversations": sorted((plain(row, {"last_message_id": key_of}) for row in conversations),
                                    key=lambda row: row["thread_key"]),
            "locations": sorted((plain(row, {"message_id": key_of, "folder_id": folder_of}) for row in self.select(
                "SELECT * FROM onpipeline_mail_message_location WHERE mailbox_id = %s", mailbox_id)), key=repr),
            "attachments": sorted((plain(row, {"res_id": key_of}) for row in attachments),
                                  key=lambda row: (row["res_id"], row["name"], row["checksum"])),
            "links": sorted((plain(row, {"message_id": key_of, "mail_message_id": entry_of}) for row in links),
                            key=repr),
            "history": sorted((dict(plain(row, {}), message_id=generated(row["message_id"])) for row in entries),
                              key=repr),
            "history files": sorted((entry_of[row["message_id"]], attachment_of[row["attachment_id"]])
                                    for row in entry_files),
        }

    def test_first_sync_writes_the_rows_the_orm_would(self):
        self.env.cr.execute("SAVEPOINT store_rows")
        expected = self.sync_and_read(orm_path=True)
        self.env.cr.execute("ROLLBACK TO SAVEPOINT store_rows")
        self.env.invalidate_all()
        self.env.transaction.clear()
        actual = self.sync_and_read(orm_path=False)

        # The mailbox is a new record each time: its id differs, and so does everything else's.
        mailbox_columns = {"mailbox_id"}
        for table, rows in expected.items():
            with self.subTest(table=table):
                self.assertTrue(rows or table in ("history files",), "the sync wrote %s" % table)
                self.assertEqual(len(actual[table]), len(rows))
                for want, got in zip(rows, actual[table], strict=True):
                    if isinstance(want, dict):
                        want = {k: v for k, v in want.items() if k not in mailbox_columns}
                        got = {k: v for k, v in got.items() if k not in mailbox_columns}
                    self.assertEqual(got, want)
        # The sync met what the comparison is about.
        messages = expected["messages"]
        self.assertGreater(len(messages), 70)
        self.assertTrue(any(row["defects"] for row in messages), "hostile MIME was synced")
        self.assertTrue(any(row["thread_id"] != row["message_key"] for row in messages), "replies in threads")
        self.assertTrue(any(row["link_state"] == "internal" for row in messages))
        self.assertTrue(any(row["link_state"] == "linked" for row in messages))
        self.assertTrue(any(row["is_candidate"] for row in expected["links"]))
        self.assertTrue(any(row["res_field"] == "body_html" for row in expected["attachments"]), "inline images")
        self.assertTrue(expected["history files"])
        names = {name for name, _type, _data in HOSTILE_FILES}
        files = {row["name"]: row for row in expected["attachments"] if row["name"] in names}
        self.assertEqual(files["evil.svg"]["mimetype"], "text/plain", "svg made text: the sync's user is a salesman")
        self.assertEqual(files["page.html"]["mimetype"], "text/plain")
        self.assertIn("Q-2024-117", files["notes.txt"]["index_content"])
        self.assertIsNone(files["empty.bin"]["checksum"])
        self.assertNotEqual(files["wide.png"]["checksum"], hashlib.sha1(HOSTILE_FILES[4][2]).hexdigest(), "resized")
        self.assertEqual(files["scan"]["mimetype"], "image/png")
        self.assertEqual(files["wide.png"]["stored file"], files["wide.png"]["checksum"])
        self.assertGreater(len(expected["locations"]), len(messages), "an email in two folders")

    def test_the_parse_worker_sanitizes_bodies_as_the_field_does(self):
        Message = self.env["onpipeline.mail.message"]
        field = Message._fields["body_html"]
        jobs = [(raw, parse.MAX_ATTACHMENT_BYTES, "", len(raw)) for raw in self.raws]
        with parse_worker.ParseWorker(local_batches=0, html_filter=Message._body_html_filter()) as worker:
            results = worker.collect(worker.submit(jobs))
            self.assertEqual(worker.batches_parsed, 1, "parsed in the child")
        bodies = [result for result in results if isinstance(result, parse.ParsedMessage) and result.body_html]
        self.assertGreater(len(bodies), 20)
        for result in bodies:
            self.assertEqual(result.body_html_filtered, str(field.convert_to_cache(result.body_html, Message)))
        self.assertTrue(any("<script" in result.body_html and "<script" not in result.body_html_filtered
                            for result in bodies), "hostile HTML among them")

    def test_attachments_are_written_as_create_writes_them(self):
        """The set-based attachments write their files, mark them for the filestore's GC, as create()."""
        Attachment = self.env["ir.attachment"].sudo()
        self.assertTrue(creates_as_odoo(Attachment), "the set-based path is the one the sync takes here")
        mailbox = self.create_mailbox(self.account, sync_window="1m")
        Message = self.env["onpipeline.mail.message"].sudo()
        email = Message.create({"mailbox_id": mailbox.id, "message_key": "<files@client.example>",
                                "body_html": '<p>Logo <img src="cid:logo@x"></p>'})
        content = ("file %s" % uuid.uuid4()).encode()
        logo = png(3, 3) + uuid.uuid4().bytes  # PIL reads the image and leaves the bytes after it
        self.assertFalse(email.attachment_ids)  # cached as an empty list, as after create()
        self.assertIsNotNone(Message._insert_attachments(Attachment, []), "the set-based path was not refused")
        Message._create_attachments(email, {email.message_key: [
            parse.Attachment("terms.txt", "text/plain", content),
            parse.Attachment("logo.png", "image/png", logo, content_id="logo@x", is_inline=True),
        ]})
        files = Attachment.search([("res_model", "=", Message._name), ("res_id", "=", email.id),
                                   ("res_field", "in", [False, "body_html"])])
        self.assertEqual(sorted(files.mapped("name")), ["logo.png", "terms.txt"])
        self.assertEqual(email.attachment_ids.mapped("name"), ["terms.txt"], "the cached list was refreshed")
        for attachment, data in ((files.filtered(lambda a: a.name == "terms.txt"), content),
                                 (files.filtered(lambda a: a.name == "logo.png"), logo)):
            path = Attachment._full_path(attachment.store_fname)
            with open(path, "rb") as handle:
                self.assertEqual(handle.read(), data)
            self.assertEqual(attachment.checksum, hashlib.sha1(data).hexdigest())
            self.assertTrue(os.path.exists(os.path.join(Attachment._full_path("checklist"), attachment.store_fname)),
                            "marked for the filestore's garbage collection, in case the transaction aborts")
        self.assertEqual(files.filtered(lambda a: a.name == "terms.txt").index_content, content.decode())
        logo = files.filtered(lambda a: a.name == "logo.png")
        self.assertEqual(logo.create_uid, self.env.user)
        self.assertIn("/web/image/%s?access_token=%s" % (logo.id, logo.access_token), email.body_html)
