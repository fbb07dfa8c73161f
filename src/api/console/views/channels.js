// Channels: every mail channel (IMAP, SMTP, JMAP) of every site; disconnect a user's.

import { call, partialNote, read, refusal } from "../api.js";
import { button, element, field, fillRows, rowsOf, since, statusLine, table } from "../dom.js";

const PAGE = 100;
const COLUMNS = ["User", "Protocol", "From", "Site", "Node", "Age", "Encrypted", "Actions"];

export async function channels({ main }) {
  const form = element("form", undefined, { "aria-label": "Filter the channels" });
  const user = element("input", undefined, { name: "user", autocomplete: "off", placeholder: "login@domain" });
  form.append(field("User ", user), element("button", "Apply", { type: "submit" }));
  const status = statusLine();
  const outcome = element("p", "", { class: "outcome", "aria-live": "polite" });
  const list = table("Mail channels", COLUMNS, []);
  const more = element("button", "Next page", { type: "button", hidden: "" });
  let offset = 0;

  async function load(append) {
    offset = append ? offset + PAGE : 0;
    const path = user.value.trim() ? `/servers/channels/${encodeURIComponent(user.value.trim())}` : "/servers/channels";
    const query = new URLSearchParams({ sites: "all", allow_partial: "true", limit: String(PAGE),
      offset: String(offset), sortBy: "connectionDate" });
    const { response, body } = await read(`${path}?${query}`);
    more.hidden = body.length < PAGE;
    status.textContent = partialNote(response, `${offset + body.length} channel(s)${more.hidden ? "" : " so far"}.`);
    const rows = body.map((c) => [c.username, c.protocol, c.remoteAddress, c.site, c.node,
      since(Date.parse(c.connectionDate)), c.isEncrypted ? "yes" : "no", disconnect(c.username, outcome, load)]);
    if (append) list.tBodies[0].append(...rowsOf(rows));
    else fillRows(list.tBodies[0], COLUMNS.length, rows);
  }
  const shown = (error) => { status.textContent = `Could not load: ${error.message}`; };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(false).catch(shown);
  });
  more.addEventListener("click", () => load(true).catch(shown));
  main.replaceChildren(element("h2", "Channels"), form, status, outcome, list, more);
  await load(false);
}

function disconnect(username, outcome, load) {
  return button("Disconnect", `Disconnect every channel of ${username}`, async () => {
    const { response, body } = await call(`/servers/channels/${encodeURIComponent(username)}?sites=all`, { method: "DELETE" });
    outcome.textContent = response.ok
      ? `${username} disconnected at every site.`
      : `The disconnect was refused: ${refusal(response, body)}`;
    if (response.ok) load(false).catch(() => {});
  });
}
