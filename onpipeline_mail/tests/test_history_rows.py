"""History entries written set-based are the rows ``create()`` writes: the same links posted both ways, compared.

Each way runs in a savepoint rolled back afterwards, on the same synced mail and links; the
rows are read with SQL and compared column by column. Ids differ between the two runs (the
sequences are not rolled back): rows are matched by their order of creation, and every id
of a new entry is replaced by its rank. A Message-ID generated for an email without one is
random: only its random part is masked.
"""

import datetime
import random
import re
import threading
from contextlib import closing
from unittest.mock import patch

from odoo.tests import TransactionCase, tagged

from ..models import onpipeline_mailbox_history, sql_rows
from ..models.onpipeline_mail_message_history import history_header, sanitized_history_header
from ..models.sql_rows import ORM_PATH
from .common import append, make_message
from .test_linking import UTC, LinkingCase

#: The random part (random number, time) of a Message-ID made by Odoo's ``generate_tracking_message_id``.
GENERATED_MESSAGE_ID = re.compile(r"^<\d+\.\d+\.\d+-openerp-")


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_link")
class TestHistoryRows(LinkingCase):

    def setUp(self):
        super().setUp()
        # "Only me": the mail is linked, and no copy goes into the history until the mailbox shares it.
        self.mailbox.linked_visibility = "owner"
        self.deal = self.opportunity("Deal", partner_id=self.jane.id, user_id=self.user_alice.id)
        now = datetime.datetime.now(UTC)
        deliveries = [
            ("INBOX", make_message(
                "plans", sender="Jane Doe <jane.doe@client.example>", to=self.account.username,
                Cc="Carla <carla@company.test>", body="See the plans",
                date=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                attachments=[("plans.pdf", "application/pdf", b"%PDF-1.4 plans"),
                             ("notes.txt", "text/plain", b"notes")])),
            ("Sent", make_message("my offer", sender=self.account.username, to="jane.doe@client.example",
                                  html="<p>Our <b>offer</b></p>", date=now - datetime.timedelta(hours=3))),
            ("INBOX", make_message("no message-id", sender="jane.doe@client.example", to=self.account.username,
                                   message_id=False, body="a < b & c > d\nsecond line",
                                   date=now - datetime.timedelta(hours=2))),
            ("INBOX", make_message(
                "", sender="Stranger <stranger@else.example>", to=self.account.username,
                Cc="jane.doe@client.example", Reply_To="Desk <desk@else.example>",
                html='<p onclick="steal()" style="position:fixed">Terms</p><script>alert(1)</script>'
                     '<img src="https://tracker.example/pixel.png">', date=now - datetime.timedelta(hours=1))),
        ]
        for folder, raw in deliveries:
            append(self.account, folder, raw)
        self.mailbox._sync()
        self.mailbox.with_context(onpipeline_defer_history=True).linked_visibility = "colleagues"
        self.links = self.env["onpipeline.mail.link"].sudo().search([("mailbox_id", "=", self.mailbox.id)])
        self.assertFalse(self.links.mail_message_id)

    def both_ways(self, post, context=None, set_based=True):
        """{way: snapshot} of what ``post(context)`` writes, as ``create()`` ("orm") and set-based ("sql")."""
        results = {}
        for way in ("orm", "sql"):
            with closing(self.env.cr.savepoint()):
                self.env.flush_all()
                self.env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM mail_message")
                before = self.env.cr.fetchone()[0]
                # The cached values create() and write() leave up to date must not be stale either.
                self.deal.message_ids, self.jane.message_ids, self.links.mail_message_id  # noqa: B018
                ctx = dict(context or {}, **{ORM_PATH: way == "orm"})
                if way == "sql" and set_based:
                    with patch.object(type(self.env["mail.message"]), "create",
                                      side_effect=AssertionError("the set-based path called create()")):
                        post(ctx)
                else:
                    post(ctx)
                results[way] = self.snapshot(before)
        return results

    def snapshot(self, before):
        """The new mail.message rows, their relation rows, the links' entries, the documents' cached history."""
        cr = self.env.cr
        self.env.flush_all()
        cr.execute("SELECT * FROM mail_message WHERE id > %s ORDER BY id", [before])
        rows = cr.dictfetchall()
        rank = {row["id"]: "new entry #%d" % index for index, row in enumerate(rows)}
        for row in rows:
            del row["id"]
            row["message_id"] = GENERATED_MESSAGE_ID.sub("<(random)-openerp-", row["message_id"] or "")
            row["parent_id"] = rank.get(row["parent_id"], row["parent_id"])
        relations = {}
        for field in self.env["mail.message"]._fields.values():
            if field.type == "many2many" and field.store:
                cr.execute('SELECT "%s", "%s" FROM "%s" WHERE "%s" > %%s' % (
                    field.column1, field.column2, field.relation, field.column1), [before])
                relations[field.name] = sorted((rank[entry_id], other_id) for entry_id, other_id in cr.fetchall())
        cr.execute("SELECT id, mail_message_id, write_uid, write_date FROM onpipeline_mail_link WHERE id IN %s "
                   "ORDER BY id", [tuple(self.links.ids)])
        links = [(link_id, rank.get(entry_id, entry_id), write_uid, write_date)
                 for link_id, entry_id, write_uid, write_date in cr.fetchall()]
        cached = {
            "links": [(link.id, rank.get(link.mail_message_id.id, link.mail_message_id.id)) for link in self.links],
            "deal": [rank.get(entry_id, entry_id) for entry_id in self.deal.message_ids.ids],
            "jane": [rank.get(entry_id, entry_id) for entry_id in self.jane.message_ids.ids],
        }
        return {"rows": rows, "relations": relations, "links": links, "cached": cached}

    def assert_same_rows(self, results):
        orm, sql = results["orm"], results["sql"]
        self.assertEqual(len(sql["rows"]), len(orm["rows"]), "as many mail.message rows")
        for index, (orm_row, sql_row) in enumerate(zip(orm["rows"], sql["rows"], strict=True)):
            self.assertEqual(sql_row.keys(), orm_row.keys())
            for column, value in orm_row.items():
                with self.subTest(entry=index, subject=orm_row["subject"], column=column):
                    self.assertEqual(sql_row[column], value)
        for part in ("relations", "links", "cached"):
            with self.subTest(part=part):
                self.assertEqual(sql[part], orm[part])

    def assert_entries(self, snapshot):
        """What the entries are (so that the comparison is not one of two empty sets)."""
        rows = snapshot["rows"]
        # Every email is linked to Jane and to her deal.
        self.assertEqual(len(rows), 8)
        self.assertEqual(sorted({(row["model"], row["res_id"]) for row in rows}),
                         [("crm.lead", self.deal.id), ("res.partner", self.jane.id)])
        self.assertEqual(len(snapshot["relations"]["attachment_ids"]), 4, "two files, on two entries")
        generated = {row["message_id"].split("@")[0] for row in rows
                     if row["message_id"].startswith("<(random)-openerp-")}
        self.assertEqual(generated, {"<(random)-openerp-%s-crm.lead" % self.deal.id,
                                     "<(random)-openerp-%s-res.partner" % self.jane.id},
                         "the email without a Message-ID gets one per entry, as create() makes them")
        for row in rows:
            self.assertIn("Outgoing email" if row["subject"] == "my offer" else "Incoming email", row["body"])
        self.assertEqual(len([link for link in snapshot["links"] if isinstance(link[1], str)]), 8)
        new_entries = [entry for entry in snapshot["cached"]["jane"] if isinstance(entry, str)]
        self.assertEqual(len(new_entries), 4)
        self.assertEqual(new_entries, sorted(new_entries, key=lambda entry: -int(entry.split("#")[1])),
                         "newest first, as the chatter reads them")

    def test_first_sync_history_rows_are_those_of_create(self):
        # The first sync's way: the pending links of the mailbox, oldest first, in chunks.
        results = self.both_ways(lambda context: self.mailbox.with_context(**context)._post_pending_history(
            lambda: None))
        self.assert_entries(results["orm"])
        self.assert_same_rows(results)

    def test_first_sync_history_rows_are_those_of_the_checked_links(self):
        # The first sync's links come selected and ordered by SQL, in chunks, and are not checked again:
        # the same rows as the same links checked and sorted one by one, in one go.
        def post(checked):
            with closing(self.env.cr.savepoint()):
                self.env.flush_all()
                self.env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM mail_message")
                before = self.env.cr.fetchone()[0]
                self.deal.message_ids, self.jane.message_ids, self.links.mail_message_id  # noqa: B018
                if checked:
                    links = self.links.with_env(self.mailbox.sudo().env)  # as the mailbox's sync posts them
                    links.message_id._post_history(links)
                else:
                    with patch.object(onpipeline_mailbox_history, "HISTORY_CHUNK_SIZE", 3):
                        self.mailbox._post_pending_history(lambda: None)
                return self.snapshot(before)
        # assert_same_rows compares the "sql" snapshot with the "orm" one, its reference.
        results = {"orm": post(checked=True), "sql": post(checked=False)}
        self.assert_entries(results["orm"])
        self.assert_same_rows(results)

    def test_first_sync_history_over_two_connections_is_that_of_one(self):
        # A scheduled run writes the chunks over two connections at once, each entry under an id reserved in
        # date order. Here on Odoo's test cursors, which take turns on one lock: the two threads alternate.
        Message = type(self.env["onpipeline.mail.message"])
        real_post, real_reserve = Message._post_history, sql_rows.reserve_ids
        threads = []

        def post_recording_thread(message, links, **kwargs):
            threads.append(threading.current_thread())
            return real_post(message, links, **kwargs)

        reserved = []

        def reserve_recording_ids(model, count):
            reserved.extend(real_reserve(model, count))
            return reserved[-count:]

        def post(connections):
            with closing(self.env.cr.savepoint()):
                self.env.flush_all()
                self.env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM mail_message")
                before = self.env.cr.fetchone()[0]
                self.deal.message_ids, self.jane.message_ids, self.links.mail_message_id  # noqa: B018
                with patch.object(onpipeline_mailbox_history, "HISTORY_CHUNK_SIZE", 3), \
                        patch.object(type(self.mailbox), "_history_connections", lambda *args: connections), \
                        patch.object(Message, "_post_history", post_recording_thread):
                    if connections == 1:
                        self.mailbox._post_pending_history(lambda: None)
                    else:
                        self.registry.enter_test_mode(self.env.cr)
                        try:
                            with patch.object(sql_rows, "reserve_ids", reserve_recording_ids):
                                self.mailbox._post_pending_history(lambda: None)
                        finally:
                            self.registry.leave_test_mode()
                        self.env.cr.execute("SELECT id FROM mail_message WHERE id > %s", [before])
                        self.assertLessEqual({entry_id for entry_id, in self.env.cr.fetchall()}, set(reserved),
                                             "every entry has an id reserved in date order")
                snapshot = self.snapshot(before)
            # Each chunk is its own transaction, with its own time: the create and write dates differ.
            for row in snapshot["rows"]:
                self.assertTrue(row.pop("create_date") and row.pop("write_date"))
            snapshot["links"] = [link[:3] for link in snapshot["links"]]
            return snapshot
        # assert_same_rows compares the "sql" snapshot with the "orm" one, its reference.
        results = {"orm": post(connections=1), "sql": post(connections=2)}
        self.assertEqual(threads[:3], [threading.current_thread()] * 3)
        self.assertEqual(len(threads), 6, "8 links in chunks of 3, each way")
        self.assertNotIn(threading.current_thread(), threads[3:])
        self.assertEqual(len(set(threads[3:])), 2, "both connections wrote chunks")
        self.assert_entries(results["orm"])
        self.assert_same_rows(results)

    def test_first_sync_history_checks_each_chunk_again(self):
        # Each chunk is committed: what another transaction changed in between is seen by the next chunk.
        links = self.links.sorted(lambda link: (link.message_id.date, link.message_id.id, link.id))
        archived = links[4]

        def commit_archiving_a_link():
            archived.write({"active": False})
        with patch.object(onpipeline_mailbox_history, "HISTORY_CHUNK_SIZE", 2):
            self.mailbox._post_pending_history(commit_archiving_a_link)
        self.assertFalse(archived.mail_message_id)
        self.assertEqual(len((links - archived).mail_message_id), 7)

    def test_first_sync_history_stops_when_the_mailbox_stops_sharing(self):
        calls = []

        def commit_unsharing():
            calls.append(True)
            self.mailbox.linked_visibility = "owner"
        with patch.object(onpipeline_mailbox_history, "HISTORY_CHUNK_SIZE", 2):
            self.mailbox._post_pending_history(commit_unsharing)
        self.assertEqual(len(calls), 1, "the chunks after the first are not posted")
        self.assertFalse(self.links.mail_message_id, "the first chunk's entries went with the sharing")
        self.assertFalse(self.history(self.jane) | self.history(self.deal))

    def test_history_rows_of_late_links_are_those_of_create(self):
        # Links made after the sync (a contact created, a mailbox shared) are posted as they come.
        def post(context):
            self.links.message_id.with_context(**context)._post_history(self.links)
        results = self.both_ways(post)
        self.assert_entries(results["orm"])
        self.assert_same_rows(results)

    def test_context_defaults_are_those_of_create(self):
        # create() takes what the fields not given default to from the context: so do the rows.
        context = {"default_email_layout_xmlid": "mail.mail_notification_light", "default_email_add_signature": False}
        results = self.both_ways(lambda ctx: self.links.message_id.with_context(**ctx)._post_history(self.links),
                                 context)
        self.assertEqual({(row["email_layout_xmlid"], row["email_add_signature"]) for row in results["orm"]["rows"]},
                         {("mail.mail_notification_light", False)})
        self.assert_same_rows(results)
        # A default create() writes into a relation: create() does it.
        context = {"default_partner_ids": self.user_bob.partner_id.ids}
        results = self.both_ways(lambda ctx: self.links.message_id.with_context(**ctx)._post_history(self.links),
                                 context, set_based=False)
        self.assertEqual(len(results["orm"]["relations"]["partner_ids"]), 8)
        self.assert_same_rows(results)


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestHistoryHeader(TransactionCase):
    """The history header written without running the sanitizer is exactly what the sanitizer returns."""

    def as_stored(self, html):
        Entry = self.env["mail.message"]
        return Entry._fields["body"].convert_to_cache(html, Entry)

    def test_header_without_the_sanitizer_is_the_sanitized_one(self):
        pieces = ["Jane Doe <jane@client.example>", '"Doe, Jane" <j@x>', "a & b 'q' \"dq\"", "<script>x</script>",
                  "&nbsp; &amp; &#39;", "x\xa0y", "é 中文 😀 \u200f\u200b \ufeff", "]]> --!> <!--> <o:p>",
                  'encoding="x" <a encoding=1>', "  spaced  ", "--", "> quoted", "\u0085next", "=?utf-8?q?x?=",
                  "<b>bold</b><br/>", "\ue000 private", "\U0010fffd"]
        rng = random.Random(14)
        cases = [[("From", piece)] for piece in pieces]
        cases += [[(rng.choice(["From", "À", "<To>", "C&c"]), "".join(rng.choices(pieces, k=3)))
                   for _line in range(rng.randint(0, 3))] for _case in range(200)]
        fast = 0
        for lines in cases:
            for direction, title in (("incoming", "Incoming email"), ("outgoing", "E-mail sortant <envoyé>")):
                header = sanitized_history_header(direction, title, lines)
                if header is not None:
                    fast += 1
                    self.assertEqual(header, self.as_stored(history_header(direction, title, lines)), lines)
        self.assertGreater(fast, 300, "most headers go the fast way")

    def test_a_header_lxml_could_change_is_sanitized(self):
        for value in ("tab\there", "line\r\nend", "nul\x00", "ctrl\x01", "\udc80", "\uffff", "c1\x85"):
            self.assertIsNone(sanitized_history_header("incoming", "Incoming email", [("From", value)]), repr(value))
        self.assertIsNone(sanitized_history_header("incoming", "Incoming\temail", []))
