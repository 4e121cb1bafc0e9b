// What every view of the review page uses: text-only DOM helpers, the message box, the
// API client (same origin, bearer token from sessionStorage), and downloads.
// Rules kept throughout: every value from the API is rendered with textContent (never
// parsed as HTML: audit values may contain markup); the token lives in sessionStorage
// only and is sent only as an Authorization header to this same origin.
"use strict";

export const TOKEN_KEY = "gdpr-gateway.review-token";
export const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

// -- DOM, text only -----------------------------------------------------------------------

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// An SVG element with presentation attributes (never a style attribute: the CSP has no
// 'unsafe-inline'); its text, if any, as textContent.
export function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function show(node, visible) {
  node.hidden = !visible;
}

export function display(value) {
  if (value === null || value === undefined) return "\u2014";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function shortTime(value) {
  if (typeof value !== "string") return display(value);
  const match = value.match(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/);
  return match ? match[1] + "\n" + match[2] : value;
}

export function linkButton(text, label, onClick) {
  const button = el("button", text, "link");
  button.type = "button";
  if (label) button.setAttribute("aria-label", label);
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    onClick();
  });
  return button;
}

// -- messages -----------------------------------------------------------------------------

export function clearMessage() {
  const box = $("message");
  clear(box);
  show(box, false);
  box.className = "message";
}

export function showMessage(kind, title, lines) {
  const box = $("message");
  clear(box);
  box.className = "message " + kind;
  box.appendChild(el("strong", title));
  for (const line of lines || []) {
    if (line) box.appendChild(el("div", line));
  }
  show(box, true);
}

// A problem+json answer, by its title, detail, code and field errors.
export function showProblem(problem) {
  const lines = [];
  if (problem.detail) lines.push(problem.detail);
  for (const err of problem.errors || []) {
    lines.push(display(err.field) + ": " + display(err.message) + " (" + display(err.code) + ")");
  }
  const code = problem.code ? " (" + problem.code + ")" : "";
  showMessage("error", (problem.title || "Error " + problem.status) + code, lines);
}

// -- the API ------------------------------------------------------------------------------

export class ProblemError extends Error {
  constructor(problem) {
    super(problem.title || "problem");
    this.problem = problem;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

let onUnauthorized = () => {};

// What to do when the gateway answers 401 (the page signs out).
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function request(method, path, body, accept) {
  const headers = { Accept: accept };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(path, init);
  } catch (err) {
    throw new ProblemError({
      title: "The gateway could not be reached",
      detail: "Check that it is running and try again.",
      code: "network_error",
      status: 0,
    });
  }
}

async function failure(response) {
  const type = response.headers.get("Content-Type") || "";
  let data = null;
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
  }
  const problem = data && typeof data === "object" && !Array.isArray(data) ? data : {
    title: "Unexpected answer (HTTP " + response.status + ")",
    detail: response.ok ? "The gateway did not answer as expected." : response.statusText,
    status: response.status,
  };
  problem.status = problem.status || response.status;
  if (response.status === 401) onUnauthorized();
  return new ProblemError(problem);
}

// A JSON answer, or a ProblemError carrying the problem+json the gateway answered.
export async function api(method, path, body) {
  const response = await request(method, path, body, "application/json, application/problem+json");
  if (response.ok && (response.headers.get("Content-Type") || "").includes("json")) {
    try {
      return await response.json();
    } catch (err) {
      // fall through: not JSON after all
    }
  }
  throw await failure(response);
}

// A text answer of the given media type (e.g. text/markdown).
export async function apiText(path, accept) {
  const response = await request("GET", path, undefined, accept + ", application/problem+json");
  if (response.ok && (response.headers.get("Content-Type") || "").startsWith(accept)) {
    return response.text();
  }
  throw await failure(response);
}

// Run an action; any problem is shown, never a blank page or a raw stack.
export async function guarded(action) {
  try {
    return await action();
  } catch (err) {
    report(err);
    return undefined;
  }
}

export function report(err) {
  if (err instanceof ProblemError) {
    showProblem(err.problem);
  } else {
    showMessage("error", "Something went wrong in this page", [String(err && err.message)]);
  }
}

// -- downloads ----------------------------------------------------------------------------

// Offer ``text`` as a file: a same-origin blob the browser saves, never navigated to.
export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// -- shared cells -------------------------------------------------------------------------

export function outcomeText(row) {
  if (row.dangling) return "no outcome (dangling)";
  const parts = [];
  if (row.outcome) parts.push(row.outcome);
  if (row.problem_code) parts.push(row.problem_code);
  return parts.length ? parts.join(" \u00b7 ") : "\u2014";
}

export function outcomeClass(row) {
  return "outcome " + (row.dangling ? "dangling" : row.outcome || "none");
}
