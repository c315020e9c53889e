{
    "name": "Onpipeline Mail: Sign in with Microsoft",
    "version": "18.0.1.0.0",
    "category": "Sales/CRM",
    "summary": "Outlook.com and Microsoft 365 mailboxes connect with Sign in with Microsoft (OAuth2, XOAUTH2)",
    "description": """
Installs itself when Onpipeline Mail and Microsoft Outlook are both installed.
A mailbox of Outlook.com or Microsoft 365 gets a *Sign in with Microsoft*
button, built on microsoft_outlook's OAuth app settings (client ID and secret
in Settings) and its microsoft.outlook.mixin (authorization URL, CSRF state,
token exchange and refresh); IMAP and SMTP then log in with XOAUTH2.
Outlook.com accepts nothing else since September 2024, Microsoft 365 has
turned basic authentication off for IMAP and retires it for SMTP in 2026.
""",
    "author": "Onpipeline",
    "license": "LGPL-3",
    "depends": ["onpipeline_mail", "microsoft_outlook"],
    "data": [
        "data/onpipeline_mail_provider_data.xml",
        "views/onpipeline_mailbox_views.xml",
    ],
    "assets": {
        "web.assets_tests": ["onpipeline_mail_microsoft/static/tests/tours/*.js"],
    },
    "auto_install": True,
    "installable": True,
}
