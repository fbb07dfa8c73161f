// Building the page: elements, labelled fields, tables. Nothing here talks to the API.

export function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

export function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** A control with its visible label (the label wraps it, so it names it). */
export function field(label, control) {
  const wrapper = element("label", label);
  wrapper.append(control);
  return wrapper;
}

export function choice(name, options) {
  const select = element("select", undefined, { name });
  for (const [value, text] of options) select.append(element("option", text, { value }));
  return select;
}

export function button(text, label, onClick) {
  const node = element("button", text, { type: "button" });
  if (label) node.setAttribute("aria-label", label);
  if (onClick) node.addEventListener("click", onClick);
  return node;
}

/** A status line: what a view found, or what an action did (read out by screen readers). */
export function statusLine(text = "") {
  return element("p", text, { role: "status" });
}

export function table(caption, columns, rows) {
  const node = element("table");
  node.append(element("caption", caption));
  const head = node.createTHead().insertRow();
  for (const name of columns) head.append(element("th", name, { scope: "col" }));
  const body = node.createTBody();
  fillRows(body, columns.length, rows);
  return node;
}

/** Table rows made from `rows` (arrays of values, or of prepared nodes for a cell). */
export function rowsOf(rows) {
  return rows.map((values) => {
    const row = document.createElement("tr");
    for (const value of values) {
      if (value instanceof Node) {
        const td = document.createElement("td");
        td.append(value);
        row.append(td);
      } else {
        row.append(cell(String(value ?? "")));
      }
    }
    return row;
  });
}

/** Replaces a table body's rows with `rows`, or with one "None" row spanning its `width`. */
export function fillRows(body, width, rows) {
  const made = rowsOf(rows);
  if (made.length === 0) {
    const row = document.createElement("tr");
    const empty = cell("None");
    empty.colSpan = width;
    row.append(empty);
    made.push(row);
  }
  body.replaceChildren(...made);
}

const SIGNS = { up: ["● ", "sign-up"], unknown: ["? ", "sign-unknown"], down: ["✕ ", "sign-down"] };

/** Marks the `column` of each row up or not, in words and with a sign: never colour alone. */
export function markStates(node, column) {
  for (const row of node.tBodies[0].rows) {
    const state = row.cells[column];
    if (state && row.cells.length > 1) {
      const [sign, kind] = SIGNS[state.textContent] || SIGNS.down;
      state.prepend(element("span", sign, { "aria-hidden": "true", class: kind }));
    }
  }
  return node;
}

/** How long ago `ms` (a time in ms since the epoch) was, in the largest unit that fits. */
export function since(ms) {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}
