// Sessions: the listing across sites, with filters and server pages, kept current by the event
// stream (a change reloads the first page, at most twice a second); kill one session, or log
// its user out everywhere.

import { SESSIONS, call, partialNote, refusal } from "../api.js";
import { button, choice, element, field, fillRows, rowsOf, statusLine, table } from "../dom.js";

const PAGE = 50;
const COLUMNS = ["Session", "User", "Type", "Site", "Expires in", "Websockets", "Actions"];

export async function sessions({ main, onLeave, rendered }) {
  const form = element("form", undefined, { "aria-label": "Filter the sessions" });
  const sites = choice("sites", [["all", "All sites"], ["current", "This site"]]);
  const domain = element("input", undefined, { name: "domain", autocomplete: "off" });
  const user = element("input", undefined, { name: "user", autocomplete: "off" });
  const type = choice("session_type", [["", "Any"], ["http", "HTTP"], ["websocket", "Websocket"]]);
  const live = element("input", undefined, { name: "live", type: "checkbox", checked: "" });
  form.append(field("Sites ", sites), field("Domain ", domain), field("User ", user), field("Type ", type),
    element("button", "Apply", { type: "submit" }), field("Live updates ", live));
  const status = statusLine();
  const outcome = element("p", "", { class: "outcome", "aria-live": "polite" });
  const liveState = element("p", "", { class: "live", "aria-live": "off" });
  const list = table("Sessions", COLUMNS, []);
  const rows = list.tBodies[0];
  const more = element("button", "Next page", { type: "button", hidden: "" });
  let next = null;
  let paged = false;
  let generation = 0;

  async function load(append) {
    const query = new URLSearchParams({ sites: sites.value, limit: String(PAGE), allow_partial: "true" });
    if (domain.value) query.set("domain", domain.value.trim());
    if (user.value) query.set("user", user.value.trim());
    if (type.value) query.set("session_type", type.value);
    if (append && next) query.set("page_token", next);
    const mine = ++generation;
    const { response, body } = await call(`${SESSIONS}?${query}`);
    if (mine !== generation) return; // a newer load has started: its answer is the one to show
    if (!response.ok) throw new Error(refusal(response, body));
    next = response.headers.get("x-next-page-token");
    paged = append;
    more.hidden = !next;
    status.textContent = partialNote(response, `${body.length} session(s)${next ? " on this page" : ""}.`);
    const made = body.map((item) => sessionRow(item, outcome, refresh));
    if (append) rows.append(...rowsOf(made));
    else fillRows(rows, COLUMNS.length, made);
    rendered();
  }
  const shown = (error) => { status.textContent = `Could not load: ${error.message}`; };
  const refresh = () => load(false).catch(shown);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  more.addEventListener("click", () => load(true).catch(shown));
  const stream = liveUpdates(sites, liveState, () => {
    if (!paged) refresh();
    else liveState.textContent = "Sessions changed since this page loaded: Apply to see them.";
  });
  live.addEventListener("change", () => (live.checked ? stream.open() : stream.close()));
  sites.addEventListener("change", () => live.checked && stream.open());
  onLeave(() => stream.close());
  main.replaceChildren(element("h2", "Sessions"), form, status, outcome, liveState, list, more);
  await load(false);
  stream.open();
}

/** The event stream's session and websocket changes: `changed` at most every 500 ms. */
function liveUpdates(sites, said, changed) {
  let sources = [];
  let timer = null;
  const soon = () => {
    if (timer === null) timer = setTimeout(() => { timer = null; changed(); }, 500);
  };
  return {
    open() {
      this.close();
      sources = ["session.*", "connection.*"].map((action) => {
        const query = new URLSearchParams({ sites: sites.value, action });
        const source = new EventSource(`/rest/v1/events?${query}`);
        source.addEventListener("message", soon);
        source.addEventListener("notice", (event) => {
          const notice = JSON.parse(event.data);
          said.textContent = `Live updates: ${notice.site} ${notice.notice}.`;
        });
        source.addEventListener("open", () => { said.textContent = "Live updates on."; });
        return source;
      });
    },
    close() {
      for (const source of sources) source.close();
      sources = [];
      clearTimeout(timer);
      timer = null;
      said.textContent = "Live updates off.";
    },
  };
}

/** A session's cells: what it is, and its Kill and Log out buttons. */
function sessionRow(item, outcome, refresh) {
  const who = `${item.login}@${item.domain}`;
  const kill = button("Kill", `Kill session ${item.session_id} of ${who}`, async () => {
    const sites = encodeURIComponent(JSON.stringify([item.site]));
    const { response, body } = await call(`${SESSIONS}/${item.session_id}?sites=${sites}`, { method: "DELETE" });
    outcome.textContent = response.ok
      ? `Session ${item.session_id} killed.`
      : `The kill was refused: ${refusal(response, body)}`;
    if (response.ok) kill.closest("tr").remove();
  });
  const logout = button("Log out", `Log ${who} out everywhere`, async () => {
    const request = { action: "logout", domain: item.domain, user: item.login, sites: "all" };
    const { response, body } = await call(SESSIONS, { method: "POST", body: JSON.stringify(request) });
    outcome.textContent = response.ok
      ? `${who} logged out: ${body.closed} session(s) ended.`
      : `The logout was refused: ${refusal(response, body)}`;
    if (response.ok) refresh();
  });
  const actions = document.createDocumentFragment();
  actions.append(kill, " ", logout);
  return [item.session_id, who, item.session_type, item.site, `${item.ttl} s`,
    String((item.connections || []).length), actions];
}
