// Two sessions of the same intent side by side, turn by turn: where do the attempts part?
"use strict";
(() => {
  const { h, api, fmtDuration, fmtInt, badge, fail, shortId } = ISE;
  const main = document.getElementById("main");
  const p = new URLSearchParams(location.search);
  const a = p.get("a"), b = p.get("b");

  // turn number -> {user, calls: [{tool, args, exit, v}], agent: [text]}
  function byTurn(s) {
    const turns = new Map();
    let cur = 0;
    const get = (n) => { if (!turns.has(n)) turns.set(n, { user: null, v: null, calls: [], agent: [] }); return turns.get(n); };
    const open = new Map();
    for (const e of s.events) {
      const d = e.data;
      if (e.type === "user_turn" && !d.completed) { cur = d.turn; const t = get(cur); t.user = d.text; t.v = e.v; }
      else if (e.type === "agent_message") { if (d.text) get(d.turn || cur).agent.push(d.text); }
      else if (e.type === "tool_call_started") { const c = { tool: d.tool, args: d.arguments, exit: null, v: e.v }; get(d.turn || cur).calls.push(c); open.set(d.call_id, c); }
      else if (e.type === "tool_call_finished") { const c = open.get(d.call_id); if (c) c.exit = d.exit_code === null ? (d.is_error ? "err" : "ok") : d.exit_code; }
    }
    return turns;
  }

  function cell(s, t, other) {
    if (!t) return h("div", { class: "cmp-cell empty muted" }, "no such turn");
    const sig = (c) => `${c.tool}${c.args}`;
    const otherSigs = new Set(other ? other.calls.map(sig) : []);
    return h("div", { class: "cmp-cell" },
      t.user ? h("div", { class: "block user" }, h("div", { class: "who" }, "user", h("a", { class: "anchor", href: `/sessions/${encodeURIComponent(s.session_id)}#v${t.v}` }, `#${t.v}`)), h("div", { class: "text" }, t.user)) : null,
      h("ol", { class: "cmp-calls" }, t.calls.map((c) => {
        let cmd = c.args;
        try { const o = JSON.parse(c.args); cmd = o.command || o.path || o.url || o.query || o.action || c.args; } catch (e) { /* raw */ }
        return h("li", { class: otherSigs.has(sig(c)) ? "same" : "differs" },
          h("span", { class: "tool-name" }, c.tool), " ", h("span", { class: "mono small" }, String(cmd).slice(0, 120)), " ",
          h("span", { class: `badge exit ${c.exit === 0 || c.exit === "ok" ? "good" : "bad"}` }, c.exit === null ? "…" : `${c.exit}`));
      })),
      t.agent.length ? h("div", { class: "text agent-last small" }, t.agent[t.agent.length - 1].slice(0, 400)) : null);
  }

  function head(s) {
    const calls = s.events.filter((e) => e.type === "tool_call_started").length;
    const turns = s.events.filter((e) => e.type === "user_turn" && !e.data.completed).length;
    return h("div", { class: "cmp-head card" }, h("a", { class: "mono", href: `/sessions/${encodeURIComponent(s.session_id)}` }, s.session_id), " ", badge(s.status),
      h("div", { class: "muted small" }, `attempt ${s.settings.attempt} · ${turns} turns · ${calls} tool calls · ${s.audit.length} audit findings`));
  }

  async function pick() {
    main.textContent = "";
    if (!a) { main.appendChild(h("p", null, "Open a session and choose “compare” beside another attempt of its intent.")); return; }
    const s = await api(`/api/sessions/${encodeURIComponent(a)}?lean=1`);
    const list = await api(`/api/sessions?intent=${encodeURIComponent(s.intent_id)}&limit=50&sort=started_at`);
    main.append(h("h1", null, "Compare with…"), h("ul", null, list.sessions.filter((r) => r.session_id !== s.session_id).map((r) =>
      h("li", null, h("a", { class: "mono", href: `/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(r.session_id)}` }, r.session_id), " ", badge(r.status)))));
  }

  async function start() {
    if (!a || !b) { try { await pick(); } catch (e) { fail(main, e); } return; }
    if (b.startsWith("replay-")) { location.replace(`/replays/${encodeURIComponent(b)}`); return; }
    let A, B;
    try { [A, B] = await Promise.all([api(`/api/sessions/${encodeURIComponent(a)}?lean=1`), api(`/api/sessions/${encodeURIComponent(b)}?lean=1`)]); }
    catch (e) { fail(main, e); return; }
    const ta = byTurn(A), tb = byTurn(B);
    const all = [...new Set([...ta.keys(), ...tb.keys()])].sort((x, y) => x - y);
    main.textContent = "";
    main.append(h("h1", null, "Compare"),
      A.intent_id !== B.intent_id ? h("p", { class: "warn" }, `different intents: ${A.intent_id} and ${B.intent_id}`) : h("p", { class: "intent" }, A.intent),
      h("div", { class: "cmp-grid", id: "compare" }, head(A), head(B),
        all.map((n) => [h("div", { class: "cmp-turn" }, n ? `Turn ${n}` : "before the first turn"),
          cell(A, ta.get(n), tb.get(n)), cell(B, tb.get(n), ta.get(n))])));
    document.body.dataset.loaded = "1";
  }
  start();
})();
