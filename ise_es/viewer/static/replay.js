// A replay: each re-executed step beside the recorded call it replays, its verdict, the
// normalizers that fired and the unified diff of every field that differed.
"use strict";
(() => {
  const { h, api, fmtMs, fmtInt, badge, output, diffView, prettyArgs, fail } = ISE;
  const main = document.getElementById("main");
  const replayId = decodeURIComponent(location.pathname.split("/")[2] || "");

  function recorded(src) {
    if (!src) return h("div", { class: "muted" }, "the recorded call is not in the source stream");
    const failed = src.exit_code !== null && src.exit_code !== undefined && src.exit_code !== 0;
    return h("div", { class: "side-cell" },
      h("div", { class: "tool-head" }, h("span", { class: "tool-name" }, src.tool),
        src.exit_code !== undefined ? h("span", { class: `badge exit ${failed || src.is_error ? "bad" : "good"}` },
          src.exit_code === null ? (src.is_error ? "error" : "ok") : `exit ${src.exit_code}`) : null,
        h("span", { class: "muted small" }, fmtMs(src.duration_ms))),
      h("pre", { class: "json small" }, prettyArgs(src.arguments)),
      src.result_text !== undefined ? output(src.result_text, { fold: 12, kind: "result", label: "recorded result" }) : null);
  }

  // Lines a normalizer made equal: the recorded and the replayed text, and which fired.
  function whereView(where) {
    const pre = h("pre", { class: "diff" });
    for (const w of where) {
      pre.appendChild(h("span", { class: "dl hunk" }, `line ${w.line}${w.normalizers && w.normalizers.length ? " · " + w.normalizers.join(", ") : ""}\n`));
      pre.appendChild(h("span", { class: "dl del" }, `-${w.recorded}\n`));
      pre.appendChild(h("span", { class: "dl add" }, `+${w.replayed}\n`));
    }
    return pre;
  }

  function replayed(step) {
    const cell = h("div", { class: "side-cell" },
      h("div", { class: "tool-head" }, badge(step.verdict, "verdict"),
        step.after_divergence ? h("span", { class: "muted small" }, " after an earlier divergence") : null),
      step.normalizers_fired.length ? h("div", { class: "small" }, "normalizers fired: ",
        step.normalizers_fired.map((n) => h("span", { class: "chip" }, n))) : null);
    if (!step.differences.length && step.verdict === "identical") cell.appendChild(h("p", { class: "muted small" }, "every compared field is identical"));
    for (const d of step.differences) {
      cell.appendChild(h("div", { class: "difference" },
        h("div", { class: "output-label" }, d.field || "field",
          d.normalizers && d.normalizers.length ? h("span", { class: "muted" }, ` · normalized by ${d.normalizers.join(", ")}`) : null),
        d.diff ? diffView(d.diff) : d.where ? whereView(d.where)
          : h("pre", { class: "json small" }, JSON.stringify(d, null, 2))));
    }
    return cell;
  }

  async function start() {
    let r;
    try { r = await api(`/api/replays/${encodeURIComponent(replayId)}`); } catch (e) { fail(main, e); return; }
    document.title = `replay ${r.replay_id} · ise-es`;
    const st = r.started, end = r.ended || {};
    const counts = Object.entries(end.counts || {}).map(([k, v]) => h("span", { class: "chip" }, `${k} ${v}`));
    main.textContent = "";
    main.append(
      h("section", { class: "card session-head" },
        h("div", { class: "title-row" }, h("h1", { class: "mono" }, `replay ${r.replay_id}`), badge(r.status, "verdict")),
        h("dl", { class: "meta" },
          h("dt", null, "source"), h("dd", null, h("a", { class: "mono", href: `/sessions/${encodeURIComponent(r.source_session)}` }, r.source_session), ` at version ${st.source_version}`),
          h("dt", null, "sandbox"), h("dd", null, `${st.sandbox_backend} · template ${st.template} (${String(st.template_digest).slice(0, 19)})`),
          h("dt", null, "determinism"), h("dd", null, end.determinism !== undefined ? `${(100 * end.determinism).toFixed(1)}%` : "–"),
          h("dt", null, "normalizers"), h("dd", null, (st.normalizers || []).join(", ") || "none"),
          end.reason ? [h("dt", null, "reason"), h("dd", null, end.reason)] : null),
        h("div", { class: "counts" }, counts)),
      h("div", { class: "replay-grid", id: "replay-steps" },
        h("div", { class: "grid-head" }, "recorded"), h("div", { class: "grid-head" }, "replayed"),
        r.steps.map((s) => [
          h("div", { class: `step-left st-row-${s.step.verdict}`, id: `step-${s.step.index}` },
            h("div", { class: "step-no" }, `step ${s.step.index + 1}`,
              s.source && s.source.v ? h("a", { class: "anchor", href: `/sessions/${encodeURIComponent(r.source_session)}#v${s.source.v}` }, ` #${s.source.v}`) : null),
            recorded(s.source)),
          h("div", { class: `step-right st-row-${s.step.verdict}` }, replayed(s.step)),
        ])));
    if (!r.steps.length) main.appendChild(h("p", { class: "muted" }, "no step replayed yet"));
    document.body.dataset.loaded = "1";
  }
  start();
})();
