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

/** Overview: every site's reach as this node's health check sees it. */
async function overview() {
  const health = await api("/healthcheck");
  const table = document.createElement("table");
  table.innerHTML = "<caption>Components</caption><thead><tr><th scope=col>Component</th><th scope=col>State</th><th scope=col>Cause</th></tr></thead>";
  const body = table.createTBody();
  for (const check of health.checks || []) {
    const row = body.insertRow();
    const healthy = check.status === "healthy";
    row.append(
      cell(check.componentName),
      cell(healthy ? "up" : check.status, healthy ? "state-up" : "state-down"),
      cell(check.cause || ""),
    );
  }
  const heading = document.createElement("h2");
  heading.textContent = "Overview";
  main.replaceChildren(heading, table);
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

const views = { overview, sessions };

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
