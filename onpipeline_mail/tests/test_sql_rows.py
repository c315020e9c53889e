"""``sql_rows.insert_rows`` converts each value as its field's ``convert_to_column_insert`` does.

``insert_rows`` converts a column at a time (``sql_rows.column_converter``),
computing itself what Odoo's conversion of the plain field types gives for
the value types they write as they are. Every column of every model the sync
writes set-based is converted here both ways, for edge values, and must come
out the same value of the same type (or raise the same exception).
"""

import datetime

from markupsafe import Markup
from psycopg2.extensions import Binary
from psycopg2.extras import Json

from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from ..models import sql_rows

#: The models whose rows the sync writes with insert_rows.
SYNC_MODELS = ("onpipeline.mail.message", "onpipeline.mail.message.location", "onpipeline.mail.conversation",
               "onpipeline.mail.link", "mail.message")

NAIVE = datetime.datetime(2024, 5, 1, 10, 11, 12)
#: Values every column is converted for, whatever its type.
COMMON_VALUES = [None, False, True, 0, 1, -3, 2**40, 3.9, "", "7", "plain", "x" * 5000, "caf\u00e9 \u2014 \u2615",
                 Markup("<b>bold</b>"), b"bytes", NAIVE, datetime.date(2024, 5, 1)]
#: Values added for columns of these types.
VALUES_BY_TYPE = {
    "datetime": [NAIVE.replace(microsecond=123456), NAIVE.replace(tzinfo=datetime.timezone.utc),
                 "2024-05-01 10:11:12", "2024-05-01", "not a date"],
    "date": ["2024-05-01", NAIVE],
    "html": ["<p onclick='x()'>Offer</p><script>x()</script>"],
}


def comparable(value):
    """``value`` with its type; a JSON (translated, company-dependent columns) or bytea parameter by its content."""
    if isinstance(value, Json | type(Binary(b""))):
        return (type(value), value.adapted)
    return (type(value), value)


def outcome(convert):
    try:
        return comparable(convert())
    except Exception as exc:  # noqa: BLE001 -- the same failure both ways is the expected outcome
        return ("raises", type(exc))


@tagged("post_install", "-at_install", "onpipeline_mail")
class TestSqlRows(TransactionCase):
    maxDiff = None

    def values_for(self, field):
        values = COMMON_VALUES + VALUES_BY_TYPE.get(field.type, [])
        if field.type == "selection" and isinstance(field.selection, list):
            values = values + [value for value, _label in field.selection]
        if field.type in ("many2one", "many2one_reference", "integer"):
            comodel = field.comodel_name or "res.partner"
            values = values + [self.env[comodel].browse(1), self.env[comodel]]
        return values

    def assertConvertsAsField(self, model, field, values):
        """Each value converted by ``column_converter`` alone, then all of them in one column."""
        convert = sql_rows.column_converter(model, field)
        row = {}
        for value in values:
            with self.subTest(model=model._name, field=field.name, value=repr(value)[:40]):
                self.assertEqual(outcome(lambda value=value: convert([value], [row])[0]),
                                 outcome(lambda value=value: field.convert_to_column_insert(value, model, row)))
        # Several values in one call (what insert_rows does): in their order.
        with self.subTest(model=model._name, field=field.name, value="all at once"):
            expected = [outcome(lambda value=value: field.convert_to_column_insert(value, model, row))
                        for value in values]
            convertible = [value for value, result in zip(values, expected, strict=True) if result[0] != "raises"]
            self.assertEqual([comparable(value) for value in convert(convertible, [row] * len(convertible))],
                             [result for result in expected if result[0] != "raises"])

    @mute_logger("odoo.tools.mail")  # Html values that are not strings
    def test_sync_columns_convert_as_their_field(self):
        types = set()
        for model_name in SYNC_MODELS:
            model = self.env[model_name]
            for field in model._fields.values():
                if field.column_type:
                    types.add(field.type)
                    self.assertConvertsAsField(model, field, self.values_for(field))
        # Every kind of column the sync writes was compared.
        self.assertLessEqual({"many2one", "integer", "many2one_reference", "boolean", "char", "text", "selection",
                              "datetime", "html"}, types)

    def test_sync_columns_are_converted_here(self):
        """The plain columns the sync writes take the converters of sql_rows, not the field's methods."""
        for model_name, names in {
            "onpipeline.mail.message": ["id", "mailbox_id", "message_key", "references", "direction", "date", "size",
                                       "is_truncated", "link_state", "link_date", "create_date", "create_uid"],
            "onpipeline.mail.message.location": ["message_id", "uidvalidity", "uid"],
            "onpipeline.mail.conversation": ["thread_key", "first_date", "message_count", "last_message_id"],
            "onpipeline.mail.link": ["partner_id", "reason", "active", "is_candidate"],
            "mail.message": ["res_id", "model", "message_type", "subject", "subtype_id", "is_internal", "date"],
        }.items():
            model = self.env[model_name]
            for name in names:
                with self.subTest(model=model_name, field=name):
                    self.assertFalse(getattr(sql_rows.column_converter(model, model._fields[name]), "by_field", False))

    def test_other_conversions_are_the_fields(self):
        """Translated, company-dependent, sized, monetary and unsanitized Html columns: each one's own values."""
        Country, Partner = self.env["res.country"], self.env["res.partner"]
        cases = [
            (Country, Country._fields["name"], True),  # translated
            (Country, Country._fields["code"], False),  # size=2: cut here
            (Partner, Partner._fields["barcode"], True),  # company-dependent
        ]
        Lead = self.env["crm.lead"]
        cases += [
            (Lead, Lead._fields["expected_revenue"], True),  # monetary: rounded in the currency of the row
            (Lead, Lead._fields["probability"], True),  # float
        ]
        Message = self.env["onpipeline.mail.message"]
        unsanitized = Message._fields["body_view"]
        self.assertEqual((unsanitized.type, unsanitized.sanitize), ("html", False))
        cases.append((Message, unsanitized, True))
        for model, field, by_field in cases:
            with self.subTest(model=model._name, field=field.name):
                convert = sql_rows.column_converter(model, field)
                self.assertEqual(getattr(convert, "by_field", False), by_field, field)
            self.assertConvertsAsField(model, field, self.values_for(field) + ["XYZ", "fr", "0.125"])
        self.assertEqual(sql_rows.column_converter(Country, Country._fields["code"])(["BEL", "b"], [{}, {}]),
                         ["BE", "b"])

    def test_sanitized_html_written_as_given(self):
        Message = self.env["onpipeline.mail.message"]
        convert = sql_rows.column_converter(Message, Message._fields["body_html"], sanitized=True)
        given = [Markup("<p>sanitized</p>"), "", None, False]
        self.assertEqual([comparable(value) for value in convert(given, [{}] * len(given))],
                         [(str, "<p>sanitized</p>"), (type(None), None), (type(None), None), (type(None), None)])

    def test_insert_rows_writes_what_create_writes(self):
        """Rows of different keys (DEFAULT for the others), translated names, ids in the order of the rows."""
        Industry = self.env["res.partner.industry"]
        created = Industry.create([{"name": "By create", "full_name": "Full", "active": False}])
        inserted = sql_rows.insert_rows(Industry, [
            {"name": "By insert", "full_name": "Full", "active": False},
            {"name": "Second", "active": True},
            {"full_name": "Third"},
        ])
        self.assertEqual(len(inserted), 3)
        self.assertTrue(created.id < inserted[0].id < inserted[1].id < inserted[2].id)
        self.env.cr.execute("""SELECT id, name, full_name, active, create_uid, write_uid,
                                      create_date = (now() AT TIME ZONE 'UTC')
                                 FROM res_partner_industry WHERE id IN %s ORDER BY id""",
                            [tuple((created + inserted).ids)])
        rows = self.env.cr.fetchall()
        uid = self.env.uid
        self.assertEqual(rows, [
            (created.id, {"en_US": "By create"}, {"en_US": "Full"}, False, uid, uid, True),
            (inserted[0].id, {"en_US": "By insert"}, {"en_US": "Full"}, False, uid, uid, True),
            (inserted[1].id, {"en_US": "Second"}, None, True, uid, uid, True),
            (inserted[2].id, None, {"en_US": "Third"}, None, uid, uid, True),
        ])

    def test_insert_rows_refuses_a_wrong_selection(self):
        Link = self.env["onpipeline.mail.link"]
        with self.assertRaisesRegex(ValueError, "Wrong value"):
            sql_rows.column_converter(Link, Link._fields["reason"])(["no such reason"], [{}])
