// The console's entry: which view the address names, and what the caller may see. Each view
// is a module of its own (views/); they speak only the public REST API (api.js).

import { overview } from "./views/overview.js";
import { sessions } from "./views/sessions.js";
import { user } from "./views/user.js";
import { locks } from "./views/locks.js";
import { audit } from "./views/audit.js";
import { channels } from "./views/channels.js";
import { certificates } from "./views/certificates.js";
import { tasks } from "./views/tasks.js";

const main = document.getElementById("main");
/** `global`, or `domain:<name>` for a domain administrator (the page is made for its caller). */
const scope = document.querySelector("meta[name=sessionplane-scope]").content;
const global = scope === "global";

const views = { overview, sessions, user, locks, audit, channels, certificates, tasks };
const forGlobalOnly = new Set(["overview", "certificates", "tasks"]);
let leaving = [];
let navigation = 0;

if (!global) {
  for (const link of document.querySelectorAll("nav a")) {
    if (forGlobalOnly.has(link.hash.slice(1))) link.parentElement.remove();
  }
  document.getElementById("scope").textContent = `Administering ${scope.slice("domain:".length)}`;
}

/** Shows the view the address names. A view builds in a container of its own and is shown
 * only if it is still the one asked for when it is ready: a slow view the responder has
 * already left never replaces the next one. */
async function show() {
  for (const done of leaving) done();
  const mine = ++navigation;
  const leave = [];
  leaving = leave;
  let name = location.hash.slice(1) || (global ? "overview" : "sessions");
  if (!views[name] || (!global && forGlobalOnly.has(name))) name = global ? "overview" : "sessions";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.hash === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const loading = document.createElement("p");
  loading.textContent = "Loading…";
  main.replaceChildren(loading);
  const area = document.createElement("div");
  let onScreen = false;
  // When what the view found is on screen (read by the console's speed measure).
  const rendered = () => { if (onScreen) main.dataset.rendered = String(performance.now()); };
  try {
    await views[name]({ main: area, scope, onLeave: (done) => leave.push(done), rendered });
  } catch (error) {
    const alert = document.createElement("p");
    alert.setAttribute("role", "alert");
    alert.textContent = `Could not load: ${error.message}`;
    area.replaceChildren(alert);
  }
  if (mine !== navigation) {
    for (const done of leave) done();
    return;
  }
  main.replaceChildren(...area.childNodes);
  onScreen = true;
  rendered();
}

/** Names each cell after its column (`data-label`), for the narrow layout's "Column: value". */
function labelCells(root) {
  for (const table of root.querySelectorAll("table")) {
    const names = table.tHead ? [...table.tHead.rows[0].cells].map((th) => th.textContent) : [];
    for (const row of table.tBodies[0] ? table.tBodies[0].rows : []) {
      [...row.cells].forEach((td, i) => {
        if (td.colSpan === 1 && names[i] && !td.dataset.label) td.dataset.label = names[i];
      });
    }
  }
}
new MutationObserver(() => labelCells(main)).observe(main, { childList: true, subtree: true });

window.addEventListener("hashchange", show);
show();
