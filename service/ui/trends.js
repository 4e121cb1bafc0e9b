// The trend panel: changes, refusals by code and reveals per day over a chosen range
// (GET /v1/audit/trends, counted from the audit log's query columns), drawn as plain SVG
// built with createElementNS (no library, no inline style: colours come from style.css
// by class), with the same numbers per day and system in a table below it.
"use strict";

import { $, api, clear, clearMessage, display, el, guarded, show, svg } from "./core.js";

const WIDTH = 960;
const HEIGHT = 280;
const MARGIN = { top: 12, right: 12, bottom: 44, left: 44 };
const REFUSAL_CLASSES = 8; // refusal-0 .. refusal-7 in style.css

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function defaultRange() {
  const until = new Date();
  const since = new Date(until.getTime() - 6 * 86400000);
  return { since: isoDay(since), until: isoDay(until) };
}

// Per day: the counts of every system (or the one chosen) added up.
function perDay(data) {
  const days = new Map(data.days.map((day) => [day, { changes: 0, reveals: 0, refusals: {} }]));
  for (const cell of data.series) {
    const sum = days.get(cell.day);
    if (!sum) continue;
    sum.changes += cell.changes;
    sum.reveals += cell.reveals;
    for (const [code, n] of Object.entries(cell.refusals)) {
      sum.refusals[code] = (sum.refusals[code] || 0) + n;
    }
  }
  return days;
}

function total(refusals) {
  return Object.values(refusals).reduce((a, b) => a + b, 0);
}

function bar(parent, x, y, width, height, className, data, label) {
  const rect = svg("rect", { x, y, width, height: Math.max(height, 0), class: className });
  for (const [key, value] of Object.entries(data)) rect.dataset[key] = String(value);
  rect.appendChild(svg("title", {}, label));
  parent.appendChild(rect);
}

function drawChart(data, codes) {
  const box = $("trend-chart");
  clear(box);
  const days = perDay(data);
  const peak = Math.max(1, ...Array.from(days.values(), (d) => Math.max(d.changes, d.reveals, total(d.refusals))));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const y = (n) => MARGIN.top + plotH - (n / peak) * plotH;
  const chart = svg("svg", {
    viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img", class: "trend",
    "aria-label": "Changes, refusals by code and reveals per day, " + data.since + " to " + data.until,
  });
  const axes = svg("g", { class: "axes" });
  for (const tick of [0, Math.round(peak / 2), peak]) {
    axes.appendChild(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(tick), y2: y(tick), class: "grid" }));
    axes.appendChild(svg("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, tick));
  }
  chart.appendChild(axes);
  const group = plotW / Math.max(days.size, 1);
  const width = Math.max(2, Math.min(18, group * 0.24));
  const every = Math.ceil(days.size / 14);
  let i = 0;
  for (const [day, sum] of days) {
    const g = svg("g", { class: "day" });
    g.dataset.day = day;
    const left = MARGIN.left + i * group + (group - 3 * width - 4) / 2;
    bar(g, left, y(sum.changes), width, y(0) - y(sum.changes), "bar changes",
      { day, series: "changes", count: sum.changes }, day + " \u00b7 changes: " + sum.changes);
    let stacked = 0;
    for (const code of codes) {
      const n = sum.refusals[code] || 0;
      if (!n) continue;
      const cls = "bar refusal refusal-" + (codes.indexOf(code) % REFUSAL_CLASSES);
      bar(g, left + width + 2, y(stacked + n), width, y(stacked) - y(stacked + n), cls,
        { day, series: "refusals", code, count: n }, day + " \u00b7 refused " + code + ": " + n);
      stacked += n;
    }
    bar(g, left + 2 * (width + 2), y(sum.reveals), width, y(0) - y(sum.reveals), "bar reveals",
      { day, series: "reveals", count: sum.reveals }, day + " \u00b7 reveals: " + sum.reveals);
    if (i % every === 0) {
      g.appendChild(svg("text", { x: MARGIN.left + i * group + group / 2, y: HEIGHT - MARGIN.bottom + 16,
        "text-anchor": "middle", class: "tick" }, day.slice(5)));
    }
    chart.appendChild(g);
    i += 1;
  }
  chart.appendChild(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(0), y2: y(0), class: "axis" }));
  box.appendChild(chart);
}

function drawLegend(codes) {
  const legend = $("trend-legend");
  clear(legend);
  const item = (cls, text) => {
    const li = el("li");
    li.appendChild(el("span", null, "swatch " + cls));
    li.appendChild(el("span", text));
    legend.appendChild(li);
  };
  item("changes", "changes applied");
  codes.forEach((code, n) => item("refusal refusal-" + (n % REFUSAL_CLASSES), "refused: " + code));
  item("reveals", "reveals");
}

function drawTable(data) {
  const body = $("trend-body");
  clear(body);
  for (const cell of data.series) {
    const row = document.createElement("tr");
    row.dataset.day = cell.day;
    row.dataset.system = cell.system;
    row.appendChild(el("td", cell.day));
    row.appendChild(el("td", display(cell.system)));
    row.appendChild(el("td", String(cell.changes), "count"));
    row.appendChild(el("td", String(cell.failed), "count"));
    const codes = Object.entries(cell.refusals).sort().map(([code, n]) => code + " " + n);
    row.appendChild(el("td", codes.join(", ") || "\u2014"));
    row.appendChild(el("td", String(cell.reveals), "count"));
    body.appendChild(row);
  }
  show($("trend-empty"), data.series.length === 0);
}

export async function loadTrends() {
  clearMessage();
  const query = new URLSearchParams();
  for (const name of ["since", "until", "system"]) {
    const value = $("trend-form").elements[name].value.trim();
    if (value) query.set(name, value);
  }
  const data = await guarded(() => api("GET", "/v1/audit/trends?" + query.toString()));
  if (!data) return;
  const codes = Object.keys(data.totals.refusals).sort();
  $("t-range").textContent = data.since + " to " + data.until + " (UTC)";
  drawChart(data, codes);
  drawLegend(codes);
  drawTable(data);
  document.body.dataset.trendsReady = "true";
}

export function setSystems(systems) {
  const select = $("t-system");
  while (select.options.length > 1) select.remove(1);
  for (const name of systems) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    select.appendChild(option);
  }
}

export function initTrends() {
  const range = defaultRange();
  $("t-since").value = range.since;
  $("t-until").value = range.until;
  $("trend-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadTrends();
  });
}
