// @ts-check
/**
 * TrajectoryWidget (acc/widgets/trajectory.py): one line per watched feature over the steps, a metric toggle,
 * the watched features' pairwise cosine at the current step, and a step-range zoom (drag across the plot).
 *
 * Traits only from the kernel; the browser sends {kind: "watch", features}, {kind: "unwatch", feature},
 * {kind: "set_metric", metric}, {kind: "zoom", start, end}, {kind: "clear"}, {kind: "refresh"}.
 */
import { bind, errorBox, f32, fmtInt, fmtNum, h } from "./_shared.js";

/** @typedef {import("./_shared.js").AnyModel} AnyModel */

// Tableau 10: distinct on light and dark backgrounds.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const PAD = { left: 52, right: 12, top: 10, bottom: 26 };
const HEIGHT = 240;

/** @param {number} i */
const colour = (i) => PALETTE[i % PALETTE.length];

/**
 * "Nice" tick values covering [lo, hi].
 * @param {number} lo
 * @param {number} hi
 * @param {number} count
 */
function ticks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** @param {number} v */
const tickText = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

/**
 * Cosine as a colour: blue (-1) – white (0) – red (1).
 * @param {number} v
 */
function coolwarm(v) {
  if (!Number.isFinite(v)) return "rgb(150,150,150)";
  const t = Math.max(-1, Math.min(1, v));
  const white = [247, 247, 247];
  const end = t < 0 ? [33, 102, 172] : [178, 24, 43];
  const a = Math.abs(t);
  const c = white.map((w, i) => Math.round(w + a * (end[i] - w)));
  return `rgb(${c.join(",")})`;
}

export default {
  /** @param {{model: AnyModel, el: HTMLElement}} ctx */
  render({ model, el }) {
    const cleanups = /** @type {Array<() => void>} */ ([]);
    /**
     * @param {EventTarget} target
     * @param {string} type
     * @param {(event: any) => void} fn
     */
    const listen = (target, type, fn) => {
      target.addEventListener(type, fn);
      cleanups.push(() => target.removeEventListener(type, fn));
    };

    // ---- header: metric toggle, watch input, zoom reset -----------------------------------------
    const stepText = h("span", { cls: "acc-dim acc-num" });
    const metricGroup = h("div", { cls: "acc-tr-metrics", attrs: { role: "group", "aria-label": "metric" } });
    const idsInput = h("input", { cls: "acc-tr-ids acc-num", attrs: { type: "text", placeholder: "e.g. 3, 17, 21", "aria-label": "feature ids" } });
    const watchBtn = h("button", { text: "Watch", attrs: { type: "button" } });
    const resetBtn = h("button", { text: "Reset zoom", attrs: { type: "button" } });
    const clearBtn = h("button", { text: "Clear", attrs: { type: "button", title: "forget every trajectory of this job (watches stay)" } });
    const head = h("div", { cls: "acc-tr-head" }, [
      h("div", { cls: "acc-tr-titles" }, [h("span", { cls: "acc-tr-title", text: "Watched features" }), stepText]),
      metricGroup,
      h("div", { cls: "acc-tr-tools" }, [idsInput, watchBtn, resetBtn, clearBtn]),
    ]);
    const watchIds = () => {
      const parts = idsInput.value.split(/[\s,;]+/).filter(Boolean);
      const ids = parts.map(Number);
      if (!ids.length || ids.some((n) => !Number.isInteger(n) || n < 0)) {
        idsInput.setCustomValidity("feature ids: whole numbers >= 0, separated by commas or spaces");
        idsInput.reportValidity();
        return;
      }
      idsInput.setCustomValidity("");
      model.send({ kind: "watch", features: ids });
      idsInput.value = "";
    };
    listen(watchBtn, "click", watchIds);
    listen(idsInput, "keydown", (/** @type {KeyboardEvent} */ e) => {
      if (e.key === "Enter") watchIds();
    });
    listen(resetBtn, "click", () => model.send({ kind: "zoom", start: null, end: null }));
    listen(clearBtn, "click", () => model.send({ kind: "clear" }));
    listen(metricGroup, "click", (/** @type {MouseEvent} */ e) => {
      const btn = /** @type {HTMLElement | null} */ (e.target)?.closest("button[data-metric]");
      if (btn instanceof HTMLElement) model.send({ kind: "set_metric", metric: btn.dataset.metric });
    });

    // ---- legend ------------------------------------------------------------------------------------
    const legend = h("div", { cls: "acc-tr-legend" });
    listen(legend, "click", (/** @type {MouseEvent} */ e) => {
      const btn = /** @type {HTMLElement | null} */ (e.target)?.closest("button[data-unwatch]");
      if (btn instanceof HTMLElement) model.send({ kind: "unwatch", feature: Number(btn.dataset.unwatch) });
    });

    // ---- the plot --------------------------------------------------------------------------------------
    const canvas = h("canvas", { cls: "acc-tr-canvas", attrs: { role: "img", "aria-label": "trajectories of the watched features" } });
    const brush = h("div", { cls: "acc-tr-brush", attrs: { "aria-hidden": "true" } });
    const readout = h("div", { cls: "acc-tr-readout acc-num", attrs: { "aria-live": "polite" } });
    const plot = h("div", { cls: "acc-tr-plot" }, [canvas, brush]);
    const empty = h("div", { cls: "acc-tr-empty" });

    // ---- pairwise similarity ----------------------------------------------------------------------------
    const pairCanvas = h("canvas", { cls: "acc-tr-pair", attrs: { role: "img" } });
    const pairTitle = h("div", { cls: "acc-dim acc-tr-pair-title" });
    const pairBox = h("div", { cls: "acc-tr-pairbox" }, [pairTitle, pairCanvas]);

    /** @type {{id: number, steps: Float32Array, values: Float32Array, bad: Float32Array, colour: string}[]} */
    let lines = [];
    let view = { x0: 0, x1: 1, y0: 0, y1: 1, width: 600 };
    let hoverX = /** @type {number | null} */ (null);

    /** Every feature with a line or a watch, ascending: a feature keeps its colour as points arrive. */
    const legendIds = () => {
      /** @type {number[]} */
      const features = model.get("features") || [];
      /** @type {number[]} */
      const watched = model.get("watched") || [];
      return [...new Set([...features, ...watched])].sort((a, b) => a - b);
    };

    const gather = () => {
      /** @type {number[]} */
      const features = model.get("features") || [];
      const series = model.get("series") || {};
      const ids = legendIds();
      lines = features.map((id) => {
        const s = series[String(id)] || {};
        return { id, steps: f32(s.steps), values: f32(s.values), bad: f32(s.nonfinite), colour: colour(ids.indexOf(id)) };
      });
      let x0 = Infinity;
      let x1 = -Infinity;
      let y0 = Infinity;
      let y1 = -Infinity;
      for (const l of lines) {
        for (let i = 0; i < l.steps.length; i++) {
          x0 = Math.min(x0, l.steps[i]);
          x1 = Math.max(x1, l.steps[i]);
          const v = l.values[i];
          if (Number.isFinite(v)) {
            y0 = Math.min(y0, v);
            y1 = Math.max(y1, v);
          }
        }
        for (const s of l.bad) {
          x0 = Math.min(x0, s);
          x1 = Math.max(x1, s);
        }
      }
      const range = model.get("step_range") || [];
      if (range.length === 2) {
        if (range[0] != null) x0 = range[0];
        if (range[1] != null) x1 = range[1];
      }
      if (!(x1 > x0)) {
        x0 = Number.isFinite(x0) ? x0 - 1 : 0;
        x1 = Number.isFinite(x1) ? x1 + 1 : 1;
      }
      if (!(y1 > y0)) {
        const c = Number.isFinite(y0) ? y0 : 0;
        y0 = c - 0.5;
        y1 = c + 0.5;
      } else {
        const m = (y1 - y0) * 0.06;
        y0 -= m;
        y1 += m;
      }
      view = { ...view, x0, x1, y0, y1 };
    };

    const draw = () => {
      const ratio = window.devicePixelRatio || 1;
      const width = Math.max(320, plot.clientWidth || 600);
      view.width = width;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(HEIGHT * ratio);
      canvas.style.height = `${HEIGHT}px`;
      const ctx = canvas.getContext("2d");
      if (!ctx) return;
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, HEIGHT);
      const style = getComputedStyle(canvas);
      const fg = style.getPropertyValue("--acc-fg-dim").trim() || "#777";
      const grid = style.getPropertyValue("--acc-border").trim() || "#ddd";
      const bad = style.getPropertyValue("--acc-critical").trim() || "#d32f2f";
      const { x0, x1, y0, y1 } = view;
      const pw = width - PAD.left - PAD.right;
      const ph = HEIGHT - PAD.top - PAD.bottom;
      const X = (/** @type {number} */ s) => PAD.left + ((s - x0) / (x1 - x0)) * pw;
      const Y = (/** @type {number} */ v) => PAD.top + (1 - (v - y0) / (y1 - y0)) * ph;
      ctx.font = "10px var(--jp-code-font-family, monospace)";
      ctx.fillStyle = fg;
      ctx.strokeStyle = grid;
      ctx.lineWidth = 1;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const v of ticks(y0, y1, 5)) {
        const y = Math.round(Y(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(PAD.left, y);
        ctx.lineTo(width - PAD.right, y);
        ctx.stroke();
        ctx.fillText(tickText(v), PAD.left - 5, y);
      }
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const s of ticks(x0, x1, Math.max(2, Math.floor(pw / 80)))) {
        if (!Number.isInteger(s)) continue;
        const x = Math.round(X(s)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(x, HEIGHT - PAD.bottom);
        ctx.lineTo(x, HEIGHT - PAD.bottom + 4);
        ctx.stroke();
        ctx.textAlign = x > width - PAD.right - 20 ? "right" : x < PAD.left + 20 ? "left" : "center"; // keep edge labels inside
        ctx.fillText(fmtInt(s), x, HEIGHT - PAD.bottom + 6);
      }
      ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, pw, ph);
      ctx.save();
      ctx.beginPath();
      ctx.rect(PAD.left, PAD.top, pw, ph);
      ctx.clip();
      ctx.lineWidth = 1.6;
      ctx.lineJoin = "round";
      for (const l of lines) {
        ctx.strokeStyle = l.colour;
        ctx.beginPath();
        for (let i = 0; i < l.steps.length; i++) {
          const x = X(l.steps[i]);
          const y = Y(l.values[i]);
          if (i === 0) ctx.moveTo(x, y);
          else ctx.lineTo(x, y);
        }
        ctx.stroke();
        if (l.steps.length === 1) {
          ctx.fillStyle = l.colour;
          ctx.beginPath();
          ctx.arc(X(l.steps[0]), Y(l.values[0]), 2.5, 0, 2 * Math.PI);
          ctx.fill();
        }
        ctx.fillStyle = bad;
        for (const s of l.bad) ctx.fillRect(X(s) - 1, PAD.top, 2, 6);
      }
      if (hoverX !== null) {
        ctx.strokeStyle = fg;
        ctx.lineWidth = 1;
        ctx.setLineDash([3, 3]);
        ctx.beginPath();
        ctx.moveTo(X(hoverX) + 0.5, PAD.top);
        ctx.lineTo(X(hoverX) + 0.5, HEIGHT - PAD.bottom);
        ctx.stroke();
        ctx.setLineDash([]);
      }
      ctx.restore();
    };

    /** @param {number} clientX */
    const stepAt = (clientX) => {
      const rect = canvas.getBoundingClientRect();
      const pw = rect.width - PAD.left - PAD.right;
      return view.x0 + ((clientX - rect.left - PAD.left) / pw) * (view.x1 - view.x0);
    };

    /** Nearest point of a line at step s (binary search). @param {Float32Array} steps @param {number} s */
    const nearest = (steps, s) => {
      let lo = 0;
      let hi = steps.length - 1;
      if (hi < 0) return -1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (steps[mid] < s) lo = mid;
        else hi = mid;
      }
      return Math.abs(steps[lo] - s) <= Math.abs(steps[hi] - s) ? lo : hi;
    };

    // Drag across the plot: zoom to that step range (one message at mouseup).
    let dragFrom = /** @type {number | null} */ (null);
    listen(canvas, "mousedown", (/** @type {MouseEvent} */ e) => {
      dragFrom = e.clientX;
      brush.hidden = false;
      brush.style.left = `${e.clientX - canvas.getBoundingClientRect().left}px`;
      brush.style.width = "0px";
    });
    listen(window, "mouseup", (/** @type {MouseEvent} */ e) => {
      if (dragFrom === null) return;
      const from = dragFrom;
      dragFrom = null;
      brush.hidden = true;
      if (Math.abs(e.clientX - from) < 4) return; // a click, not a drag
      const clamp = (/** @type {number} */ s) => Math.max(view.x0, Math.min(view.x1, s));
      const a = clamp(stepAt(from));
      const b = clamp(stepAt(e.clientX));
      if (Math.abs(b - a) < 1) return;
      model.send({ kind: "zoom", start: Math.min(a, b), end: Math.max(a, b) });
    });
    listen(canvas, "mousemove", (/** @type {MouseEvent} */ e) => {
      const rect = canvas.getBoundingClientRect();
      if (dragFrom !== null) {
        const left = Math.min(dragFrom, e.clientX) - rect.left;
        brush.style.left = `${left}px`;
        brush.style.width = `${Math.abs(e.clientX - dragFrom)}px`;
      }
      const s = stepAt(e.clientX);
      if (!(s >= view.x0 && s <= view.x1) || lines.length === 0) return;
      const parts = [];
      let at = s;
      for (const l of lines) {
        const i = nearest(l.steps, s);
        if (i < 0) continue;
        at = l.steps[i];
        parts.push(`${l.id}: ${fmtNum(l.values[i])}`);
      }
      hoverX = at;
      readout.textContent = `step ${fmtInt(at)} · ${model.get("metric")} · ${parts.join(" · ")}`;
      draw();
    });
    listen(canvas, "mouseleave", () => {
      hoverX = null;
      draw();
    });
    brush.hidden = true;

    const drawPairwise = () => {
      const pair = model.get("pairwise") || {};
      /** @type {number[]} */
      const ids = pair.ids || [];
      const m = f32(pair.matrix);
      const k = ids.length;
      pairBox.hidden = k === 0 || m.length !== k * k;
      if (pairBox.hidden) return;
      pairTitle.textContent = `cosine between watched rows · step ${fmtInt(pair.step)}`;
      const cell = k <= 6 ? 34 : k <= 10 ? 24 : 16;
      const margin = 26;
      const size = margin + k * cell;
      const ratio = window.devicePixelRatio || 1;
      pairCanvas.width = Math.round(size * ratio);
      pairCanvas.height = Math.round(size * ratio);
      pairCanvas.style.width = `${size}px`;
      pairCanvas.style.height = `${size}px`;
      pairCanvas.setAttribute("aria-label", `pairwise cosine of features ${ids.join(", ")}`);
      const ctx = pairCanvas.getContext("2d");
      if (!ctx) return;
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, size, size);
      const fg = getComputedStyle(pairCanvas).getPropertyValue("--acc-fg-dim").trim() || "#777";
      ctx.font = "10px var(--jp-code-font-family, monospace)";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      const all = legendIds();
      for (let i = 0; i < k; i++) {
        ctx.fillStyle = colour(Math.max(0, all.indexOf(ids[i])));
        ctx.fillText(String(ids[i]), margin + i * cell + cell / 2, margin / 2);
        ctx.fillText(String(ids[i]), margin / 2, margin + i * cell + cell / 2);
        for (let j = 0; j < k; j++) {
          const v = m[i * k + j];
          ctx.fillStyle = coolwarm(v);
          ctx.fillRect(margin + j * cell, margin + i * cell, cell - 1, cell - 1);
          if (cell >= 24) {
            ctx.fillStyle = Math.abs(v) > 0.6 ? "#fff" : "#222";
            ctx.fillText(v.toFixed(2).replace(/^(-?)0\./, "$1."), margin + j * cell + cell / 2, margin + i * cell + cell / 2);
          }
        }
      }
      ctx.fillStyle = fg;
    };

    const renderAll = () => {
      const step = model.get("step");
      stepText.textContent = step != null ? `step ${fmtInt(step)}` : "";
      /** @type {string[]} */
      const metrics = model.get("metrics") || [];
      const metric = String(model.get("metric") || "cosine");
      metricGroup.replaceChildren(
        h("span", { cls: "acc-dim", text: "metric" }),
        ...metrics.map((m) => {
          const b = h("button", { cls: "acc-tr-metric", text: m === "cosine" ? "cos to init" : m, data: { metric: m }, attrs: { type: "button", "aria-pressed": String(m === metric) } });
          return b;
        }),
      );
      /** @type {number[]} */
      const features = model.get("features") || [];
      const watched = new Set(model.get("watched") || []);
      const series = model.get("series") || {};
      legend.replaceChildren(
        ...legendIds().map((id, i) => {
          const s = series[String(id)];
          const on = watched.has(id);
          const swatch = h("span", { cls: "acc-tr-swatch", attrs: { "aria-hidden": "true" } });
          swatch.style.background = colour(i);
          const title = s ? `${fmtInt(s.n ?? 0)} points in view${on ? "" : " · no longer watched"}` : "watched: points from the next step";
          return h("span", { cls: `acc-tr-chip${on ? "" : " acc-tr-removed"}`, title, data: { feature: String(id) } }, [
            swatch,
            h("span", { cls: "acc-num", text: `feature ${id}` }),
            s ? null : h("span", { cls: "acc-dim", text: "(no points yet)" }),
            on ? h("button", { cls: "acc-tr-x", text: "×", data: { unwatch: String(id) }, attrs: { type: "button", "aria-label": `unwatch ${id}` } }) : h("span", { cls: "acc-dim", text: "(removed)" }),
          ]);
        }),
      );
      const range = model.get("step_range") || [];
      resetBtn.disabled = range.length === 0;
      const fp = model.get("feature_param");
      if (fp == null) empty.textContent = "This controller has no feature_param: nothing to watch.";
      else if (features.length === 0 && watched.size === 0) empty.textContent = "No feature watched yet: type ids above, or click rows in the DebugPanel's feature table.";
      else if (features.length === 0) empty.textContent = "Points appear from the next step (step or resume the loop).";
      else empty.textContent = "";
      empty.hidden = !empty.textContent;
      plot.hidden = features.length === 0;
      gather();
      requestAnimationFrame(draw);
      drawPairwise();
    };
    cleanups.push(bind(model, ["features", "watched", "series", "metric", "metrics", "step_range", "step", "feature_param", "pairwise"], renderAll));
    const resize = new ResizeObserver(() => requestAnimationFrame(draw));
    resize.observe(plot);
    cleanups.push(() => resize.disconnect());

    const errors = errorBox(model);
    cleanups.push(errors.dispose);
    const root = h("div", { cls: "acc-root acc-tr" }, [
      head,
      legend,
      empty,
      h("div", { cls: "acc-tr-body" }, [h("div", { cls: "acc-tr-main" }, [plot, readout]), pairBox]),
      errors.node,
    ]);
    el.append(root);
    return () => {
      for (const fn of cleanups) fn();
      root.remove();
    };
  },
};
