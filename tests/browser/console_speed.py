"""The console's speed in a real browser (headless Chromium, as console.py drives it): cold
first loads of the overview and the sessions view (the browser's navigation and resource
timing: to interactive, and every byte transferred), filter changes in the sessions view (from
the submit to the frame after the new rows), and the browser's memory (the page's JS heap, and
the proportional set size of every Chromium process).

Usage: console_speed.py BASE_URL LOGIN@DOMAIN PASSWORD ROUNDS (prints one JSON object)
"""
import json
import os
import statistics
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready

import console

# From just before the navigation to the view's first render; and every byte it transferred
# (the page, its assets, the API calls that had finished).
LOADED = """
const done = arguments[arguments.length - 1];
const main = document.getElementById("main");
const finish = () => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  done({interactive_ms: Number(main.dataset.rendered), dom_content_loaded_ms: nav.domContentLoadedEventEnd,
        load_ms: nav.loadEventEnd, bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
        requests: resources.length + 1});
};
const wait = () => (main.dataset.rendered && document.readyState === "complete") ? finish() : setTimeout(wait, 5);
wait();
"""

# One filter change: set the form, submit, and time until the frame after the new rows.
FILTERED = """
const [values, done] = [arguments[0], arguments[arguments.length - 1]];
const main = document.getElementById("main");
const form = main.querySelector("form");
for (const [name, value] of Object.entries(values)) form.elements[name].value = value;
const started = performance.now();
form.requestSubmit();
const wait = () => {
  if (Number(main.dataset.rendered) > started) {
    requestAnimationFrame(() => setTimeout(() => done({ms: performance.now() - started,
      rows: main.querySelectorAll("tbody tr").length})));
  } else {
    setTimeout(wait, 1);
  }
};
wait();
"""

FILTERS = [
    {"user": "user42", "domain": "", "session_type": "", "sites": "all"},
    {"user": "", "domain": "master.domain", "session_type": "", "sites": "all"},
    {"user": "", "domain": "", "session_type": "websocket", "sites": "all"},
    {"user": "", "domain": "", "session_type": "http", "sites": "current"},
    {"user": "user7", "domain": "master.domain", "session_type": "http", "sites": "all"},
    {"user": "", "domain": "", "session_type": "", "sites": "all"},
]


def cold_load(driver, base, view):
    driver.get("about:blank")  # a new document: not a move within the console's own page
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(f"{base}/console#{view}")
    console.waiting(driver).until(ready.presence_of_element_located((By.CSS_SELECTOR, "main h2")))
    return driver.execute_async_script(LOADED)


def chromium_pids(root):
    """Every process under `root` (chromedriver): Chromium's browser, renderers, helpers."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def by_type(pids):
    """The proportional set size of each kind of process, in MiB: each process's, largest first."""
    kinds = {}
    for pid in pids:
        kinds.setdefault(process_type(pid), []).append(round(pss_bytes(pid) / 1048576, 1))
    return {kind: sorted(sizes, reverse=True) for kind, sizes in sorted(kinds.items())}


def pss_bytes(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_type(pid):
    """Chromium's name for what a process does (`browser` for the main one)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            # A child rewrites its title: its arguments are then one string, space-separated.
            args = cmdline.read().replace(b"\0", b" ").split()
    except OSError:
        return "gone"
    if not args or b"chrom" not in args[0]:
        return "other"
    for arg in args:
        if arg.startswith(b"--type="):
            kind = arg[len(b"--type="):].decode()
            if b"--top-chrome-webui" in args:
                return "renderer (browser's own UI)"
            utility = [a for a in args if a.startswith(b"--utility-sub-type=")]
            return f"{kind} {utility[0].split(b'=')[1].decode()}" if utility else kind
    return "browser"


def main():
    base, address, password, rounds = sys.argv[1:]
    driver = console.browser()
    try:
        driver.get("about:blank")
        blank = by_type(chromium_pids(driver.service.process.pid))
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        console.log_in(driver, base, address, password)
        loads = {view: [cold_load(driver, base, view) for _ in range(int(rounds))]
                 for view in ("overview", "sessions")}
        driver.get(f"{base}/console#sessions")
        console.settled_view(driver)
        changes = []
        for _ in range(int(rounds)):
            for values in FILTERS:
                changes.append(driver.execute_async_script(FILTERED, values))
        driver.execute_cdp_cmd("Performance.enable", {})
        metrics = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
        pids = chromium_pids(driver.service.process.pid)
        report = {
            "loads": {view: {"interactive_ms": statistics.median(l["interactive_ms"] for l in runs),
                             "interactive_max_ms": max(l["interactive_ms"] for l in runs),
                             "bytes": max(l["bytes"] for l in runs), "requests": runs[0]["requests"]}
                      for view, runs in loads.items()},
            "filter_ms_median": statistics.median(c["ms"] for c in changes),
            "filter_ms_max": max(c["ms"] for c in changes),
            "filter_changes": len(changes),
            "rows": [c["rows"] for c in changes[:len(FILTERS)]],
            "js_heap_used_bytes": metrics.get("JSHeapUsedSize"),
            "js_heap_total_bytes": metrics.get("JSHeapTotalSize"),
            "chromium_processes": len(pids),
            "chromium_pss_bytes": sum(pss_bytes(p) for p in pids),
            "pss_by_process": by_type(pids),
            "pss_by_process_at_about_blank": blank,
        }
        print(json.dumps(report), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
