/** @odoo-module **/
/* Flow 1: a salesperson connects their personal mailbox from CRM > Mail > My Mailbox,
   gets the error of a wrong password, fixes it, syncs and finds the email. */

import { registry } from "@web/core/registry";
import { editField, openCrmMenu, openTab, saveForm, screenshot, tourConfig } from "./tour_utils";

registry.category("web_tour.tours").add("onpipeline_mail_my_mailbox", {
    url: "/odoo",
    steps: () => {
        const cfg = tourConfig();
        return [
            ...openCrmMenu("onpipeline_mail.onpipeline_mail_menu_root",
                "onpipeline_mail.onpipeline_mailbox_menu_my", "My Mailbox"),
            {
                content: "A new personal mailbox form opens, editable",
                trigger: ".o_breadcrumb:contains('New mailbox (personal)')",
            },
            {
                content: "The mailbox type says personal",
                trigger: ".o_form_view .o_field_widget[name='mailbox_type']:contains('Personal')",
            },
            screenshot("01_my_mailbox_new"),
            editField("email", cfg.email, "Type the email address"),
            editField("imap_host", "127.0.0.1", "Type the IMAP host"),
            editField("imap_port", cfg.imap_port, "Type the IMAP port"),
            {
                content: "IMAP security: SSL/TLS",
                trigger: ".o_form_view .o_field_widget[name='imap_security'] select",
                run: 'select "ssl"',
            },
            editField("imap_password_input", "not-the-password", "Type a wrong password"),
            openTab("Sending (SMTP)"),
            editField("smtp_host", "127.0.0.1", "Type the SMTP host"),
            editField("smtp_port", cfg.smtp_port, "Type the SMTP port"),
            {
                content: "SMTP security: SSL/TLS",
                trigger: ".o_form_view .o_field_widget[name='smtp_security'] select",
                run: 'select "ssl"',
            },
            screenshot("02_my_mailbox_filled"),
            ...saveForm(),
            {
                content: "The login error shows on the form",
                trigger: ".o_form_view .alert-danger:contains('Cannot connect:')",
            },
            {
                content: "The status says Error",
                trigger: ".o_form_view .o_statusbar_status .o_arrow_button_current:contains('Error')",
            },
            screenshot("03_my_mailbox_wrong_password"),
            openTab("Reading (IMAP)"),
            editField("imap_password_input", cfg.password, "Type the right password"),
            ...saveForm(),
            {
                content: "Connected",
                trigger: ".o_form_view .o_statusbar_status .o_arrow_button_current:contains('Connected')",
            },
            {
                content: "The error is gone",
                trigger: ".o_form_view:not(:has(.alert-danger:visible))",
            },
            openTab("Folders"),
            {
                content: "Inbox is listed and selected",
                trigger: ".o_field_widget[name='folder_ids'] .o_data_row:has(td[name='display_label']:contains('Inbox')) td[name='is_selected'] input:checked",
            },
            {
                content: "Sent is listed and selected",
                trigger: ".o_field_widget[name='folder_ids'] .o_data_row:has(td[name='display_label']:contains('Sent')) td[name='is_selected'] input:checked",
            },
            {
                content: "Drafts is listed, not selected",
                trigger: ".o_field_widget[name='folder_ids'] .o_data_row:has(td[name='display_label']:contains('Drafts')) td[name='is_selected'] input:not(:checked)",
            },
            screenshot("04_my_mailbox_connected_folders"),
            {
                content: "Sync now",
                trigger: ".o_form_view .o_form_statusbar button[name='action_sync_now']",
                run: "click",
            },
            {
                content: "Sync now says what it did",
                trigger: ".o_notification:contains('1 new email')",
            },
            screenshot("05_my_mailbox_synced"),
            {
                content: "The last sync date shows",
                trigger: ".o_form_view .o_field_widget[name='last_sync_date']",
            },
            {
                content: "The Emails smart button counts the synced email",
                trigger: ".o_form_view .oe_stat_button:has(.o_stat_text:contains('Emails')) .o_stat_value:contains('1')",
                run: "click",
            },
            {
                content: "The synced email is listed",
                trigger: `.o_list_view .o_data_row:contains('${cfg.subject}')`,
            },
            screenshot("06_my_mailbox_emails"),
        ];
    },
});
