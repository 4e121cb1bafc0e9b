// One row per change (GET /v1/audit/changes): an intent joined with its outcome, a
// dangling intent marked as such, the raw entries a click away; the subject of a row
// opens the subject view.
"use strict";

import {
  $, api, clear, clearMessage, display, el, guarded, linkButton, outcomeClass, outcomeText,
  shortTime, show,
} from "./core.js";
import { openEntry } from "./entries.js";

const PAGE_SIZE = 50;
const state = { filters: {}, cursor: null, nextCursor: null };
let openSubject = () => {};

// Who and why, as a row shows them: the purpose of a change, the reason of an admin entry.
export function whyText(row) {
  if (row.purpose) return row.purpose;
  if (row.reason) return "reason: " + row.reason;
  return "\u2014";
}

// The raw entries of a row, each a button that opens it.
export function entryButtons(row) {
  const cell = el("td", null, "entries");
  const names = row.entries.length === 2 ? ["intent", "outcome"] : ["entry"];
  row.entries.forEach((id, i) => {
    cell.appendChild(linkButton(names[i], "Open " + names[i] + " entry " + id, () => openEntry(id)));
  });
  return cell;
}

function readFilters() {
  const filters = {};
  for (const name of ["system", "customer_id", "actor", "since", "until", "limit"]) {
    const value = $("change-filters").elements[name].value.trim();
    if (value) filters[name] = value;
  }
  return filters;
}

export async function fetchChanges(cursor) {
  const query = new URLSearchParams(state.filters);
  if (!query.has("limit")) query.set("limit", String(PAGE_SIZE));
  if (cursor) query.set("cursor", cursor);
  const data = await api("GET", "/v1/audit/changes?" + query.toString());
  state.cursor = cursor;
  state.nextCursor = data.next_cursor || null;
  renderChanges(data.changes || []);
  show($("changes-next"), Boolean(state.nextCursor));
  show($("changes-first"), Boolean(cursor));
  return true;
}

export async function loadChanges(cursor) {
  return guarded(() => fetchChanges(cursor));
}

function renderChanges(rows) {
  const body = $("changes-body");
  clear(body);
  show($("changes-empty"), rows.length === 0);
  for (const change of rows) {
    const row = document.createElement("tr");
    row.dataset.changeId = String(change.change_id);
    if (change.dangling) row.classList.add("dangling");
    const time = el("td");
    time.appendChild(linkButton(shortTime(change.time), "Open entry of " + display(change.time),
      () => openEntry(String(change.entries[0]))));
    row.appendChild(time);
    row.appendChild(el("td", display(change.actor)));
    row.appendChild(el("td", whyText(change)));
    row.appendChild(el("td", display(change.action)));
    const subject = el("td");
    const name = display(change.system) + "/" + display(change.customer_id);
    subject.appendChild(linkButton(name, "Show subject " + name,
      () => openSubject(String(change.system), String(change.customer_id))));
    row.appendChild(subject);
    row.appendChild(el("td", (change.changed || []).map(String).join(", ")));
    row.appendChild(el("td", outcomeText(change), outcomeClass(change)));
    row.appendChild(entryButtons(change));
    row.addEventListener("click", () => openEntry(String(change.entries[0])));
    body.appendChild(row);
  }
}

export function resetChanges() {
  state.cursor = null;
  state.nextCursor = null;
  clear($("changes-body"));
}

export function initChanges(onSubject) {
  openSubject = onSubject;
  $("change-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    clearMessage();
    state.filters = readFilters();
    loadChanges(null);
  });
  $("change-filters").addEventListener("reset", () => {
    clearMessage();
    state.filters = {};
    setTimeout(() => loadChanges(null), 0);
  });
  $("changes-next").addEventListener("click", () => { clearMessage(); loadChanges(state.nextCursor); });
  $("changes-first").addEventListener("click", () => { clearMessage(); loadChanges(null); });
  document.addEventListener("audit-changed", () => {
    if (!$("view-changes").hidden) loadChanges(state.cursor);
  });
}
