from odoo import fields


class BigInteger(fields.Integer):
    """An integer stored as PostgreSQL int8.

    IMAP UIDs and UIDVALIDITY are unsigned 32-bit numbers and MODSEQ is
    63-bit: Odoo's Integer (int4) would overflow on real servers.
    """

    _column_type = ("int8", "int8")


class EmailHtml(fields.Html):
    """Html that sanitizes a value once where Odoo converts it twice in a row.

    Creating a record converts each Html value for its column, then again for
    the cache: two ``html_sanitize`` passes over every email body, about a tenth
    of a first sync. The last conversion is kept and reused when the same value
    comes right back. Sanitizing is a pure function of the value here (the
    field cannot be made overridable), so the result is the same either way.
    """

    def _convert(self, value, record, validate):
        if not (validate and self.sanitize and isinstance(value, str)) or self.sanitize_overridable:
            return super()._convert(value, record, validate)
        last = self.__dict__.get("_onpipeline_last_conversion")
        if last is not None and last[0] == value:
            return last[1]
        converted = super()._convert(value, record, validate)
        # One tuple, replaced at once: cron threads may share this field.
        self.__dict__["_onpipeline_last_conversion"] = (value, converted)
        return converted
