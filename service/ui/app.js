// The audit review page of gdpr-gateway: sign-in, the views and their tabs. No framework,
// no build step: ES modules served by the gateway itself (core.js has the rules every
// view keeps: values as text only, the token in sessionStorage only).
"use strict";

import {
  $, TOKEN_KEY, api, clear, clearMessage, report, show, showMessage, token, whenUnauthorized,
} from "./core.js";
import { fetchChanges, initChanges, loadChanges, resetChanges } from "./changes.js";
import { initEntries, loadEntries, resetEntries } from "./entries.js";
import { initRecord, loadRecord, resetRecord } from "./record.js";
import { initSubject, resetSubject, showSubject } from "./subject.js";
import { initTrends, loadTrends, setSystems } from "./trends.js";

const VIEWS = ["changes", "subject", "trends", "record", "entries"];

function selectView(name) {
  for (const view of VIEWS) {
    show($("view-" + view), view === name);
    $("tab-" + view).setAttribute("aria-pressed", String(view === name));
  }
  document.body.dataset.view = name;
  if (name === "changes") loadChanges(null);
  if (name === "entries") loadEntries(null);
  if (name === "trends") loadTrends();
  if (name === "record") loadRecord(false);
}

function openSubject(system, customer) {
  selectView("subject");
  showSubject(system, customer);
}

// -- sign in / out ------------------------------------------------------------------------

function signedIn(yes) {
  show($("signin"), !yes);
  show($("review"), yes);
  show($("session"), yes);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  resetChanges();
  resetEntries();
  resetSubject();
  resetRecord();
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
    await fetchChanges(null);
  } catch (err) {
    // unknown token (401), or one whose roles may not review the log (403)
    signOut();
    report(err);
    return;
  }
  signedIn(true);
  selectView("changes");
  loadSystems();
}

async function loadSystems() {
  try {
    const data = await api("GET", "/v1/systems");
    const list = $("systems");
    clear(list);
    const names = [];
    for (const s of data.systems || []) {
      const option = document.createElement("option");
      option.value = String(s.system);
      list.appendChild(option);
      names.push(String(s.system));
    }
    setSystems(names);
  } catch (err) {
    // the list of systems is a convenience; the filters work without it
  }
}

// -- wiring -------------------------------------------------------------------------------

function start() {
  whenUnauthorized(signOut);
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => {
    signOut();
    clearMessage();
    showMessage("info", "Signed out", ["The token was removed from this tab."]);
  });
  for (const view of VIEWS) {
    $("tab-" + view).addEventListener("click", () => { clearMessage(); selectView(view); });
  }
  initChanges(openSubject);
  initEntries();
  initSubject();
  initTrends();
  initRecord();

  if (token()) {
    signedIn(true);
    selectView("changes");
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
