// Chaperone console: a page that asks its own server (/api/...) and draws what it answers.
// Live updates are polling: approvals and open sessions every 2 s, the session list every 5 s.
// Everything recorded is untrusted text: it is only ever put into the page as text nodes.
"use strict";

const APPROVALS_EVERY_MS = 2000;
const SESSION_EVERY_MS = 2000;
const SESSIONS_EVERY_MS = 5000;
const MARKER = /\{"redacted":"sha256:[0-9a-f]{64}"\}|"redacted": "sha256:[0-9a-f]{64}"/g;

let timer = null;
let generation = 0;
const view = document.getElementById("view");
// The list starts with the last day's sessions: each listed session is read whole.
const filters = { namespace: "", connection: "", agent: "", since: "24h", until: "", calls: "" };

function h(tag, attrs, ...children) {
  const svg = ["svg", "circle", "line", "text", "title", "g", "rect"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Text with every redaction marker wrapped in <mark class="redacted">.
function marked(text) {
  const out = [];
  let last = 0;
  for (const m of String(text).matchAll(MARKER)) {
    out.push(text.slice(last, m.index));
    out.push(h("mark", { class: "redacted", title: "redacted by the recording; the hash confirms a value you already hold" }, m[0]));
    last = m.index + m[0].length;
  }
  out.push(String(text).slice(last));
  return out;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin", headers: { "Content-Type": "application/json" } }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (_) { body = { error: `the console answered ${response.status} without JSON` }; }
  if (!response.ok) throw new Error(body && body.error ? body.error : `HTTP ${response.status}`);
  return body;
}

function live(ok) {
  const el = document.getElementById("live");
  el.className = ok ? "on" : "error";
}

function every(ms, fn) {
  if (timer) clearInterval(timer);
  const mine = generation;
  const run = async () => {
    if (mine !== generation) return;
    try { await fn(mine); live(true); } catch (e) { live(false); showError(e); }
  };
  run();
  timer = setInterval(run, ms);
}

function showError(e) {
  let box = document.getElementById("page-error");
  if (!box) { box = h("div", { id: "page-error", class: "error" }); view.prepend(box); }
  box.textContent = String(e.message || e);
}

function clearError() {
  const box = document.getElementById("page-error");
  if (box) box.remove();
}

function seconds(n) {
  if (n === null || n === undefined) return "-";
  if (n <= 0) return "expired";
  const m = Math.floor(n / 60), s = n % 60;
  return m > 0 ? `${m}m ${s}s` : `${s}s`;
}

function latency(us) {
  if (us === null || us === undefined) return "-";
  if (us < 1000) return `${us}us`;
  if (us < 10000000) return `${(us / 1000).toFixed(1)}ms`;
  return `${(us / 1000000).toFixed(1)}s`;
}

// Nodes without the null, undefined and false entries (conditional parts of a page).
function present(...nodes) {
  return nodes.flat().filter((n) => n !== null && n !== undefined && n !== false);
}

function skippedNotes(skipped) {
  return (skipped || []).map((s) => h("div", { class: "notice skipped", "data-skipped": s.namespace }, `Namespace ${s.namespace} not shown: ${s.reason}`));
}

function scopeNote(scope) {
  if (!scope) return null;
  const from = scope.cluster_wide ? "every namespace you may list" : "from --namespace or your kubeconfig (you may not list namespaces cluster-wide)";
  return h("p", { class: "muted", id: "scope" }, `Namespaces: ${scope.namespaces.join(", ") || "none"} (${from})`);
}

// ---------------------------------------------------------------- approvals

function approvalsPage() {
  view.replaceChildren(
    h("h1", {}, "Pending approvals"),
    h("div", { id: "approvals-scope" }),
    h("ul", { id: "decisions" }),
    h("div", { id: "approvals" }),
  );
  every(APPROVALS_EVERY_MS, async (mine) => {
    const data = await api("/api/approvals");
    if (mine !== generation) return;
    clearError();
    document.getElementById("approvals-scope").replaceChildren(...present(scopeNote(data.scope), skippedNotes(data.skipped)));
    const list = document.getElementById("approvals");
    const seen = new Set();
    for (const a of data.approvals) {
      const key = `${a.metadata.namespace}/${a.metadata.name}`;
      seen.add(key);
      let card = list.querySelector(`[data-approval="${CSS.escape(key)}"]`);
      if (!card) { card = approvalCard(a); list.append(card); }
      card.querySelector(".left").textContent = seconds(a.seconds_left);
      card.querySelector(".held").textContent = held(a);
      card.querySelector(".count").textContent = `${a.approvers.length}/${a.required}` + (a.approvers.length ? ` (${a.approvers.join(", ")})` : "");
    }
    for (const card of [...list.children]) {
      if (!seen.has(card.dataset.approval) && !card.classList.contains("deciding")) card.remove();
    }
    if (!data.approvals.length && !list.children.length) {
      list.replaceChildren(h("p", { class: "muted", id: "no-approvals" }, "No calls are waiting for a decision."));
    } else {
      const none = document.getElementById("no-approvals");
      if (none && data.approvals.length) none.remove();
    }
  });
}

// How long the agent's call still waits: the rule's holdSeconds from the request's creation.
// After that the call is refused, and an approval given within the window admits its retry.
function held(a) {
  if (a.held_seconds_left === null || a.held_seconds_left === undefined) return `unknown (you may not read ApprovalRule ${a.spec.rule})`;
  if (a.held_seconds_left <= 0) return "no longer: the call was refused; an approval admits its retry";
  return `${seconds(a.held_seconds_left)} more`;
}

// `a` is the ApprovalRequest as the API server gave it (metadata, spec, status), with the
// console's seconds_left, held_seconds_left, approvers and required beside.
function approvalCard(a) {
  const { namespace, name } = a.metadata;
  const spec = a.spec;
  const key = `${namespace}/${name}`;
  const reason = h("input", { name: "reason", placeholder: "Reason (required to deny; shown to the agent)", autocomplete: "off" });
  const result = h("div", { class: "result" });
  const send = async (decision, event) => {
    event.preventDefault();
    if (decision === "deny" && !reason.value.trim()) {
      result.className = "result error";
      result.textContent = "A denial needs a reason, which is shown to the agent.";
      return;
    }
    card.classList.add("deciding");
    try {
      const answer = await api("/api/approvals/decide", { method: "POST", body: JSON.stringify({ namespace, name, decision, reason: reason.value }) });
      document.getElementById("decisions").append(h("li", { class: "ok decided", "data-decided": key }, answer.message));
      card.remove();
    } catch (e) {
      card.classList.remove("deciding");
      result.className = "result error";
      result.textContent = String(e.message || e);
    }
  };
  const card = h("article", { class: "approval", "data-approval": key },
    h("h3", {}, spec.actions.join(", "), h("span", { class: "muted" }, `  ${namespace}/${name}`)),
    h("dl", {},
      h("dt", {}, "Resources"), h("dd", {}, (spec.resources || []).length ? spec.resources.join("\n") : "-"),
      h("dt", {}, "Parameters"), h("dd", {}, spec.parametersPreview ? h("pre", { class: "preview" }, marked(spec.parametersPreview)) : h("span", { class: "muted" }, "none recorded")),
      h("dt", {}, "Asked by"), h("dd", {}, `${spec.agent.serviceAccount}` + (spec.agent.pod ? ` (pod ${spec.agent.pod})` : "") + ` through ${spec.connection}`),
      h("dt", {}, "Rule"), h("dd", {}, spec.rule),
      h("dt", {}, "Session"), h("dd", {}, h("a", { href: `#/session/${encodeURIComponent(namespace)}/${encodeURIComponent(spec.connection)}/${encodeURIComponent(spec.sessionId)}` }, spec.sessionId)),
      h("dt", {}, "Held for"), h("dd", { class: "held" }, held(a)),
      h("dt", {}, "Approval window"), h("dd", { class: "left" }, seconds(a.seconds_left)),
      h("dt", {}, "Approvals"), h("dd", { class: "count" }, `${a.approvers.length}/${a.required}`),
    ),
    h("form", {},
      reason,
      h("button", { type: "submit", class: "approve", onclick: (e) => send("approve", e) }, "Approve"),
      h("button", { type: "button", class: "deny", onclick: (e) => send("deny", e) }, "Deny"),
    ),
    result,
  );
  return card;
}

// ---------------------------------------------------------------- sessions

// Where sessions are read: "api" (the audit API, the default) or "direct" (S3, --bucket or
// --recording-policy). Set by /api/whoami and by each sessions answer.
let sessionsVia = "api";

function approvalsOption() {
  return sessionsVia === "direct"
    ? h("option", { value: "approved", id: "approvals-filter" }, "with an approved call")
    : h("option", { value: "approvals", id: "approvals-filter" }, "with an approval decision");
}

function sessionsPage() {
  sessionsPage.drawn = undefined;
  const field = (name, label, placeholder) => h("label", {}, label, h("input", { name, value: filters[name], placeholder: placeholder || "" }));
  // The audit API counts approval decisions; the direct path counts the calls approvals released.
  const calls = h("select", { name: "calls" },
    h("option", { value: "" }, "any"), h("option", { value: "denied" }, "with a denied call"), approvalsOption());
  calls.value = filters.calls;
  const form = h("form", { class: "filters", id: "session-filters" },
    field("namespace", "Namespace"), field("connection", "Connection"), field("agent", "Agent (service account)"),
    field("since", "Since", "2h, 7d or RFC 3339"), field("until", "Until"),
    h("label", {}, "Calls", calls),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll("input, select")) filters[el.name] = el.value;
    sessionsPage();
  });
  view.replaceChildren(h("h1", {}, "Sessions"), form, h("div", { id: "sessions-notes" }), h("div", { id: "sessions" }, h("p", { class: "muted" }, "Reading recordings…")));
  every(SESSIONS_EVERY_MS, async (mine) => {
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
    const data = await api(`/api/sessions?${query}`);
    if (mine !== generation) return;
    clearError();
    if (data.via && data.via !== sessionsVia) {
      sessionsVia = data.via;
      const option = document.getElementById("approvals-filter");
      if (option) option.replaceWith(approvalsOption());
    }
    document.getElementById("sessions-notes").replaceChildren(...present(scopeNote(data.scope), skippedNotes(data.skipped), data.notice ? h("div", { class: "notice" }, data.notice) : null));
    // Redrawn only when the answer changed, so that rows under the pointer stay put.
    const drawn = JSON.stringify(data.sessions);
    if (drawn === sessionsPage.drawn) return;
    sessionsPage.drawn = drawn;
    // Each session is the audit API's Session object (metadata, status) on both paths.
    const rows = data.sessions.map((s) => {
      const { name, namespace } = s.metadata, st = s.status;
      const href = `#/session/${encodeURIComponent(namespace)}/${encodeURIComponent(st.connection)}/${encodeURIComponent(name)}`;
      return h("tr", { "data-session": name, onclick: () => { location.hash = href; } },
        h("td", {}, h("a", { href }, name)),
        h("td", {}, st.start || "-"), h("td", {}, namespace), h("td", {}, st.connection),
        h("td", {}, st.agent ? st.agent.serviceAccount : "-"), h("td", {}, (st.agent && st.agent.podName) || "-"),
        h("td", {}, st.calls), h("td", { class: st.denied ? "outcome-deny" : "" }, st.denied), approvalsCell(s),
        h("td", {}, st.state, s.unreadable.length ? h("span", { class: "outcome-deny", title: s.unreadable.join("\n") }, " (partly unreadable)") : null));
    });
    const table = rows.length
      ? h("table", { id: "sessions-table" },
          h("thead", {}, h("tr", {}, ["Session", "Started", "Namespace", "Connection", "Agent", "Pod", "Calls", "Denied", sessionsVia === "direct" ? "Approved" : "Approvals", "Status"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
      : h("p", { class: "muted", id: "no-sessions" }, "No sessions match.");
    document.getElementById("sessions").replaceChildren(table);
  });
}

// Direct path: calls an approval released; audit API: approval decisions recorded (either way).
function approvalsCell(s) {
  const n = s.approved !== undefined ? s.approved : s.status.approvals;
  const title = s.approved !== undefined ? "calls released by a reviewer's approval" : "approval decisions recorded (approved or refused)";
  return h("td", { class: n ? "outcome-approved" : "", title }, n);
}

// ---------------------------------------------------------------- one session

let selectedCall = null;

function sessionPage(namespace, connection, id, call) {
  selectedCall = call || null;
  sessionPage.drawn = undefined;
  sessionPage.calls = undefined;
  const q = new URLSearchParams({ namespace, connection, id }).toString();
  view.replaceChildren(
    h("h1", {}, "Session ", h("span", { id: "session-id" }, id), " ", h("span", { id: "verify-badge", class: "badge checking" }, "verifying…")),
    h("div", { id: "verify-problems" }),
    h("dl", { class: "meta", id: "session-meta" }),
    h("h2", {}, "Timeline"),
    h("div", { class: "legend" }, ["allow", "deny", "approved", "refused"].map((o) => h("span", {}, h("i", { class: `dot-${o}` }), o))),
    h("div", { id: "timeline" }),
    h("h2", {}, "Calls"),
    h("div", { id: "calls" }),
    h("div", { id: "call-detail" }),
  );
  for (const o of ["allow", "deny", "approved", "refused"]) {
    const dot = view.querySelector(`.dot-${o}`);
    if (dot) dot.style.background = `var(--${o})`;
  }
  api(`/api/verify?${q}`).then((v) => badge(v)).catch((e) => badge({ status: "broken", problems: [String(e.message || e)] }));
  let open = true;
  every(SESSION_EVERY_MS, async (mine) => {
    if (!open) return;
    const data = await api(`/api/session?${q}`);
    if (mine !== generation) return;
    clearError();
    const s = data.summary;
    open = /open|no-manifest/.test(s.status.state);
    document.getElementById("live").title = open ? "The session is still being recorded: new calls appear within seconds" : "The session has ended";
    const calls = JSON.stringify([s, data.calls]);
    if (calls !== sessionPage.calls) {
      sessionPage.calls = calls;
      meta(s);
      document.getElementById("timeline").replaceChildren(timeline(data.calls));
      callsTable(data.calls, namespace, connection, id);
    }
    const chosen = data.calls.find((c) => `${c.replica}/${c.call}` === selectedCall);
    // Redrawn only when what was recorded about the chosen call changed (keeps a text selection).
    const drawn = JSON.stringify(chosen || null);
    if (drawn !== sessionPage.drawn) {
      sessionPage.drawn = drawn;
      document.getElementById("call-detail").replaceChildren(chosen ? callDetail(chosen) : h("p", { class: "muted" }, "Choose a call to see its request and response."));
    }
  });
}

function badge(v) {
  const el = document.getElementById("verify-badge");
  if (!el) return;
  el.className = `badge ${v.status}`;
  const by = v.by === "operator" ? " (by the operator)" : "";
  el.textContent = (v.status === "intact" ? "verified: intact" : v.status === "broken" ? "verification failed" : "not verified") + by;
  el.title = v.detail || (v.keys && v.keys.length ? `trusted keys: ${v.keys.join(", ")}` : "");
  document.getElementById("verify-problems").replaceChildren(...(v.problems || []).map((p) => h("div", { class: v.status === "unverified" ? "notice" : "error" }, p)));
}

function meta(s) {
  const st = s.status, agent = st.agent;
  const rows = [
    ["Namespace / connection", `${s.metadata.namespace}/${st.connection}`],
    ["Agent", agent ? `${agent.serviceAccount} (pod ${agent.podName || "-"}${agent.roleSessionName ? `, role session ${agent.roleSessionName}` : ""})` : "-"],
    ["Started", st.start || "-"],
    ["Status", st.state],
    ["Calls", `${st.calls} (${st.denied} denied)`],
    ["Location", st.location],
  ];
  document.getElementById("session-meta").replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  for (const u of s.unreadable || []) document.getElementById("session-meta").append(h("dt", {}, "Unreadable"), h("dd", { class: "outcome-deny" }, u));
}

// One mark per call: x = time, height = latency (linear, up to the slowest call), colour = how
// it was decided.
function timeline(calls) {
  const W = 1000, H = 160, L = 60, R = 10, T = 10, B = 24;
  const svg = h("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", id: "timeline-svg" });
  const timed = calls.filter((c) => c.at_ms !== null);
  if (!timed.length) { svg.append(h("text", { x: L, y: H / 2, fill: "#78909c" }, "no calls recorded yet")); return svg; }
  const t0 = Math.min(...timed.map((c) => c.at_ms)), t1 = Math.max(...timed.map((c) => c.at_ms));
  const span = Math.max(t1 - t0, 1000);
  const maxLat = Math.max(...timed.map((c) => c.latency_us || 0), 1000);
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (us) => H - B - ((us || 0) / maxLat) * (H - B - T);
  svg.append(h("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#b0bec5" }));
  svg.append(h("text", { x: L, y: H - 6, "font-size": 11, fill: "#78909c" }, new Date(t0).toISOString().slice(11, 19)));
  svg.append(h("text", { x: W - R - 60, y: H - 6, "font-size": 11, fill: "#78909c" }, new Date(t0 + span).toISOString().slice(11, 19)));
  svg.append(h("text", { x: 2, y: T + 8, "font-size": 10, fill: "#78909c" }, latency(maxLat)));
  const colour = { allow: "#2e7d32", deny: "#c62828", approved: "#1565c0", refused: "#ef6c00" };
  for (const c of timed) {
    const cx = x(c.at_ms), cy = y(c.latency_us);
    const g = h("g", { class: `mark outcome-${c.outcome}`, "data-call": `${c.replica}/${c.call}` },
      h("line", { x1: cx, y1: H - B, x2: cx, y2: cy, stroke: colour[c.outcome], "stroke-width": 2 }),
      h("circle", { cx, cy, r: 5, fill: colour[c.outcome] }),
      h("title", {}, `${c.time} ${c.operation || c.method} ${c.status} ${latency(c.latency_us)} ${c.outcome}` + (c.approval ? `\n${c.approval}` : "")));
    g.addEventListener("click", () => selectCall(c));
    svg.append(g);
  }
  return svg;
}

function callsTable(calls, namespace, connection, id) {
  const rows = calls.map((c) => {
    const key = `${c.replica}/${c.call}`;
    return h("tr", { "data-call": key, class: key === selectedCall ? "selected" : "", onclick: () => selectCall(c) },
      h("td", {}, c.time || "-"), h("td", {}, c.method || "-"), h("td", {}, c.operation || "-"),
      h("td", {}, c.resources[0] || "-", c.resources.length > 1 ? ` (+${c.resources.length - 1})` : ""),
      h("td", { class: `outcome-${c.outcome}` }, c.decision || "-"), h("td", {}, c.status), h("td", {}, latency(c.latency_us)),
      h("td", { class: c.approval ? `approval-cell outcome-${c.outcome}` : "" }, c.approval || "-"));
  });
  document.getElementById("calls").replaceChildren(calls.length
    ? h("table", { id: "calls-table" },
        h("thead", {}, h("tr", {}, ["Time", "Method", "Operation", "Resource", "Decision", "Status", "Latency", "Approval"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows))
    : h("p", { class: "muted" }, "No calls recorded yet."));
  selectCall.context = { namespace, connection, id };
}

function selectCall(c) {
  selectedCall = `${c.replica}/${c.call}`;
  const { namespace, connection, id } = selectCall.context || {};
  history.replaceState(null, "", `#/session/${encodeURIComponent(namespace)}/${encodeURIComponent(connection)}/${encodeURIComponent(id)}/${encodeURIComponent(selectedCall)}`);
  for (const tr of document.querySelectorAll("#calls-table tbody tr")) tr.classList.toggle("selected", tr.dataset.call === selectedCall);
  sessionPage.drawn = JSON.stringify(c);
  document.getElementById("call-detail").replaceChildren(callDetail(c));
}

function headerTable(headers) {
  if (!headers || !headers.length) return h("p", { class: "muted" }, "no headers");
  return h("table", { class: "kv" }, h("tbody", {}, headers.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, marked(v))))));
}

function bodyBlock(view, label) {
  if (!view) return null;
  const notes = [];
  if (view.truncated) notes.push(h("div", { class: "notice truncated" }, `Truncated: ${view.captured} of ${view.size} bytes captured (the recording policy's capture.maxBodyBytes). sha256 of the whole body: ${view.sha256}`));
  if (view.format === "redacted") notes.push(h("div", { class: "notice" }, "The whole body was redacted by the recording policy; the marker's hash is of the captured bytes."));
  const text = view.format === "empty" ? h("p", { class: "muted" }, "empty body") : h("pre", { class: `body body-${view.format}` }, marked(view.text));
  return h("div", { class: "body-block" }, h("h4", {}, `${label} body`, h("span", { class: "muted" }, ` ${view.format}, ${view.size} bytes`)), notes, text);
}

function callDetail(c) {
  const ev = (type) => c.events.find((e) => e.type === type);
  const request = ev("request") || ev("denied");
  const response = ev("response");
  const approval = ev("approval");
  const denied = ev("denied");
  const parts = [h("h3", {}, `${c.method} ${c.operation}`, h("span", { class: "muted" }, `  call ${c.call} on ${c.replica}`))];
  parts.push(h("p", {}, h("b", {}, "Actions: "), c.actions.join(", ") || "-", h("br"), h("b", {}, "Resources: "), c.resources.join(", ") || "-",
    h("br"), h("b", {}, "Decision: "), h("span", { class: `outcome-${c.outcome}` }, c.decision || "-")));
  if (approval) {
    parts.push(h("div", { class: `approval-detail ${approval.outcome === "approved" ? "ok" : "notice"}` },
      h("b", {}, "Approval: "), c.approval || approval.outcome,
      h("br"), `Reviewers: ${(approval.approvers || []).map((a) => `${a.username} (${(a.groups || []).join(", ")})`).join("; ") || "none"}`,
      h("br"), `Rule ${approval.rule}, ApprovalRequest ${approval.approval_request}, held ${(approval.waited_ms / 1000).toFixed(1)}s`));
  }
  if (request) {
    const query = (request.query || []).map(([k, v]) => `${k}=${v}`).join("&");
    parts.push(h("h4", {}, "Request"), h("pre", {}, marked(`${request.method} ${request.path}${query ? "?" + query : ""}`)));
    if ((request.redacted || []).length) parts.push(h("p", {}, "Redacted: ", request.redacted.map((r) => h("span", { class: "chip" }, r))));
    parts.push(headerTable(request.headers), bodyBlock(c.request_body, "Request"));
  }
  if (denied) parts.push(h("div", { class: "error" }, `Refused with ${denied.status} ${denied.error_code}: ${denied.message}`));
  if (response) {
    parts.push(h("h4", {}, `Response ${response.status === null ? "(no status)" : response.status}`));
    if (response.upstream_error) parts.push(h("div", { class: "error" }, `Upstream error: ${response.upstream_error}`));
    if ((response.redacted || []).length) parts.push(h("p", {}, "Redacted: ", response.redacted.map((r) => h("span", { class: "chip" }, r))));
    parts.push(headerTable(response.headers), bodyBlock(c.response_body, "Response"));
  }
  const timings = Object.assign({}, (request || {}).timings, (response || {}).timings);
  parts.push(h("h4", {}, "Timings"), h("table", { class: "kv" }, h("tbody", {}, Object.entries(timings).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, latency(v)))))));
  return h("div", { class: "detail", id: "call-detail-panel", "data-call": `${c.replica}/${c.call}` }, parts);
}

// ---------------------------------------------------------------- routing

function route() {
  generation += 1;
  if (timer) { clearInterval(timer); timer = null; }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("header nav a")) a.classList.remove("active");
  if (parts[0] === "sessions") { document.getElementById("nav-sessions").classList.add("active"); sessionsPage(); }
  else if (parts[0] === "session" && parts.length >= 4) {
    document.getElementById("nav-sessions").classList.add("active");
    sessionPage(parts[1], parts[2], parts[3], parts.length >= 5 ? parts[4] : null);
  } else { document.getElementById("nav-approvals").classList.add("active"); approvalsPage(); }
}

window.addEventListener("hashchange", route);
api("/api/whoami").then((w) => {
  if (w.user) document.getElementById("whoami").textContent = `signed in as ${w.user.username}`;
  if (w.sessions_via) sessionsVia = w.sessions_via;
}).catch(() => {});
route();
