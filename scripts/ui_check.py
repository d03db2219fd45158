"""The cmdb web UI in chromium, driven by Selenium (run by ui-check.sh).

Each step waits on what the page shows (an element, a text), never on a
fixed time. Fails with the step's name and what was seen.
"""

import json
import os
import subprocess
import sys

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["UI_BASE"]
SHOTS = os.environ["UI_SHOTS"]
ADMIN_PW = os.environ["UI_ADMIN_PW"]
READER_PW = os.environ["UI_READER_PW"]
CMDB_KEY = os.environ["CMDB_KEY"]
CONFIG = os.environ["CMDB_CONFIG"]
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']


def browser(width, height):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", f"--window-size={width},{height}",
                "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    if width < 500:
        # Chrome's windows are at least 500 px wide; a phone is emulated.
        opts.add_experimental_option(
            "mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}})
    opts.accept_insecure_certs = True
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait(d, cond, what, secs=20):
    try:
        return WebDriverWait(d, secs, ignored_exceptions=[StaleElementReferenceException]).until(cond)
    except TimeoutException:
        shot(d, "failed-" + what.replace(" ", "-"))
        sys.exit(f"FAILED: {what}\n--- page ---\n{d.page_source[:4000]}")


def check(ok, what, d=None):
    if not ok:
        if d is not None:
            shot(d, "failed-" + what.replace(" ", "-"))
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def shot(d, name):
    d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def no_alert(d, where):
    try:
        d.switch_to.alert
    except NoAlertPresentException:
        return
    sys.exit(f"FAILED: a dialog opened on {where}: the page ran injected script")


def login(d, user, password):
    d.delete_all_cookies()
    d.get(BASE + "/ui/login")
    wait(d, EC.presence_of_element_located((By.ID, "user")), "the login form")
    d.find_element(By.ID, "user").send_keys(user)
    d.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "header .who")), f"{user} logged in")


def posting_forms(d):
    return [f.get_attribute("action") for f in d.find_elements(By.CSS_SELECTOR, "form")
            if (f.get_attribute("method") or "").lower() == "post"]


def main():
    d = browser(1280, 900)
    try:
        d.get(BASE + "/ui/login")
        wait(d, EC.presence_of_element_located((By.ID, "user")), "the login form")
        shot(d, "01-login")
        login(d, "ada", ADMIN_PW)
        d.get(BASE + "/ui")
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "figure.chart svg")), "the dashboard's charts")
        check("3 assets" in d.find_element(By.TAG_NAME, "h1").text or "2 assets" in d.find_element(By.TAG_NAME, "h1").text,
              "the dashboard counts the fleet", d)
        no_alert(d, "the dashboard")
        shot(d, "02-dashboard")
        # Keyboard: the first Tab reaches the skip link, and focus shows.
        ActionChains(d).send_keys(Keys.TAB).perform()
        focused = d.switch_to.active_element
        check(focused.get_attribute("class") == "skip",
              f"the first Tab reaches the skip link (got {focused.tag_name} {focused.get_attribute('outerHTML')[:80]})", d)
        outline = d.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
        check(outline not in ("", "none"), f"focus is visible (outline {outline})", d)


        # The assets page lists the fleet; a query narrows it.
        d.get(BASE + "/ui/assets")
        rows = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#assets tbody tr[data-minion]"), "the assets list")
        names = {r.get_attribute("data-minion") for r in rows}
        check({"web01", "db01"} <= names, f"the assets page lists the fleet ({sorted(names)})", d)
        shot(d, "03-assets")
        q = d.find_element(By.ID, "q")
        q.clear()
        q.send_keys("department = finance" + Keys.ENTER)
        wait(d, lambda d: [r.get_attribute("data-minion") for r in d.find_elements(By.CSS_SELECTOR, "#assets tbody tr")] == ["db01"],
             "a query narrows the list to db01")
        check("q=department" in d.current_url, "the query is in the address bar", d)
        shot(d, "04-assets-query")
        d.get(BASE + "/ui/assets?q=" + "name%20~%20%27zz*%27")
        wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#assets tbody"), "No asset matches"), "an empty result says so")
        d.get(BASE + "/ui/assets?q=facts.num_cpus%20%3E%3D")
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "pre.error")), "a query error is shown")
        check("column" in d.find_element(By.CSS_SELECTOR, "pre.error").text, "the error points at a column", d)
        shot(d, "05-assets-query-error")

        # An asset: facts tree with the hostile values as text, history.
        d.get(BASE + "/ui/assets/web01")
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "ul.tree")), "the facts tree")
        no_alert(d, "the asset page")
        page_text = d.find_element(By.TAG_NAME, "body").text
        for payload in XSS:
            check(payload in page_text, f"{payload!r} shows as text on the asset page", d)
        check(not d.find_elements(By.CSS_SELECTOR, "main img"), "no injected image element", d)
        shot(d, "06-asset")

        # The history shows the plugin's change; side by side.
        link = wait(d, lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, "ol.timeline a") if a.text == "diff"],
                    "a diff link in the history")[0]
        link.click()
        table = wait(d, EC.presence_of_element_located((By.ID, "diff")), "the side-by-side diff")
        rows = [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
        check(any(r[0].endswith("inlet_temp_c") and r[1] == "21" and r[2] == "25" for r in rows),
              f"the plugin's change shows side by side ({rows})", d)
        shot(d, "07-diff")

        # Keys: accept the pending one after a confirmation with its fingerprint.
        d.get(BASE + "/ui/keys")
        row = wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "tr.key-pending")), "a pending key")
        fp = row.find_element(By.CSS_SELECTOR, "code.fp").text
        shot(d, "08-keys")
        row.find_element(By.LINK_TEXT, "Accept").click()
        wait(d, EC.presence_of_element_located((By.ID, "confirm")), "the confirmation page")
        check(d.find_element(By.ID, "fingerprint").text == fp, "the confirmation shows the fingerprint", d)
        shot(d, "09-key-confirm")
        d.find_element(By.ID, "confirm").click()
        wait(d, EC.presence_of_element_located((By.ID, "keys")), "back on the keys page")
        listing = json.loads(subprocess.check_output([CMDB_KEY, "-c", CONFIG, "-L", "--out", "json"]))
        check("new01" in listing.get("minions", []), f"new01 is accepted ({listing})")

        # Jobs: the target preview, then live returns.
        d.get(BASE + "/ui/jobs")
        target = wait(d, EC.presence_of_element_located((By.ID, "target")), "the run form")
        target.send_keys("web01,db01")
        d.find_element(By.ID, "target_type").send_keys("list")
        wait(d, lambda d: "2 minions" in d.find_element(By.ID, "preview").text, "the preview names who will run it")
        shot(d, "10-jobs-preview")
        d.find_element(By.ID, "fun").send_keys("test.sleep")
        d.find_element(By.ID, "args").send_keys("2")
        d.find_element(By.CSS_SELECTOR, "form#run button.primary").click()
        wait(d, EC.presence_of_element_located((By.ID, "returns")), "the job page")
        wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#returns tr.arrived")) == 2,
             "both returns arrive live on the open page")
        wait(d, EC.text_to_be_present_in_element((By.ID, "live"), "Every minion returned"), "the job is done")
        shot(d, "11-job-live")
        d.get(BASE + "/ui/jobs")
        shot(d, "12-jobs")
        d.get(BASE + "/ui/changes?since=7d")
        wait(d, EC.presence_of_element_located((By.ID, "changes")), "the change feed")
        no_alert(d, "the change feed")
        shot(d, "13-changes")
        d.get(BASE + "/ui/audit")
        wait(d, EC.presence_of_element_located((By.ID, "audit")), "the audit")
        shot(d, "14-audit")

        # A reader: no write controls anywhere, no keys page.
        login(d, "rex", READER_PW)
        for path in ("/ui", "/ui/assets", "/ui/assets/web01", "/ui/jobs", "/ui/changes", "/ui/audit"):
            d.get(BASE + path)
            wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "main h1")), f"reader sees {path}")
            no_alert(d, path)
            writes = [a for a in posting_forms(d) if not a.endswith("/ui/logout") and "/ui/views" not in a]
            check(not writes, f"a reader's {path} has no form that writes ({writes})", d)
            check(not d.find_elements(By.LINK_TEXT, "Keys"), f"a reader's {path} has no keys link", d)
        d.get(BASE + "/ui/assets/web01")
        shot(d, "15-asset-as-reader")
    finally:
        d.quit()

    # A phone.
    p = browser(390, 844)
    try:
        login(p, "ada", ADMIN_PW)
        p.get(BASE + "/ui/assets")
        wait(p, EC.presence_of_element_located((By.ID, "assets")), "the assets list on a phone")
        shot(p, "16-phone-assets")
        p.get(BASE + "/ui/assets/web01")
        wait(p, EC.presence_of_element_located((By.CSS_SELECTOR, "ul.tree")), "an asset on a phone")
        width, view = p.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        check(view <= 400 and width <= view, f"the asset page fits a phone's width ({width}px in {view}px)", p)
        shot(p, "17-phone-asset")
    finally:
        p.quit()
    print("the web UI passed in chromium; screenshots in", SHOTS)


if __name__ == "__main__":
    main()
