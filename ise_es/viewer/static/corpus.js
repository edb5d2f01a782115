// The corpus: the paper's Table 3 figures for this store, the statistics as charts, the queue.
"use strict";
(() => {
  const { h, api, fmtInt, badge, setIndexStatus, fail } = ISE;
  const main = document.getElementById("main");
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const k of kids) el.appendChild(typeof k === "string" ? document.createTextNode(k) : k);
    return el;
  }

  // Vertical bars: [[label, value], ...]
  function bars(title, data, opts) {
    opts = opts || {};
    const W = 640, H = 150, pad = 28;
    const max = Math.max(1, ...data.map((d) => d[1]));
    const bw = (W - pad * 2) / Math.max(1, data.length);
    const g = svg("svg", { viewBox: `0 0 ${W} ${H + 30}`, class: "chart", role: "img", "aria-label": title });
    g.appendChild(svg("line", { x1: pad, y1: H, x2: W - pad, y2: H, class: "axis" }));
    data.forEach(([label, v], i) => {
      const bh = (H - 20) * (v / max);
      const x = pad + i * bw;
      const rect = svg("rect", { x: x + 1, y: H - bh, width: Math.max(1, bw - 2), height: bh, class: opts.cls || "bar" });
      rect.appendChild(svg("title", {}, `${label}: ${fmtInt(v)}`));
      g.appendChild(rect);
      const every = Math.ceil(data.length / 16);
      if (i % every === 0) g.appendChild(svg("text", { x: x + bw / 2, y: H + 18, class: "tick" }, String(label)));
    });
    g.appendChild(svg("text", { x: 2, y: 14, class: "tick left" }, fmtInt(max)));
    return h("figure", { class: "card chart-card" }, h("figcaption", null, title), g);
  }

  // Horizontal bars for shares: [[label, share 0..1], ...]
  function hbars(title, data) {
    const box = h("figure", { class: "card chart-card" }, h("figcaption", null, title));
    const max = Math.max(0.0001, ...data.map((d) => d[1]));
    for (const [label, v] of data) {
      const fill = h("span", { class: "hfill" });
      fill.style.width = `${(100 * v) / max}%`;
      box.appendChild(h("div", { class: "hrow" }, h("span", { class: "hlabel mono" }, label), h("span", { class: "htrack" }, fill), h("span", { class: "hval" }, `${(100 * v).toFixed(1)}%`)));
    }
    return box;
  }

  function histogram(values) {
    const counts = new Map();
    for (const v of values) counts.set(v, (counts.get(v) || 0) + 1);
    if (!values.length) return [];
    const max = Math.max(...values);
    const min = Math.min(...values);
    if (max - min > 60) {
      const width = Math.ceil((max - min + 1) / 40);
      const bins = [];
      for (let lo = min; lo <= max; lo += width) {
        let n = 0;
        for (let v = lo; v < lo + width; v++) n += counts.get(v) || 0;
        bins.push([lo, n]);
      }
      return bins;
    }
    const out = [];
    for (let v = min; v <= max; v++) out.push([v, counts.get(v) || 0]);
    return out;
  }

  function figure(label, value, sub) {
    return h("div", { class: "figure" }, h("div", { class: "fig-value" }, value), h("div", { class: "fig-label" }, label), sub ? h("div", { class: "fig-sub muted" }, sub) : null);
  }

  function queueSection(q) {
    const card = h("section", { class: "card", id: "queue" }, h("h2", null, "Work queue"));
    if (!q.available) { card.appendChild(h("p", { class: "muted" }, `Not available: ${q.reason}`)); return card; }
    const counts = Object.entries(q.counts || {});
    if (!counts.length) { card.appendChild(h("p", { class: "muted" }, "The queue is empty: ise-es record --enqueue-only, then ise-es worker.")); return card; }
    card.appendChild(h("div", { class: "figures" }, counts.map(([k, v]) => figure(k.replace("done:", "done · "), fmtInt(v)))));
    const eta = q.eta_s === null || q.eta_s === undefined ? "–" : ISE.fmtDuration(q.eta_s);
    card.appendChild(h("p", { class: "muted small" },
      `${fmtInt(q.remaining)} remaining · ${q.per_minute.toFixed(1)} items/min over the last ${Math.round(q.window_s / 60)} min · ETA ${eta}`));
    if (q.workers && q.workers.length) {
      card.appendChild(h("table", { class: "sessions" },
        h("thead", null, h("tr", null, ["worker", "host", "pid", "items", "heartbeat age"].map((c) => h("th", null, c)))),
        h("tbody", null, q.workers.map((w) => h("tr", null, h("td", { class: "mono" }, w.worker_id), h("td", null, w.host),
          h("td", { class: "num" }, w.pid), h("td", { class: "num" }, w.items), h("td", { class: "num" }, ISE.fmtDuration(w.heartbeat_age_s)))))));
    } else {
      card.appendChild(h("p", { class: "muted small" }, "no worker holds a lease now"));
    }
    return card;
  }

  async function start() {
    let st, q;
    try { [st, q] = await Promise.all([api("/api/stats"), api("/api/queue")]); } catch (e) { fail(main, e); return; }
    setIndexStatus(st.index);
    const pct = (x) => `${(100 * x).toFixed(2)}%`;
    const status = Object.entries(st.sessions_by_status).sort((x, y) => y[1] - x[1]);
    main.textContent = "";
    main.append(
      h("h1", null, "Corpus"),
      h("div", { class: "status-strip" }, status.map(([k, v]) => h("a", { href: `/sessions?status=${encodeURIComponent(k)}`, class: "status-card" }, badge(k), h("span", { class: "big" }, fmtInt(v))))),
      h("section", { class: "card", id: "table3" },
        h("h2", null, `Table 3 · ${fmtInt(st.trajectories)} ${st.status_filter} trajectories`),
        h("div", { class: "figures" },
          figure("unique intents", fmtInt(st.unique_intents)),
          figure("complete trajectories", fmtInt(st.complete_trajectories)),
          figure("completion rate", pct(st.completion_rate), `of ${fmtInt(st.ended_sessions)} ended sessions`),
          figure("user turns", st.user_turns.avg.toFixed(2), `median ${st.user_turns.median} · max ${st.user_turns.max}`),
          figure("6-10 user turns", pct(st.share_6_to_10_user_turns)),
          figure("dialogue turns", st.dialogue_turns.avg.toFixed(2), `max ${st.dialogue_turns.max}`),
          figure("tool calls", st.tool_calls.avg.toFixed(2), `max ${st.tool_calls.max}`),
          figure("unique tools", st.unique_tools.avg.toFixed(2)),
          figure("think tags", st.think_tags.avg.toFixed(2)),
          figure("recovery rate", pct(st.recovery_rate), `${fmtInt(st.recovered_calls)} of ${fmtInt(st.failed_calls)} failed calls`),
          figure("replays", fmtInt(st.replays), st.determinism_rate === null ? "none yet" : `determinism ${pct(st.determinism_rate)}`),
        ),
        h("details", null, h("summary", null, "as text"), h("pre", { class: "small" }, st.table3.join("\n")))),
      h("div", { class: "charts" },
        bars("user turns per trajectory", histogram(st.user_turn_values)),
        bars("tool calls per trajectory", histogram(st.tool_call_values), { cls: "bar alt" }),
        hbars("tool shares", Object.entries(st.tool_shares).sort((x, y) => y[1] - x[1]).slice(0, 12)),
        bars("exit codes", Object.entries(st.exit_codes).sort((x, y) => y[1] - x[1]).slice(0, 12), { cls: "bar warm" }),
        h("figure", { class: "card chart-card" }, h("figcaption", null, "top tool trigrams"),
          h("ol", { class: "trigrams" }, st.top_trigrams.map(([tri, n]) => h("li", null, h("span", { class: "mono" }, tri.join(" → ")), h("span", { class: "muted" }, ` ${fmtInt(n)}`))))),
        h("figure", { class: "card chart-card" }, h("figcaption", null, "replay verdicts"),
          Object.keys(st.replay_statuses).length
            ? h("div", { class: "figures" }, Object.entries(st.replay_statuses).map(([k, v]) => h("a", { href: `/sessions?replay=${encodeURIComponent(k)}`, class: "status-card" }, badge(k), h("span", { class: "big" }, fmtInt(v)))))
            : h("p", { class: "muted" }, "nothing replayed yet: ise-es replay --all"))),
      queueSection(q));
    document.body.dataset.loaded = "1";
  }
  start();
})();
