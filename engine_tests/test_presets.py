"""Provider presets, from the data file that Odoo also loads."""

import pytest

from onpipeline_mail.engine import presets

REQUIRED = ["Gmail", "Google Workspace", "Outlook.com", "Microsoft 365", "Yahoo", "AOL", "iCloud", "Zoho", "GMX",
            "WEB.DE", "Fastmail", "Yandex", "Mail.ru", "T-Online", "Posteo", "mail.com"]


def test_every_required_provider_has_a_preset():
    names = " | ".join(preset.name for preset in presets.load_presets())
    for provider in REQUIRED:
        assert provider in names, provider


def test_presets_are_complete_and_secure():
    for preset in presets.load_presets():
        assert preset.imap_host and preset.smtp_host, preset.key
        assert preset.imap_security in ("ssl", "starttls"), preset.key
        assert preset.smtp_security in ("ssl", "starttls"), preset.key
        assert (preset.imap_port, preset.imap_security) in ((993, "ssl"), (143, "starttls")), preset.key
        assert (preset.smtp_port, preset.smtp_security) in ((465, "ssl"), (587, "starttls")), preset.key
        assert preset.note, preset.key


def test_a_domain_belongs_to_one_preset_only():
    seen = {}
    for preset in presets.load_presets():
        for domain in preset.domains:
            assert domain not in seen, (domain, seen.get(domain), preset.key)
            seen[domain] = preset.key


@pytest.mark.parametrize("address, host", [
    ("Jane <jane.doe@GMAIL.com>", "imap.gmail.com"),
    ("x@hotmail.co.uk", "outlook.office365.com"),
    ("x@me.com", "imap.mail.me.com"),
    ("x@zohomail.eu", "imap.zoho.eu"),
    ("x@zoho.in", "imap.zoho.in"),
    ("x@web.de", "imap.web.de"),
    ("x@gmx.de", "imap.gmx.net"),
    ("x@t-online.de", "secureimap.t-online.de"),
    ("x@bk.ru", "imap.mail.ru"),
])
def test_preset_from_email_address(address, host):
    assert presets.preset_for_email(address).imap_host == host


@pytest.mark.parametrize("address", ["someone@acme-corp.example", "no-at-sign", "", None])
def test_unknown_domains_are_other(address):
    assert presets.preset_for_email(address) is None
