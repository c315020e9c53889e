"""18.0.1.1.0: the private CA is stored as PEM text (uploaded in Settings), no longer as a path.

The old parameter ``onpipeline_mail.extra_ca_file`` named a file on the Odoo
server. Its certificates are read once into ``onpipeline_mail.extra_ca_pem``
(private keys in the same file are left out); a file that is missing or holds
no usable CA certificate is dropped with a log line. The old parameter goes
either way.
"""

import logging
import os

from odoo import SUPERUSER_ID, api

from odoo.addons.onpipeline_mail.engine import connection, errors
from odoo.addons.onpipeline_mail.models.res_config_settings import CA_FILENAME_PARAM, CA_PARAM

# Odoo loads this file under the name "post-migrate": a stable logger name instead.
_logger = logging.getLogger("odoo.addons.onpipeline_mail.migrations")

OLD_PARAM = "onpipeline_mail.extra_ca_file"


def migrate(cr, version):
    params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
    path = (params.get_param(OLD_PARAM) or "").strip()
    if path:
        _move_ca_file(params, path)
    params.set_param(OLD_PARAM, False)


def _move_ca_file(params, path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        _logger.warning("Trusted CA file %s (%s) cannot be read (%s): dropped. Upload the CA certificate in "
                        "Settings > CRM > Mailboxes.", path, OLD_PARAM, exc.strerror or exc)
        return
    # Python's cafile= skipped a private key kept next to the certificates; the database must not hold it.
    text = data.decode("ascii", "replace")
    certificates = "".join(match.group(0) for match in connection.PEM_BLOCK_RE.finditer(text)
                           if match.group(1) == "CERTIFICATE")
    try:
        bundle = connection.read_ca_certificates(certificates or data)
    except errors.ConfigError as exc:
        _logger.warning("Trusted CA file %s (%s) holds no usable CA certificate (%s): dropped. Upload the CA "
                        "certificate in Settings > CRM > Mailboxes.", path, OLD_PARAM, exc)
        return
    if params.get_param(CA_PARAM):
        _logger.info("Trusted CA file %s not moved: a CA certificate is already stored.", path)
        return
    params.set_param(CA_PARAM, bundle.pem)
    params.set_param(CA_FILENAME_PARAM, os.path.basename(path))
    _logger.info("Trusted CA file %s moved into the database (%s); the file is no longer read.",
                 path, ", ".join(certificate.name for certificate in bundle.certificates))
