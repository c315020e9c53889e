/** @odoo-module **/
/* Flow 3: the synced email is in the deal's chatter and under CRM > Mail > Emails; the salesperson
   answers from the deal's chatter (Send message). The test then reads what the SMTP server got. */

import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";
import { openCrmMenu, screenshot, tourConfig } from "./tour_utils";

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
        ];
    },
});
