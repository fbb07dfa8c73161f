// Overview: every site with its nodes, leader and counts, from one of its own nodes; a site
// that does not answer is shown as unreachable, with the cause this node's health check gives,
// never as empty.

import { call, read } from "../api.js";
import { element, markStates, table } from "../dom.js";

export async function overview({ main }) {
  const [{ response, body: sites }, { body: health }] = await Promise.all([
    read("/cluster/sites?sites=all&allow_partial=true"),
    call("/healthcheck").then((r) => ({ body: r.body || { checks: [] } })),
  ]);
  const causes = new Map((health.checks || [])
    .filter((c) => c.componentName.startsWith("Site "))
    .map((c) => [c.componentName.slice(5), c.cause || ""]));
  const missing = (response.headers.get("x-unavailable-sites") || "").split(",").filter(Boolean);
  const rows = sites.map((s) => {
    const up = s.members.filter((m) => m.answers).length;
    return [s.site, "up", leaderName(s), `${up} of ${s.members.length}`,
      s.sessions, s.websockets, s.channels, ""];
  }).concat(missing.map((site) => [site, "unreachable", "—", "—", "—", "—", "—",
    causes.get(site) || "did not answer"]));
  rows.sort((a, b) => a[0].localeCompare(b[0]));
  const summary = markStates(table("Sites",
    ["Site", "State", "Leader", "Nodes answering", "Sessions", "Websockets", "Channels", "Cause"], rows), 1);
  const nodes = sites.map((s) => markStates(table(`Nodes of ${s.site}, as ${s.node} sees them`,
    ["Node", "Address", "Role", "State"],
    s.members.map((m) => [m.id, m.address, m.id === s.leader ? "leader" : "follower",
      m.answers === null ? "unknown" : m.answers ? "up" : "down"])), 3));
  const note = missing.length
    ? `Not reached: ${missing.join(", ")}. Their counts are unknown, not zero.`
    : `Every site answered (${sites.length}).`;
  const checks = markStates(table("This node's checks", ["Check", "State", "Cause"],
    (health.checks || []).map((c) => [c.componentName, c.status === "healthy" ? "up" : c.status, c.cause || ""])), 1);
  main.replaceChildren(element("h2", "Overview"), element("p", note, { role: "status" }), summary, ...nodes, checks);
}

function leaderName(site) {
  if (site.leader === null || site.leader === undefined) return "none";
  const leader = site.members.find((m) => m.id === site.leader);
  return leader ? `${leader.id} (${leader.address})` : String(site.leader);
}
