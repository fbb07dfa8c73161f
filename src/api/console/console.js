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

if (!global) {
  for (const link of document.querySelectorAll("nav a")) {
    if (forGlobalOnly.has(link.hash.slice(1))) link.parentElement.remove();
  }
  document.getElementById("scope").textContent = `Administering ${scope.slice("domain:".length)}`;
}

async function show() {
  for (const done of leaving) done();
  leaving = [];
  let name = location.hash.slice(1) || (global ? "overview" : "sessions");
  if (!views[name] || (!global && forGlobalOnly.has(name))) name = global ? "overview" : "sessions";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.hash === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    await views[name]({ main, scope, onLeave: (done) => leaving.push(done) });
    main.dataset.rendered = String(performance.now()); // when the view first showed what it found
  } catch (error) {
    const alert = document.createElement("p");
    alert.setAttribute("role", "alert");
    alert.textContent = `Could not load: ${error.message}`;
    main.replaceChildren(alert);
  }
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
