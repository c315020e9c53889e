"""The framework-free mail engine of onpipeline_mail.

IMAP reading, SMTP sending and MIME parsing, built on imapclient and the
standard ``email`` package. Nothing here imports Odoo: the Odoo models hold
state and call these functions, and the engine runs and is tested alone
(``python onpipeline_mail/engine/__main__.py --help``: ``-m`` would import the
addon package, hence Odoo).
"""
