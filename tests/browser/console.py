"""The console in a real browser: headless Chromium from Debian's packages, driven through its
chromedriver by Selenium. Logs in through /login, checks each view it is given, runs axe-core
(vendored) on it, keeps a screenshot of it, and fails on any error in the browser's console.

Usage: console.py BASE_URL PASSWORD SCREENSHOT_DIR VIEW... (prints one JSON line per view); a
VIEW `contain:login@domain` previews, then contains, that user from the user view;
`kill:SESSION_ID` kills a session from the sessions view; `audit-search:ACTION` searches the
audit view.
"""
import json
import pathlib
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

AXE = pathlib.Path(__file__).parent / "vendor" / "axe-core-4.12.1" / "axe.min.js"


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def log_in(driver, base, password):
    driver.get(f"{base}/console")
    wait = WebDriverWait(driver, 20)
    wait.until(ready.presence_of_element_located((By.NAME, "login")))
    assert "/login" in driver.current_url, driver.current_url
    driver.find_element(By.NAME, "domain").send_keys("master.domain")
    driver.find_element(By.NAME, "login").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait.until(ready.url_contains("/console"))


def check(driver, base, view, shots):
    driver.get(f"{base}/console#{view}")
    WebDriverWait(driver, 20).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "main h2"))
    )
    settled(driver)
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact}))));"
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    shot = pathlib.Path(shots) / f"{view}.png"
    driver.save_screenshot(str(shot))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    heading = driver.find_element(By.CSS_SELECTOR, "main h2").text
    return {"view": view, "heading": heading, "violations": result, "serious": serious,
            "errors": [e["message"] for e in errors], "screenshot": str(shot),
            "text": driver.find_element(By.ID, "main").text}


def settled(driver):
    """Waits until the view has said what it found (its status line is not empty)."""
    WebDriverWait(driver, 20).until(
        lambda d: all(s.text for s in d.find_elements(By.CSS_SELECTOR, "main > [role=status]"))
    )


def kill(driver, base, session, shots):
    """Kills `session` from the sessions view."""
    driver.get(f"{base}/console#sessions")
    wait = WebDriverWait(driver, 20)
    button = wait.until(ready.element_to_be_clickable(
        (By.CSS_SELECTOR, f"button[aria-label^='Kill session {session}']")))
    button.click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "main > [role=status]"), "killed"))
    driver.save_screenshot(str(pathlib.Path(shots) / "kill.png"))
    return {"view": "kill", "text": driver.find_element(By.ID, "main").text}


def search_audit(driver, base, action, shots):
    """Searches the audit view for `action`."""
    driver.get(f"{base}/console#audit")
    wait = WebDriverWait(driver, 20)
    box = wait.until(ready.presence_of_element_located((By.NAME, "action")))
    settled(driver)
    box.send_keys(action)
    driver.find_element(By.CSS_SELECTOR, "main form [type=submit]").click()
    wait.until(lambda d: action in d.find_element(By.ID, "main").text.split("Outcome", 1)[-1])
    driver.save_screenshot(str(pathlib.Path(shots) / "audit.png"))
    return {"view": "audit-search", "text": driver.find_element(By.ID, "main").text}


def contain(driver, base, address, shots):
    """Finds `address` in the user view, previews its containment, then contains it: what each
    step showed."""
    driver.get(f"{base}/console#user")
    wait = WebDriverWait(driver, 20)
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
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "section [role=status]"), "Receipt"))
    status = driver.find_element(By.CSS_SELECTOR, "section [role=status]")
    receipt = status.text
    driver.execute_script("arguments[0].scrollIntoView()", status)
    driver.save_screenshot(str(pathlib.Path(shots) / "contain.png"))
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return {"view": "contain", "sessions": sessions, "preview": preview,
            "receipt": receipt, "errors": errors}


def main():
    base, password, shots, *views = sys.argv[1:]
    pathlib.Path(shots).mkdir(parents=True, exist_ok=True)
    driver = browser()
    try:
        log_in(driver, base, password)
        for view in views:
            action, _, argument = view.partition(":")
            if action == "contain":
                result = contain(driver, base, argument, shots)
            elif action == "kill":
                result = kill(driver, base, argument, shots)
            elif action == "audit-search":
                result = search_audit(driver, base, argument, shots)
            else:
                result = check(driver, base, view, shots)
            print(json.dumps(result), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
