// One session as the user and the agent saw it, rendered incrementally from its events, with
// deep links (#v123), j/k between turns, / to search, and a live tail while it records.
"use strict";
(() => {
  const { h, api, fmtTime, fmtDuration, fmtMs, fmtBytes, fmtInt, badge, b64text, decode, output,
    diffView, prettyArgs, fail, shortId } = ISE;
  const main = document.getElementById("main");
  const sessionId = decodeURIComponent(location.pathname.split("/")[2] || "");
  const enc = encodeURIComponent(sessionId);

  let timeline, nav, statusEl, liveEl;
  let lastVersion = 0;
  let currentTurn = null;
  let pendingCall = null;
  let ended = false;
  const calls = new Map();
  const turns = [];
  const findingsByTurn = new Map();
  const findingsByCall = new Map();

  // ------------------------------------------------------------------ header
  function header(s) {
    const persona = s.persona || {};
    const st = s.settings;
    const models = (st.models || []).map((m) => `${m.role}: ${m.model} (${m.backend})`).join(" · ");
    statusEl = badge(s.status);
    liveEl = h("span", { class: "live", hidden: true }, "● live");
    const exports = ["openai", "sharegpt", "middle"].map((f) =>
      h("a", { class: "button small", href: `/api/sessions/${enc}/export?format=${f}`, target: "_blank", rel: "noopener" }, f));
    const meta = [
      ["intent id", s.intent_id],
      ["persona", persona.name ? `${persona.name}${persona.role ? ", " + persona.role : ""}` : null],
      ["models", models || null],
      ["sandbox", st.sandbox_backend ? `${st.sandbox_backend} · template ${st.template} (${String(st.template_digest).slice(0, 19)})` : null],
      ["scenario", st.scenario],
      ["attempt", st.attempt],
      ["tools", (st.tools || []).join(", ") || null],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    const others = h("span", { class: "others" });
    const head = h("section", { class: "session-head card" },
      h("div", { class: "title-row" },
        h("h1", { class: "mono" }, s.session_id), statusEl, liveEl,
        h("span", { class: "spacer" }),
        h("span", { class: "muted small" }, "export "), ...exports),
      h("p", { class: "intent" }, s.intent),
      h("dl", { class: "meta" }, meta.map(([k, v]) => [h("dt", null, k), h("dd", null, String(v))])),
      others,
      s.ended ? h("p", { class: "ended-reason muted" }, `ended ${s.ended.status}: ${s.ended.reason || "–"}`) : null,
    );
    if (s.audit.length) {
      head.appendChild(h("div", { class: "audit-summary" },
        h("strong", null, `⚑ ${s.audit.length} audit finding${s.audit.length > 1 ? "s" : ""}: `),
        [...new Set(s.audit.map((f) => f.rule))].join(", ")));
    }
    loadOthers(s, others);
    return head;
  }

  async function loadOthers(s, el) {
    try {
      const list = await api(`/api/sessions?intent=${encodeURIComponent(s.intent_id)}&limit=20&sort=started_at`);
      const row = s.index;
      if (row && row.replay_id) {
        el.appendChild(h("span", null, "replay ", h("a", { href: `/replays/${encodeURIComponent(row.replay_id)}`, id: "replay-link" }, badge(row.replay_verdict)), " "));
      }
      const other = list.sessions.filter((r) => r.session_id !== s.session_id);
      if (other.length) {
        el.appendChild(h("span", null, "other attempts of this intent: ",
          other.map((r) => h("a", { class: "mono", href: `/compare?a=${enc}&b=${encodeURIComponent(r.session_id)}` },
            `compare ${shortId(r.session_id)} `))));
      }
    } catch (e) { /* the index may still be catching up */ }
  }

  // ------------------------------------------------------------------ timeline
  function anchor(v) {
    const a = h("a", { class: "anchor", href: `#v${v}`, id: `v${v}`, title: `event ${v}` }, `#${v}`);
    for (const w of waiting) a.appendChild(silent(w));
    waiting = [];
    return a;
  }

  // Events drawn as part of another block (model calls, output chunks, the session's start)
  // still get a deep-link target: inside the block they belong to, or the next one drawn.
  let waiting = [];
  function silent(v) { return h("span", { class: "anchor-target", id: `v${v}` }); }

  // A turn's section; placeholders for turns not drawn yet are made up front (see renderAll).
  const sections = new Map();
  function section(turnNo) {
    let sec = sections.get(turnNo);
    if (sec) return sec;
    sec = h("section", { class: "turn", "data-turn": turnNo, id: `turn-${turnNo}` },
      h("div", { class: "turn-head" }, h("span", { class: "turn-no" }, turnNo ? `Turn ${turnNo}` : "Start")));
    timeline.appendChild(sec);
    sections.set(turnNo, sec);
    turns.push(sec);
    const fs = findingsByTurn.get(turnNo);
    if (fs) for (const f of fs) sec.querySelector(".turn-head").appendChild(findingEl(f));
    return sec;
  }

  function newTurn(turnNo) {
    currentTurn = section(turnNo);
    currentTurn.classList.remove("pending");
    return currentTurn;
  }

  const navDone = new Set();
  function navItem(d, v) {
    if (navDone.has(v)) return;
    navDone.add(v);
    const item = h("a", { href: `#v${v}`, "data-turn": d.turn }, h("span", { class: "n" }, d.completed ? "✓" : d.turn), h("span", { class: "t" }, d.text.slice(0, 60)));
    if (findingsByTurn.has(d.turn) && !d.completed) item.classList.add("flagged");
    nav.appendChild(item);
  }

  function findingEl(f) {
    return h("div", { class: "finding", title: f.rule }, h("strong", null, `⚑ ${f.rule.replace(/_/g, " ")}`), f.detail ? ` · ${f.detail}` : "");
  }

  function container() { return currentTurn || newTurn(0); }

  function userTurn(e) {
    const d = e.data;
    const sec = d.completed ? container() : newTurn(d.turn);
    const bubble = h("div", { class: `block user${d.completed ? " closing" : ""}` },
      h("div", { class: "who" }, d.completed ? "user · closing turn" : "user", anchor(e.v)),
      h("div", { class: "text" }, d.text));
    sec.appendChild(bubble);
    navItem(d, e.v);
  }

  function agentMessage(e) {
    const d = e.data;
    const block = h("div", { class: "block agent" },
      h("div", { class: "who" }, "agent", h("span", { class: "muted small" }, ` step ${d.step}`),
        pendingCall && (pendingCall.usage.total_tokens || pendingCall.latency_ms)
          ? h("span", { class: "muted small" }, ` · ${fmtInt(pendingCall.usage.total_tokens || pendingCall.usage.prompt_tokens + pendingCall.usage.completion_tokens)} tokens · ${fmtMs(pendingCall.latency_ms)}`) : null,
        anchor(e.v)));
    pendingCall = null;
    if (d.reasoning) {
      block.appendChild(h("details", { class: "reasoning" },
        h("summary", null, `reasoning · ${fmtInt(d.reasoning.length)} chars`), h("div", { class: "text" }, d.reasoning)));
    }
    if (d.text) block.appendChild(h("div", { class: "text" }, d.text));
    container().appendChild(block);
    for (const tc of d.tool_calls || []) {
      const card = toolCard(tc.id, tc.name, tc.arguments);
      block.appendChild(card.el);
    }
  }

  function toolCard(id, name, args) {
    if (calls.has(id)) return calls.get(id);
    const statusSlot = h("span", { class: "call-status" }, h("span", { class: "badge st-running" }, "running"));
    const anchors = h("span", { class: "anchors" });
    const el = h("div", { class: "block tool", "data-call": id, "data-tool": name },
      h("div", { class: "tool-head" }, h("span", { class: "tool-name" }, name), statusSlot, anchors));
    const argsEl = argView(name, args);
    el.appendChild(argsEl);
    const body = h("div", { class: "tool-body" });
    el.appendChild(body);
    const card = { el, statusSlot, anchors, body, chunks: { stdout: [], stderr: [] }, web: null, files: null, live: null };
    calls.set(id, card);
    const fs = findingsByCall.get(id);
    if (fs) for (const f of fs) el.appendChild(findingEl(f));
    return card;
  }

  function argView(name, raw) {
    let parsed = null;
    try { parsed = JSON.parse(raw); } catch (e) { parsed = null; }
    if (parsed && name === "exec" && typeof parsed.command === "string") {
      const rest = Object.assign({}, parsed);
      delete rest.command;
      return h("div", { class: "args" }, h("pre", { class: "command" }, h("span", { class: "prompt" }, "$ "), parsed.command),
        Object.keys(rest).length ? h("pre", { class: "json small" }, JSON.stringify(rest)) : null);
    }
    if (parsed && name === "write" && typeof parsed.content === "string") {
      return h("div", { class: "args" }, h("div", { class: "mono small" }, `path: ${parsed.path}`),
        output(parsed.content, { fold: 12, kind: "content" }));
    }
    return h("div", { class: "args" }, h("pre", { class: "json" }, parsed ? JSON.stringify(parsed, null, 2) : raw));
  }

  function started(e) {
    const d = e.data;
    const card = toolCard(d.call_id, d.tool, d.arguments);
    if (!card.el.parentNode) container().appendChild(card.el);
    card.anchors.appendChild(anchor(e.v));
  }

  function chunk(e) {
    const d = e.data;
    const card = calls.get(d.call_id);
    if (!card) { waiting.push(e.v); return; }
    card.anchors.appendChild(silent(e.v));
    card.chunks[d.stream].push(b64text(d.data));
    if (!card.finished) liveOutput(card);
  }

  function joinBytes(parts) {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return decode(out);
  }

  function liveOutput(card) {
    if (!card.live) { card.live = h("div", { class: "live-output" }); card.body.appendChild(card.live); }
    card.live.textContent = "";
    for (const s of ["stdout", "stderr"]) {
      if (card.chunks[s].length) card.live.appendChild(output(joinBytes(card.chunks[s]), { kind: s, label: s, fold: 40 }));
    }
  }

  function finished(e) {
    const d = e.data;
    const card = toolCard(d.call_id, d.tool, "");
    if (!card.el.parentNode) container().appendChild(card.el);
    card.finished = true;
    card.anchors.appendChild(anchor(e.v));
    if (card.live) { card.live.remove(); card.live = null; }
    card.statusSlot.textContent = "";
    const failed = d.is_error || d.timed_out || d.signal !== null || (d.exit_code !== null && d.exit_code !== 0);
    let label = d.timed_out ? "timed out" : d.exit_code !== null ? `exit ${d.exit_code}` : d.is_error ? "error" : "ok";
    if (d.signal !== null) label += ` · signal ${d.signal}`;
    card.statusSlot.append(h("span", { class: `badge exit ${failed ? "bad" : "good"}`, "data-exit": d.exit_code === null ? "" : d.exit_code }, label),
      h("span", { class: "muted small duration" }, fmtMs(d.duration_ms)));
    if (failed) card.el.classList.add("failed");
    if (d.error) card.body.appendChild(h("div", { class: "tool-error" }, d.error));
    let shown = false;
    for (const s of ["stdout", "stderr"]) {
      const parts = card.chunks[s];
      const size = d[`${s}_size`];
      if (!parts.length && !size) continue;
      shown = true;
      card.body.appendChild(output(parts.length ? joinBytes(parts) : "", {
        kind: s, label: `${s} · ${fmtBytes(size)}`, digest: d[`${s}_digest`], size,
        truncated: d.truncated || (!parts.length && size > 0),
      }));
    }
    if (!shown) {
      card.body.appendChild(output(d.result_text, { kind: "result", label: "result" }));
    } else if (d.result_text) {
      const det = h("details", { class: "agent-saw" }, h("summary", null, `what the agent saw · ${fmtInt(d.result_text.length)} chars`));
      det.addEventListener("toggle", () => {
        if (det.open && det.childNodes.length === 1) det.appendChild(output(d.result_text, { kind: "result", fold: 40 }));
      }, { once: false });
      card.body.appendChild(det);
    }
  }

  function fsDiff(e) {
    const d = e.data;
    const card = calls.get(d.call_id);
    const where = card ? card.body : container();
    if (card) card.anchors.appendChild(anchor(e.v));
    const list = h("div", { class: "files" }, h("div", { class: "output-label" }, "files changed"));
    for (const c of d.changes) {
      const row = h("div", { class: "file-row" }, h("span", { class: `kind k-${c.kind}` }, c.kind), h("span", { class: "mono path" }, c.path),
        h("span", { class: "muted small" }, c.size !== null ? fmtBytes(c.size) : ""));
      if (c.kind !== "mode" && c.kind !== "symlink") {
        const btn = h("button", { type: "button", class: "link diff-toggle" }, "diff");
        let box = null;
        btn.addEventListener("click", async () => {
          if (box) { box.hidden = !box.hidden; btn.textContent = box.hidden ? "diff" : "hide diff"; return; }
          box = h("div", { class: "diff-box" }, "loading…");
          row.after(box);
          btn.textContent = "hide diff";
          try {
            const r = await api(`/api/sessions/${enc}/diff?call=${encodeURIComponent(d.call_id)}&path=${encodeURIComponent(c.path)}`);
            box.textContent = "";
            if (r.base === "template") box.appendChild(h("div", { class: "muted small" }, "the earlier content came from the workspace template (not in the log): the new content in full"));
            if (r.binary) box.appendChild(h("div", { class: "muted" }, `binary or large file (${fmtBytes(r.size)})`));
            else if (!r.stored && c.kind !== "deleted") box.appendChild(h("div", { class: "muted" }, "content not stored (over the size cap)"));
            else box.appendChild(diffView(r.diff || "(no textual change)"));
          } catch (err) { box.textContent = `diff unavailable: ${err.message}`; }
        });
        row.appendChild(btn);
      }
      list.appendChild(row);
    }
    where.appendChild(list);
  }

  function http(e) {
    const d = e.data;
    const card = calls.get(d.call_id);
    if (!card) return;
    if (!card.web) { card.web = h("div", { class: "web" }, h("div", { class: "output-label" }, "web exchanges")); card.body.appendChild(card.web); }
    card.anchors.appendChild(anchor(e.v));
    card.web.appendChild(h("div", { class: "web-row" },
      h("span", { class: "mono" }, d.method), " ", h("span", { class: `badge ${d.status >= 400 || d.error ? "bad" : "good"}` }, d.error ? "error" : d.status),
      " ", h("span", { class: "mono url" }, d.url), " ",
      d.body_digest ? h("a", { class: "link", href: `/api/blobs/${d.body_digest}`, target: "_blank", rel: "noopener" }, `body ${fmtBytes(d.body_size)}`) : null,
      d.error ? h("span", { class: "tool-error" }, ` ${d.error}`) : null));
  }

  function sessionEnded(e) {
    const d = e.data;
    ended = true;
    timeline.appendChild(h("div", { class: `block end st-${d.status}` }, h("div", { class: "who" }, "session ended", anchor(e.v)),
      badge(d.status), " ", d.reason || "", h("span", { class: "muted small" }, ` · ${d.user_turns} user turns · ${d.tool_calls} tool calls`)));
    if (statusEl) { const b = badge(d.status); statusEl.replaceWith(b); statusEl = b; }
    if (liveEl) liveEl.hidden = true;
  }

  function apply(e) {
    lastVersion = Math.max(lastVersion, e.v);
    switch (e.type) {
      case "user_turn": return userTurn(e);
      case "model_call": if (e.data.role === "agent") pendingCall = e.data; waiting.push(e.v); return;
      case "agent_message": return agentMessage(e);
      case "tool_call_started": return started(e);
      case "output_chunk": return chunk(e);
      case "tool_call_finished": return finished(e);
      case "fs_diff": return fsDiff(e);
      case "http_exchange": return http(e);
      case "session_ended": return sessionEnded(e);
      case "session_started": main.querySelector(".session-head").appendChild(silent(e.v)); return;
      default: waiting.push(e.v); return;
    }
  }

  // Virtualised: events are grouped by user turn; the first turns and the last ones are drawn
  // at once, every other turn gets an empty section (and its entry in the turn list) and is
  // drawn when it comes near the viewport, when a deep link, j/k or a search needs it, or when
  // the browser is idle. A 565-turn session is usable as soon as its first screen is drawn.
  const EAGER = 20;
  let groups = [];
  const groupOfVersion = (v) => groups.findIndex((g) => g.events.length && g.events[0].v <= v && v <= g.events[g.events.length - 1].v);
  let observer = null;

  function renderGroup(i) {
    const g = groups[i];
    if (!g || g.done) return;
    g.done = true;
    const keep = currentTurn;
    currentTurn = sections.get(g.turn) || currentTurn;
    waiting = [];
    for (const e of g.events) apply(e);
    const home = sections.get(g.turn) || main.querySelector(".session-head");
    for (const w of waiting) home.appendChild(silent(w));
    waiting = [];
    if (g.turn !== groups[groups.length - 1].turn) currentTurn = keep;
    if (observer && sections.get(g.turn)) observer.unobserve(sections.get(g.turn));
  }

  function renderAll(events, done) {
    groups = [{ turn: 0, events: [], done: false }];
    for (const e of events) {
      if (e.type === "user_turn" && !e.data.completed) groups.push({ turn: e.data.turn, events: [], done: false });
      groups[groups.length - 1].events.push(e);
    }
    if (!groups[0].events.length) groups.shift();
    for (const g of groups) {
      if (!g.turn) continue;
      const sec = section(g.turn);
      sec.classList.add("pending");
      const first = g.events[0];
      navItem(first.data, first.v);
    }
    const target = /^#v(\d+)$/.exec(location.hash);
    const want = target ? groupOfVersion(parseInt(target[1], 10)) : -1;
    const eager = groups.map((_, i) => i < EAGER || i >= groups.length - 2 || i === want);
    let i = 0;
    const step = () => {
      const t0 = performance.now();
      while (i < groups.length && performance.now() - t0 < 40) { if (eager[i]) renderGroup(i); i++; }
      if (!document.body.dataset.firstSlice) document.body.dataset.firstSlice = String(Math.round(performance.now()));
      if (i < groups.length) { setTimeout(step, 0); return; }
      currentTurn = sections.get(groups.length ? groups[groups.length - 1].turn : 0) || currentTurn;
      lazy();
      done();
    };
    step();
  }

  function lazy() {
    const index = new Map(groups.map((g, i) => [sections.get(g.turn), i]));
    observer = new IntersectionObserver((entries) => {
      for (const en of entries) if (en.isIntersecting) renderGroup(index.get(en.target));
    }, { rootMargin: "1500px 0px" });
    for (const g of groups) if (!g.done && sections.get(g.turn)) observer.observe(sections.get(g.turn));
    let next = 0;
    const idle = () => {
      const t0 = performance.now();
      while (next < groups.length && performance.now() - t0 < 25) renderGroup(next++);
      if (next < groups.length) setTimeout(idle, 30);
      else document.body.dataset.complete = String(Math.round(performance.now()));
    };
    setTimeout(idle, 200);
  }

  function renderEverything() { for (let i = 0; i < groups.length; i++) renderGroup(i); }

  function jumpToHash() {
    const m = /^#v(\d+)$/.exec(location.hash);
    if (!m) return;
    if (!document.getElementById(`v${m[1]}`)) renderGroup(groupOfVersion(parseInt(m[1], 10)));
    const el = document.getElementById(`v${m[1]}`);
    if (!el) return;
    const block = el.closest(".block, .session-head") || el;
    for (const old of document.querySelectorAll(".target")) old.classList.remove("target");
    block.classList.add("target");
    block.scrollIntoView({ block: "center" });
  }

  // ------------------------------------------------------------------ keyboard and search
  let focused = -1;
  function focusTurn(delta) {
    if (!turns.length) return;
    if (focused < 0) {
      const y = window.scrollY + 80;
      focused = turns.findIndex((t) => t.offsetTop + t.offsetHeight > y) - (delta > 0 ? 1 : 0);
    }
    focused = Math.max(0, Math.min(turns.length - 1, focused + delta));
    for (const t of turns) t.classList.remove("focused");
    const t = turns[focused];
    t.classList.add("focused");
    t.scrollIntoView({ block: "start" });
    const first = t.querySelector(".anchor");
    if (first) history.replaceState(null, "", `#${first.id}`);
  }

  let matches = [], matchAt = -1;
  function search(q, counter) {
    for (const m of matches) m.classList.remove("match");
    matches = [];
    matchAt = -1;
    if (!q) { counter.textContent = ""; return; }
    const needle = q.toLowerCase();
    renderEverything();
    // innermost blocks only: a tool card inside an agent block is one match, not two
    const blocks = [...timeline.querySelectorAll(".block")].reverse();
    for (const b of blocks) {
      if (!b.textContent.toLowerCase().includes(needle)) continue;
      if (matches.some((m) => b.contains(m))) continue;
      b.classList.add("match");
      matches.push(b);
    }
    matches.reverse();
    counter.textContent = `${matches.length} match${matches.length === 1 ? "" : "es"}`;
    nextMatch(1, counter);
  }
  function nextMatch(delta, counter) {
    if (!matches.length) return;
    matchAt = (matchAt + delta + matches.length) % matches.length;
    const b = matches[matchAt];
    for (const d of b.querySelectorAll("details")) d.open = true;
    b.scrollIntoView({ block: "center" });
    counter.textContent = `${matchAt + 1} / ${matches.length}`;
  }

  function keyboard(searchBox, counter) {
    document.addEventListener("keydown", (e) => {
      const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
      if (e.key === "Escape" && typing) { document.activeElement.blur(); return; }
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "j") { e.preventDefault(); focusTurn(1); }
      else if (e.key === "k") { e.preventDefault(); focusTurn(-1); }
      else if (e.key === "/") { e.preventDefault(); searchBox.focus(); searchBox.select(); }
      else if (e.key === "n") nextMatch(1, counter);
      else if (e.key === "N") nextMatch(-1, counter);
    });
    searchBox.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); if (matches.length && searchBox.value.toLowerCase() === searchBox.dataset.q) nextMatch(e.shiftKey ? -1 : 1, counter); else { searchBox.dataset.q = searchBox.value.toLowerCase(); search(searchBox.value, counter); } }
    });
  }

  // ------------------------------------------------------------------ live tail
  async function follow() {
    liveEl.hidden = false;
    while (!ended) {
      await new Promise((r) => setTimeout(r, 1000));
      try {
        const tail = await api(`/api/sessions/${enc}/events?after=${lastVersion}&lean=1`);
        const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
        for (const e of tail.events) apply(e);
        if (tail.events.length && atBottom) window.scrollTo(0, document.body.scrollHeight);
        document.body.dataset.version = String(lastVersion);
      } catch (e) { /* transient: try again */ }
    }
  }

  async function start() {
    let s;
    // A session that is just starting may not be readable for a moment: retry a 404 briefly.
    for (let attempt = 0; ; attempt++) {
      try { s = await api(`/api/sessions/${enc}?lean=1`); break; } catch (e) {
        if (e.status !== 404 || attempt >= 10) { fail(main, e); return; }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const fetched = performance.now();
    document.title = `${s.session_id} · ise-es`;
    for (const f of s.audit) {
      if (f.call_id) { if (!findingsByCall.has(f.call_id)) findingsByCall.set(f.call_id, []); findingsByCall.get(f.call_id).push(f); }
      else if (f.turn !== null && f.turn !== undefined) { if (!findingsByTurn.has(f.turn)) findingsByTurn.set(f.turn, []); findingsByTurn.get(f.turn).push(f); }
    }
    main.textContent = "";
    const searchBox = h("input", { type: "search", id: "session-search", placeholder: "Find in session ( / )", autocomplete: "off" });
    const counter = h("span", { class: "muted small", id: "match-count" });
    nav = h("nav", { class: "turn-nav", id: "turn-nav" });
    timeline = h("div", { class: "timeline", id: "timeline" });
    const side = h("aside", { class: "side" }, h("div", { class: "search-row" }, searchBox, counter),
      h("div", { class: "keys muted small" }, "j / k turns · / find · n next"), nav);
    main.append(header(s), h("div", { class: "session-layout" }, side, timeline));
    const general = s.audit.filter((f) => !f.call_id && (f.turn === null || f.turn === undefined));
    for (const f of general) timeline.appendChild(findingEl(f));
    keyboard(searchBox, counter);
    renderAll(s.events, () => {
      for (const [turn, fs] of findingsByTurn) {
        if (!turns.some((t) => t.dataset.turn === String(turn))) for (const f of fs) timeline.appendChild(findingEl(f));
      }
      // milliseconds since navigation start (the benchmark reads these)
      document.body.dataset.rendered = String(Math.round(performance.now()));
      document.body.dataset.fetched = String(Math.round(fetched));
      document.body.dataset.version = String(lastVersion);
      jumpToHash();
      if (s.status === "running" && !ended) follow();
    });
  }

  window.addEventListener("hashchange", jumpToHash);
  start();
})();
