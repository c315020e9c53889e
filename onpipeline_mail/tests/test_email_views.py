"""What salespeople see: the email lists and forms, conversations, bodies, as the web client reads them."""

import datetime
import email.message
import email.utils
import json

from lxml import etree

from odoo.tests import Form, tagged

from .common import append, make_message
from .test_linking import LinkingCase

UTC = datetime.timezone.utc
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


def view_spec(env, model, arch):
    """The field specification the web client reads with for ``arch`` (fields, sub-views, many2one names)."""
    spec = {}
    Model = env[model]
    for node in arch:
        if not isinstance(node.tag, str):
            continue
        if node.tag == "field" and node.get("name") in Model._fields:
            field = Model._fields[node.get("name")]
            if field.type == "many2one":
                spec[field.name] = {"fields": {"display_name": {}}}
            elif field.type in ("one2many", "many2many"):
                sub = node.find("list")
                if sub is not None:
                    spec[field.name] = {"fields": view_spec(env, field.comodel_name, sub)}
                elif node.get("widget") in ("many2many_tags", "many2many_binary"):
                    spec[field.name] = {"fields": {"display_name": {}}}
                else:
                    spec[field.name] = {}
            else:
                spec[field.name] = {}
        elif node.tag not in ("list", "form"):
            spec.update(view_spec(env, model, node))
    return spec


def views_of(env, action_xmlid):
    """{view type: (model, arch)} of the views an action opens, as get_views gives them to the web client."""
    action = env["ir.actions.act_window"]._for_xml_id(action_xmlid)
    model = action["res_model"]
    result = env[model].get_views([(False, view_type) for view_type in ("list", "form", "search")])
    return {view_type: etree.fromstring(view["arch"]) for view_type, view in result["views"].items()}, model


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_views")
class TestSalespersonSeesNoAccessError(LinkingCase):
    """Alice may read only her own deals; her email is linked (by company) to Bob's deal."""

    def setUp(self):
        super().setUp()
        self.bobs_deal = self.opportunity("Bob's secret deal", partner_id=self.client.id, user_id=self.user_bob.id)
        self.message = self.deliver("Offer", attachments=[("terms.pdf", "application/pdf", b"%PDF-1.4 terms")])
        self.reply = self.deliver("Re: Offer", References=self.message.message_key,
                                  In_Reply_To=self.message.message_key)
        self.assertEqual(self.message.sudo().link_ids.lead_id, self.bobs_deal, "linked to a deal she cannot read")
        self.assertFalse(self.bobs_deal.with_user(self.user_alice).has_access("read"))

    def assert_no_leak(self, values):
        dumped = json.dumps(values, default=str)
        self.assertNotIn("secret", dumped, "the deal she may not read is not named: %s" % dumped)

    def test_emails_menu_list_form_and_groups(self):
        env = self.env(user=self.user_alice)
        views, model = views_of(env, "onpipeline_mail.onpipeline_mail_message_action")
        Message = env[model]
        rows = Message.web_search_read([], view_spec(env, model, views["list"]))["records"]
        self.assertEqual({row["subject"] for row in rows}, {"Offer", "Re: Offer"})
        self.assert_no_leak(rows)
        row = next(row for row in rows if row["subject"] == "Offer")
        self.assertEqual(row["lead_ids"], [])
        self.assertEqual(row["partner_ids"], [{"id": self.jane.id, "display_name": self.jane.display_name}])
        self.assertEqual(row["link_summary"], "%s · a deal you cannot open" % self.jane.display_name)
        self.assertEqual(row["attachment_count"], 1)
        # Her mailbox's Emails smart button: the same list, filtered on the mailbox.
        rows = Message.web_search_read([("mailbox_id", "=", self.mailbox.id)], view_spec(env, model, views["list"]))
        self.assertEqual(rows["length"], 2)
        # The form and its Links tab.
        form = Message.browse(self.message.id).web_read(view_spec(env, model, views["form"]))[0]
        self.assert_no_leak(form)
        link = next(link for link in form["link_ids"] if link["target_name"] != self.jane.display_name)
        self.assertEqual(link["target_name"], "A deal you cannot open")
        self.assertFalse(link["can_open_target"], "no Open nor Choose button")
        with Form(Message.browse(self.message.id)) as email_form:
            self.assertEqual(email_form.subject, "Offer")
            self.assertFalse(email_form.lead_ids)
        # Grouped lists: by link status, by conversation.
        for groupby in (["link_state"], ["conversation_id"], ["mailbox_id"]):
            groups = Message.web_read_group([], ["subject"], groupby, lazy=False)
            self.assertEqual(sum(group["__count"] for group in groups["groups"]), 2, groupby)
            self.assert_no_leak(groups)

    def test_conversations_menu(self):
        env = self.env(user=self.user_alice)
        views, model = views_of(env, "onpipeline_mail.onpipeline_mail_conversation_action")
        Conversation = env[model]
        rows = Conversation.web_search_read([], view_spec(env, model, views["list"]))["records"]
        self.assertEqual(len(rows), 1, "the email and its reply are one conversation")
        self.assert_no_leak(rows)
        self.assertEqual(rows[0]["link_summary"], "%s · a deal you cannot open" % self.jane.display_name)
        form = Conversation.browse(rows[0]["id"]).web_read(view_spec(env, model, views["form"]))[0]
        self.assert_no_leak(form)
        self.assertEqual({message["subject"] for message in form["message_ids"]}, {"Offer", "Re: Offer"})
        self.assertEqual(views["form"].xpath("//field[@name='message_ids']/list")[0].get("default_order"),
                         "date asc, id asc", "the thread reads oldest first")
        groups = Conversation.web_read_group([], ["subject"], ["mailbox_id"], lazy=False)
        self.assertEqual(groups["groups"][0]["__count"], 1)
        # Search by the deal: her own deals only.
        self.assertFalse(Conversation.search([("lead_ids", "ilike", "secret")]))
        self.assertTrue(Conversation.search([("partner_ids", "ilike", "Jane")]))

    def test_contact_smart_button(self):
        env = self.env(user=self.user_alice)
        action = self.jane.with_user(self.user_alice).action_view_onpipeline_mail()
        views, model = views_of(env, "onpipeline_mail.onpipeline_mail_message_action")
        rows = env[model].web_search_read(action["domain"], view_spec(env, model, views["list"]))["records"]
        self.assertEqual(len(rows), 2)
        self.assert_no_leak(rows)

    def test_owner_of_the_deal_sees_it(self):
        self.mailbox.sudo().linked_visibility = "colleagues"
        env = self.env(user=self.user_bob)
        rows = env["onpipeline.mail.message"].web_search_read(
            [("id", "=", self.message.id)], {"lead_ids": {"fields": {"display_name": {}}}, "hidden_link_note": {}})
        self.assertEqual(rows["records"][0]["lead_ids"][0]["id"], self.bobs_deal.id)
        self.assertFalse(rows["records"][0]["hidden_link_note"])


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_views")
class TestConversations(LinkingCase):

    def conversation(self, message):
        return message.conversation_id

    def test_a_thread_is_one_row_across_folders_newest_first(self):
        now = datetime.datetime.now(UTC)
        root = self.deliver("Quote", date=now - datetime.timedelta(days=3))
        sent_id = email.utils.make_msgid(domain="example.test")
        append(self.account, "Sent", make_message(
            "Re: Quote", sender=self.account.username, to="jane.doe@client.example", message_id=sent_id,
            date=now - datetime.timedelta(days=2), In_Reply_To=root.message_key, References=root.message_key))
        self.mailbox._sync()
        # A reply whose client kept only In-Reply-To (to our answer, not to the root).
        last = self.deliver("RE: Quote", date=now - datetime.timedelta(days=1), In_Reply_To=sent_id)
        other = self.deliver("Something else", date=now - datetime.timedelta(days=5))
        untitled = self.deliver("", date=now - datetime.timedelta(hours=1))
        conversation = self.conversation(root)
        self.assertEqual(self.Message.search([("message_key", "=", sent_id)]).conversation_id, conversation)
        self.assertEqual(last.conversation_id, conversation)
        self.assertEqual(conversation.message_count, 3)
        self.assertEqual(conversation.subject, "Quote")
        self.assertEqual(conversation.last_date, last.date)
        self.assertEqual(conversation.first_date, root.date)
        self.assertEqual(conversation.last_message_id, last)
        self.assertIn(" jane.doe@client.example ", conversation.participant_emails)
        self.assertEqual(conversation.participants, "jane.doe@client.example", "the mailbox's own address is left out")
        self.assertEqual(conversation.link_state, "linked")
        self.assertEqual(conversation.partner_ids, self.jane)
        # Newest first; a conversation without subject says so.
        Conversation = self.env["onpipeline.mail.conversation"].with_user(self.user_alice)
        listed = Conversation.search([])
        self.assertEqual(listed.ids, [untitled.conversation_id.id, conversation.id, other.conversation_id.id])
        self.assertEqual(untitled.conversation_id.display_name, "(no subject)")
        self.assertEqual(untitled.display_name, "(no subject)")
        # Searchable by address, subject, contact; the whole thread opens in date order with Reply.
        for domain in ([("participant_emails", "ilike", "Jane.Doe@client")], [("subject", "ilike", "quote")],
                       [("partner_ids", "ilike", "Jane Doe")], [("link_state", "=", "linked")]):
            self.assertIn(conversation, Conversation.search(domain), domain)
        self.assertNotIn(conversation, Conversation.search([("participant_emails", "ilike", "nobody@")]))
        self.assertEqual(Conversation.browse(conversation.id).thread_html.count("Hello"), 3)
        self.assertEqual(conversation.with_user(self.user_alice).message_ids.sorted("date").mapped("date"),
                         [root.date, self.Message.search([("message_key", "=", sent_id)]).date, last.date])
        action = Conversation.browse(conversation.id).action_reply()
        self.assertEqual(action["res_model"], "mail.compose.message")

    def test_headerless_replies_fall_back_to_the_subject(self):
        root = self.deliver("Invoice 42")
        reply = self.deliver("Re: invoice  42", message_id=email.utils.make_msgid(domain="client.example"))
        self.assertEqual(reply.conversation_id, root.conversation_id, "same subject, same correspondent")
        stranger = self.deliver("Re: Invoice 42", sender="someone@else.example")
        self.assertNotEqual(stranger.conversation_id, root.conversation_id, "a stranger's reply is another thread")
        again = self.deliver("Invoice 42")
        self.assertNotEqual(again.conversation_id, root.conversation_id, "a new email with the same subject is new")

    def test_root_arriving_after_its_replies_joins_them(self):
        root_id = email.utils.make_msgid(domain="client.example")
        now = datetime.datetime.now(UTC)
        reply = self.deliver("Re: Plans", References=root_id, In_Reply_To=root_id, date=now)
        root = self.deliver("Plans", message_id=root_id, date=now - datetime.timedelta(days=1))
        self.assertEqual(root.conversation_id, reply.conversation_id)
        self.assertEqual(root.conversation_id.message_count, 2)
        self.assertEqual(root.conversation_id.subject, "Plans", "the subject of the first email")

    def test_emails_stored_before_conversations_get_theirs(self):
        root = self.deliver("Old thread")
        reply = self.deliver("Re: Old thread", References=root.message_key)
        conversation = root.conversation_id
        self.env.cr.execute("UPDATE onpipeline_mail_message SET conversation_id = NULL WHERE id IN %s",
                            [tuple((root | reply).ids)])
        conversation.unlink()
        (root | reply).invalidate_recordset()
        self.assertFalse(root.conversation_id)
        self.env["onpipeline.mail.conversation"]._backfill()
        self.assertTrue(root.conversation_id)
        self.assertEqual(reply.conversation_id, root.conversation_id)
        self.assertEqual(root.conversation_id.message_count, 2)

    def test_storing_costs_the_same_queries_for_5_or_25_emails(self):
        folder = self.mailbox.folder_ids.filtered(lambda folder: folder.name == "INBOX")

        def values(count, tag):
            result = []
            for index in range(count):
                key = "<%s-%d@client.example>" % (tag, index)
                result.append({"mailbox_id": self.mailbox.id, "message_key": key.strip("<>"), "subject": "Hi %d" % index,
                               "references": "root-%s-%d@client.example" % (tag, index % 3) if index % 2 else False,
                               "email_from": "jane.doe@client.example", "email_to": self.account.username,
                               "direction": "incoming", "date": datetime.datetime(2026, 1, 1, 0, 0, index)})
            return result

        Message = self.env["onpipeline.mail.message"].sudo()
        self.assertTrue(folder)
        counts = []
        Message.create(values(2, "warm-up"))  # first-time lookups (sequences, caches) are not per email
        for count, tag in ((5, "a"), (25, "b")):
            Message.flush_model()
            before = self.env.cr.sql_log_count
            Message.create(values(count, tag))
            Message.flush_model()
            counts.append(self.env.cr.sql_log_count - before)
        self.assertEqual(counts[0], counts[1], "no query per email")


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_views")
class TestBodies(LinkingCase):

    def deliver_raw(self, raw):
        append(self.account, "INBOX", raw)
        self.mailbox._sync()
        return self.Message.search([("mailbox_id", "=", self.mailbox.id)], order="id desc", limit=1)

    def test_inline_images_show_in_the_body_not_as_files(self):
        message = email.message.EmailMessage()
        message["From"] = "Jane Doe <jane.doe@client.example>"
        message["To"] = self.account.username
        message["Subject"] = "Our logo"
        message["Message-ID"] = email.utils.make_msgid(domain="client.example")
        message.set_content("See the logo")
        message.add_alternative('<p>See <img src="cid:logo@client.example" alt="logo"></p>', subtype="html")
        message.get_payload()[1].add_related(PNG, maintype="image", subtype="png", cid="<logo@client.example>",
                                             filename="logo.png")
        message.add_attachment(b"%PDF-1.4 plan", maintype="application", subtype="pdf", filename="plan.pdf")
        stored = self.deliver_raw(message.as_bytes())
        self.assertEqual(stored.attachment_ids.mapped("name"), ["plan.pdf"], "the inline image is not a file")
        self.assertEqual(stored.attachment_count, 1)
        self.assertNotIn("cid:", stored.body_html)
        inline = self.env["ir.attachment"].search([("res_model", "=", stored._name), ("res_id", "=", stored.id),
                                                   ("res_field", "=", "body_html")])
        self.assertEqual(inline.raw, PNG)
        self.assertIn('src="/web/image/%s?access_token=%s"' % (inline.id, inline.access_token), stored.body_html)
        self.assertIn("/web/image/%s" % inline.id, stored.with_user(self.user_alice).body_view)
        # The copy in the history of the contact shows the image and lists only the file.
        entry = self.history(self.jane)
        self.assertIn("/web/image/%s?access_token=" % inline.id, entry.body)
        self.assertEqual(entry.attachment_ids.mapped("name"), ["plan.pdf"])
        # The image opens for whoever opens the email (its owner) and, with its token, in the history.
        self.assertEqual(inline.with_user(self.user_alice).raw, PNG)

    def test_remote_images_are_blocked_until_asked(self):
        html = ('<p>Newsletter<img src="https://tracker.example/open.gif?id=7" width="1" height="1">'
                '<img src="/web/image/1" alt="local"></p>'
                '<div style="background-image:url(https://tracker.example/bg.png); color:red">x</div>')
        stored = self.deliver("News", html=html)
        self.assertTrue(stored.has_remote_content)
        as_alice = stored.with_user(self.user_alice)
        self.assertNotIn("tracker.example", as_alice.body_view)
        self.assertIn('src="/web/image/1"', as_alice.body_view, "images of the email itself stay")
        self.assertIn("color:red", as_alice.body_view)
        self.assertNotIn("tracker.example", self.history(self.jane).body, "blocked in the history copy too")
        self.assertNotIn("tracker.example", as_alice.conversation_id.thread_html)
        self.assertTrue(as_alice.conversation_id.has_blocked_content)
        as_alice.action_show_remote_content()
        self.assertIn("https://tracker.example/open.gif?id=7", as_alice.body_view)
        plain = self.deliver("Plain", html="<p>Nothing remote, <a href=\"https://client.example\">a link</a></p>")
        self.assertFalse(plain.has_remote_content)
        self.assertIn("https://client.example", plain.body_view, "links are not remote content")

    def test_sizes_have_units(self):
        stored = self.deliver("Sized", attachments=[("big.bin", "application/octet-stream", b"x" * 30000)])
        self.assertRegex(stored.size_display, r"^\d+ KB$")
        self.assertEqual(stored.size_display, "%d KB" % round(stored.size / 1024))


@tagged("post_install", "-at_install", "onpipeline_mail", "onpipeline_mail_views")
class TestScreens(LinkingCase):

    def arch(self, xmlid):
        view = self.env.ref(xmlid)
        return etree.fromstring(self.env[view.model].get_views([(view.id, view.type)])["views"][view.type]["arch"])

    def test_link_wizard_creates_no_deal_nor_contact(self):
        arch = self.arch("onpipeline_mail.onpipeline_mail_link_wizard_view_form")
        for name in ("lead_id", "partner_id"):
            options = arch.xpath("//field[@name='%s']" % name)[0].get("options", "")
            self.assertIn("'no_create': True", options, name)
            self.assertIn("'no_quick_create': True", options, name)

    def test_email_list_reads_like_a_mail_client(self):
        arch = self.arch("onpipeline_mail.onpipeline_mail_message_view_list")
        names = [node.get("name") for node in arch.xpath("/list/field[not(@column_invisible)]")]
        self.assertEqual(names[:4], ["date", "direction", "email_from", "subject"])
        email_to = arch.xpath("//field[@name='email_to']")[0]
        self.assertEqual(email_to.get("optional"), "hide")
        self.assertTrue(email_to.get("width"), "a Text column takes up to 1200px unless told")
        self.assertFalse(arch.xpath("//field[@name='size']"), "sizes are shown with units")
        self.assertTrue(arch.xpath("//button[@name='action_open_email'][@icon='fa-paperclip']"))

    def test_provider_list_and_failed_emails_help(self):
        arch = self.arch("onpipeline_mail.onpipeline_mail_provider_view_list")
        self.assertEqual(arch.xpath("//field[@name='domains']")[0].get("optional"), "hide")
        action = self.env.ref("onpipeline_mail.onpipeline_mail_sync_failure_action")
        self.assertIn("retried", action.help)
        arch = self.arch("onpipeline_mail.onpipeline_mail_sync_failure_view_list")
        self.assertFalse(arch.xpath("//field[@name='uid'][not(@groups)]"), "the IMAP UID is for debug mode only")
