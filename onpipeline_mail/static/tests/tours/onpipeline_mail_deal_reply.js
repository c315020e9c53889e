/** @odoo-module **/
/* Flow 3: the synced email is in the deal's chatter and under CRM > Mail > Emails; the salesperson
   answers from the deal's chatter (Send message), then from the email itself (Reply, the composer,
   Send). The test then reads what the SMTP server got and what IMAP Sent holds. */

import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";
import { openCrmMenu, openMenuItem, screenshot, tourConfig } from "./tour_utils";

registry.category("web_tour.tours").add("onpipeline_mail_deal_reply", {
    url: "/odoo",
    steps: () => {
        const cfg = tourConfig();
        return [
            ...openCrmMenu("onpipeline_mail.onpipeline_mail_menu_root",
                "onpipeline_mail.onpipeline_mail_message_menu", "Emails"),
            {
                content: "The synced email is listed",
                trigger: `.o_list_view .o_data_row:contains('${cfg.subject}')`,
            },
            screenshot("01_emails_list"),
            ...stepUtils.goToAppSteps("crm.crm_menu_root", "Back to the pipeline"),
            {
                content: "Open the deal",
                trigger: `.o_kanban_record:contains('${cfg.deal}')`,
                run: "click",
            },
            {
                content: "The email is in the deal's chatter, with its subject",
                trigger: `.o-mail-Chatter .o-mail-Message:contains('${cfg.subject}')`,
                run() {
                    this.anchor.scrollIntoView();
                },
            },
            {
                // Odoo shows the body of an email-type message in a shadow root.
                content: "and its body",
                trigger: `.o-mail-Chatter .o-mail-Message:contains('${cfg.subject}') .overflow-x-auto:shadow :contains('${cfg.body}')`,
            },
            screenshot("02_deal_chatter_email"),
            {
                content: "Send message",
                trigger: ".o-mail-Chatter .o-mail-Chatter-sendMessage",
                run: "click",
            },
            {
                content: "The customer is a suggested recipient, checked",
                trigger: ".o-mail-Chatter .o-mail-SuggestedRecipient:contains('Carl Customer') input:checked",
            },
            {
                content: "Write the reply",
                trigger: ".o-mail-Chatter .o-mail-Composer-input",
                run: `edit ${cfg.reply}`,
            },
            screenshot("03_deal_composer"),
            {
                content: "Send",
                trigger: ".o-mail-Chatter .o-mail-Composer-send:enabled",
                run: "click",
            },
            {
                content: "The reply is in the chatter",
                trigger: `.o-mail-Chatter .o-mail-Message-body:contains('${cfg.reply}')`,
            },
            {
                content: "Without an error on the message",
                trigger: `.o-mail-Chatter .o-mail-Message:contains('${cfg.reply}'):not(:has(.fa-envelope.text-danger))`,
            },
            screenshot("04_deal_chatter_reply"),
            ...openMenuItem("onpipeline_mail.onpipeline_mail_menu_root",
                "onpipeline_mail.onpipeline_mail_message_menu", "Emails"),
            {
                content: "Open the customer's email",
                trigger: `.o_list_view .o_data_row td[name='subject']:contains('${cfg.subject}'):not(:contains('Re:'))`,
                run: "click",
            },
            {
                content: "Reply",
                trigger: ".o_form_view .o_form_statusbar button[name='action_reply']",
                run: "click",
            },
            {
                content: "The composer sends from the personal mailbox",
                trigger: `.modal .o_field_widget[name='onpipeline_mailbox_id'] input:value('${cfg.email}')`,
            },
            {
                content: "to the customer",
                trigger: ".modal .o_field_widget[name='partner_ids']:contains('Carl Customer')",
            },
            {
                content: "with the email's subject",
                trigger: `.modal .o_field_widget[name='subject'] input:value('Re: ${cfg.subject}')`,
            },
            screenshot("05a_reply_composer_opened"),
            {
                content: "Write above the quoted email",
                trigger: ".modal .o_field_widget[name='body'] .odoo-editor-editable > p:first-child",
                run: `editor ${cfg.reply2}`,
            },
            screenshot("05_reply_composer"),
            {
                content: "Send",
                trigger: ".modal .o_mail_send:enabled",
                run: "click",
            },
            {
                content: "The composer closes",
                trigger: "body:not(:has(.modal))",
            },
            screenshot("06_after_reply"),
        ];
    },
});
