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

const views = { overview };

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
