import datetime

import pytest

from onpipeline_mail.engine.window import WINDOWS, window_start


@pytest.mark.parametrize("window, today, expected", [
    ("today", datetime.date(2026, 11, 27), datetime.date(2026, 11, 27)),
    ("1w", datetime.date(2026, 11, 27), datetime.date(2026, 11, 20)),
    ("1m", datetime.date(2026, 3, 31), datetime.date(2026, 2, 28)),
    ("3m", datetime.date(2026, 1, 15), datetime.date(2025, 10, 15)),
    ("6m", datetime.date(2026, 8, 31), datetime.date(2026, 2, 28)),
])
def test_window_start(window, today, expected):
    assert window_start(window, today) == expected


def test_never_more_than_six_months():
    today = datetime.date(2026, 11, 27)
    for code, _label in WINDOWS:
        assert today - window_start(code, today) <= datetime.timedelta(days=184)
    with pytest.raises(ValueError):
        window_start("1y", today)
