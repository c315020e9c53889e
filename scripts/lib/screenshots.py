"""Screenshots of the addon's screens, taken in Chromium from a real Odoo 18 server.

Run by scripts/screenshots with Odoo's python, after crm and onpipeline_mail are installed
(with Odoo's demo data) in a fresh database on a private PostgreSQL cluster. This script:

1. starts Dovecot and an SMTP server (engine/testing, through odoo_demo.mail_servers) with a
   mailbox laid out like Exchange (Calendar, Contacts, Tasks... beside Inbox and Sent Items) and a
   few days of a salesperson's mail with the demo customers: a quote thread on a deal, replies,
   a colleague, a newsletter, an unknown prospect;
2. creates that salesperson (Jane Seller, Sales team, group_sale_salesman) and gives her the
   demo deal "Customizable Desk" (Azure Interior, contact Brandon Freeman);
3. starts odoo-bin on a free port and Debian's headless Chromium, logs in as Jane over the
   DevTools protocol (websocket-client) and captures 1400x900 PNGs:
   mailbox-setup.png    My Mailbox, a new mailbox, a Gmail address typed: the preset filled in
   (then, through the ORM as Jane, the real mailbox is created: login checked, folders listed,
   and synced, as the form's save and the scheduled action do)
   mailbox-folders.png  her mailbox's Folders tab
   deal-email.png       the deal, its chatter with the synced emails
   emails.png           CRM > Mail > Emails
   conversations.png    CRM > Mail > Conversations
4. stops Chromium, Odoo and the mail servers (the wrapper stops PostgreSQL).

PNGs over --max-bytes are reduced to a 256-colour palette with ImageMagick's convert.
What a screen shows that a user should not see (an error dialog or notification, a raw "false",
an empty list) is printed as a warning after its capture.
"""

import argparse
import base64
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import odoo_demo  # noqa: E402  (scripts/lib, beside this file)

WIDTH, HEIGHT = 1400, 900
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--mute-audio", "--disable-extensions", "--disable-default-apps", "--force-device-scale-factor=1",
                  "--lang=en-US")

USER_NAME, USER_LOGIN, USER_PASSWORD = "Jane Seller", "jane", "jane-screens"
ADDRESS, MAIL_PASSWORD = "jane.seller@yourcompany.example.com", "mailbox-password"
JANE = (USER_NAME, ADDRESS)
#: What Jane types in the setup screenshot: a provider the presets know.
SETUP_ADDRESS = "jane.seller@gmail.com"
SIGNATURE = "Jane Seller\nSales, YourCompany\n+1 555-0142"


class MenuMissingError(Exception):
    """A menu item the screenshot goes through is not in this version of the addon."""


def log(message):
    print("screenshots: %s" % message, flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- sample mail -------------------------------------------------------------------------------

def _pdf(title):
    """A small valid one-page PDF showing ``title``."""
    text = title.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = ("BT /F1 18 Tf 72 760 Td (%s) Tj ET" % text).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _html(text):
    paragraphs = text.strip().split("\n\n")
    return "<html><body>%s</body></html>" % "".join(
        "<p>%s</p>" % paragraph.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>")
        for paragraph in paragraphs)


def sample_mail(now):
    """(folder, raw message, date) for Jane's last days of mail, oldest first."""
    from odoo.addons.onpipeline_mail.engine.testing import mailgen

    brandon = ("Brandon Freeman", "brandon.freeman55@example.com")
    nicole = ("Nicole Ford", "nicole.ford75@example.com")
    douglas = ("Douglas Fletcher", "douglas.fletcher51@example.com")
    billy = ("Billy Fox", "billy.fox45@example.com")
    edwin = ("Edwin Hansen", "edwin.hansen58@example.com")
    marc = ("Marc Demo", "mark.brown23@example.com")
    expo = ("Office Furniture Expo", "no-reply@furniture-expo.example.com")
    henry = ("Henry Campbell", "henry@elight.com")

    def at(days_ago, hour, minute):
        day = (now - datetime.timedelta(days=days_ago)).date()
        return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=datetime.timezone.utc)

    mails = []

    def mail(key, sender, to, days_ago, hour, minute, subject, text, parent=None, cc=(), attachments=()):
        date = at(days_ago, hour, minute)
        message_id = "<%s.%s@%s>" % (key, date.strftime("%Y%m%d%H%M"), sender[1].split("@")[1])
        references = ()
        if parent:
            references = parent["references"] + (parent["message_id"],)
        raw = mailgen.build_message(
            sender=sender, to=to, cc=cc, subject=subject, date=date, message_id=message_id, text=text,
            html=_html(text), attachments=attachments, in_reply_to=parent["message_id"] if parent else "",
            references=references)
        folder = "Sent Items" if sender == JANE else "INBOX"
        entry = {"folder": folder, "raw": raw, "date": date, "message_id": message_id, "references": references}
        mails.append(entry)
        return entry

    quote = "Height-adjustable desks for our new office"
    first = mail("desks-1", brandon, (JANE,), 9, 8, 47, quote, (
        "Hi Jane,\n\nThank you for the call this morning. As discussed, we move into our new office on the "
        "third floor next month and need 24 height-adjustable desks (160 x 80 cm, oak top, white frame) "
        "for the open space.\n\nCould you send us a quotation, with delivery and assembly?\n\n"
        "Best regards,\nBrandon Freeman\nFacilities Manager, Azure Interior"))
    reply = mail("desks-2", JANE, (brandon,), 8, 13, 12, "Re: " + quote, (
        "Hi Brandon,\n\nThanks again for your time yesterday. Please find attached our quotation "
        "S00042 for 24 height-adjustable desks, oak top and white frame, delivered and assembled.\n\n"
        "Delivery takes three weeks from your order. The price holds for 30 days.\n\n"
        "Best regards,\n" + SIGNATURE), parent=first,
        attachments=(("Quotation S00042.pdf", "application/pdf", _pdf("Quotation S00042 - 24 desks")),))
    mail("desks-3", brandon, (JANE,), 2, 9, 5, "Re: " + quote, (
        "Hi Jane,\n\nThank you for the quotation, it fits our budget. Two questions before we sign:\n\n"
        "1. Can the desks come with a cable tray?\n2. Could you deliver in two batches: 12 desks on the "
        "15th and 12 the week after?\n\nI copy Nicole, who handles the purchase order.\n\n"
        "Best regards,\nBrandon"), parent=reply, cc=(nicole,))

    visit = "Open space project: site visit"
    douglas_first = mail("visit-1", douglas, (JANE,), 6, 10, 20, visit, (
        "Hello Jane,\n\nOur architect would like to walk through the open space with you before we "
        "choose the layout. Would Thursday at 10:00 suit you?\n\nKind regards,\nDouglas Fletcher\nDeco Addict"))
    mail("visit-2", JANE, (douglas,), 6, 11, 2, "Re: " + visit, (
        "Hello Douglas,\n\nThursday at 10:00 is perfect, I will bring the fabric and finish samples.\n\n"
        "See you then,\n" + SIGNATURE), parent=douglas_first)

    contract = "Distributor contract: signed copy"
    sent_contract = mail("contract-1", JANE, (edwin,), 5, 15, 40, contract, (
        "Dear Edwin,\n\nPlease find attached the distributor contract signed by our director. "
        "Welcome on board!\n\nBest regards,\n" + SIGNATURE),
        attachments=(("Distributor contract - Gemini Furniture.pdf", "application/pdf",
                      _pdf("Distributor contract - Gemini Furniture")),))
    mail("contract-2", edwin, (JANE,), 4, 9, 31, "Re: " + contract, (
        "Dear Jane,\n\nReceived, thank you. Our first order follows next week.\n\nBest,\nEdwin Hansen\n"
        "Gemini Furniture"), parent=sent_contract)

    mail("delivery-1", billy, (JANE,), 3, 14, 55, "Delivery address for the 10 computer desks", (
        "Hi Jane,\n\nPlease deliver the computer desks to our warehouse, not to the head office:\n"
        "Ready Mat, Dock 4, 7500 W Linne Road, Tracy, CA 95304.\n\nThe dock is open 8:00 to 16:00.\n\n"
        "Thanks,\nBilly Fox"))
    mail("expo-1", expo, (JANE,), 3, 7, 0, "Your badge for Office Furniture Expo 2027", (
        "Hello Jane Seller,\n\nYour visitor badge is ready. Show it at the entrance, hall B.\n\n"
        "The Office Furniture Expo team\n(This is an automatic message, please do not reply.)"))
    mail("showroom-1", henry, (JANE,), 1, 16, 12, "Showroom visit for a modern open space", (
        "Good afternoon,\n\nWe are furnishing a 400 m2 open space in Brussels and would like to see your "
        "desks and acoustic panels. Could we visit your showroom next week?\n\nHenry Campbell\nElight"))
    mail("cabletray-1", marc, (JANE,), 1, 9, 40, "Cable trays for Azure Interior", (
        "Hi Jane,\n\nFor Brandon's question: the cable tray adds 35 per desk, and the warehouse can split "
        "the delivery in two batches without extra cost.\n\nMarc"))
    return sorted(mails, key=lambda entry: entry["date"])


# --- Odoo data ---------------------------------------------------------------------------------

def create_user_and_deal(env):
    """Jane Seller, salesperson of the Sales team, owner of the deal "Customizable Desk"; returns
    (user, lead)."""
    team = env.ref("sales_team.team_sales_department")
    user = env["res.users"].with_context(no_reset_password=True, mail_create_nosubscribe=True).create({
        "name": USER_NAME, "login": USER_LOGIN, "password": USER_PASSWORD, "email": ADDRESS, "tz": "UTC",
        "groups_id": [(6, 0, [env.ref("base.group_user").id, env.ref("sales_team.group_sale_salesman").id])],
    })
    # No onboarding tour nor OdooBot chat window over the screens.
    for field, value in (("tour_enabled", False), ("odoobot_state", "disabled")):
        if field in user._fields:
            user[field] = value
    team.member_ids = [(4, user.id)]
    brandon = env["res.partner"].search([("email", "=", "brandon.freeman55@example.com")], limit=1)
    lead = env.ref("crm.crm_case_19")  # Customizable Desk, Azure Interior, in Proposition
    lead.activity_ids.unlink()  # the demo's overdue call for Marc Demo
    lead.with_context(mail_auto_subscribe_no_notify=True).write({"user_id": user.id, "team_id": team.id, **({"partner_id": brandon.id} if brandon else {})})
    return user, lead


def create_mailbox(env, user, dovecot, smtp):
    """Jane's mailbox, created as Jane (the login is checked and the folders listed on create), then
    synced; returns it."""
    mailbox = env["onpipeline.mailbox"].with_user(user).create({
        "email": ADDRESS, "sync_window": "1m", **odoo_demo.mailbox_server_values(dovecot, smtp, MAIL_PASSWORD),
    })
    if mailbox.state != "connected":
        raise RuntimeError("the mailbox did not connect: %s" % mailbox.last_error)
    mailbox.sudo()._sync(commit=env.cr.commit)
    mailbox.invalidate_recordset()
    return mailbox


# --- Odoo server -------------------------------------------------------------------------------

@contextlib.contextmanager
def odoo_server(args, port):
    """odoo-bin serving the database on 127.0.0.1:port, stopped on exit."""
    logfile = open(os.path.join(args.work, "odoo-server.log"), "wb")
    command = [sys.executable, args.odoo_bin, "-c", os.devnull, "-d", args.db, "--db-filter", "^%s$" % args.db,
               "--db_host", "127.0.0.1", "--db_port", args.db_port, "--db_user", "odoo",
               "--addons-path", args.addons_path, "--data-dir", args.data_dir, "--http-interface", "127.0.0.1",
               "--http-port", str(port), "--gevent-port", str(free_port()), "--max-cron-threads", "0",
               "--workers", "0", "--log-level", "warn"]
    process = subprocess.Popen(command, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http("http://127.0.0.1:%d/web/login" % port, process, "Odoo", timeout=120)
        yield "http://127.0.0.1:%d" % port
    finally:
        stop_process(process, "Odoo")
        logfile.close()


def wait_http(url, process, name, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("%s exited with code %s (see its log in the work folder)" % (name, process.returncode))
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise RuntimeError("%s did not answer %s within %d s" % (name, url, timeout))


def stop_process(process, name):
    """SIGTERM the process group started for ``process`` (start_new_session), SIGKILL after 15 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        log("%s did not stop on SIGTERM, killing it" % name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


# --- Chromium over the DevTools protocol -------------------------------------------------------

class Browser:
    """One headless Chromium page driven over CDP; events are read and dropped."""

    def __init__(self, chromium, work):
        import websocket

        self.port = free_port()
        self.profile = os.path.join(work, "chromium-profile")
        self.logfile = open(os.path.join(work, "chromium.log"), "wb")
        command = [chromium, *CHROMIUM_FLAGS, "--remote-debugging-address=127.0.0.1",
                   "--remote-debugging-port=%d" % self.port, "--user-data-dir=%s" % self.profile,
                   "--window-size=%d,%d" % (WIDTH, HEIGHT), "about:blank"]
        self.process = subprocess.Popen(command, stdout=self.logfile, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.socket = None
        try:
            wait_http("http://127.0.0.1:%d/json/version" % self.port, self.process, "Chromium", timeout=30)
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % self.port, timeout=5) as response:
                pages = [target for target in json.load(response) if target["type"] == "page"]
            self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                                      suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                  mobile=False)

    def close(self):
        if self.socket is not None:
            with contextlib.suppress(Exception):
                self.socket.close()
        stop_process(self.process, "Chromium")
        self.logfile.close()

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError("%s: %s" % (method, message["error"]))
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError("javascript failed: %s\n%s" % (
                result["exceptionDetails"].get("exception", {}).get("description"), expression))
        return result["result"].get("value")

    def wait_for(self, expression, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError("timed out waiting for %s" % what)

    def goto(self, url):
        # The old page is complete too until the new one replaces it: mark it, wait for the mark to go.
        self.evaluate("window.__screenshotsOldPage = true")
        self.call("Page.navigate", url=url)
        self.wait_for("!window.__screenshotsOldPage && document.readyState === 'complete'", "the page %s" % url)

    def dump(self, path):
        """For a failure: what the page shows, and where it is."""
        with contextlib.suppress(Exception):
            self.screenshot(path)
            log("  the page at the failure (%s): %s" % (self.evaluate("location.href"), path))
            for problem in self.problems():
                log("  %s" % problem)

    def wait_idle(self, selector, what, settle=1.0):
        """Wait for the web client, ``selector`` and no RPC in progress, then let it paint."""
        self.wait_for("!!(window.odoo && odoo.isReady && document.querySelector(%s))" % json.dumps(selector), what)
        time.sleep(0.3)
        self.wait_for("!document.querySelector('.o_loading_indicator, .o_blockUI')", "the end of loading")
        time.sleep(settle)

    def scroll_to(self, selector, margin):
        """Scroll the view's content so that ``selector`` is ``margin`` pixels below its top."""
        self.evaluate("""(() => {
            const target = document.querySelector(%s);
            const content = document.querySelector('.o_action_manager .o_content');
            content.scrollTop += target.getBoundingClientRect().top - content.getBoundingClientRect().top - %d;
        })()""" % (json.dumps(selector), margin))
        time.sleep(1.0)

    def click(self, selector):
        self.evaluate("document.querySelector(%s).click()" % json.dumps(selector))

    def type_into(self, selector, text):
        """Focus the input, type as a keyboard would (input events), then commit it (change)."""
        self.evaluate("(el => { el.focus(); el.select && el.select(); })(document.querySelector(%s))"
                      % json.dumps(selector))
        self.call("Input.insertText", text=text)
        self.evaluate("document.querySelector(%s).dispatchEvent(new Event('change', {bubbles: true}))"
                      % json.dumps(selector))

    def screenshot(self, path):
        self.evaluate("document.activeElement && document.activeElement.blur && document.activeElement.blur()")
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def problems(self):
        """What the page shows that a user should not see."""
        return self.evaluate(r"""(() => {
            const out = [];
            const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
            const text = el => el.innerText.replace(/\s+/g, ' ').trim().slice(0, 200);
            for (const el of document.querySelectorAll('.o_error_dialog, .o_dialog .modal-title')) {
                if (visible(el)) out.push('dialog: ' + text(el));
            }
            for (const el of document.querySelectorAll('.o_notification')) {
                if (visible(el)) out.push('notification: ' + text(el));
            }
            for (const el of document.querySelectorAll('.o_view_nocontent')) {
                if (visible(el)) out.push('empty state: ' + text(el));
            }
            // Cut text: headers, badges, tags and inputs narrower than what they hold; list cells
            // counted per column.
            const cut = el => el.scrollWidth > el.clientWidth + 1;
            for (const el of document.querySelectorAll(
                    'th, th span, .badge, .o_tag, .o_field_widget input, .o_breadcrumb .active, .o_statusbar_status button')) {
                if (visible(el) && cut(el)) out.push('cut: "' + (el.value || text(el)) + '" (' + el.tagName.toLowerCase()
                                                     + (el.closest('[name]') ? ' in ' + el.closest('[name]').getAttribute('name') : '') + ')');
            }
            for (const table of document.querySelectorAll('.o_list_table')) {
                if (!visible(table)) continue;
                const headers = [...table.querySelectorAll('thead th')].map(th => text(th));
                const counts = {};
                for (const row of table.querySelectorAll('tbody tr.o_data_row')) {
                    [...row.children].forEach((td, index) => {
                        if (visible(td) && td.innerText.trim() && cut(td)) counts[index] = (counts[index] || 0) + 1;
                    });
                }
                const rows = table.querySelectorAll('tbody tr.o_data_row').length;
                for (const [index, count] of Object.entries(counts)) {
                    out.push('cut: ' + count + ' of ' + rows + ' cells of the column "' + (headers[index] || index) + '"');
                }
            }
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            while (walker.nextNode()) {
                const node = walker.currentNode, value = node.textContent.trim();
                if (/^(false|none|null|undefined|nan)$/i.test(value) && node.parentElement
                        && visible(node.parentElement)) {
                    out.push('raw value "' + value + '" in ' + node.parentElement.className);
                }
            }
            return out;
        })()""")


# --- the screens -------------------------------------------------------------------------------

def login(browser, base_url):
    browser.goto(base_url + "/web/login")
    browser.wait_for("!!document.querySelector('input[name=login]')", "the login form")
    browser.evaluate("""(() => {
        document.querySelector('input[name=login]').value = %s;
        document.querySelector('input[name=password]').value = %s;
        document.querySelector('form.oe_login_form').submit();
    })()""" % (json.dumps(USER_LOGIN), json.dumps(USER_PASSWORD)))
    browser.wait_for("location.pathname.startsWith('/odoo') && document.readyState === 'complete'",
                     "the web client after login")
    browser.wait_idle(".o_main_navbar", "the web client")


def open_menu(browser, base_url, item, section="onpipeline_mail.onpipeline_mail_menu_root"):
    """CRM > Mail > item, clicked in the navbar as a user does."""
    browser.goto(base_url + "/odoo/crm")
    browser.wait_idle(".o_main_navbar button[data-menu-xmlid=%s]" % json.dumps(section), "the CRM app's menu")
    browser.click(".o_main_navbar button[data-menu-xmlid=%s]" % json.dumps(section))
    selector = ".dropdown-menu [data-menu-xmlid=%s]" % json.dumps(item)
    try:
        browser.wait_for("!!document.querySelector(%s)" % json.dumps(selector), "the menu item", timeout=10)
    except TimeoutError as exc:
        raise MenuMissingError("no menu item %s under CRM > Mail" % item) from exc
    browser.click(selector)
    time.sleep(0.5)


def capture(browser, out_dir, name, max_bytes, report):
    path = os.path.join(out_dir, name)
    browser.screenshot(path)
    problems = browser.problems()
    size = shrink_png(path, max_bytes)
    log("%s (%d KB)" % (path, size // 1024))
    for problem in problems:
        log("  WARNING %s: %s" % (name, problem))
    report[name] = problems


def shrink_png(path, max_bytes):
    """Strip the PNG; reduce it to a 256-colour palette if it is still over ``max_bytes``."""
    convert = shutil.which("convert")
    if convert:
        subprocess.run([convert, path, "-strip", "-define", "png:compression-level=9", path], check=True)
        if os.path.getsize(path) > max_bytes:
            subprocess.run([convert, path, "-strip", "-dither", "None", "-colors", "256",
                            "-define", "png:compression-level=9", "PNG8:" + path], check=True)
    size = os.path.getsize(path)
    if size > max_bytes:
        log("  WARNING %s is %d KB, over %d KB%s" % (os.path.basename(path), size // 1024, max_bytes // 1024,
                                                    "" if convert else " (no ImageMagick convert to reduce it)"))
    return size


def shot_setup(browser, base_url, out_dir, max_bytes, report):
    """My Mailbox before any mailbox: a new form; the address typed fills the provider preset."""
    open_menu(browser, base_url, "onpipeline_mail.onpipeline_mailbox_menu_my")
    browser.wait_idle(".o_form_view .o_field_widget[name=email] input", "the new mailbox form")
    browser.type_into(".o_field_widget[name=email] input", SETUP_ADDRESS)
    browser.wait_for("!!document.querySelector('.o_field_widget[name=imap_host] input')?.value",
                     "the provider preset to fill the IMAP host")
    browser.type_into(".o_field_widget[name=imap_password_input] input", "abcd efgh ijkl mnop")
    browser.wait_idle(".o_form_view", "the form after typing")
    capture(browser, out_dir, "mailbox-setup.png", max_bytes, report)
    # Discard, so that leaving the page does not save it (the web client saves a dirty form on unload).
    browser.click(".o_form_button_cancel")
    browser.wait_for("!document.querySelector('.o_field_widget[name=email] input')?.value",
                     "the form to be discarded", timeout=20)
    time.sleep(0.5)


def shot_folders(browser, base_url, out_dir, max_bytes, report):
    open_menu(browser, base_url, "onpipeline_mail.onpipeline_mailbox_menu_my")
    browser.wait_idle(".o_form_view .o_notebook", "the mailbox form")
    browser.click(".o_notebook_headers a[name=folders]")
    browser.wait_idle(".o_field_widget[name=folder_ids] .o_data_row", "the Folders tab")
    # The tabs at the top: the folder list down to Contacts fits under them.
    browser.scroll_to(".o_form_view .o_notebook", 8)
    capture(browser, out_dir, "mailbox-folders.png", max_bytes, report)


def shot_deal(browser, base_url, lead_id, out_dir, max_bytes, report):
    browser.goto(base_url + "/odoo/crm/%d" % lead_id)
    browser.wait_idle(".o_form_view .o-mail-Chatter .o-mail-Message", "the deal's chatter")
    # The chatter is under the form at this width: scroll it up to the top.
    browser.scroll_to(".o-mail-Chatter", 8)
    capture(browser, out_dir, "deal-email.png", max_bytes, report)


def shot_list(browser, base_url, menu, name, out_dir, max_bytes, report):
    try:
        open_menu(browser, base_url, menu)
    except MenuMissingError as exc:
        log("WARNING %s not taken: %s" % (name, exc))
        report[name] = ["not taken: %s" % exc]
        return
    browser.wait_idle(".o_list_view .o_data_row, .o_list_view .o_group_header, .o_view_nocontent",
                      "the list of %s" % menu)
    capture(browser, out_dir, name, max_bytes, report)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--odoo-bin", required=True)
    parser.add_argument("--odoo-dir", required=True)
    parser.add_argument("--addons-path", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--db-port", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--max-bytes", type=int, default=250_000)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    odoo = odoo_demo.load_odoo(args.odoo_dir, args.addons_path, args.db_port, args.data_dir)
    from odoo import SUPERUSER_ID, api
    from odoo.addons.onpipeline_mail.engine.testing import mailgen

    report = {}
    registry = odoo.modules.registry.Registry(args.db)
    now = datetime.datetime.now(datetime.timezone.utc)
    with odoo_demo.mail_servers(args.work, ADDRESS, MAIL_PASSWORD, "exchange") as (dovecot, smtp, account):
        mails = sample_mail(now)
        for folder in ("INBOX", "Sent Items"):
            mailgen.append_messages(account, folder, [(m["raw"], m["date"]) for m in mails if m["folder"] == folder])
        log("Dovecot on 127.0.0.1:%s, SMTP on 127.0.0.1:%s; %d emails in INBOX and Sent Items of %s" % (
            dovecot.tls_port, smtp.tls_port, len(mails), ADDRESS))
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            # Trust the test servers' private CA, as Settings > CRM > Mailboxes allows.
            with open(dovecot.ca_file) as ca_file:
                env["ir.config_parameter"].set_param("onpipeline_mail.extra_ca_pem", ca_file.read())
            user, lead = create_user_and_deal(env)
            lead_id = lead.id
            cr.commit()
        with odoo_server(args, free_port()) as base_url:
            log("Odoo on %s, Chromium %s" % (base_url, args.chromium))
            browser = Browser(args.chromium, args.work)
            try:
                login(browser, base_url)
                shot_setup(browser, base_url, args.out, args.max_bytes, report)
                with registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    user = env["res.users"].search([("login", "=", USER_LOGIN)])
                    if env["onpipeline.mailbox"].search_count([("user_id", "=", user.id)]):
                        raise RuntimeError("the setup form was saved instead of discarded")
                    mailbox = create_mailbox(env, user, dovecot, smtp)
                    log("mailbox %s: %s, %d folders (%d selected), %d emails synced" % (
                        mailbox.email, mailbox.state, len(mailbox.folder_ids), mailbox.selected_folder_count,
                        mailbox.message_count))
                    cr.commit()
                shot_folders(browser, base_url, args.out, args.max_bytes, report)
                shot_deal(browser, base_url, lead_id, args.out, args.max_bytes, report)
                shot_list(browser, base_url, "onpipeline_mail.onpipeline_mail_message_menu", "emails.png",
                          args.out, args.max_bytes, report)
                shot_list(browser, base_url, "onpipeline_mail.onpipeline_mail_conversation_menu",
                          "conversations.png", args.out, args.max_bytes, report)
            except Exception:
                browser.dump(os.path.join(args.work, "failure.png"))
                raise
            finally:
                browser.close()
    warnings = sum(len(problems) for problems in report.values())
    log("%d screenshots in %s, %d warnings" % (len(report), args.out, warnings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
