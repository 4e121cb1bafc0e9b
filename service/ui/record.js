// The record of processing activities (GDPR Art. 30), as GET /v1/record-of-processing
// gives it: one section per system, naming the policy version it was made from; and the
// same record as a Markdown download (Accept: text/markdown).
"use strict";

import {
  $, api, apiText, clear, clearMessage, display, download, el, guarded, show, showMessage,
} from "./core.js";

let loaded = false;

function party(value) {
  if (!value) return null;
  return [value.name, value.address, value.contact].filter(Boolean).join(", ");
}

function facts(act) {
  const dl = el("dl", null, "facts");
  const add = (label, value) => {
    dl.appendChild(el("dt", label));
    dl.appendChild(el("dd", value === null || value === undefined || value === "" ? "not stated" : value));
  };
  const storage = act.storage;
  add("Controller", party(act.controller));
  if (act.representative) add("Representative", party(act.representative));
  add("Data protection officer", party(act.dpo));
  add("Processor", act.processor
    ? act.processor.name + " (" + act.processor.country + ")" + (act.processor.contract ? ", " + act.processor.contract : "")
    : null);
  add("Data subjects", act.data_subjects.join("; "));
  add("Recipients", act.stated
    ? act.recipients.map((r) => r.name + " (" + r.kind + (r.country ? ", " + r.country : "") + ")").join("; ") || "none"
    : null);
  add("Transfers to third countries", act.stated
    ? act.transfers.map((t) => t.country + ": " + t.recipient + " (" + t.safeguard + (t.note ? "; " + t.note : "") + ")").join("; ") || "none"
    : null);
  add("Kept in the upstream", storage.upstream.where + ": " + display(storage.upstream.retention));
  const days = storage.audit_log.retention_days;
  add("Kept in the audit log", days
    ? [days.default + " days by default"].concat(
      Object.entries(days.categories).map(([cat, n]) => cat + ": " + n + " days")).join("; ")
    : null);
  return dl;
}

function table(caption, head, rows) {
  const wrap = el("div", null, "table-wrap");
  const t = el("table", null, "record-table");
  t.appendChild(el("caption", caption, "visually-hidden"));
  const thead = el("thead");
  const tr = el("tr");
  for (const h of head) {
    const th = el("th", h);
    th.setAttribute("scope", "col");
    tr.appendChild(th);
  }
  thead.appendChild(tr);
  t.appendChild(thead);
  const tbody = el("tbody");
  for (const cells of rows) {
    const row = el("tr");
    for (const cell of cells) row.appendChild(el("td", cell));
    tbody.appendChild(row);
  }
  t.appendChild(tbody);
  wrap.appendChild(t);
  return wrap;
}

function masking(m) {
  return Object.entries(m).map(([role, strategy]) => role + ": " + strategy).join(", ");
}

function activitySection(act) {
  const section = el("section", null, "activity");
  section.dataset.system = act.system;
  section.appendChild(el("h4", act.system + ": " + (act.activity || act.title)));
  section.appendChild(el("p", "Policy version " + act.policy_version, "hash version"));
  if (act.gaps.length) {
    section.appendChild(el("p", "Not stated in the policy: " + act.gaps.join(", "), "gaps"));
  }
  section.appendChild(facts(act));
  section.appendChild(el("h5", "Purposes"));
  section.appendChild(table("Purposes of " + act.system, ["purpose", "what for", "data categories"],
    act.purposes.map((p) => [p.purpose, display(p.description), p.categories.join(", ")])));
  section.appendChild(el("h5", "Personal data"));
  section.appendChild(table("Personal data of " + act.system,
    ["category", "fields", "sensitivity", "changed for", "by", "in clear for", "masking", "audit log (days)"],
    act.data.map((row) => [
      row.category + " (" + row.category_name + ")", row.fields.join(", "),
      row.sensitivity + row.raised.map((r) => "; " + r.sensitivity + " while " + r.rule + " holds").join(""),
      row.purposes.join(", ") || "\u2014", row.editable_by.join(", ") || "\u2014",
      row.in_clear_for.join(", ") || "\u2014", masking(row.masking),
      display(row.audit_log.retention_days),
    ])));
  if (act.rules.length) {
    section.appendChild(el("h5", "Record-state rules"));
    const list = el("ul");
    for (const rule of act.rules) list.appendChild(el("li", rule.name + ": " + rule.effect));
    section.appendChild(list);
  }
  section.appendChild(el("h5", "Security measures"));
  const measures = el("ul");
  for (const m of act.security) measures.appendChild(el("li", m));
  section.appendChild(measures);
  return section;
}

export async function loadRecord(force) {
  if (loaded && !force) return;
  clearMessage();
  const record = await guarded(() => api("GET", "/v1/record-of-processing"));
  if (!record) return;
  $("record-versions").textContent = "Made from the policies " + record.policies
    .map((p) => p.system + " " + p.version.slice(0, 12) + " (" + p.file + ")").join(", ") + ".";
  const body = $("record-body");
  clear(body);
  for (const act of record.activities) body.appendChild(activitySection(act));
  loaded = true;
  show(body, true);
}

async function downloadMarkdown() {
  clearMessage();
  const text = await guarded(() => apiText("/v1/record-of-processing", "text/markdown"));
  if (text === undefined) return;
  download("record-of-processing.md", "text/markdown", text);
  showMessage("info", "Downloaded", ["The record of processing, as Markdown."]);
}

export function resetRecord() {
  loaded = false;
  clear($("record-body"));
  $("record-versions").textContent = "";
}

export function initRecord() {
  $("record-markdown").addEventListener("click", downloadMarkdown);
}
