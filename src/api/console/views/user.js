// A user: everything the user has open everywhere (sessions, websockets, mail channels, with
// node, address and age), their locks and audit trail; Contain, with the dry run's counts
// first, then the receipt per site and node.

import { SESSIONS, call } from "../api.js";
import { button, element, field, since, table } from "../dom.js";

export async function user({ main, onLeave }) {
  const form = element("form", undefined, { "aria-label": "Find a user" });
  const address = element("input", undefined, { name: "address", autocomplete: "off", required: "" });
  form.append(field("User (login@domain) ", address), element("button", "Show", { type: "submit" }));
  const found = element("section", undefined, { "aria-live": "polite", "aria-label": "The user" });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    showUser(address.value.trim(), found, onLeave).catch((error) => {
      found.replaceChildren(element("p", `Could not load: ${error.message}`, { role: "alert" }));
    });
  });
  main.replaceChildren(element("h2", "A user"), form, found);
}

/** How long ago a UUIDv7 (whose first 48 bits are its creation time in ms) was made. */
function age(uuid) {
  const created = parseInt(uuid.replaceAll("-", "").slice(0, 12), 16);
  return Number.isFinite(created) ? since(created) : "";
}

async function showUser(address, found, onLeave) {
  const user = encodeURIComponent(address);
  const at = address.lastIndexOf("@");
  const who = new URLSearchParams({ sites: "all", allow_partial: "true" });
  if (at > 0) {
    who.set("user", address.slice(0, at));
    who.set("domain", address.slice(at + 1));
  } else {
    who.set("user", address);
  }
  const [listed, channels, locks, audit] = await Promise.all([
    call(`${SESSIONS}?${who}`),
    call(`/servers/channels/${user}?sites=all&allow_partial=true`),
    call(`/rest/v1/locks?sites=all&allow_partial=true`),
    call(`/rest/v1/audit?sites=all&allow_partial=true&limit=50&target=${user}`),
  ]);
  const sessionRows = [];
  for (const s of listed.body || []) {
    if (s.session_type === "http") {
      sessionRows.push(["session", s.session_id, s.site, "", age(s.session_id), `${s.ttl} s`]);
    }
    for (const c of s.connections || []) {
      sessionRows.push(["websocket", c.conn_id, s.site, c.node, age(c.conn_id), c.is_pid_alive ? "open" : "holder not answering"]);
    }
  }
  const channelRows = (channels.body || []).map((c) => [c.protocol, c.remoteAddress, c.site, c.node,
    since(Date.parse(c.connectionDate)), c.isEncrypted ? "yes" : "no"]);
  const lockRows = (locks.body || [])
    .filter((l) => l.target && l.target.user === address)
    .map((l) => [l.lock_id, l.message, l.expires_at || "never"]);
  const auditRows = (audit.body || []).map((e) => [e.time, e.site, e.action, e.remote_address || "", e.outcome]);
  const unreached = [listed, channels, locks, audit]
    .map((r) => r.response.headers.get("x-unavailable-sites")).filter(Boolean);
  found.replaceChildren(
    element("h3", address),
    element("p", unreached.length ? `Partial: not reached: ${[...new Set(unreached)].join(", ")}.` : "Every site answered."),
    table("Sessions and websockets", ["Kind", "Id", "Site", "Node", "Age", "State"], sessionRows),
    table("Mail channels", ["Protocol", "From", "Site", "Node", "Age", "Encrypted"], channelRows),
    table("Locks", ["Lock", "Message", "Expires"], lockRows),
    table("Audit trail", ["Time", "Site", "Action", "From", "Outcome"], auditRows),
    containForm(address, onLeave),
  );
}

function containForm(address, onLeave) {
  const section = element("section", undefined, { "aria-labelledby": "contain-heading" });
  const reason = element("input", undefined, { name: "reason", autocomplete: "off" });
  const lock = element("input", undefined, { name: "lock", type: "checkbox", checked: "" });
  const message = element("input", undefined, { name: "message", value: "Your account is locked: call the service desk" });
  const ttl = element("input", undefined, { name: "ttl", value: "24h" });
  const outcome = element("div", undefined, { role: "status" });
  const request = (dryRun) => {
    const body = { user: address, sites: "all", dry_run: dryRun };
    if (reason.value) body.reason = reason.value;
    if (lock.checked) body.lock = { message: message.value, ttl: ttl.value };
    return call("/rest/v1/incidents", { method: "POST", body: JSON.stringify(body) });
  };
  const contain = button("Contain", undefined, async () => {
    contain.disabled = true;
    outcome.replaceChildren(element("p", "Containing…"));
    const { response, body } = await request(false);
    const kept = body && (body.receipt || body);
    outcome.replaceChildren(receipt("Receipt", response, kept));
    if (kept && kept.sites && !kept.complete && kept.incident_id) follow(kept.incident_id, outcome, onLeave);
  });
  contain.disabled = true;
  const preview = button("Preview", undefined, async () => {
    const { response, body } = await request(true);
    const wouldEnd = body && (body.receipt || body);
    outcome.replaceChildren(receipt("What would end", response, wouldEnd));
    // A site that does not answer must not stop the responder: what answered is enough.
    contain.disabled = !(wouldEnd && wouldEnd.sites);
  });
  const fields = element("div", undefined, { class: "fields" });
  fields.append(field("Reason ", reason), field("Lock the user ", lock), field("Lock message ", message),
    field("Lock for ", ttl), preview, contain);
  section.append(element("h3", "Contain", { id: "contain-heading" }), fields, outcome);
  return section;
}

/** An incomplete containment's kept receipt, read again every 2 s while the view is open: a
 * site that was not reached gets its part when the task that keeps trying it gets there. */
function follow(incidentId, outcome, onLeave) {
  const timer = setInterval(async () => {
    const { response, body } = await call(`/rest/v1/incidents/${incidentId}`).catch(() => ({}));
    if (!response || !response.ok || !body) return;
    outcome.replaceChildren(receipt("Receipt", response, body));
    if (body.complete) clearInterval(timer);
  }, 2000);
  onLeave(() => clearInterval(timer));
}

/** A containment's answer: a row per site, then a row per node of each. */
function receipt(caption, response, body) {
  if (!body || !body.sites) {
    return element("p", `Refused: ${(body && body.message) || response.status}`, { role: "alert" });
  }
  const rows = [];
  for (const [site, part] of Object.entries(body.sites)) {
    rows.push([site, "", part.status, part.sessions_ended, part.websockets_closed, part.channels_closed, part.cause || ""]);
    for (const [node, report] of Object.entries(part.nodes || {})) {
      // A node applied it (when, what it closed), or says why not: `down`, `no_answer`.
      const said = typeof report === "string" ? { status: report } : report;
      rows.push([site, node, said.applied_at || said.status || "", "", said.websockets_closed ?? "",
        said.channels_closed ?? "", said.cause || ""]);
    }
  }
  const done = body.complete
    ? "complete"
    : "incomplete: a site or node has not confirmed (a task keeps trying; this receipt follows it)";
  const wrapper = element("div");
  wrapper.append(element("p", `${caption}: ${done}.`),
    table(caption, ["Site", "Node", "Status", "Sessions", "Websockets", "Channels", "Cause"], rows));
  return wrapper;
}
