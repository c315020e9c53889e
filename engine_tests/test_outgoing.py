"""A composed message made into one sent from a mailbox: sender, Message-ID, threading, hidden Bcc."""

import email.message
import email.policy

from onpipeline_mail.engine import outgoing, smtp


def composed():
    message = email.message.EmailMessage()
    message["From"] = "Odoo <notifications@company.example>"
    message["Reply-To"] = "catchall@company.example"
    message["To"] = "Carl <carl@client.example>, olga@client.example"
    message["Cc"] = "CARL@client.example, boss@client.example"
    message["Bcc"] = "archive@company.example"
    message["Message-ID"] = "<123.456-openerp-7-crm.lead@odoo-host>"
    message["References"] = "<old@odoo-host>"
    message["Return-Path"] = "bounce@company.example"
    message["Subject"] = "Offer"
    message.set_content("Hello")
    return message


def test_message_id_on_the_mailbox_domain():
    message_id = outgoing.make_message_id("Sales <Sales@Shop.Example>")
    assert message_id.startswith("<") and message_id.endswith("@shop.example>")
    assert outgoing.is_own_message_id(message_id, "sales@shop.example")
    assert not outgoing.is_own_message_id("<1@odoo-host>", "sales@shop.example")


def test_readdress_sets_sender_and_threading_and_hides_bcc():
    message = composed()
    recipients = outgoing.readdress(message, "Alice Seller", "alice@shop.example", "<new@shop.example>",
                                    in_reply_to="<question@client.example>",
                                    references=["<older@client.example>", "<question@client.example>"])
    assert recipients == ["carl@client.example", "olga@client.example", "boss@client.example",
                          "archive@company.example"]
    raw = message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"] == "Alice Seller <alice@shop.example>"
    assert parsed["Message-ID"] == "<new@shop.example>"
    assert parsed["In-Reply-To"] == "<question@client.example>"
    assert parsed["References"] == "<older@client.example> <question@client.example>"
    for header in ("Bcc", "Reply-To", "Return-Path"):
        assert parsed[header] is None
    assert len(parsed.get_all("From")) == 1 and len(parsed.get_all("Message-ID")) == 1


def test_readdress_without_answer_keeps_no_in_reply_to():
    message = composed()
    outgoing.readdress(message, "", "alice@shop.example", "<new@shop.example>", references=["<a@x>"])
    assert message["From"] == "alice@shop.example"
    assert message["In-Reply-To"] is None
    assert message["References"] == "<a@x>"
    assert smtp._recipients(message) == ["carl@client.example", "olga@client.example", "CARL@client.example",
                                         "boss@client.example"]
