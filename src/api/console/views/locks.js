// Locks: every lock in force at any site, with each site's state of it; lift one.

import { call, partialNote, read, refusal } from "../api.js";
import { button, element, fillRows, statusLine, table } from "../dom.js";

const COLUMNS = ["Lock", "Target", "Message", "Expires", "Sites", "Actions"];

export async function locks({ main }) {
  const { response, body } = await read("/rest/v1/locks?sites=all&allow_partial=true");
  const status = statusLine(partialNote(response, `${body.length} lock(s) in force.`));
  const outcome = element("p", "", { class: "outcome", "aria-live": "polite" });
  const node = table("Locks in force", COLUMNS, []);
  const rows = body.map((lock) => {
    const target = Object.entries(lock.target || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const sites = Object.entries(lock.sites || {}).map(([s, state]) => `${s}: ${state}`).join(", ");
    const lift = button("Lift", `Lift lock ${lock.lock_id} on ${target}`, async () => {
      const answer = await call(`/rest/v1/locks/${lock.lock_id}?sites=all`, { method: "DELETE" });
      outcome.textContent = answer.response.ok
        ? `Lock ${lock.lock_id} lifted.`
        : `The lift was refused: ${refusal(answer.response, answer.body)}`;
      if (answer.response.ok) lift.closest("tr").remove();
    });
    return [lock.lock_id, target, lock.message, lock.expires_at || "never", sites, lift];
  });
  fillRows(node.tBodies[0], COLUMNS.length, rows);
  main.replaceChildren(element("h2", "Locks"), status, outcome, node);
}
