// Tasks: this site's durable tasks (writes that keep trying the sites they missed), each with
// every site's state; cancel one still running.

import { call, read, refusal } from "../api.js";
import { button, choice, element, field, fillRows, statusLine, table } from "../dom.js";

const COLUMNS = ["Task", "Type", "Status", "Submitted", "By", "Sites", "Actions"];
const RUNNING = new Set(["waiting", "inProgress"]);

export async function tasks({ main }) {
  const form = element("form", undefined, { "aria-label": "Filter the tasks" });
  const status = choice("status", [["", "Any"], ["waiting", "Waiting"], ["inProgress", "In progress"],
    ["completed", "Completed"], ["failed", "Failed"], ["canceled", "Canceled"]]);
  form.append(field("Status ", status), element("button", "Apply", { type: "submit" }));
  const said = statusLine();
  const outcome = element("p", "", { class: "outcome", "aria-live": "polite" });
  const list = table("Tasks of this site, newest first", COLUMNS, []);
  async function load() {
    const query = status.value ? `?status=${status.value}` : "";
    const { body } = await read(`/tasks${query}`);
    body.sort((a, b) => (b.submitDate || "").localeCompare(a.submitDate || ""));
    said.textContent = `${body.length} task(s).`;
    fillRows(list.tBodies[0], COLUMNS.length, body.map((task) => {
      const info = task.additionalInformation || {};
      const sites = Object.entries(info.sites || {}).map(([site, part]) =>
        `${site}: ${part.status}${part.lastError ? ` (${part.lastError})` : ""}`).join("; ");
      const actions = RUNNING.has(task.status)
        ? button("Cancel", `Cancel task ${task.taskId}`, async () => {
          const { response, body: refused } = await call(`/tasks/${task.taskId}`, { method: "DELETE" });
          outcome.textContent = response.ok ? `Task ${task.taskId} canceled.` : `Refused: ${refusal(response, refused)}`;
          load().catch(() => {});
        })
        : "";
      return [task.taskId, task.type, task.status, task.submitDate, info.onBehalfOf || "", sites, actions];
    }));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load().catch((error) => { said.textContent = `Could not load: ${error.message}`; });
  });
  main.replaceChildren(element("h2", "Tasks"), form, said, outcome, list);
  await load();
}
