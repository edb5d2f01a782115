// Session list: server-side paging, sorting and filters; the URL holds the state, so links
// and the back button work.
"use strict";
(() => {
  const { h, api, fmtTime, fmtDuration, fmtInt, badge, setIndexStatus, fail } = ISE;
  const main = document.getElementById("main");
  const STATUSES = ["", "completed", "turn_cap", "stalled", "error", "interrupted", "running"];
  const TOOLS = ["", "exec", "process", "read", "write", "edit", "apply_patch", "web_search",
    "web_fetch", "memory_search", "memory_get", "cron"];
  const AUDITS = [["", "any audit"], ["flagged", "flagged"], ["clean", "clean"],
    ["role_drift", "role drift"], ["stagnation", "stagnation"],
    ["malformed_tool_call", "malformed tool call"], ["secret_leak", "secret leak"],
    ["reasoning_leak", "reasoning leak"], ["empty_user_turn", "empty user turn"],
    ["orphan_tool_call", "orphan tool call"], ["orphan_tool_result", "orphan tool result"]];
  const REPLAYS = [["", "any replay"], ["any", "replayed"], ["none", "not replayed"],
    ["reproduced", "reproduced"], ["equivalent", "equivalent"], ["diverged", "diverged"], ["failed", "failed"]];
  const SORTS = [["-started_at", "newest"], ["started_at", "oldest"], ["-duration", "longest"],
    ["-user_turns", "most turns"], ["-tool_calls", "most tool calls"], ["-tokens", "most tokens"],
    ["-audit_flags", "most audit flags"]];
  const PAGE = 50;

  const state = () => new URLSearchParams(location.search);

  function select(name, options, value) {
    const s = h("select", { name, "aria-label": name });
    for (const o of options) {
      const [v, label] = Array.isArray(o) ? o : [o, o || `any ${name}`];
      const opt = h("option", { value: v }, label);
      if (v === (value || "")) opt.selected = true;
      s.appendChild(opt);
    }
    return s;
  }

  let form, tabs, table, pager, summary, timer = null;

  function build() {
    const p = state();
    main.textContent = "";
    const q = h("input", { type: "search", name: "q", placeholder: "Search user turns, agent text, tool output…  ( / )",
      value: p.get("q") || "", autocomplete: "off", id: "q" });
    form = h("form", { class: "filters", id: "filters" },
      q,
      select("tool", TOOLS, p.get("tool")),
      select("audit", AUDITS, p.get("audit")),
      select("replay", REPLAYS, p.get("replay")),
      h("label", { class: "inline" }, "min turns ",
        h("input", { type: "number", name: "min_turns", min: "0", value: p.get("min_turns") || "", class: "narrow" })),
      select("sort", SORTS, p.get("sort") || "-started_at"),
    );
    form.addEventListener("submit", (e) => { e.preventDefault(); go({}, true); });
    form.addEventListener("change", () => go({}, true));
    q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => go({}, false), 300);
    });
    tabs = h("div", { class: "tabs", id: "status-tabs" });
    summary = h("div", { class: "summary muted" });
    table = h("table", { class: "sessions", id: "session-table" });
    pager = h("div", { class: "pager" });
    main.append(h("h1", null, "Sessions"), form, tabs, summary, table, pager);
  }

  function formParams() {
    const p = new URLSearchParams();
    for (const el of form.elements) {
      if (el.name && el.value && !(el.name === "sort" && el.value === "-started_at")) p.set(el.name, el.value);
    }
    const status = state().get("status");
    if (status) p.set("status", status);
    return p;
  }

  function go(over, push) {
    const p = formParams();
    for (const [k, v] of Object.entries(over)) { if (v) p.set(k, v); else p.delete(k); }
    if (!("offset" in over)) p.delete("offset");
    const url = `/sessions${p.toString() ? "?" + p : ""}`;
    if (url !== location.pathname + location.search) {
      if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
    }
    load();
  }

  function renderTabs(counts, current) {
    tabs.textContent = "";
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    for (const s of STATUSES) {
      const n = s ? counts[s] || 0 : total;
      if (s && !n && s !== current) continue;
      const a = h("a", { href: "#", class: `tab${(current || "") === s ? " active" : ""}`, "data-status": s || "all" },
        s ? s.replace("_", " ") : "all", h("span", { class: "count" }, fmtInt(n)));
      a.addEventListener("click", (e) => { e.preventDefault(); go({ status: s }, true); });
      tabs.appendChild(a);
    }
  }

  function renderRows(data) {
    table.textContent = "";
    table.appendChild(h("thead", null, h("tr", null,
      ["session", "intent", "status", "turns", "tools", "started (UTC)", "duration", "tokens", "audit", "replay"]
        .map((c) => h("th", null, c)))));
    const body = h("tbody");
    for (const s of data.sessions) {
      const link = `/sessions/${encodeURIComponent(s.session_id)}`;
      body.appendChild(h("tr", { "data-session": s.session_id },
        h("td", { class: "mono" }, h("a", { href: link }, s.session_id)),
        h("td", { class: "intent-cell", title: s.intent_id }, s.intent_id),
        h("td", null, badge(s.status)),
        h("td", { class: "num" }, s.user_turns),
        h("td", { class: "num" }, s.tool_calls),
        h("td", { class: "mono small" }, fmtTime(s.started_at)),
        h("td", { class: "num" }, fmtDuration(s.duration_s)),
        h("td", { class: "num" }, fmtInt(s.tokens)),
        h("td", null, s.audit_flags ? h("span", { class: "flag" }, `⚑ ${s.audit_flags}`) : h("span", { class: "muted" }, "–")),
        h("td", null, s.replay_verdict
          ? h("a", { href: `/replays/${encodeURIComponent(s.replay_id)}` }, badge(s.replay_verdict))
          : h("span", { class: "muted" }, "–")),
      ));
    }
    if (!data.sessions.length) body.appendChild(h("tr", null, h("td", { colspan: "10", class: "empty" }, "No session matches these filters.")));
    table.appendChild(body);
  }

  function renderPager(total, offset) {
    pager.textContent = "";
    const prev = h("button", { type: "button", disabled: offset <= 0 }, "← previous");
    const next = h("button", { type: "button", disabled: offset + PAGE >= total }, "next →");
    prev.addEventListener("click", () => go({ offset: String(Math.max(0, offset - PAGE)) }, true));
    next.addEventListener("click", () => go({ offset: String(offset + PAGE) }, true));
    const page = Math.floor(offset / PAGE) + 1;
    const pages = Math.max(1, Math.ceil(total / PAGE));
    pager.append(prev, h("span", { class: "muted" }, `page ${page} of ${fmtInt(pages)}`), next);
  }

  let seq = 0;
  async function load() {
    const p = state();
    const my = ++seq;
    const query = new URLSearchParams(p);
    query.set("limit", String(PAGE));
    const t0 = performance.now();
    try {
      const data = await api(`/api/sessions?${query}`);
      if (my !== seq) return;
      renderTabs(data.counts, p.get("status") || "");
      renderRows(data);
      const offset = parseInt(p.get("offset") || "0", 10);
      summary.textContent = `${fmtInt(data.total)} sessions · ${Math.round(performance.now() - t0)} ms`;
      renderPager(data.total, offset);
      setIndexStatus(data.index);
      document.body.dataset.loaded = "1";
    } catch (e) { fail(main, e); }
  }

  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement.tagName !== "INPUT") {
      e.preventDefault();
      document.getElementById("q").focus();
    }
  });
  window.addEventListener("popstate", () => { build(); load(); });
  build();
  load();
})();
