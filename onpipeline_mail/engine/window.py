"""How far back a mailbox syncs: a few fixed windows, never more than six months."""

import datetime

WINDOWS = (
    ("today", "Today"),
    ("1w", "1 week"),
    ("1m", "1 month"),
    ("3m", "3 months"),
    ("6m", "6 months"),
)
DEFAULT_WINDOW = "1m"

_DAYS = {"today": 0, "1w": 7}
_MONTHS = {"1m": 1, "3m": 3, "6m": 6}


def window_start(window, today=None):
    """The first day whose mail is synced for ``window`` (IMAP SEARCH SINCE is by date)."""
    today = today or datetime.date.today()
    if window in _DAYS:
        return today - datetime.timedelta(days=_DAYS[window])
    if window in _MONTHS:
        month_index = today.year * 12 + today.month - 1 - _MONTHS[window]
        year, month = divmod(month_index, 12)
        # The same day N months back, clamped to the end of a shorter month.
        for day in range(today.day, 0, -1):
            try:
                return datetime.date(year, month + 1, day)
            except ValueError:
                continue
    raise ValueError("Unknown sync window %r: use one of %s" % (window, ", ".join(code for code, _ in WINDOWS)))
