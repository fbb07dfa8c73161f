// The console: plain modules, no build step. It speaks only the public REST API, with the
// session cookie the login page set, so everything it shows a script can do too.

const main = document.getElementById("main");

async function api(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok && response.status !== 503) {
    throw new Error((body && body.message) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** Overview: this site's nodes and groups, and whether each other site answers (a site that
 * does not is shown as unreachable, never as empty). */
async function overview() {
  const [health, cluster] = await Promise.all([api("/healthcheck"), api("/cluster/status")]);
  const checks = health.checks || [];
  const sites = checks.filter((c) => c.componentName.startsWith("Site "));
  const own = checks.filter((c) => !c.componentName.startsWith("Site "));
  const siteRows = [[cluster.site + " (this site)", "up", ""]].concat(
    sites.map((c) => [c.componentName.slice(5), c.status === "healthy" ? "up" : "unreachable", c.cause || ""]),
  );
  const group = (cluster.groups || []).find((g) => g.group === `site:${cluster.site}`) || { members: [] };
  const nodeRows = group.members.map((m) => [
    m.id, m.address, m.id === group.leader ? "leader" : "", m.answers === false ? "down" : m.answers ? "up" : "unknown",
  ]);
  main.replaceChildren(
    element("h2", "Overview"),
    stateTable("Sites", ["Site", "State", "Cause"], siteRows, 1),
    stateTable(`Nodes of ${cluster.site}`, ["Node", "Address", "Role", "State"], nodeRows, 3),
    stateTable("This node's checks", ["Component", "State", "Cause"],
      own.map((c) => [c.componentName, c.status === "healthy" ? "up" : c.status, c.cause || ""]), 1),
  );
}

/** A table whose `stateColumn` says up or not, in words and with a mark (never colour alone). */
function stateTable(caption, columns, rows, stateColumn) {
  const node = table(caption, columns, rows);
  for (const row of node.tBodies[0].rows) {
    const state = row.cells[stateColumn];
    if (state) state.className = state.textContent === "up" ? "state-up" : "state-down";
  }
  return node;
}

const SESSIONS = "/rest/v1/master/logicalroles/ws/sessions";

function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function field(label, control) {
  const wrapper = element("label", label);
  wrapper.append(control);
  return wrapper;
}

function choice(name, options) {
  const select = element("select", undefined, { name });
  for (const [value, text] of options) select.append(element("option", text, { value }));
  return select;
}

/** Sessions: the listing across sites, with filters and pages; kill one. */
async function sessions() {
  const form = element("form", undefined, { "aria-label": "Filter the sessions" });
  const sites = choice("sites", [["all", "All sites"], ["current", "This site"]]);
  const domain = element("input", undefined, { name: "domain", autocomplete: "off" });
  const user = element("input", undefined, { name: "user", autocomplete: "off" });
  const type = choice("session_type", [["", "Any"], ["http", "HTTP"], ["websocket", "Websocket"]]);
  form.append(
    field("Sites ", sites), field("Domain ", domain), field("User ", user), field("Type ", type),
    element("button", "Apply", { type: "submit" }),
  );
  const status = element("p", "", { role: "status" });
  const table = element("table");
  table.append(element("caption", "Sessions"));
  const head = table.createTHead().insertRow();
  for (const name of ["Session", "User", "Type", "Site", "Expires in", "Websockets", "Actions"]) {
    head.append(element("th", name, { scope: "col" }));
  }
  const rows = table.createTBody();
  const more = element("button", "Next page", { type: "button", hidden: "" });
  let next = null;

  async function load(append) {
    const query = new URLSearchParams({ sites: sites.value, limit: "50", allow_partial: "true" });
    if (domain.value) query.set("domain", domain.value);
    if (user.value) query.set("user", user.value);
    if (type.value) query.set("session_type", type.value);
    if (append && next) query.set("page_token", next);
    const response = await fetch(`${SESSIONS}?${query}`, { headers: { accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || response.statusText);
    next = response.headers.get("x-next-page-token");
    more.hidden = !next;
    const missing = response.headers.get("x-unavailable-sites");
    status.textContent = missing
      ? `The list is partial: not reached: ${missing}.`
      : `${body.length} session(s)${next ? " on this page" : ""}.`;
    if (!append) rows.replaceChildren();
    for (const item of body) rows.append(sessionRow(item, status));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(false).catch((error) => { status.textContent = `Could not load: ${error.message}`; });
  });
  more.addEventListener("click", () => load(true));
  main.replaceChildren(element("h2", "Sessions"), form, status, table, more);
  await load(false);
}

function sessionRow(item, status) {
  const row = document.createElement("tr");
  const kill = element("button", "Kill", {
    type: "button",
    "aria-label": `Kill session ${item.session_id} of ${item.login}@${item.domain}`,
  });
  kill.addEventListener("click", async () => {
    const sites = encodeURIComponent(JSON.stringify([item.site]));
    const response = await fetch(`${SESSIONS}/${item.session_id}?sites=${sites}`, { method: "DELETE" });
    status.textContent = response.ok
      ? `Session ${item.session_id} killed.`
      : `The kill was refused: ${response.status}.`;
    if (response.ok) row.remove();
  });
  const actions = document.createElement("td");
  actions.append(kill);
  row.append(
    cell(item.session_id), cell(`${item.login}@${item.domain}`), cell(item.session_type),
    cell(item.site), cell(`${item.ttl} s`), cell(String((item.connections || []).length)), actions,
  );
  return row;
}

async function json(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { accept: "application/json", "content-type": "application/json" },
  });
  const body = await response.json().catch(() => null);
  return { response, body };
}

function table(caption, columns, rows) {
  const node = element("table");
  node.append(element("caption", caption));
  const head = node.createTHead().insertRow();
  for (const name of columns) head.append(element("th", name, { scope: "col" }));
  const body = node.createTBody();
  for (const values of rows) {
    const row = body.insertRow();
    for (const value of values) row.append(cell(String(value ?? "")));
  }
  if (rows.length === 0) {
    const row = body.insertRow();
    const empty = cell("None");
    empty.colSpan = columns.length;
    row.append(empty);
  }
  return node;
}

/** A user: everything open everywhere, the locks, the trail; Contain, preview first. */
async function user() {
  const form = element("form", undefined, { "aria-label": "Find a user" });
  const address = element("input", undefined, { name: "address", autocomplete: "off", required: "" });
  form.append(field("User (login@domain) ", address), element("button", "Show", { type: "submit" }));
  const found = element("section", undefined, { "aria-live": "polite" });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    showUser(address.value.trim(), found).catch((error) => {
      found.replaceChildren(element("p", `Could not load: ${error.message}`, { role: "alert" }));
    });
  });
  main.replaceChildren(element("h2", "A user"), form, found);
}

async function showUser(address, found) {
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
    json(`${SESSIONS}?${who}`),
    json(`/servers/channels/${user}?sites=all&allow_partial=true`),
    json(`/rest/v1/locks?sites=all&allow_partial=true`),
    json(`/rest/v1/audit?sites=all&allow_partial=true&limit=50&target=${user}`),
  ]);
  const sessionRows = (listed.body || []).map((s) => [s.session_id, s.session_type, s.site, `${s.ttl} s`]);
  const channelRows = (channels.body || []).map((c) => [c.protocol, c.remoteAddress, c.node, c.connectionDate]);
  const lockRows = (locks.body || [])
    .filter((l) => l.target && l.target.user === address)
    .map((l) => [l.lock_id, l.message, l.expires_at || "never"]);
  const auditRows = (audit.body || []).map((e) => [e.time, e.site, e.action, e.outcome]);
  found.replaceChildren(
    element("h3", address),
    table("Sessions and websockets", ["Session", "Type", "Site", "Expires in"], sessionRows),
    table("Mail channels", ["Protocol", "From", "Node", "Since"], channelRows),
    table("Locks", ["Lock", "Message", "Expires"], lockRows),
    table("Audit trail", ["Time", "Site", "Action", "Outcome"], auditRows),
    containForm(address),
  );
}

function containForm(address) {
  const section = element("section", undefined, { "aria-labelledby": "contain-heading" });
  const reason = element("input", undefined, { name: "reason", autocomplete: "off" });
  const lock = element("input", undefined, { name: "lock", type: "checkbox", checked: "" });
  const message = element("input", undefined, { name: "message", value: "Your account is locked: call the service desk" });
  const ttl = element("input", undefined, { name: "ttl", value: "24h" });
  const preview = element("button", "Preview", { type: "button" });
  const contain = element("button", "Contain", { type: "button", disabled: "" });
  const outcome = element("div", undefined, { role: "status" });
  const request = (dryRun) => {
    const body = { user: address, sites: "all", dry_run: dryRun };
    if (reason.value) body.reason = reason.value;
    if (lock.checked) body.lock = { message: message.value, ttl: ttl.value };
    return json("/rest/v1/incidents", { method: "POST", body: JSON.stringify(body) });
  };
  preview.addEventListener("click", async () => {
    const { response, body } = await request(true);
    outcome.replaceChildren(receipt("What would end", response, body));
    contain.disabled = !response.ok;
  });
  contain.addEventListener("click", async () => {
    contain.disabled = true;
    const { response, body } = await request(false);
    outcome.replaceChildren(receipt("Receipt", response, body && (body.receipt || body)));
  });
  const fields = element("div", undefined, { class: "fields" });
  fields.append(
    field("Reason ", reason), field("Lock the user ", lock), field("Lock message ", message),
    field("Lock for ", ttl), preview, contain,
  );
  section.append(element("h3", "Contain", { id: "contain-heading" }), fields, outcome);
  return section;
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
      const down = typeof report === "string";
      rows.push([site, node, down ? report : report.applied_at, "", down ? "" : report.websockets_closed,
        down ? "" : report.channels_closed, ""]);
    }
  }
  const done = body.complete ? "complete" : "incomplete: a site or node has not confirmed";
  const wrapper = element("div");
  wrapper.append(
    element("p", `${caption}: ${done}.`),
    table(caption, ["Site", "Node", "Status", "Sessions", "Websockets", "Channels", "Cause"], rows),
  );
  return wrapper;
}

/** Locks in force at every site; lift one. */
async function locks() {
  const { response, body } = await json("/rest/v1/locks?sites=all&allow_partial=true");
  if (!response.ok) throw new Error((body && body.message) || response.statusText);
  const status = element("p", partialNote(response, `${body.length} lock(s) in force.`), { role: "status" });
  const node = table("Locks in force", ["Lock", "Target", "Message", "Expires", "Sites", "Actions"], []);
  const rows = node.tBodies[0];
  if (body.length) rows.replaceChildren();
  for (const lock of body) {
    const row = rows.insertRow();
    const target = Object.entries(lock.target || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const sites = Object.entries(lock.sites || {}).map(([s, state]) => `${s}: ${state}`).join(", ");
    for (const value of [lock.lock_id, target, lock.message, lock.expires_at || "never", sites]) {
      row.append(cell(value));
    }
    const lift = element("button", "Lift", { type: "button", "aria-label": `Lift lock ${lock.lock_id} on ${target}` });
    lift.addEventListener("click", async () => {
      const answer = await fetch(`/rest/v1/locks/${lock.lock_id}`, { method: "DELETE" });
      status.textContent = answer.ok ? `Lock ${lock.lock_id} lifted.` : `The lift was refused: ${answer.status}.`;
      if (answer.ok) row.remove();
    });
    const actions = document.createElement("td");
    actions.append(lift);
    row.append(actions);
  }
  main.replaceChildren(element("h2", "Locks"), status, node);
}

/** What a read that allowed a partial answer says of the sites it did not reach. */
function partialNote(response, otherwise) {
  const missing = response.headers.get("x-unavailable-sites");
  return missing ? `The list is partial: not reached: ${missing}.` : otherwise;
}

/** The audit trail of every site: search it, check each site's chain. */
async function audit() {
  const form = element("form", undefined, { "aria-label": "Search the audit trail" });
  const action = element("input", undefined, { name: "action", autocomplete: "off" });
  const actor = element("input", undefined, { name: "actor", autocomplete: "off" });
  const target = element("input", undefined, { name: "target", autocomplete: "off" });
  form.append(field("Action ", action), field("Actor ", actor), field("Target ", target),
    element("button", "Search", { type: "submit" }));
  const verify = element("button", "Check the chains", { type: "button" });
  const status = element("p", "", { role: "status" });
  const results = element("div");
  async function search() {
    const query = new URLSearchParams({ sites: "all", allow_partial: "true", limit: "100" });
    for (const [name, input] of [["action", action], ["actor", actor], ["target", target]]) {
      if (input.value) query.set(name, input.value);
    }
    const { response, body } = await json(`/rest/v1/audit?${query}`);
    if (!response.ok) throw new Error((body && body.message) || response.statusText);
    status.textContent = partialNote(response, `${body.length} event(s).`);
    results.replaceChildren(table("Events, newest first", ["Time", "Site", "Actor", "Action", "Target", "Outcome"],
      body.map((e) => [e.time, e.site, actorName(e.actor), e.action, e.target, e.outcome])));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search().catch((error) => { status.textContent = `Could not search: ${error.message}`; });
  });
  verify.addEventListener("click", async () => {
    const { body } = await json("/rest/v1/audit/verify?sites=all&allow_partial=true");
    const rows = Object.entries((body && body.sites) || {}).map(([site, check]) =>
      [site, check.events, check.ok ? "intact" : "BROKEN", check.first_bad_event_id || "", check.reason || ""]);
    results.replaceChildren(table("Chains", ["Site", "Events", "Chain", "First bad event", "Reason"], rows));
    status.textContent = rows.every((r) => r[2] === "intact") ? "Every chain is intact." : "A chain is broken.";
  });
  main.replaceChildren(element("h2", "Audit"), form, verify, status, results);
  await search();
}

function actorName(actor) {
  if (!actor) return "-";
  if (actor.login) return `${actor.login}@${actor.domain}`;
  if (actor.service) return `service ${actor.service}`;
  if (actor.federated) return `${actor.federated} via ${actor.from_site}`;
  return "-";
}

const views = { overview, sessions, user, locks, audit };

async function show() {
  const name = location.hash.slice(1) || "overview";
  const view = views[name] || overview;
  try {
    await view();
  } catch (error) {
    const alert = document.createElement("p");
    alert.setAttribute("role", "alert");
    alert.textContent = `Could not load: ${error.message}`;
    main.replaceChildren(alert);
  }
}

window.addEventListener("hashchange", show);
show();
