// The raw entries as the chain holds them (GET /v1/audit), one entry opened in the side
// panel (GET /v1/audit/{id}) with its reveal (POST .../reveal), and the chain's
// verification (GET /v1/audit/verify).
"use strict";

import {
  $, api, clear, clearMessage, display, el, guarded, linkButton, shortTime, show, showMessage,
} from "./core.js";

const PAGE_SIZE = 50;
const state = { filters: {}, cursor: null, nextCursor: null, selected: null };

// -- the list -----------------------------------------------------------------------------

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

export async function loadEntries(cursor) {
  return guarded(() => fetchEntries(cursor));
}

async function fetchEntries(cursor) {
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
    const id = String(entry.audit_id);
    row.dataset.auditId = id;
    if (id === state.selected) row.classList.add("selected");
    const timeCell = document.createElement("td");
    const open = linkButton(shortTime(entry.time), "Open entry of " + display(entry.time),
      () => openEntry(id));
    open.title = display(entry.time);
    timeCell.appendChild(open);
    row.appendChild(timeCell);
    row.appendChild(el("td", display(entry.actor)));
    row.appendChild(el("td", display(entry.action)));
    row.appendChild(el("td", display(entry.phase)));
    row.appendChild(el("td", outcomeText(entry), "outcome " + (entry.outcome || "none")));
    row.appendChild(el("td", display(entry.system)));
    row.appendChild(el("td", display(entry.customer_id)));
    row.appendChild(el("td", (entry.changed || []).map(String).join(", ")));
    row.addEventListener("click", () => openEntry(id));
    body.appendChild(row);
  }
}

export function resetEntries() {
  state.cursor = null;
  state.nextCursor = null;
  state.selected = null;
  clear($("entries-body"));
  show($("detail"), false);
  show($("verify-result"), false);
}

// -- one entry ----------------------------------------------------------------------------

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

// Why a value reads "erased": the subject's erasure (Art. 17) or its retention ending.
const ERASED_BECAUSE = { request: "erasure request", retention: "retention" };

function valueText(entry, value) {
  if (value === "erased" && entry.erasure && entry.erasure.reason) {
    return "erased (" + (ERASED_BECAUSE[entry.erasure.reason] || display(entry.erasure.reason)) + ")";
  }
  return display(value);
}

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
      const text = has ? valueText(entry, side[field]) : "";
      row.appendChild(el("td", text, text === "***" ? "value masked" : "value"));
    }
    body.appendChild(row);
  }
  return fields.length;
}

export async function openEntry(auditId) {
  clearMessage();
  const entry = await guarded(() => api("GET", "/v1/audit/" + encodeURIComponent(auditId)));
  if (!entry) return;
  state.selected = auditId;
  for (const row of document.querySelectorAll("tr[data-audit-id]")) {
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
      dd.appendChild(linkButton(target, "Open entry " + target, () => openEntry(target)));
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
  const entry = result.entry || {};
  $("r-id").textContent = display(result.reveal_audit_id);
  renderValues($("r-values-body"), entry);
  const erased = $("r-erased");
  erased.textContent = entry.erasure
    ? "The values of this subject were erased (" +
      (ERASED_BECAUSE[entry.erasure.reason] || display(entry.erasure.reason)) + ", " +
      display(entry.erasure.time) + ")."
    : "";
  show(erased, Boolean(entry.erasure));
  show($("revealed"), true);
  showMessage("info", "Revealed", ["This reveal was recorded as entry " + display(result.reveal_audit_id) + "."]);
  document.dispatchEvent(new CustomEvent("audit-changed"));
}

// -- verify -------------------------------------------------------------------------------

export async function verify() {
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

// -- wiring -------------------------------------------------------------------------------

export function initEntries() {
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    clearMessage();
    state.filters = readFilters();
    loadEntries(null);
  });
  $("filters").addEventListener("reset", () => {
    clearMessage();
    state.filters = {};
    setTimeout(() => loadEntries(null), 0);
  });
  $("next-page").addEventListener("click", () => { clearMessage(); loadEntries(state.nextCursor); });
  $("first-page").addEventListener("click", () => { clearMessage(); loadEntries(null); });
  $("verify").addEventListener("click", verify);
  $("reveal-form").addEventListener("submit", reveal);
  document.addEventListener("audit-changed", () => {
    if (!$("view-entries").hidden) loadEntries(state.cursor);
  });
}
