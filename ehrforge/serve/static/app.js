// ehrforge web page: plain JS, no build step. Every value from the server is inserted with textContent
// (never innerHTML), so a question or a database value can never run as script.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "ehrforge.token";
const HISTORY_KEY = "ehrforge.history";
const MAX_HISTORY = 50;

// A token handed over as #token=... never reaches the server's logs; move it into this tab's storage and
// drop it from the address bar so it is not bookmarked or shared.
(function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
})();

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(path, body) {
  const init = { headers: { "Authorization": "Bearer " + token() } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const message = (data && data.error && data.error.message) || ("HTTP " + resp.status);
    const err = new Error(message);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function setStatus(text) { $("status").textContent = text; }

function loadHistory() {
  try { return JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]"); } catch (e) { return []; }
}

function saveHistory(items) { sessionStorage.setItem(HISTORY_KEY, JSON.stringify(items.slice(0, MAX_HISTORY))); }

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  for (const item of loadHistory()) {
    const li = document.createElement("li");
    li.textContent = item.question;
    const tag = document.createElement("span");
    tag.className = "tag " + item.state;
    tag.textContent = item.state;
    li.appendChild(tag);
    li.title = item.task + " · " + item.time;
    li.addEventListener("click", () => {
      $("question").value = item.question;
      $("task").value = item.task;
      renderResult(item.result, item.error);
    });
    list.appendChild(li);
  }
}

function renderTable(columns, rows) {
  const table = $("result-table");
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th");
    th.textContent = c;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const cell of row) tr.insertCell().textContent = cell === null ? "NULL" : String(cell);
  }
}

function renderResult(result, error) {
  $("result").hidden = false;
  const verdict = $("verdict");
  $("sql-block").hidden = true;
  $("table-block").hidden = true;
  $("answer-value").textContent = "";
  if (error) {
    verdict.className = "error";
    verdict.textContent = "Error: " + error;
    $("confidence-row").hidden = true;
    return;
  }
  $("confidence-row").hidden = false;
  const confidence = typeof result.confidence === "number" ? result.confidence : null;
  const bar = $("confidence-bar");
  bar.style.width = confidence === null ? "0" : Math.round(confidence * 100) + "%";
  bar.classList.toggle("low", result.abstained === true);
  $("confidence-value").textContent = confidence === null ? "n/a" : confidence.toFixed(2);
  if (result.abstained) {
    verdict.className = "abstained";
    verdict.textContent = "Abstained — I can't answer that reliably." + (result.reason ? " Reason: " + result.reason : "");
  } else {
    verdict.className = "answered";
    verdict.textContent = "Answered";
  }
  const answer = result.answer;
  if (answer && typeof answer === "object") {
    if (answer.sql) {
      $("sql").textContent = answer.sql;
      $("sql-block").hidden = false;
    }
    if (Array.isArray(answer.columns) && Array.isArray(answer.rows)) {
      renderTable(answer.columns, answer.rows);
      $("truncated").hidden = !answer.truncated;
      $("table-block").hidden = false;
    }
    const shown = Object.fromEntries(Object.entries(answer).filter(([k]) => !["sql", "columns", "rows", "truncated"].includes(k)));
    if (Object.keys(shown).length) $("answer-value").textContent = JSON.stringify(shown, null, 2);
  } else if (answer !== null && answer !== undefined) {
    $("answer-value").textContent = String(answer);
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  const task = $("task").value;
  if (!question || !task) return;
  $("ask").disabled = true;
  setStatus("Thinking…");
  let result = null, error = null;
  try {
    result = await api("/v1/" + encodeURIComponent(task) + "/ask", { question });
  } catch (e) {
    error = e.status === 401 ? "not signed in: paste your access token above" : e.message;
  } finally {
    $("ask").disabled = false;
    setStatus("");
  }
  renderResult(result, error);
  const state = error ? "error" : (result.abstained ? "abstained" : "answered");
  const items = loadHistory();
  items.unshift({ question, task, state, result, error, time: new Date().toISOString() });
  saveHistory(items);
  renderHistory();
}

async function init() {
  $("token").value = token();
  $("save-token").addEventListener("click", () => {
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token-box").open = false;
    loadTasks();
  });
  $("ask-form").addEventListener("submit", ask);
  $("clear-history").addEventListener("click", () => { sessionStorage.removeItem(HISTORY_KEY); renderHistory(); });
  renderHistory();
  await loadTasks();
}

async function loadTasks() {
  const select = $("task");
  try {
    const [tasks, models] = await Promise.all([api("/v1/tasks"), api("/v1/models")]);
    select.replaceChildren();
    for (const t of tasks.tasks) {
      const opt = document.createElement("option");
      opt.value = t.name;
      opt.textContent = t.name + (t.summary ? " — " + t.summary : "");
      select.appendChild(opt);
    }
    // open on the task the server was started for (e.g. sql with --db), not whichever sorts first
    if (tasks.default) select.value = tasks.default;
    $("model-name").textContent = models.data.length ? "model: " + models.data[0].id : "";
    setStatus(tasks.tasks.length ? "" : "This server serves no question tasks.");
  } catch (e) {
    if (e.status === 401) { $("token-box").open = true; setStatus("Paste your access token to start."); }
    else setStatus("Cannot reach the server: " + e.message);
  }
}

init();
