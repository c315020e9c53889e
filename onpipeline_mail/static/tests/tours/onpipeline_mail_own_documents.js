/** @odoo-module **/
/* Flow 4: a salesperson who reads only their own documents opens Emails, Conversations and their
   mailbox while one of their emails is linked to a colleague's deal they cannot read. Any error
   dialog fails the tour. */

import { registry } from "@web/core/registry";
import { openCrmMenu, screenshot, tourConfig } from "./tour_utils";

const noErrorDialog = {
    content: "No error dialog",
    trigger: "body:not(:has(.o_error_dialog)):not(:has(.modal .o_dialog_error))",
};

registry.category("web_tour.tours").add("onpipeline_mail_own_documents", {
    url: "/odoo",
    steps: () => {
        const cfg = tourConfig();
        return [
            ...openCrmMenu("onpipeline_mail.onpipeline_mail_menu_root",
                "onpipeline_mail.onpipeline_mail_message_menu", "Emails"),
            {
                content: "The email linked to the colleague's deal is listed",
                trigger: `.o_list_view .o_data_row:contains('${cfg.subject}')`,
            },
            {
                content: "The other email is listed",
                trigger: `.o_list_view .o_data_row:contains('${cfg.other_subject}')`,
            },
            noErrorDialog,
            screenshot("01_emails"),
            {
                content: "Open the email linked to the colleague's deal",
                trigger: `.o_list_view .o_data_row td:contains('${cfg.subject}')`,
                run: "click",
            },
            {
                content: "The email opens",
                trigger: `.o_form_view .o_field_widget[name='subject']:contains('${cfg.subject}')`,
            },
            noErrorDialog,
            screenshot("02_email_form"),
            {
                content: "Open the email's Links tab",
                trigger: ".o_form_view .o_notebook .nav-link:contains('Links')",
                run: "click",
            },
            {
                content: "The link to the contact is listed",
                trigger: ".o_form_view .o_notebook .tab-pane.active .o_data_row:contains('Olga Other')",
            },
            noErrorDialog,
            screenshot("02a_email_links"),
            {
                content: "Open the Mail menu",
                trigger: ".o_main_navbar .o_menu_sections [data-menu-xmlid='onpipeline_mail.onpipeline_mail_menu_root']",
                run: "click",
            },
            {
                content: "Open Conversations",
                trigger: ".o-dropdown--menu [data-menu-xmlid='onpipeline_mail.onpipeline_mail_conversation_menu']",
                run: "click",
            },
            {
                content: "The conversation of the email is listed",
                trigger: `.o_list_view .o_data_row:contains('${cfg.subject}')`,
            },
            noErrorDialog,
            screenshot("03_conversations"),
            {
                content: "Open the conversation",
                trigger: `.o_list_view .o_data_row td:contains('${cfg.subject}')`,
                run: "click",
            },
            {
                content: "The conversation opens",
                trigger: `.o_form_view:contains('${cfg.subject}')`,
            },
            noErrorDialog,
            screenshot("04_conversation_form"),
            {
                content: "Open the conversation's Emails tab",
                trigger: ".o_form_view .o_notebook .nav-link:contains('Emails')",
                run: "click",
            },
            {
                content: "The email is listed",
                trigger: `.o_form_view .o_notebook .tab-pane.active .o_data_row:contains('${cfg.subject}')`,
            },
            noErrorDialog,
            {
                content: "Open the Mail menu",
                trigger: ".o_main_navbar .o_menu_sections [data-menu-xmlid='onpipeline_mail.onpipeline_mail_menu_root']",
                run: "click",
            },
            {
                content: "Open My Mailbox",
                trigger: ".o-dropdown--menu [data-menu-xmlid='onpipeline_mail.onpipeline_mailbox_menu_my']",
                run: "click",
            },
            {
                content: "The mailbox opens, connected",
                trigger: ".o_form_view .o_statusbar_status .o_arrow_button_current:contains('Connected')",
            },
            {
                content: "Its email address",
                trigger: `.o_form_view .o_field_widget[name='email'] input:value('${cfg.email}')`,
            },
            noErrorDialog,
            screenshot("05_my_mailbox"),
            {
                content: "Its Emails smart button lists both emails",
                trigger: ".o_form_view .oe_stat_button:has(.o_stat_text:contains('Emails')) .o_stat_value:contains('2')",
                run: "click",
            },
            {
                content: "Both emails are listed",
                trigger: `.o_list_view .o_data_row:contains('${cfg.subject}')`,
            },
            noErrorDialog,
        ];
    },
});
