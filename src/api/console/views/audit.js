// Audit: search every site's trail; check each site's chain (global administrators).

import { call, partialNote, read } from "../api.js";
import { button, element, field, statusLine, table } from "../dom.js";

export async function audit({ main, scope }) {
  const form = element("form", undefined, { "aria-label": "Search the audit trail" });
  const inputs = ["action", "actor", "target"].map((name) =>
    [name, element("input", undefined, { name, autocomplete: "off" })]);
  for (const [name, input] of inputs) form.append(field(`${name[0].toUpperCase()}${name.slice(1)} `, input));
  form.append(element("button", "Search", { type: "submit" }));
  const status = statusLine();
  const results = element("div");
  async function search() {
    const query = new URLSearchParams({ sites: "all", allow_partial: "true", limit: "100" });
    for (const [name, input] of inputs) if (input.value) query.set(name, input.value.trim());
    const { response, body } = await read(`/rest/v1/audit?${query}`);
    status.textContent = partialNote(response, `${body.length} event(s).`);
    results.replaceChildren(table("Events, newest first", ["Time", "Site", "Actor", "Action", "Target", "Outcome"],
      body.map((e) => [e.time, e.site, actorName(e.actor), e.action, e.target, e.outcome])));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search().catch((error) => { status.textContent = `Could not search: ${error.message}`; });
  });
  const verify = button("Check the chains", undefined, async () => {
    const { body } = await call("/rest/v1/audit/verify?sites=all&allow_partial=true");
    const rows = Object.entries((body && body.sites) || {}).map(([site, check]) =>
      [site, check.events, check.ok ? "intact" : "BROKEN", check.first_bad_event_id || "", check.reason || ""]);
    results.replaceChildren(table("Chains", ["Site", "Events", "Chain", "First bad event", "Reason"], rows));
    status.textContent = rows.every((r) => r[2] === "intact") ? "Every chain is intact." : "A chain is broken.";
  });
  const controls = scope === "global" ? [form, verify] : [form];
  main.replaceChildren(element("h2", "Audit"), ...controls, status, results);
  await search();
}

function actorName(actor) {
  if (!actor) return "-";
  if (actor.login) return `${actor.login}@${actor.domain}`;
  if (actor.service) return `service ${actor.service}`;
  if (actor.federated) return `${actor.federated} via ${actor.from_site}`;
  return "-";
}
