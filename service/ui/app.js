// The audit review page of gdpr-gateway. No framework, no build step.
// Rules kept throughout: every value from the API is rendered with textContent (never
// parsed as HTML: audit values may contain markup); the token lives in sessionStorage only and
// is sent only as an Authorization header to this same origin.
"use strict";

(function () {
  const TOKEN_KEY = "gdpr-gateway.review-token";
  const PAGE_SIZE = 50;
  const $ = (id) => document.getElementById(id);

  const state = {
    filters: {},
    cursor: null, // the cursor of the page shown (null: first page)
    nextCursor: null,
    selected: null, // audit_id of the entry shown
  };

  // -- small DOM helpers (text only) ------------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function display(value) {
    if (value === null || value === undefined) return "\u2014";
    if (typeof value === "string") return value;
    return JSON.stringify(value);
  }

  // -- messages ---------------------------------------------------------------------------

  function clearMessage() {
    const box = $("message");
    clear(box);
    show(box, false);
    box.className = "message";
  }

  function showMessage(kind, title, lines) {
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
  function showProblem(problem) {
    const lines = [];
    if (problem.detail) lines.push(problem.detail);
    for (const err of problem.errors || []) {
      lines.push(display(err.field) + ": " + display(err.message) + " (" + display(err.code) + ")");
    }
    const code = problem.code ? " (" + problem.code + ")" : "";
    showMessage("error", (problem.title || "Error " + problem.status) + code, lines);
  }

  // -- the API ----------------------------------------------------------------------------

  class ProblemError extends Error {
    constructor(problem) {
      super(problem.title || "problem");
      this.problem = problem;
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json, application/problem+json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ProblemError({
        title: "The gateway could not be reached",
        detail: "Check that it is running and try again.",
        code: "network_error",
        status: 0,
      });
    }
    const type = response.headers.get("Content-Type") || "";
    let data = null;
    if (type.includes("json")) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    if (response.ok && data !== null) return data;
    const problem = data && typeof data === "object" && !Array.isArray(data) ? data : {
      title: "Unexpected answer (HTTP " + response.status + ")",
      detail: response.ok ? "The gateway did not answer with JSON." : response.statusText,
      status: response.status,
    };
    problem.status = problem.status || response.status;
    if (response.status === 401) {
      signOut();
    }
    throw new ProblemError(problem);
  }

  // Run an action; any problem is shown, never a blank page or a raw stack.
  async function guarded(action) {
    try {
      return await action();
    } catch (err) {
      report(err);
      return undefined;
    }
  }

  function report(err) {
    if (err instanceof ProblemError) {
      showProblem(err.problem);
    } else {
      showMessage("error", "Something went wrong in this page", [String(err && err.message)]);
    }
  }

  // -- sign in / out ----------------------------------------------------------------------

  function signedIn(yes) {
    show($("signin"), !yes);
    show($("review"), yes);
    show($("session"), yes);
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.cursor = null;
    state.nextCursor = null;
    state.selected = null;
    clear($("entries-body"));
    show($("detail"), false);
    show($("verify-result"), false);
    signedIn(false);
    $("token").value = "";
  }

  async function signIn(event) {
    event.preventDefault();
    clearMessage();
    const value = $("token").value.trim();
    $("token").value = "";
    if (!value) {
      showMessage("error", "A token is required", []);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      await fetchPage(null);
    } catch (err) {
      // unknown token (401), or one whose roles may not review the log (403)
      signOut();
      report(err);
      return;
    }
    signedIn(true);
    loadSystems();
  }

  async function loadSystems() {
    try {
      const data = await api("GET", "/v1/systems");
      const list = $("systems");
      clear(list);
      for (const s of data.systems || []) {
        const option = document.createElement("option");
        option.value = String(s.system);
        list.appendChild(option);
      }
    } catch (err) {
      // the list of systems is a convenience; the filter works without it
    }
  }

  // -- the list ---------------------------------------------------------------------------

  function readFilters() {
    const filters = {};
    for (const name of ["system", "customer_id", "actor", "outcome", "since", "until", "limit"]) {
      const value = $("filters").elements[name].value.trim();
      if (value) filters[name] = value;
    }
    return filters;
  }

  function listPath(cursor) {
    const query = new URLSearchParams(state.filters);
    if (!query.has("limit")) query.set("limit", String(PAGE_SIZE));
    if (cursor) query.set("cursor", cursor);
    return "/v1/audit?" + query.toString();
  }

  async function loadPage(cursor) {
    return guarded(() => fetchPage(cursor));
  }

  async function fetchPage(cursor) {
    const data = await api("GET", listPath(cursor));
    state.cursor = cursor;
    state.nextCursor = data.next_cursor || null;
    renderEntries(data.entries || []);
    show($("next-page"), Boolean(state.nextCursor));
    show($("first-page"), Boolean(cursor));
    return true;
  }

  function outcomeText(entry) {
    const parts = [];
    if (entry.outcome) parts.push(entry.outcome);
    if (entry.problem_code) parts.push(entry.problem_code);
    return parts.length ? parts.join(" \u00b7 ") : "\u2014";
  }

  function renderEntries(entries) {
    const body = $("entries-body");
    clear(body);
    show($("empty"), entries.length === 0);
    for (const entry of entries) {
      const row = document.createElement("tr");
      row.dataset.auditId = String(entry.audit_id);
      if (entry.audit_id === state.selected) row.classList.add("selected");
      const timeCell = document.createElement("td");
      const open = el("button", shortTime(entry.time), "link");
      open.type = "button";
      open.title = display(entry.time);
      open.setAttribute("aria-label", "Open entry of " + display(entry.time));
      open.addEventListener("click", (event) => {
        event.stopPropagation();
        openEntry(String(entry.audit_id));
      });
      timeCell.appendChild(open);
      row.appendChild(timeCell);
      row.appendChild(el("td", display(entry.actor)));
      row.appendChild(el("td", display(entry.action)));
      row.appendChild(el("td", display(entry.phase)));
      row.appendChild(el("td", outcomeText(entry), "outcome " + (entry.outcome || "none")));
      row.appendChild(el("td", display(entry.system)));
      row.appendChild(el("td", display(entry.customer_id)));
      row.appendChild(el("td", (entry.changed || []).map(String).join(", ")));
      row.addEventListener("click", () => openEntry(String(entry.audit_id)));
      body.appendChild(row);
    }
  }

  function shortTime(value) {
    if (typeof value !== "string") return display(value);
    const match = value.match(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/);
    return match ? match[1] + "\n" + match[2] : value;
  }

  // -- one entry --------------------------------------------------------------------------

  const META = [
    ["audit_id", "Audit id"], ["seq", "Sequence"], ["time", "Time"], ["actor", "Actor"],
    ["roles", "Roles"], ["action", "Action"], ["phase", "Phase"], ["outcome", "Outcome"],
    ["problem_code", "Problem code"], ["upstream_status", "Upstream status"],
    ["system", "System"], ["customer_id", "Customer id"], ["purpose", "Purpose"],
    ["changed", "Changed fields"], ["reason", "Reason"], ["target_id", "About entry"],
    ["intent_id", "Intent"], ["request_id", "Request id"], ["policy_version", "Policy version"],
    ["prev_hash", "Previous hash"], ["hash", "Hash"],
  ];

  const LINKS = ["intent_id", "target_id"];

  function renderValues(body, entry) {
    clear(body);
    const before = entry.before || {};
    const after = entry.after || {};
    const fields = Array.from(new Set(Object.keys(before).concat(Object.keys(after)))).sort();
    for (const field of fields) {
      const row = document.createElement("tr");
      row.appendChild(el("th", field)).setAttribute("scope", "row");
      for (const side of [before, after]) {
        const has = Object.prototype.hasOwnProperty.call(side, field);
        const text = has ? display(side[field]) : "";
        row.appendChild(el("td", text, text === "***" ? "value masked" : "value"));
      }
      body.appendChild(row);
    }
    return fields.length;
  }

  async function openEntry(auditId) {
    clearMessage();
    const entry = await guarded(() => api("GET", "/v1/audit/" + encodeURIComponent(auditId)));
    if (!entry) return;
    state.selected = auditId;
    for (const row of $("entries-body").rows) {
      row.classList.toggle("selected", row.dataset.auditId === auditId);
    }
    $("d-id").textContent = auditId;
    const meta = $("d-meta");
    clear(meta);
    for (const [key, label] of META) {
      if (!(key in entry)) continue;
      const value = Array.isArray(entry[key]) ? entry[key].map(String).join(", ") : display(entry[key]);
      meta.appendChild(el("dt", label));
      const dd = el("dd", null, key.endsWith("hash") ? "hash" : "");
      if (LINKS.includes(key) && typeof entry[key] === "string" && entry[key]) {
        // the intent an outcome closes, the entry a reveal was about: one click away
        const target = entry[key];
        const go = el("button", target, "link");
        go.type = "button";
        go.setAttribute("aria-label", "Open entry " + target);
        go.addEventListener("click", () => openEntry(target));
        dd.appendChild(go);
      } else {
        dd.textContent = value;
      }
      meta.appendChild(dd);
    }
    const count = renderValues($("d-values-body"), entry);
    show($("d-values"), count > 0);
    show($("d-no-values"), count === 0);
    show($("reveal-form"), count > 0);
    show($("revealed"), false);
    $("reason").value = "";
    show($("detail"), true);
  }

  async function reveal(event) {
    event.preventDefault();
    clearMessage();
    const reason = $("reason").value.trim();
    if (!state.selected) return;
    if (!reason) {
      showMessage("error", "A reason is required", ["Say why the clear values are needed."]);
      $("reason").focus();
      return;
    }
    const id = state.selected;
    const result = await guarded(() =>
      api("POST", "/v1/audit/" + encodeURIComponent(id) + "/reveal", { reason }));
    if (!result) return;
    $("r-id").textContent = display(result.reveal_audit_id);
    renderValues($("r-values-body"), result.entry || {});
    show($("revealed"), true);
    showMessage("info", "Revealed", ["This reveal was recorded as entry " + display(result.reveal_audit_id) + "."]);
    loadPage(state.cursor); // the reveal's own entry joins the list
  }

  // -- verify -----------------------------------------------------------------------------

  async function verify() {
    clearMessage();
    const report = await guarded(() => api("GET", "/v1/audit/verify"));
    if (!report) return;
    const ok = $("v-ok");
    ok.textContent = report.ok ? "ok" : "BROKEN";
    ok.className = report.ok ? "ok" : "bad";
    $("v-entries").textContent = display(report.entries);
    $("v-head").textContent = display(report.head);
    $("v-first-bad").textContent = report.first_bad ? String(report.first_bad) : "none";
    show($("verify-result"), true);
  }

  // -- wiring -----------------------------------------------------------------------------

  function start() {
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => {
      signOut();
      clearMessage();
      showMessage("info", "Signed out", ["The token was removed from this tab."]);
    });
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      clearMessage();
      state.filters = readFilters();
      loadPage(null);
    });
    $("filters").addEventListener("reset", () => {
      clearMessage();
      state.filters = {};
      setTimeout(() => loadPage(null), 0);
    });
    $("next-page").addEventListener("click", () => { clearMessage(); loadPage(state.nextCursor); });
    $("first-page").addEventListener("click", () => { clearMessage(); loadPage(null); });
    $("verify").addEventListener("click", verify);
    $("reveal-form").addEventListener("submit", reveal);

    if (token()) {
      signedIn(true);
      loadPage(null);
      loadSystems();
    } else {
      signedIn(false);
    }
    document.body.dataset.ready = "true";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
