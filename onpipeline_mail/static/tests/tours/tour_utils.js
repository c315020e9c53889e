/** @odoo-module **/
/* Shared steps of the onpipeline_mail tours.

   The test passes what changes per run (account, ports, passwords) in the
   ``onpipeline_tour`` cookie: JSON, URI-encoded (see tests/test_ui_tours.py). */

import { stepUtils } from "@web_tour/tour_service/tour_utils";

export function tourConfig() {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("onpipeline_tour="));
    if (!cookie) {
        throw new Error("onpipeline_tour cookie missing: start this tour from tests/test_ui_tours.py");
    }
    failOnErrorDialog();
    return JSON.parse(decodeURIComponent(cookie.slice("onpipeline_tour=".length)));
}

/** An error dialog (Access Error, Validation Error, server error...) fails the tour at once, with its
    text: a step that only waits for an element could otherwise pass on the screen under the dialog,
    and a handled server error is not a console error by itself. */
function failOnErrorDialog() {
    if (window.__onpipelineErrorWatch) {
        return;
    }
    const check = () => {
        const dialog = document.querySelector(".o_error_dialog");
        if (dialog && !window.__onpipelineErrorReported) {
            window.__onpipelineErrorReported = true;
            const modal = dialog.closest(".modal-content") || dialog;
            console.error(`Error dialog shown: ${modal.innerText.replace(/\s+/g, " ").trim()}`);
        }
    };
    window.__onpipelineErrorWatch = new MutationObserver(check);
    window.__onpipelineErrorWatch.observe(document.body, { childList: true, subtree: true });
}

/** Open *CRM > <section> > <item>* through the top menu, as a person does. */
export function openCrmMenu(sectionXmlid, itemXmlid, description) {
    return [
        ...stepUtils.goToAppSteps("crm.crm_menu_root", "Open the CRM app"),
        {
            content: `Open the ${description} menu section`,
            trigger: `.o_main_navbar .o_menu_sections [data-menu-xmlid='${sectionXmlid}']`,
            run: "click",
        },
        {
            content: `Open ${description}`,
            trigger: `.o-dropdown--menu [data-menu-xmlid='${itemXmlid}']`,
            run: "click",
        },
    ];
}

/** Open *<section> > <item>* of the app already open. */
export function openMenuItem(sectionXmlid, itemXmlid, description) {
    return [
        {
            content: `Open the menu section of ${description}`,
            trigger: `.o_main_navbar .o_menu_sections [data-menu-xmlid='${sectionXmlid}']`,
            run: "click",
        },
        {
            content: `Open ${description}`,
            trigger: `.o-dropdown--menu [data-menu-xmlid='${itemXmlid}']`,
            run: "click",
        },
    ];
}

/** A screenshot of the screen as it is now (only when the test asks for them). */
export function screenshot(name) {
    return {
        content: `Screenshot: ${name}`,
        trigger: "body",
        run: async () => {
            if (tourConfig().screenshots) {
                console.log(`onpipeline-screenshot ${name}`);
                // The test captures the page asynchronously: let it before the next step acts.
                await new Promise((resolve) => setTimeout(resolve, 700));
            }
        },
    };
}

/** Type into a field widget of the open form. */
export function editField(name, value, description) {
    return {
        content: description || `Type ${name}`,
        trigger: `.o_form_view .o_field_widget[name='${name}'] input`,
        run: `edit ${value}`,
    };
}

export function openTab(label) {
    return {
        content: `Open the ${label} tab`,
        trigger: `.o_form_view .o_notebook .nav-link:contains('${label}')`,
        run: "click",
    };
}

export function saveForm() {
    return [
        {
            content: "Save",
            trigger: ".o_form_view .o_form_button_save",
            run: "click",
        },
        {
            content: "Wait for the save to complete",
            trigger: ".o_form_view .o_form_saved",
        },
    ];
}
