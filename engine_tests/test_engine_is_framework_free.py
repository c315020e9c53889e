"""The engine never imports Odoo.

In a fresh interpreter where ``import odoo`` fails (``sys.modules["odoo"] =
None``), every module found under ``onpipeline_mail/engine`` is imported; the
folder is walked, so a new module is covered without editing this test.
"""

import os
import subprocess
import sys
import textwrap

ADDON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "onpipeline_mail")
ENGINE_DIR = os.path.join(ADDON_DIR, "engine")
CLI = os.path.join(ENGINE_DIR, "__main__.py")

IMPORT_ALL = textwrap.dedent("""
    import importlib
    import os
    import sys
    import traceback
    import types

    sys.modules["odoo"] = None  # any "import odoo..." now raises ImportError
    addon_dir = sys.argv[1]
    package = types.ModuleType("onpipeline_mail")
    package.__path__ = [addon_dir]
    sys.modules["onpipeline_mail"] = package

    names = []
    for root, dirs, files in os.walk(os.path.join(addon_dir, "engine")):
        dirs[:] = sorted(d for d in dirs if os.path.isfile(os.path.join(root, d, "__init__.py")))
        for file in sorted(files):
            if file.endswith(".py"):
                module = os.path.relpath(os.path.join(root, file), addon_dir)[:-3].replace(os.sep, ".")
                names.append("onpipeline_mail." + module.removesuffix(".__init__"))
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:
            print("FAIL %s\\n%s" % (name, traceback.format_exc()))
        else:
            print("OK %s" % name)
""")


def run_python(*args, tmp_path):
    # Run from an unrelated folder so that nothing is importable by accident.
    return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_every_engine_module_imports_without_odoo(tmp_path):
    result = run_python("-c", IMPORT_ALL, ADDON_DIR, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    failures = [line for line in lines if not line.startswith("OK ")]
    assert not failures, result.stdout
    imported = {line.split()[1] for line in lines}
    expected = {"onpipeline_mail.engine", "onpipeline_mail.engine.__main__", "onpipeline_mail.engine.connection",
                "onpipeline_mail.engine.errors", "onpipeline_mail.engine.folders",
                "onpipeline_mail.engine.testing", "onpipeline_mail.engine.testing.dovecot"}
    assert expected <= imported, sorted(imported)
    on_disk = sum(file.endswith(".py") for _root, _dirs, files in os.walk(ENGINE_DIR) for file in files)
    assert len(imported) == on_disk


def test_cli_run_as_a_file_does_not_import_odoo(tmp_path):
    # The CLI's own bootstrap (bare package, PEP 366 __package__) with odoo blocked.
    script = ("import runpy, sys; sys.modules['odoo'] = None; sys.argv = [sys.argv[1], 'presets', 'me@gmail.com']; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    result = run_python("-c", script, CLI, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "imap.gmail.com:993 ssl" in result.stdout
