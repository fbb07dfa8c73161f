// Certificates: every node's TLS listeners at every site (subject, names, expiry, fingerprint);
// reload them, and see what each node now serves: a new certificate, or still the old one.

import { call, partialNote, read, refusal } from "../api.js";
import { button, choice, element, field, fillRows, statusLine, table } from "../dom.js";

const COLUMNS = ["Site", "Node", "Listener", "Port", "Subject", "Names", "Expires", "SHA-256", "After the reload"];
const LIST = "/servers/certificates?sites=all&allow_partial=true";

export async function certificates({ main }) {
  let { response, body } = await read(LIST);
  const status = statusLine(partialNote(response, `${body.length} listener(s).`));
  const outcome = element("div", undefined, { "aria-live": "polite" });
  const list = table("TLS listeners", COLUMNS, []);
  const ports = [...new Set(body.map((c) => c.port))].sort((a, b) => a - b);
  const port = choice("port", [["", "Every TLS listener"], ...ports.map((p) => [String(p), `Port ${p}`])]);
  const show = (before) => fillRows(list.tBodies[0], COLUMNS.length, body.map((c) => {
    const key = `${c.site}/${c.node}/${c.listener}`;
    const after = before === undefined ? "" : before.get(key) === c.sha256 ? "unchanged" : "new certificate";
    return [c.site, c.node, c.listener, c.port, c.subject, (c.sans || []).join(", "), c.notAfter,
      `${c.sha256.slice(0, 23)}…`, after];
  }));
  const reload = button("Reload", "Reload the certificates at every site", async () => {
    reload.disabled = true;
    const before = new Map(body.map((c) => [`${c.site}/${c.node}/${c.listener}`, c.sha256]));
    const query = new URLSearchParams({ "reload-certificate": "", sites: "all" });
    if (port.value) query.set("port", port.value);
    const answer = await call(`/servers?${query}`, { method: "POST" });
    outcome.replaceChildren(reloadAnswer(answer));
    ({ response, body } = await read(LIST));
    status.textContent = partialNote(response, `${body.length} listener(s).`);
    show(before);
    reload.disabled = false;
  });
  const controls = element("div", undefined, { class: "fields" });
  controls.append(field("Reload ", port), reload);
  show();
  main.replaceChildren(element("h2", "Certificates"), status, controls, outcome, list);
}

/** The reload's answer: done, or which nodes kept their old pair and why. */
function reloadAnswer({ response, body }) {
  if (response.status === 204) return element("p", "Reloaded on every node of every site.");
  const said = element("div");
  said.append(element("p", `The reload was refused or incomplete: ${refusal(response, body)}`, { role: "alert" }));
  const cause = body && body.cause;
  if (cause && typeof cause === "object") {
    said.append(table("Each node's answer", ["Where", "Answer"],
      Object.entries(cause).map(([where, why]) => [where, typeof why === "string" ? why : JSON.stringify(why)])));
  } else if (cause) {
    said.append(element("p", String(cause)));
  }
  return said;
}
