// ise-es viewer: helpers shared by every page.
// Untrusted text (tool output, model text, file contents) only ever reaches the DOM through
// text nodes (h() children, textContent); nothing here assigns HTML.
"use strict";

const ISE = (() => {
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") el.className = v;
        else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
        else if (k === "href") el.setAttribute("href", safeHref(v));
        else el.setAttribute(k, v === true ? "" : String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
    return el;
  }

  // Only same-origin paths and fragments are links; anything else (javascript:, data:) is not.
  function safeHref(v) {
    const s = String(v);
    return s.startsWith("/") && !s.startsWith("//") ? s : s.startsWith("#") ? s : "#";
  }

  async function api(path) {
    const r = await fetch(path, { headers: { accept: "application/json" } });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const msg = body && body.error ? body.error : `${r.status} ${r.statusText}`;
      const err = new Error(msg);
      err.status = r.status;
      throw err;
    }
    return body;
  }

  async function text(path) {
    const r = await fetch(path);
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    return await r.text();
  }

  function fmtTime(ts) {
    if (!ts) return "–";
    const d = new Date(ts * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
      `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
    return `${Math.floor(m / 60)}h ${m % 60}m`;
  }

  function fmtMs(ms) { return ms === null || ms === undefined ? "–" : fmtDuration(ms / 1000); }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function fmtInt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }

  function badge(status, extra) {
    return h("span", { class: `badge st-${String(status).replace(/[^a-z_]/gi, "")}${extra ? " " + extra : ""}` }, status);
  }

  function b64text(s) {
    const bin = atob(s);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  const decoder = new TextDecoder("utf-8", { fatal: false });
  function decode(bytes) { return decoder.decode(bytes); }

  // ------------------------------------------------------------------ ANSI (SGR) rendering
  const ESC = /\x1b\[([0-9;?]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]/g;
  const PALETTE = [
    "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
    "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
  ];
  function color256(n) {
    if (n < 16) return PALETTE[n];
    if (n < 232) {
      n -= 16;
      const c = [Math.floor(n / 36), Math.floor(n / 6) % 6, n % 6].map((v) => (v ? v * 40 + 55 : 0));
      return `rgb(${c[0]},${c[1]},${c[2]})`;
    }
    const g = 8 + (n - 232) * 10;
    return `rgb(${g},${g},${g})`;
  }

  // Returns a DocumentFragment: spans styled through CSSOM (allowed by the CSP), text as text.
  function ansi(textIn) {
    const frag = document.createDocumentFragment();
    const s = String(textIn);
    if (s.indexOf("\x1b") < 0) { frag.appendChild(document.createTextNode(s)); return frag; }
    let st = {};
    let last = 0;
    const emit = (chunk) => {
      if (!chunk) return;
      if (!st.fg && !st.bg && !st.b && !st.i && !st.u && !st.d) {
        frag.appendChild(document.createTextNode(chunk));
        return;
      }
      const span = document.createElement("span");
      if (st.fg) span.style.color = st.fg;
      if (st.bg) span.style.backgroundColor = st.bg;
      if (st.b) span.style.fontWeight = "bold";
      if (st.d) span.style.opacity = "0.7";
      if (st.i) span.style.fontStyle = "italic";
      if (st.u) span.style.textDecoration = "underline";
      span.textContent = chunk;
      frag.appendChild(span);
    };
    ESC.lastIndex = 0;
    let m;
    while ((m = ESC.exec(s)) !== null) {
      emit(s.slice(last, m.index));
      last = ESC.lastIndex;
      if (m[2] !== "m") continue;
      const codes = (m[1] || "0").split(";").map((x) => parseInt(x || "0", 10));
      for (let i = 0; i < codes.length; i++) {
        const c = codes[i];
        if (c === 0) st = {};
        else if (c === 1) st.b = true;
        else if (c === 2) st.d = true;
        else if (c === 3) st.i = true;
        else if (c === 4) st.u = true;
        else if (c === 22) { st.b = false; st.d = false; }
        else if (c === 23) st.i = false;
        else if (c === 24) st.u = false;
        else if (c >= 30 && c <= 37) st.fg = PALETTE[c - 30];
        else if (c >= 90 && c <= 97) st.fg = PALETTE[c - 90 + 8];
        else if (c >= 40 && c <= 47) st.bg = PALETTE[c - 40];
        else if (c >= 100 && c <= 107) st.bg = PALETTE[c - 100 + 8];
        else if (c === 39) st.fg = null;
        else if (c === 49) st.bg = null;
        else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
          const col = color256(codes[i + 2] || 0);
          if (c === 38) st.fg = col; else st.bg = col;
          i += 2;
        } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
          const col = `rgb(${codes[i + 2] || 0},${codes[i + 3] || 0},${codes[i + 4] || 0})`;
          if (c === 38) st.fg = col; else st.bg = col;
          i += 4;
        }
      }
    }
    emit(s.slice(last));
    return frag;
  }

  // A block of terminal output: ANSI rendered, folded past `fold` lines, the full blob a click
  // away when the recording kept only its head.
  function output(textIn, opts) {
    opts = opts || {};
    const fold = opts.fold || 14;
    const wrap = h("div", { class: `output ${opts.kind || ""}` });
    if (opts.label) wrap.appendChild(h("div", { class: "output-label" }, opts.label));
    const pre = h("pre", { class: "term" });
    wrap.appendChild(pre);
    const full = String(textIn);
    const lines = full.split("\n");
    const show = (t) => { pre.textContent = ""; pre.appendChild(ansi(t)); };
    const bar = h("div", { class: "output-bar" });
    if (lines.length > fold + 4) {
      show(lines.slice(0, fold).join("\n"));
      const more = h("button", { class: "link fold-toggle", type: "button" },
        `show all ${lines.length} lines`);
      let open = false;
      more.addEventListener("click", () => {
        open = !open;
        show(open ? full : lines.slice(0, fold).join("\n"));
        more.textContent = open ? "fold" : `show all ${lines.length} lines`;
      });
      bar.appendChild(more);
    } else {
      show(full);
    }
    if (opts.digest) {
      if (opts.truncated) {
        const load = h("button", { class: "link load-blob", type: "button" },
          `load full output (${fmtBytes(opts.size)})`);
        load.addEventListener("click", async () => {
          load.disabled = true;
          load.textContent = "loading…";
          try {
            const t = await text(`/api/blobs/${opts.digest}`);
            show(t);
            load.remove();
          } catch (e) { load.textContent = `failed: ${e.message}`; }
        });
        bar.appendChild(load);
      }
      bar.appendChild(h("a", { class: "link", href: `/api/blobs/${opts.digest}`, target: "_blank", rel: "noopener" },
        `raw ${fmtBytes(opts.size)}`));
    }
    if (bar.childNodes.length) wrap.appendChild(bar);
    return wrap;
  }

  function diffView(textIn) {
    const pre = h("pre", { class: "diff" });
    const lines = String(textIn).split("\n");
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    for (const line of lines) {
      let cls = "ctx";
      if (line.startsWith("+++") || line.startsWith("---")) cls = "file";
      else if (line.startsWith("+")) cls = "add";
      else if (line.startsWith("-")) cls = "del";
      else if (line.startsWith("@@")) cls = "hunk";
      pre.appendChild(h("span", { class: `dl ${cls}` }, line + "\n"));
    }
    return pre;
  }

  function prettyArgs(raw) {
    try { return JSON.stringify(JSON.parse(raw), null, 2); } catch (e) { return String(raw); }
  }

  function setIndexStatus(index) {
    const el = document.getElementById("index-status");
    if (!el || !index) return;
    el.textContent = index.error ? `index error: ${index.error}`
      : index.running && index.runs === 0 ? `indexing… ${fmtInt(index.events_read)} events`
      : `index at position ${fmtInt(index.position)}`;
  }

  function markNav() {
    const page = document.body.dataset.page;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === page || (page === "session" && a.dataset.nav === "sessions")) a.classList.add("active");
    }
  }

  function fail(main, e) {
    main.textContent = "";
    main.appendChild(h("div", { class: "error-box" }, h("h2", null, e.status === 404 ? "Not found" : "Error"), h("p", null, e.message)));
  }

  function shortId(id) { return String(id).length > 14 ? String(id).slice(0, 12) + "…" : String(id); }

  document.addEventListener("DOMContentLoaded", markNav);
  return { h, append, api, text, fmtTime, fmtDuration, fmtMs, fmtBytes, fmtInt, badge, b64text, decode,
    ansi, output, diffView, prettyArgs, setIndexStatus, fail, shortId };
})();
