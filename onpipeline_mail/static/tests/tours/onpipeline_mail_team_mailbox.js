/** @odoo-module **/
/* Flow 2: a CRM admin (not a system admin) connects a team's mailbox from the Sales Team form. */

import { registry } from "@web/core/registry";
import { editField, openCrmMenu, openTab, saveForm, screenshot, tourConfig } from "./tour_utils";

registry.category("web_tour.tours").add("onpipeline_mail_team_mailbox", {
    url: "/odoo",
    steps: () => {
        const cfg = tourConfig();
        return [
            ...openCrmMenu("crm.crm_menu_config", "crm.crm_team_config", "Configuration > Sales Teams"),
            {
                content: `Open the ${cfg.team} team`,
                trigger: `.o_list_view .o_data_row td[name='name']:contains('${cfg.team}')`,
                run: "click",
            },
            {
                content: "The team form offers to connect a mailbox",
                trigger: ".o_form_view .oe_stat_button:contains('Connect Mailbox')",
            },
            screenshot("01_team_form_connect"),
            {
                content: "Connect Mailbox",
                trigger: ".o_form_view .oe_stat_button:contains('Connect Mailbox')",
                run: "click",
            },
            {
                content: "A team mailbox form opens for the team",
                trigger: `.o_form_view .o_field_widget[name='team_id'] input:value('${cfg.team}'), .o_form_view .o_field_widget[name='team_id']:contains('${cfg.team}')`,
            },
            {
                content: "Its type is Sales Team",
                trigger: ".o_form_view .o_field_widget[name='mailbox_type']:contains('Sales Team')",
            },
            screenshot("02_team_mailbox_new"),
            editField("email", cfg.email, "Type the team's email address"),
            editField("imap_host", "127.0.0.1", "Type the IMAP host"),
            editField("imap_port", cfg.imap_port, "Type the IMAP port"),
            editField("imap_password_input", cfg.password, "Type the password"),
            openTab("Sending (SMTP)"),
            editField("smtp_host", "127.0.0.1", "Type the SMTP host"),
            editField("smtp_port", cfg.smtp_port, "Type the SMTP port"),
            ...saveForm(),
            {
                content: "Connected",
                trigger: ".o_form_view .o_statusbar_status .o_arrow_button_current:contains('Connected')",
            },
            openTab("Folders"),
            {
                content: "Inbox is listed and selected",
                trigger: ".o_field_widget[name='folder_ids'] .o_data_row:has(td[name='display_label']:contains('Inbox')) td[name='is_selected'] input:checked",
            },
            screenshot("03_team_mailbox_connected"),
            {
                content: "Back to the team",
                trigger: `.o_breadcrumb .breadcrumb-item a:contains('${cfg.team}')`,
                run: "click",
            },
            {
                content: "The team form now opens its mailbox",
                trigger: ".o_form_view .oe_stat_button:contains('Team Mailbox')",
            },
            {
                content: "Connect Mailbox is gone",
                trigger: ".o_form_view:not(:has(.oe_stat_button:contains('Connect Mailbox')))",
            },
            screenshot("04_team_form_with_mailbox"),
        ];
    },
});
