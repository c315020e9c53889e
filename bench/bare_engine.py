"""Makes ``onpipeline_mail.engine`` importable without Odoo, for the bench scripts run with any Python.

The addon's own ``__init__`` imports the Odoo models, so its folder is registered
as a bare package instead (as ``engine_tests/conftest.py`` does). Import this
module before anything from ``onpipeline_mail``.
"""

import os
import sys
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if "onpipeline_mail" not in sys.modules:
    _package = types.ModuleType("onpipeline_mail")
    _package.__path__ = [os.path.join(REPO, "onpipeline_mail")]
    sys.modules["onpipeline_mail"] = _package
