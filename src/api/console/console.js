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
  } catch (error) {
    const alert = document.createElement("p");
    alert.setAttribute("role", "alert");
    alert.textContent = `Could not load: ${error.message}`;
    main.replaceChildren(alert);
  }
}

window.addEventListener("hashchange", show);
show();
