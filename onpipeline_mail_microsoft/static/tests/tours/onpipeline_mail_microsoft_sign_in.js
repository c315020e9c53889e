/** @odoo-module **/
/* A salesperson signs her Outlook.com mailbox in with Microsoft: the button, the provider's consent
   (the tests' local provider consents at once), back on the mailbox, connected, folders listed. */

import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("onpipeline_mail_microsoft_sign_in", {
    steps: () => [
        {
            content: "The form says how to connect and offers the sign-in",
            trigger: ".o_form_view .alert-info:contains('Sign in with Microsoft')",
        },
        {
            content: "Not connected yet",
            trigger: ".o_form_view .o_statusbar_status .o_arrow_button_current:contains('Not connected')",
        },
        {
            content: "Sign in with Microsoft",
            trigger: ".o_form_view .o_form_statusbar button:contains('Sign in with Microsoft')",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "Back on the mailbox, connected",
            trigger: ".o_form_view .o_statusbar_status .o_arrow_button_current:contains('Connected')",
        },
        {
            content: "It says it is signed in with Microsoft",
            trigger: ".o_form_view .alert-success:contains('Signed in with Microsoft')",
        },
        {
            content: "No sign-in button any more",
            trigger: ".o_form_view:not(:has(.o_form_statusbar button:contains('Sign in with Microsoft')))",
        },
        {
            content: "Folders",
            trigger: ".o_form_view .o_notebook .nav-link:contains('Folders')",
            run: "click",
        },
        {
            content: "Inbox is listed",
            trigger: ".o_field_widget[name='folder_ids'] .o_data_row:contains('Inbox')",
        },
    ],
});
