"""Host, port and security presets of the common mail providers.

The presets live in one data file, ``data/onpipeline.mail.provider.csv``:
Odoo loads it into ``onpipeline.mail.provider`` records (which an admin may
extend), and the engine reads it here for the command line.
"""

import csv
import dataclasses
import functools
import os

PRESETS_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "onpipeline.mail.provider.csv")


@dataclasses.dataclass(frozen=True)
class ProviderPreset:
    key: str
    name: str
    domains: tuple
    imap_host: str
    imap_port: int
    imap_security: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    note: str


@functools.lru_cache(maxsize=1)
def load_presets(path=PRESETS_FILE):
    with open(path, newline="", encoding="utf-8") as handle:
        return tuple(
            ProviderPreset(
                key=row["id"], name=row["name"], domains=tuple(row["domains"].split()),
                imap_host=row["imap_host"], imap_port=int(row["imap_port"]), imap_security=row["imap_security"],
                smtp_host=row["smtp_host"], smtp_port=int(row["smtp_port"]), smtp_security=row["smtp_security"],
                note=row["note"],
            )
            for row in csv.DictReader(handle)
        )


def email_domain(address):
    """The lower-cased domain of ``address``, or '' when it has none."""
    _local, at, domain = (address or "").strip().rpartition("@")
    return domain.strip().strip(">").lower() if at else ""


def preset_for_email(address, presets=None):
    """The preset whose domains list the address's domain, else ``None`` ("Other")."""
    domain = email_domain(address)
    if not domain:
        return None
    for preset in presets if presets is not None else load_presets():
        if domain in preset.domains:
            return preset
    return None
