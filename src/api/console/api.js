// The public REST API, with the session cookie the login page set: everything the console
// shows, a script can do too.

export const SESSIONS = "/rest/v1/master/logicalroles/ws/sessions";

/** A JSON call: the response and its decoded body (`null` when it has none). */
export async function call(path, options = {}) {
  const headers = { accept: "application/json" };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => null);
  return { response, body };
}

/** A read that must succeed: its body, or an error with the API's message. */
export async function read(path) {
  const { response, body } = await call(path);
  if (!response.ok) throw new Error(refusal(response, body));
  return { response, body };
}

export function refusal(response, body) {
  return (body && body.message) || `${response.status} ${response.statusText}`;
}

/** What a read that allowed a partial answer says of the sites it did not reach. */
export function partialNote(response, otherwise) {
  const missing = response.headers.get("x-unavailable-sites");
  return missing ? `The list is partial: not reached: ${missing}.` : otherwise;
}
