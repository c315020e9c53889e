from odoo import fields


class BigInteger(fields.Integer):
    """An integer stored as PostgreSQL int8.

    IMAP UIDs and UIDVALIDITY are unsigned 32-bit numbers and MODSEQ is
    63-bit: Odoo's Integer (int4) would overflow on real servers.
    """

    _column_type = ("int8", "int8")
