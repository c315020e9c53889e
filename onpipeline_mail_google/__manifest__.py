{
    "name": "Onpipeline Mail: Sign in with Google",
    "version": "18.0.1.0.0",
    "category": "Sales/CRM",
    "summary": "Gmail and Google Workspace mailboxes connect with Sign in with Google (OAuth2, XOAUTH2)",
    "description": """
Installs itself when Onpipeline Mail and Google Gmail are both installed. A
mailbox of Gmail or Google Workspace gets a *Sign in with Google* button,
built on google_gmail's OAuth app settings (client ID and secret in Settings)
and its google.gmail.mixin (authorization URL, CSRF state, token exchange and
refresh); IMAP and SMTP then log in with XOAUTH2.
""",
    "author": "Onpipeline",
    "license": "LGPL-3",
    "depends": ["onpipeline_mail", "google_gmail"],
    "data": [
        "views/onpipeline_mailbox_views.xml",
    ],
    "auto_install": True,
    "installable": True,
}
