// Everything about one data subject (system/customer) on one screen: every change, oldest
// to newest (GET /v1/audit/changes?order=oldest), with the fields each changed (masked),
// who, why and the outcome; the export (Art. 15, a download) and the erasure (Art. 17: a
// reason and a confirmation naming the subject). Both are the gateway's to allow: for an
// auditor it answers 403, shown as a readable message.
"use strict";

import {
  $, api, clear, clearMessage, display, download, el, guarded, outcomeClass, outcomeText,
  shortTime, show, showMessage,
} from "./core.js";
import { entryButtons, whyText } from "./changes.js";

const PAGE_SIZE = 200;
const state = { system: null, customer: null, nextCursor: null };

function subjectName() {
  return state.system + "/" + state.customer;
}

function subjectPath() {
  return encodeURIComponent(state.system) + "/" + encodeURIComponent(state.customer);
}

// "Tel1: *** -> ***": the field and its masked values, as the entry holds them.
function fieldsText(row) {
  const before = row.before || {};
  const after = row.after || {};
  return (row.changed || []).map((field) => {
    const has = (side) => Object.prototype.hasOwnProperty.call(side, field);
    if (!has(before) && !has(after)) return String(field);
    return String(field) + ": " + display(has(before) ? before[field] : null) + " \u2192 " +
      display(has(after) ? after[field] : null);
  });
}

function renderRows(rows, append) {
  const body = $("subject-body");
  if (!append) clear(body);
  for (const change of rows) {
    const row = document.createElement("tr");
    row.dataset.changeId = String(change.change_id);
    if (change.dangling) row.classList.add("dangling");
    row.appendChild(el("td", shortTime(change.time), "time"));
    row.appendChild(el("td", display(change.actor)));
    row.appendChild(el("td", whyText(change)));
    row.appendChild(el("td", display(change.action)));
    const fields = el("td", null, "fields");
    for (const line of fieldsText(change)) fields.appendChild(el("div", line));
    row.appendChild(fields);
    row.appendChild(el("td", outcomeText(change), outcomeClass(change)));
    row.appendChild(entryButtons(change));
    body.appendChild(row);
  }
  show($("subject-empty"), body.rows.length === 0);
}

async function fetchRows(cursor) {
  const query = new URLSearchParams({
    system: state.system, customer_id: state.customer, order: "oldest", limit: String(PAGE_SIZE),
  });
  if (cursor) query.set("cursor", cursor);
  const data = await api("GET", "/v1/audit/changes?" + query.toString());
  state.nextCursor = data.next_cursor || null;
  renderRows(data.changes || [], Boolean(cursor));
  show($("subject-more"), Boolean(state.nextCursor));
  return true;
}

export async function showSubject(system, customer) {
  clearMessage();
  state.system = system;
  state.customer = customer;
  $("s-system").value = system;
  $("s-customer").value = customer;
  $("s-name").textContent = subjectName();
  $("e-confirm-label").textContent = "Type " + subjectName() + " to confirm";
  $("e-confirm").value = "";
  $("e-reason").value = "";
  $("e-erase").disabled = true;
  const ok = await guarded(() => fetchRows(null));
  show($("subject-panel"), Boolean(ok));
}

async function exportSubject() {
  clearMessage();
  if (!state.system) return;
  const name = subjectName();
  const data = await guarded(() => api("GET", "/v1/subjects/" + subjectPath() + "/export"));
  if (!data) return;
  const file = (state.system + "-" + state.customer + "-export.json").replace(/[^A-Za-z0-9._-]/g, "_");
  download(file, "application/json", JSON.stringify(data, null, 2) + "\n");
  showMessage("info", "Exported " + name, [
    String((data.entries || []).length) + " entries, saved as " + file + ".",
    "This export was recorded as entry " + display(data.export_audit_id) + ".",
  ]);
  await guarded(() => fetchRows(null));
}

function confirmed() {
  return state.system !== null && $("e-confirm").value.trim() === subjectName();
}

async function eraseSubject(event) {
  event.preventDefault();
  clearMessage();
  const reason = $("e-reason").value.trim();
  if (!reason) {
    showMessage("error", "A reason is required", ["Say why the subject is erased."]);
    return;
  }
  if (!confirmed()) {
    showMessage("error", "Not confirmed", ["Type " + subjectName() + " to confirm the erasure."]);
    return;
  }
  const name = subjectName();
  const result = await guarded(() =>
    api("POST", "/v1/subjects/" + subjectPath() + "/erase", { reason }));
  if (!result) return;
  $("e-confirm").value = "";
  $("e-reason").value = "";
  $("e-erase").disabled = true;
  showMessage("info", "Erased " + name, [
    "Its personal values in the audit log can never be read again; the chain still verifies.",
    "This erasure was recorded as entry " + display(result.audit_id) + ".",
  ]);
  await guarded(() => fetchRows(null));
  document.dispatchEvent(new CustomEvent("audit-changed"));
}

export function resetSubject() {
  state.system = null;
  state.customer = null;
  clear($("subject-body"));
  show($("subject-panel"), false);
}

export function initSubject() {
  $("subject-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const system = $("s-system").value.trim();
    const customer = $("s-customer").value.trim();
    if (system && customer) showSubject(system, customer);
  });
  $("subject-more").addEventListener("click", () => guarded(() => fetchRows(state.nextCursor)));
  $("s-export").addEventListener("click", exportSubject);
  $("e-confirm").addEventListener("input", () => { $("e-erase").disabled = !confirmed(); });
  $("erase-form").addEventListener("submit", eraseSubject);
}
