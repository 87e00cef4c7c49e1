// @ts-check
/**
 * MonitorPanel (acc/widgets/monitor_panel.py): alerts (active and resolved, with recommendations), per-layer
 * gradient health, throughput and ETA, streaming statistics, the fixed evaluation, disabled monitors.
 *
 * Everything shown comes from the model's traits (state lives in the kernel); the only things sent back are
 * commands: {kind: "refresh"}, {kind: "clear_error"}.
 * DOM contract: [data-acc-field=alerts|layers|throughput|eta] hold bare values (the number of active alerts,
 * the layer headline, the current rate, the time left); each alert is an element [data-acc-alert=<code>]
 * with the class acc-alert-active or acc-alert-resolved; colours via the .loss-* classes.
 */
import { bind, errorBox, fmtInt, h, healthClass, num } from "./_shared.js";

/** @typedef {import("./_shared.js").AnyModel} AnyModel */

const LAYERS_FOLDED = 12; // table rows shown before "Show all"
const RESOLVED_FOLDED = 3; // resolved alerts shown before "Show all"

/** Severity -> the health class that colours it (info has its own accent class). */
const SEVERITY_HEALTH = /** @type {Record<string, string>} */ ({ critical: "critical", warning: "warning" });
/** Layer verdict -> health colour; frozen/unknown stay dim. */
const STATUS_HEALTH = /** @type {Record<string, string>} */ ({
  active: "healthy",
  vanishing: "warning",
  exploding: "critical",
  dead: "critical",
});
const STATUS_WHY = /** @type {Record<string, string>} */ ({
  active: "receives a usable gradient",
  vanishing: "gradient norm below the vanishing threshold",
  exploding: "gradient norm above the exploding threshold, or not finite",
  dead: "exactly zero gradient for several samples in a row",
  frozen: "no gradient at all: requires_grad=False, or not used in the forward",
  unknown: "not sampled yet",
});
const TREND_ARROW = /** @type {Record<string, string>} */ ({ improving: "↑", degrading: "↓", stable: "→" });
const LOSS_ARROW = /** @type {Record<string, string>} */ ({ improving: "↓", degrading: "↑", stable: "→" });

/**
 * A number for people: 3 significant digits, e-notation when tiny or huge, "–" when unknown.
 * @param {unknown} value
 */
function sig(value) {
  if (value === null || value === undefined) return "–";
  const x = num(value);
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Inf" : "-Inf";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
  return x.toPrecision(3).replace(/\.?0+$/, (m) => (m.startsWith(".") ? "" : m));
}

/**
 * A rate: thousands separators when large, one decimal when small.
 * @param {unknown} value
 */
function rate(value) {
  const x = num(value);
  if (!Number.isFinite(x)) return "–";
  return x >= 100 ? fmtInt(x) : x.toFixed(1);
}

/** @param {unknown} value */
function pct(value) {
  const x = num(value);
  return Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : "–";
}

/** @param {unknown} count */
function params(count) {
  if (typeof count !== "number" || !Number.isFinite(count)) return "–";
  if (count >= 1e6) return `${(count / 1e6).toFixed(1)}M`;
  if (count >= 1e4) return `${(count / 1e3).toFixed(0)}k`;
  return fmtInt(count);
}

/**
 * @param {unknown} first
 * @param {unknown} last
 */
function stepRange(first, last) {
  if (typeof first !== "number") return "";
  return typeof last === "number" && last !== first ? `steps ${fmtInt(first)}–${fmtInt(last)}` : `step ${fmtInt(first)}`;
}

/**
 * @param {string} title
 * @param {Array<Node | string | null>} [extra]
 */
function card(title, extra = []) {
  const heading = h("div", { cls: "acc-card-head" }, [h("h4", { text: title }), ...extra]);
  const body = h("div", { cls: "acc-card-body" });
  const node = h("section", { cls: "acc-card", attrs: { "aria-label": title } }, [heading, body]);
  return { node, heading, body, title: /** @type {HTMLElement} */ (heading.firstChild) };
}

/**
 * A headline tile: label, a bare value in [data-acc-field], and a dim line under it.
 * @param {string} label
 * @param {string} field
 */
function tile(label, field) {
  const value = h("span", { cls: "acc-tile-value", data: { accField: field } });
  const unit = h("span", { cls: "acc-tile-unit" });
  const sub = h("span", { cls: "acc-tile-sub" });
  const node = h("div", { cls: "acc-tile", attrs: { role: "group", "aria-label": label } }, [
    h("span", { cls: "acc-tile-label", text: label }),
    h("span", { cls: "acc-tile-main" }, [value, unit]),
    sub,
  ]);
  return { node, value, unit, sub };
}

/**
 * One alert as a list item.
 * @param {Record<string, any>} a
 * @param {boolean} resolved
 */
function alertItem(a, resolved) {
  const health = SEVERITY_HEALTH[a.severity] ?? "";
  const cls = `acc-alert ${resolved ? "acc-alert-resolved" : "acc-alert-active"} ${health ? healthClass(health) : "acc-info"}`;
  const seen = a.count > 1 ? ` · seen ${fmtInt(a.count)}×` : "";
  const when = resolved
    ? h("span", { cls: "acc-alert-when" }, [
        h("span", { cls: "acc-resolved-mark", text: "✓ resolved", attrs: { "aria-hidden": "true" } }),
        h("span", { cls: "acc-num", text: ` at step ${fmtInt(a.resolved_step)}` }),
        h("span", { cls: "acc-dim", text: ` · was ${stepRange(a.first_step, a.last_step)}${seen}` }),
      ])
    : h("span", { cls: "acc-alert-when acc-dim acc-num", text: `${stepRange(a.first_step, a.last_step)}${seen}` });
  return h("li", { cls, data: { accAlert: String(a.code), severity: String(a.severity) } }, [
    h("div", { cls: "acc-alert-head" }, [
      h("span", { cls: "acc-sev", text: String(a.severity) }),
      h("span", { cls: "acc-alert-code acc-num", text: String(a.code) }),
      when,
    ]),
    h("div", { cls: "acc-alert-message", text: String(a.message) }),
    a.recommendation
      ? h("div", { cls: "acc-alert-rec" }, [h("span", { cls: "acc-rec-label", text: "What to do: " }), h("span", { text: String(a.recommendation) })])
      : null,
  ]);
}

/**
 * A gradient-norm bar on a log scale between the table's smallest and largest norms.
 * @param {unknown} value
 * @param {number} lo log10 of the smallest positive norm
 * @param {number} hi log10 of the largest norm
 */
function normBar(value, lo, hi) {
  const x = num(value);
  const bar = h("span", { cls: "acc-bar", attrs: { "aria-hidden": "true" } });
  let width = 0;
  if (Number.isFinite(x) && x > 0) width = hi > lo ? 8 + (92 * (Math.log10(x) - lo)) / (hi - lo) : 100;
  else if (!Number.isFinite(x) && !Number.isNaN(x)) width = 100;
  bar.style.width = `${Math.max(0, Math.min(100, width)).toFixed(0)}%`;
  return h("span", { cls: "acc-bar-track" }, [bar]);
}

/**
 * The layer (or adapter) table, folded to the most urgent rows.
 * @param {string} title
 * @param {string} nameHeader
 */
function layerTable(title, nameHeader) {
  const more = h("button", { cls: "acc-more", attrs: { type: "button" } });
  const section = card(title);
  const headline = h("div", { cls: "acc-layer-headline" });
  const note = h("div", { cls: "acc-layer-note acc-dim" });
  const tbody = h("tbody");
  /** @type {Array<[string, string]>} header, its explanation */
  const headers = [
    [nameHeader, ""],
    ["status", "the verdict on the last gradient sample"],
    ["grad", "gradient norm at the last sample"],
    ["", ""],
    ["mean", "mean gradient norm over the samples"],
    ["update", "relative update |ΔW| / |W| at the last sample"],
    ["params", "parameters"],
    ["zeros", "samples in a row with an exactly zero gradient"],
  ];
  section.body.append(
    headline,
    h("table", { cls: "acc-table acc-layers" }, [
      h("thead", {}, [h("tr", {}, headers.map(([t, why], i) => h("th", { text: t, title: why, cls: i === 3 ? "acc-bar-cell" : i === 1 ? "acc-left" : "", attrs: { scope: "col" } })))]),
      tbody,
    ]),
    more,
    note,
  );
  let expanded = false;
  /** @type {Array<Record<string, any>>} */
  let rows = [];
  const draw = () => {
    const folded = !expanded && rows.length > LAYERS_FOLDED;
    const shown = folded ? [...rows].sort((a, b) => a.rank - b.rank).slice(0, LAYERS_FOLDED) : rows;
    const logs = rows.map((r) => num(r.grad)).filter((x) => Number.isFinite(x) && x > 0).map(Math.log10);
    const lo = logs.length ? Math.min(...logs) : 0;
    const hi = logs.length ? Math.max(...logs) : 0;
    tbody.replaceChildren(
      ...shown.map((r) => {
        const health = STATUS_HEALTH[r.status] ?? "";
        return h("tr", { cls: `acc-layer acc-layer-${r.status} ${healthClass(health)}`, data: { layer: String(r.name) } }, [
          h("th", { cls: "acc-layer-name", attrs: { scope: "row" }, title: String(r.name) }, [h("span", { text: String(r.name) })]),
          h("td", { cls: "acc-left" }, [h("span", { cls: `acc-pill ${healthClass(health)}`, text: String(r.status), title: STATUS_WHY[r.status] ?? "" })]),
          h("td", { cls: "acc-num acc-grad", text: sig(r.grad) }),
          h("td", { cls: "acc-bar-cell" }, [normBar(r.grad, lo, hi)]),
          h("td", { cls: "acc-num", text: sig(r.mean_grad) }),
          h("td", { cls: "acc-num", text: sig(r.update), title: "relative update |ΔW| / |W| at the last sample" }),
          h("td", { cls: "acc-num", text: params(r.params) }),
          h("td", { cls: "acc-num", text: r.zero_streak ? fmtInt(r.zero_streak) : "" }),
        ]);
      }),
    );
    if (rows.length === 0) tbody.append(h("tr", {}, [h("td", { cls: "acc-empty", text: "no layers", attrs: { colspan: String(headers.length) } })]));
    more.hidden = rows.length <= LAYERS_FOLDED;
    more.textContent = expanded ? "Show the most urgent only" : `Show all ${rows.length}`;
  };
  const onMore = () => {
    expanded = !expanded;
    draw();
  };
  more.addEventListener("click", onMore);
  return {
    node: section.node,
    /**
     * @param {Record<string, any>} summary
     * @param {Array<Record<string, any>>} newRows
     */
    update(summary, newRows) {
      section.node.hidden = !summary || !summary.text;
      headline.className = `acc-layer-headline ${healthClass(summary?.health)}`;
      headline.textContent = summary?.text ?? "";
      const bits = [];
      if (typeof summary?.step === "number") bits.push(`last gradient sample at step ${fmtInt(summary.step)}`);
      if (summary?.imbalanced) bits.push(`imbalanced: the largest norm is ${sig(summary.imbalance_ratio)}× the smallest`);
      note.textContent = bits.join(" · ");
      rows = newRows;
      draw();
    },
    dispose: () => more.removeEventListener("click", onMore),
  };
}

/**
 * Key/value rows of a statistics card.
 * @param {HTMLElement} list
 * @param {Array<[string, string, string?, string?]>} items label, value, extra class, title
 */
function fillStats(list, items) {
  list.replaceChildren(
    ...items.map(([label, value, cls, title]) =>
      h("div", { cls: "acc-kv" }, [
        h("span", { cls: "acc-kv-label", text: label, title: title ?? label }),
        h("span", { cls: `acc-kv-value acc-num ${cls ?? ""}`, text: value }),
      ]),
    ),
  );
}

export default {
  /** @param {{model: AnyModel, el: HTMLElement}} ctx */
  render({ model, el }) {
    const cleanups = /** @type {Array<() => void>} */ ([]);

    // ---- headline tiles -------------------------------------------------------------
    const alertsTile = tile("Alerts", "alerts");
    const layersTile = tile("Layers", "layers");
    const rateTile = tile("Throughput", "throughput");
    const etaTile = tile("ETA", "eta");
    const bar = h("div", { cls: "acc-progress-bar" });
    const progress = h("div", { cls: "acc-progress", attrs: { role: "progressbar", "aria-label": "progress" } }, [bar]);
    etaTile.node.append(progress);
    const source = h("span", { cls: "acc-mon-source acc-dim" });
    const refresh = h("button", { cls: "acc-refresh", text: "Refresh", attrs: { type: "button" } });
    const onRefresh = () => model.send({ kind: "refresh" });
    refresh.addEventListener("click", onRefresh);
    cleanups.push(() => refresh.removeEventListener("click", onRefresh));
    const strip = h("div", { cls: "acc-mon-strip", attrs: { role: "status" } }, [alertsTile.node, layersTile.node, rateTile.node, etaTile.node]);
    const header = h("div", { cls: "acc-mon-header" }, [h("h3", { cls: "acc-mon-title", text: "Monitors" }), source, refresh]);

    cleanups.push(
      bind(model, ["alert_summary"], () => {
        const s = model.get("alert_summary") || {};
        const active = s.active ?? 0;
        alertsTile.value.textContent = String(active);
        alertsTile.unit.textContent = " active";
        const parts = ["critical", "warning", "info"].filter((k) => s[k]).map((k) => `${s[k]} ${k}`);
        if (s.resolved) parts.push(`${s.resolved} resolved`);
        alertsTile.sub.textContent = parts.length ? parts.join(" · ") : "none raised";
        const worst = s.critical ? "critical" : s.warning ? "warning" : "healthy";
        alertsTile.node.className = `acc-tile ${healthClass(worst)}`;
      }),
    );
    cleanups.push(
      bind(model, ["layer_summary", "lora_summary"], () => {
        const s = model.get("layer_summary") || {};
        const lora = model.get("lora_summary") || {};
        layersTile.node.hidden = !s.text;
        layersTile.value.textContent = s.text ?? "";
        layersTile.sub.textContent = lora.text ? `LoRA: ${lora.text}` : s.imbalanced ? "gradients imbalanced" : "";
        layersTile.node.className = `acc-tile acc-tile-wide ${healthClass(s.health)}`;
      }),
    );
    cleanups.push(
      bind(model, ["throughput", "step", "max_steps", "run_state"], () => {
        const t = model.get("throughput") || {};
        const has = Object.keys(t).length > 0;
        rateTile.node.hidden = !has;
        rateTile.value.textContent = rate(t.current);
        rateTile.unit.textContent = t.unit ? ` ${t.unit}` : "";
        const trend = t.trend && t.trend !== "insufficient_data" ? ` · ${TREND_ARROW[t.trend] ?? ""} ${t.trend}` : "";
        rateTile.sub.textContent = has ? `avg ${rate(t.average)}${trend}` : "";
        const step = model.get("step") ?? 0;
        const max = model.get("max_steps");
        etaTile.value.textContent = has ? String(t.eta_text ?? "—") : "—";
        etaTile.unit.textContent = "";
        const state = String(model.get("run_state") || "idle");
        const of = typeof max === "number" ? ` / ${fmtInt(max)}` : "";
        const elapsed = t.elapsed_text && t.elapsed_text !== "—" ? ` · ${state === "running" ? "elapsed" : "took"} ${t.elapsed_text}` : "";
        etaTile.sub.textContent = `step ${fmtInt(step)}${of}${elapsed}`;
        const fraction = typeof max === "number" && max > 0 ? Math.min(1, step / max) : 0;
        bar.style.width = `${(100 * fraction).toFixed(1)}%`;
        progress.setAttribute("aria-valuenow", String(Math.round(100 * fraction)));
        progress.hidden = typeof max !== "number";
      }),
    );
    cleanups.push(
      bind(model, ["origin", "job", "run_state"], () => {
        const job = model.get("job") || {};
        const origin = String(model.get("origin") || "");
        const bits = [];
        if (job.id != null) bits.push(`job ${job.id}`);
        bits.push(String(model.get("run_state") || "idle"));
        if (origin && origin !== "live") bits.push(`from the ${origin}`);
        source.textContent = bits.join(" · ");
      }),
    );

    // ---- alerts ------------------------------------------------------------------------
    let showAllResolved = false;
    const moreResolved = h("button", { cls: "acc-more", attrs: { type: "button" } });
    const alertsCard = card("Alerts");
    const activeList = h("ul", { cls: "acc-alerts acc-alerts-active", attrs: { "aria-label": "active alerts" } });
    const resolvedHead = h("div", { cls: "acc-subhead", text: "Resolved" });
    const resolvedList = h("ul", { cls: "acc-alerts acc-alerts-resolved", attrs: { "aria-label": "resolved alerts" } });
    alertsCard.body.append(activeList, resolvedHead, resolvedList, moreResolved);
    const drawAlerts = () => {
      /** @type {Array<Record<string, any>>} */
      const active = model.get("alerts") || [];
      /** @type {Array<Record<string, any>>} */
      const resolved = model.get("resolved_alerts") || [];
      activeList.replaceChildren(...active.map((a) => alertItem(a, false)));
      if (active.length === 0) activeList.append(h("li", { cls: "acc-empty acc-all-clear", text: "no active alerts" }));
      const shown = showAllResolved ? resolved : resolved.slice(0, RESOLVED_FOLDED);
      resolvedList.replaceChildren(...shown.map((a) => alertItem(a, true)));
      resolvedHead.hidden = resolved.length === 0;
      resolvedHead.textContent = `Resolved (${resolved.length})`;
      moreResolved.hidden = resolved.length <= RESOLVED_FOLDED;
      moreResolved.textContent = showAllResolved ? "Show fewer" : `Show all ${resolved.length} resolved`;
    };
    const onMoreResolved = () => {
      showAllResolved = !showAllResolved;
      drawAlerts();
    };
    moreResolved.addEventListener("click", onMoreResolved);
    cleanups.push(() => moreResolved.removeEventListener("click", onMoreResolved));
    cleanups.push(bind(model, ["alerts", "resolved_alerts"], drawAlerts));

    // ---- layer health, LoRA adapters ---------------------------------------------------------
    const layers = layerTable("Layer gradient health", "layer");
    const adapters = layerTable("LoRA adapters", "adapted module");
    cleanups.push(layers.dispose, adapters.dispose);
    cleanups.push(bind(model, ["layer_summary", "layers"], () => layers.update(model.get("layer_summary") || {}, model.get("layers") || [])));
    cleanups.push(bind(model, ["lora_summary", "lora"], () => adapters.update(model.get("lora_summary") || {}, model.get("lora") || [])));

    // ---- loss statistics, throughput details ------------------------------------------------
    const statsCard = card("Loss statistics");
    const statsList = h("div", { cls: "acc-kvs" });
    statsCard.body.append(statsList);
    cleanups.push(
      bind(model, ["streaming", "throughput"], () => {
        const s = model.get("streaming") || {};
        const t = model.get("throughput") || {};
        /** @type {Array<[string, string, string?, string?]>} */
        const items = [];
        const trendText = (/** @type {string} */ tr, /** @type {Record<string, string>} */ arrows) =>
          tr && tr !== "insufficient_data" ? `${arrows[tr] ?? ""} ${tr}` : "–";
        if ("streaming_ce" in s) items.push(["smoothed loss", sig(s.streaming_ce), "", "debiased EMA of the loss"]);
        if ("loss_variance" in s) items.push(["loss variance", sig(s.loss_variance)]);
        if ("streaming_ce" in s) items.push(["loss trend", trendText(s.loss_trend, LOSS_ARROW), `acc-trend-${s.loss_trend}`]);
        if ("token_entropy" in s) items.push(["token entropy", sig(s.token_entropy), "", "mean entropy of the predicted distribution (nats)"]);
        if ("accuracy_last_20" in s) items.push(["accuracy, last 20", pct(s.accuracy_last_20)]);
        if ("accuracy_last_50" in s) items.push(["accuracy, last 50", pct(s.accuracy_last_50)]);
        if ("accuracy_last_20" in s) items.push(["accuracy trend", trendText(s.accuracy_trend, TREND_ARROW), `acc-trend-${s.accuracy_trend === "improving" ? "improving" : s.accuracy_trend === "degrading" ? "degrading" : "stable"}`]);
        if ("calibration_error" in s) items.push(["calibration error (ECE)", sig(s.calibration_error), num(s.calibration_error) > 0.3 ? "loss-warning" : ""]);
        if (Object.keys(t).length) {
          // the headline rate is in the Throughput tile; here the others
          items.push(["steps/s", rate(t.steps_per_sec)]);
          if (t.unit === "tokens/s" && t.samples_per_sec != null) items.push(["samples/s", rate(t.samples_per_sec), "", `average ${rate(t.samples_per_sec_avg)}`]);
        }
        fillStats(statsList, items);
        statsCard.node.hidden = items.length === 0;
      }),
    );

    // ---- fixed evaluation + accuracy per slice pair -------------------------------------------
    const evalCard = card("Fixed evaluation");
    const evalList = h("div", { cls: "acc-kvs" });
    const gridTitle = h("div", { cls: "acc-subhead" });
    const grid = h("table", { cls: "acc-pattern", attrs: { "aria-label": "accuracy per slice pair" } });
    evalCard.body.append(evalList, gridTitle, grid);
    cleanups.push(
      bind(model, ["fixed_eval", "pattern"], () => {
        const e = model.get("fixed_eval") || {};
        evalCard.node.hidden = Object.keys(e).length === 0;
        const arrows = TREND_ARROW;
        fillStats(evalList, [
          ["at step", fmtInt(e.step)],
          ["examples", fmtInt(e.n)],
          ["loss", sig(e.loss)],
          ["accuracy", pct(e.accuracy)],
          ["ECE", sig(e.ece), num(e.ece) > 0.3 ? "loss-warning" : ""],
          ["trend", e.trend && e.trend !== "insufficient_data" ? `${arrows[e.trend] ?? ""} ${e.trend}` : "–"],
        ]);
        const p = model.get("pattern") || {};
        grid.hidden = gridTitle.hidden = !p.rows;
        if (!p.rows) return grid.replaceChildren();
        gridTitle.textContent = `accuracy (%) by ${p.row_name} × ${p.col_name}`;
        /** @type {string[]} */
        const cols = p.cols;
        grid.replaceChildren(
          h("thead", {}, [h("tr", {}, [h("th", { text: "" }), ...cols.map((c) => h("th", { text: c, attrs: { scope: "col" } }))])]),
          h(
            "tbody",
            {},
            p.rows.map((/** @type {string} */ r, /** @type {number} */ i) =>
              h("tr", {}, [
                h("th", { text: r, attrs: { scope: "row" } }),
                ...cols.map((c, j) => {
                  const v = num(p.accuracy?.[i]?.[j]);
                  const n = p.count?.[i]?.[j] ?? 0;
                  const cell = h("td", { cls: "acc-num", text: Number.isFinite(v) ? (100 * v).toFixed(0) : "", title: `${p.row_name} ${r}, ${p.col_name} ${c}: ${Number.isFinite(v) ? pct(v) : "no examples"} (${n} examples)` });
                  if (Number.isFinite(v)) cell.style.setProperty("--acc-cell", `${(100 * Math.max(0, Math.min(1, v))).toFixed(0)}%`);
                  else cell.classList.add("acc-cell-empty");
                  return cell;
                }),
              ]),
            ),
          ),
        );
      }),
    );

    // ---- disabled monitors ------------------------------------------------------------------------
    const faults = h("ul", { cls: "acc-mon-faults", attrs: { role: "note", "aria-label": "disabled monitors" } });
    cleanups.push(
      bind(model, ["monitor_errors"], () => {
        /** @type {Array<Record<string, any>>} */
        const rows = model.get("monitor_errors") || [];
        faults.hidden = rows.length === 0;
        faults.replaceChildren(
          ...rows.map((r) =>
            h("li", { cls: "acc-mon-fault", data: { monitor: String(r.monitor) } }, [
              h("strong", { text: `Monitor "${r.monitor}" was disabled` }),
              h("span", { text: ` at step ${fmtInt(r.step)} (training went on): ` }),
              h("span", { cls: "acc-num", text: String(r.error) }),
            ]),
          ),
        );
      }),
    );

    // ---- layout ------------------------------------------------------------------------------------
    const errors = errorBox(model);
    cleanups.push(errors.dispose);
    const root = h("div", { cls: "acc-root acc-mon" }, [
      header,
      strip,
      faults,
      h("div", { cls: "acc-mon-grid" }, [
        h("div", { cls: "acc-col" }, [alertsCard.node]),
        h("div", { cls: "acc-col" }, [statsCard.node, evalCard.node]),
        h("div", { cls: "acc-col acc-wide" }, [layers.node, adapters.node]),
      ]),
      errors.node,
    ]);
    el.append(root);

    return () => {
      for (const fn of cleanups) fn();
      root.remove();
    };
  },
};
