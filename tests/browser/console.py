"""The console in a real browser: headless Chromium from Debian's packages, driven through its
chromedriver by Selenium. Logs in through /login, checks each view it is given, runs axe-core
(vendored) on it, keeps a screenshot of it, and fails on any error in the browser's console.

Usage: console.py BASE_URL LOGIN@DOMAIN PASSWORD SCREENSHOT_DIR STEP... (prints one JSON line
per step). A STEP is a view's name (checked as above), or:
  contain:login@domain  previews, then contains, that user from the user view
  contain-pending:login@domain
                        the same while a site is down: says `{"view":"contain-waiting"}` once
                        the receipt is incomplete, then waits until it is complete
  kill:SESSION_ID       kills a session from the sessions view
  logout:login@domain   logs that user out from the sessions view
  audit-search:ACTION   searches the audit view
  live:TEXT             opens the sessions view, says `{"view":"live-waiting"}` once its live
                        updates are on, then waits (without reloading) until TEXT shows
  reload-certificates   reloads every certificate from the certificates view
  narrow:VIEW           checks VIEW in a 390 px wide window: nothing wider than the window
  keyboard              tabs through the sessions view: what takes the focus, and whether
                        the focus is visible there
  visit:URL             opens URL (another origin's page) and says what the browser ended on
"""
import json
import pathlib
import sys

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

def waiting(driver):
    """A wait of up to 20 s that looks again when the view re-rendered what it was reading."""
    return WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])


AXE = pathlib.Path(__file__).parent / "vendor" / "axe-core-4.12.1" / "axe.min.js"


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def log_in(driver, base, address, password):
    login, _, domain = address.rpartition("@")
    driver.get(f"{base}/console")
    wait = waiting(driver)
    wait.until(ready.presence_of_element_located((By.NAME, "login")))
    assert "/login" in driver.current_url, driver.current_url
    driver.find_element(By.NAME, "domain").send_keys(domain)
    driver.find_element(By.NAME, "login").send_keys(login)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait.until(ready.url_contains("/console"))


def check(driver, base, view, shots, name=None):
    driver.get(f"{base}/console#{view}")
    waiting(driver).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "main h2"))
    )
    settled(driver)
    return examined(driver, view, shots, name or view)


def examined(driver, view, shots, name):
    """axe-core's findings on the page as it stands, its screenshot, the browser's errors."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact}))));"
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    shot = pathlib.Path(shots) / f"{name}.png"
    driver.save_screenshot(str(shot))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    heading = driver.find_element(By.CSS_SELECTOR, "main h2").text
    return {"view": view, "heading": heading, "violations": result, "serious": serious,
            "errors": [e["message"] for e in errors], "screenshot": str(shot),
            "text": driver.find_element(By.ID, "main").text,
            "nav": [a.text for a in driver.find_elements(By.CSS_SELECTOR, "nav a")]}


SETTLED = """return [...document.querySelectorAll("main > [role=status]")]
  .every((s) => s.textContent.trim() !== "");"""


def settled(driver):
    """Waits until the view has said what it found (its status line is not empty)."""
    waiting(driver).until(lambda d: d.execute_script(SETTLED))


def kill(driver, base, session, shots):
    """Kills `session` from the sessions view."""
    return row_action(driver, base, f"button[aria-label^='Kill session {session}']", "killed",
                      "kill", shots)


def log_out(driver, base, address, shots):
    """Logs `address` out everywhere from the sessions view."""
    return row_action(driver, base, f"button[aria-label='Log {address} out everywhere']",
                      "logged out", "logout", shots)


def row_action(driver, base, button, said, name, shots):
    """Clicks a row's `button` in the sessions view and waits until the view has `said` it."""
    driver.get(f"{base}/console#sessions")
    wait = waiting(driver)
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, button))).click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "main .outcome"), said))
    driver.save_screenshot(str(pathlib.Path(shots) / f"{name}.png"))
    return {"view": name, "text": driver.find_element(By.ID, "main").text}


def live(driver, base, text, shots):
    """Waits, on the sessions view as it was first loaded, for `text` to show."""
    driver.get(f"{base}/console#sessions")
    wait = waiting(driver)
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "main .live"), "Live updates on"))
    settled(driver)
    before = driver.find_element(By.ID, "main").text
    print(json.dumps({"view": "live-waiting"}), flush=True)
    wait.until(lambda d: text in d.find_element(By.CSS_SELECTOR, "main table").text)
    driver.save_screenshot(str(pathlib.Path(shots) / "live.png"))
    return {"view": "live", "before": before, "text": driver.find_element(By.ID, "main").text}


def reload_certificates(driver, base, shots):
    """Reloads every certificate from the certificates view: what each node then serves."""
    driver.get(f"{base}/console#certificates")
    wait = waiting(driver)
    button = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label^='Reload']")))
    settled(driver)
    before = driver.find_element(By.CSS_SELECTOR, "main table").text
    button.click()
    wait.until(lambda d: "certificate" in d.find_element(By.CSS_SELECTOR, "main table tbody").text
               or "unchanged" in d.find_element(By.CSS_SELECTOR, "main table tbody").text)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "main [aria-live]").text)
    driver.save_screenshot(str(pathlib.Path(shots) / "certificates-reloaded.png"))
    return {"view": "reload-certificates", "before": before,
            "answer": driver.find_element(By.CSS_SELECTOR, "main [aria-live]").text,
            "text": driver.find_element(By.ID, "main").text}


def narrow(driver, base, view, shots):
    """`view` in a phone-sized window: axe, errors, and whether anything overflows it."""
    driver.set_window_size(390, 844)
    try:
        result = check(driver, base, view, shots, f"narrow-{view}")
        result["overflow"] = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        result["view"] = f"narrow:{view}"
        return result
    finally:
        driver.set_window_size(1280, 800)


FOCUSED = """
const e = document.activeElement;
const style = getComputedStyle(e);
return {tag: e.tagName.toLowerCase(), name: e.getAttribute('aria-label') || e.textContent.trim().slice(0, 40)
          || e.name || '', visible: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
"""


def keyboard(driver, base, shots):
    """Tabs through the sessions view from the top of the page: each stop, and its focus ring.
    Then follows the nav's Overview link with Enter, and says where that led."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    driver.get(f"{base}/console#sessions")
    settled_view(driver)
    stops = []
    for _ in range(40):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        stop = driver.execute_script(FOCUSED)
        if stop["tag"] == "body":
            break  # past the last control: the focus has left the page
        stops.append(stop)
        if stop["name"] == "Log out":
            driver.save_screenshot(str(pathlib.Path(shots) / "keyboard.png"))
    driver.get(f"{base}/console#sessions")
    settled_view(driver)
    for _ in range(40):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        if driver.execute_script("return document.activeElement.hash === '#overview';"):
            ActionChains(driver).send_keys(Keys.ENTER).perform()
            break
    waiting(driver).until(
        ready.text_to_be_present_in_element((By.CSS_SELECTOR, "main h2"), "Overview"))
    return {"view": "keyboard", "stops": stops, "followed": driver.current_url}


def settled_view(driver):
    waiting(driver).until(ready.presence_of_element_located((By.CSS_SELECTOR, "main h2")))
    settled(driver)


def visit(driver, url, shots):
    """Opens another origin's page (which may post to this one) and says where it ended."""
    driver.get(url)
    waiting(driver).until(lambda d: "statusCode" in d.find_element(By.TAG_NAME, "body").text)
    driver.save_screenshot(str(pathlib.Path(shots) / "visit.png"))
    return {"view": "visit", "url": driver.current_url,
            "text": driver.find_element(By.TAG_NAME, "body").text}


def search_audit(driver, base, action, shots):
    """Searches the audit view for `action`."""
    driver.get(f"{base}/console#audit")
    wait = waiting(driver)
    box = wait.until(ready.presence_of_element_located((By.NAME, "action")))
    settled(driver)
    box.send_keys(action)
    driver.find_element(By.CSS_SELECTOR, "main form [type=submit]").click()
    wait.until(lambda d: action in d.find_element(By.ID, "main").text.split("Outcome", 1)[-1])
    driver.save_screenshot(str(pathlib.Path(shots) / "audit.png"))
    return {"view": "audit-search", "text": driver.find_element(By.ID, "main").text}


def contain_pending(driver, base, address, shots):
    """Contains `address` while a site is down: says `{"view":"contain-waiting"}` with the
    incomplete receipt, then waits (up to 90 s, without a reload) until the receipt is complete."""
    first = contain(driver, base, address, shots, "Receipt: incomplete")
    print(json.dumps({"view": "contain-waiting", "receipt": first["receipt"]}), flush=True)
    WebDriverWait(driver, 90, ignored_exceptions=[StaleElementReferenceException]).until(
        ready.text_to_be_present_in_element((By.CSS_SELECTOR, "section [role=status]"), "Receipt: complete"))
    driver.save_screenshot(str(pathlib.Path(shots) / "contain-completed.png"))
    return {"view": "contain-pending", "receipt": driver.find_element(By.CSS_SELECTOR, "section [role=status]").text}


def contain(driver, base, address, shots, outcome="Receipt"):
    """Finds `address` in the user view, previews its containment, then contains it: what each
    step showed."""
    driver.get(f"{base}/console#user")
    wait = waiting(driver)
    wait.until(ready.presence_of_element_located((By.NAME, "address"))).send_keys(address)
    driver.find_element(By.CSS_SELECTOR, "main form [type=submit]").click()
    wait.until(ready.presence_of_element_located((By.ID, "contain-heading")))
    sessions = driver.find_element(By.CSS_SELECTOR, "main section table:first-of-type tbody").text
    buttons = {b.text: b for b in driver.find_elements(By.CSS_SELECTOR, "main section button")}
    buttons["Preview"].click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "[role=status]"), "What would end"))
    preview = driver.find_element(By.CSS_SELECTOR, "section [role=status]").text
    wait.until(lambda d: buttons["Contain"].is_enabled())
    buttons["Contain"].click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "section [role=status]"), outcome))
    status = driver.find_element(By.CSS_SELECTOR, "section [role=status]")
    receipt = status.text
    driver.execute_script("arguments[0].scrollIntoView()", status)
    driver.save_screenshot(str(pathlib.Path(shots) / "contain.png"))
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return {"view": "contain", "sessions": sessions, "preview": preview,
            "receipt": receipt, "errors": errors}


def main():
    base, address, password, shots, *views = sys.argv[1:]
    pathlib.Path(shots).mkdir(parents=True, exist_ok=True)
    driver = browser()
    steps = {"contain": contain, "contain-pending": contain_pending, "kill": kill, "logout": log_out, "audit-search": search_audit,
             "live": live, "narrow": narrow}
    try:
        log_in(driver, base, address, password)
        for view in views:
            try:
                result = run_step(driver, base, shots, steps, view)
            except Exception:
                failed(driver, shots, view)
                raise
            print(json.dumps(result), flush=True)
    finally:
        driver.quit()


def failed(driver, shots, view):
    """Says on stderr where a step stood when it failed, with a screenshot of it."""
    try:
        shot = pathlib.Path(shots) / "failed.png"
        driver.save_screenshot(str(shot))
        page = driver.find_element(By.TAG_NAME, "body").text
        print(f"step {view!r} failed at {driver.current_url}; the page said:\n{page}\n"
              f"(screenshot {shot}); the browser's log: {driver.get_log('browser')}", file=sys.stderr)
    except Exception as error:  # the browser itself may be gone
        print(f"step {view!r} failed, and the page could not be read: {error}", file=sys.stderr)


def run_step(driver, base, shots, steps, view):
    action, _, argument = view.partition(":")
    if action in steps:
        return steps[action](driver, base, argument, shots)
    if action == "reload-certificates":
        return reload_certificates(driver, base, shots)
    if action == "keyboard":
        return keyboard(driver, base, shots)
    if action == "visit":
        return visit(driver, argument, shots)
    return check(driver, base, view, shots)


if __name__ == "__main__":
    main()
