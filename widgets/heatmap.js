// @ts-check
/**
 * HeatmapWidget (acc/widgets/heatmap.py): an N x M float32 matrix drawn on a canvas, one pixel per cell,
 * scaled to the view; colour scale from the `color_stops` trait; hover shows (row, col, value); stats below.
 *
 * Traits only from the kernel; the browser sends {kind: "select_source", source}, {kind: "order_by", metric},
 * {kind: "refresh"}. DOM contract: [data-acc-field=hover] holds the hovered cell's text, with data-row,
 * data-col and data-value; the canvas carries data-draw-ms (time of the last draw) and data-drawn (draws so far).
 */
import { bind, errorBox, f32, fmtInt, fmtNum, h } from "./_shared.js";

/** @typedef {import("./_shared.js").AnyModel} AnyModel */

const VIEW_PX = 520; // the larger side of the matrix on screen, in CSS pixels (small matrices: whole cells)
const MAX_CELL_PX = 24;
const TICKS_MAX = 40; // label every row/col up to this size
const LUT_SIZE = 1024;
const NAN_RGB = [150, 150, 150];

/**
 * A CSS colour as [r, g, b] (the canvas normalises any CSS colour string).
 * @param {CanvasRenderingContext2D} ctx
 * @param {string} colour
 * @returns {number[]}
 */
function rgb(ctx, colour) {
  ctx.fillStyle = "#000";
  ctx.fillStyle = colour;
  const s = String(ctx.fillStyle);
  if (s.startsWith("#")) return [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));
  const m = s.match(/[\d.]+/g) || ["0", "0", "0"];
  return m.slice(0, 3).map(Number);
}

/**
 * The colour scale: value -> packed RGBA (little-endian ABGR) through a lookup table.
 * @param {Array<[number, string]>} stops
 */
function colourScale(stops) {
  const probe = document.createElement("canvas").getContext("2d");
  const points = stops.map(([v, c]) => ({ v: Number(v), c: probe ? rgb(probe, c) : [0, 0, 0] }));
  const lo = points[0].v;
  const hi = points[points.length - 1].v;
  const span = hi - lo || 1;
  const lut = new Uint32Array(LUT_SIZE);
  /** @type {string[]} */
  const css = [];
  let k = 0;
  for (let i = 0; i < LUT_SIZE; i++) {
    const v = lo + (i / (LUT_SIZE - 1)) * span;
    while (k < points.length - 2 && v > points[k + 1].v) k++;
    const a = points[k];
    const b = points[k + 1];
    const t = Math.max(0, Math.min(1, (v - a.v) / (b.v - a.v || 1)));
    const c = [0, 1, 2].map((j) => Math.round(a.c[j] + t * (b.c[j] - a.c[j])));
    lut[i] = (255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0];
  }
  for (const p of points) css.push(`rgb(${p.c.join(",")})`);
  const nan = (255 << 24) | (NAN_RGB[2] << 16) | (NAN_RGB[1] << 8) | NAN_RGB[0];
  return { lut, lo, hi, span, nan, css, points };
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

    // ---- header ---------------------------------------------------------------------------------
    const title = h("span", { cls: "acc-hm-title" });
    const stepText = h("span", { cls: "acc-dim acc-num" });
    const sourceSelect = h("select", { cls: "acc-hm-select", attrs: { "aria-label": "source" } });
    const orderSelect = h("select", { cls: "acc-hm-select", attrs: { "aria-label": "sort by" } });
    const refresh = h("button", { text: "Refresh", attrs: { type: "button" } });
    const sourceLabel = h("label", { cls: "acc-hm-field" }, [h("span", { cls: "acc-dim", text: "source" }), sourceSelect]);
    const orderLabel = h("label", { cls: "acc-hm-field" }, [h("span", { cls: "acc-dim", text: "sort by" }), orderSelect]);
    const head = h("div", { cls: "acc-hm-head" }, [h("div", { cls: "acc-hm-titles" }, [title, stepText]), h("div", { cls: "acc-hm-tools" }, [sourceLabel, orderLabel, refresh])]);
    listen(sourceSelect, "change", () => model.send({ kind: "select_source", source: sourceSelect.value }));
    listen(orderSelect, "change", () => model.send({ kind: "order_by", metric: orderSelect.value }));
    listen(refresh, "click", () => model.send({ kind: "refresh" }));

    // ---- the matrix -----------------------------------------------------------------------------
    const canvas = h("canvas", { cls: "acc-hm-canvas", attrs: { role: "img" } });
    const overlay = h("canvas", { cls: "acc-hm-overlay", attrs: { "aria-hidden": "true" } });
    const rowTicks = h("div", { cls: "acc-hm-ticks acc-hm-rowticks", attrs: { "aria-hidden": "true" } });
    const colTicks = h("div", { cls: "acc-hm-ticks acc-hm-colticks", attrs: { "aria-hidden": "true" } });
    const tooltip = h("div", { cls: "acc-hm-tooltip acc-num", attrs: { "aria-hidden": "true" } });
    const plot = h("div", { cls: "acc-hm-plot" }, [canvas, overlay, tooltip]);
    const area = h("div", { cls: "acc-hm-area" }, [h("div", { cls: "acc-hm-corner" }), colTicks, rowTicks, plot]);
    const hover = h("div", { cls: "acc-hm-hover acc-num", data: { accField: "hover" }, attrs: { "aria-live": "polite" } });
    const bar = h("canvas", { cls: "acc-hm-bar", attrs: { "aria-hidden": "true" } });
    const barLabels = h("div", { cls: "acc-hm-bar-labels acc-num" });
    const legend = h("div", { cls: "acc-hm-legend" }, [bar, barLabels]);
    const stats = h("div", { cls: "acc-hm-stats acc-num" });
    const note = h("div", { cls: "acc-hm-note" });
    const ctx = canvas.getContext("2d");
    const octx = overlay.getContext("2d");

    /** What is drawn: the data and the geometry of the view. */
    let values = new Float32Array(0);
    let rows = 0;
    let cols = 0;
    let cell = 1;
    let drawn = 0;
    /** @type {number[]} */
    let rowIds = [];
    /** @type {number[]} */
    let colIds = [];
    let hovered = /** @type {[number, number] | null} */ (null);

    const drawMatrix = () => {
      const t0 = performance.now();
      const shape = model.get("shape") || [0, 0];
      values = f32(model.get("matrix"));
      rows = shape[0] | 0;
      cols = shape[1] | 0;
      rowIds = model.get("row_ids") || [];
      colIds = model.get("col_ids") || [];
      const ok = rows > 0 && cols > 0 && values.length === rows * cols && ctx;
      plot.hidden = !ok;
      rowTicks.hidden = colTicks.hidden = !ok;
      if (!ok || !ctx) return;
      const scale = colourScale(model.get("color_stops") || []);
      canvas.width = cols;
      canvas.height = rows;
      const image = ctx.createImageData(cols, rows);
      const px = new Uint32Array(image.data.buffer);
      const { lut, lo, span, nan } = scale;
      const k = (LUT_SIZE - 1) / span;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v !== v || v === Infinity || v === -Infinity) {
          px[i] = nan;
          continue;
        }
        let j = ((v - lo) * k + 0.5) | 0;
        if (j < 0) j = 0;
        else if (j >= LUT_SIZE) j = LUT_SIZE - 1;
        px[i] = lut[j];
      }
      ctx.putImageData(image, 0, 0);
      const big = Math.max(rows, cols);
      cell = big <= VIEW_PX ? Math.max(1, Math.min(MAX_CELL_PX, Math.floor(VIEW_PX / big))) : VIEW_PX / big;
      const width = cols * cell;
      const height = rows * cell;
      for (const c of [canvas, overlay]) {
        c.style.width = `${width}px`;
        c.style.height = `${height}px`;
      }
      plot.style.width = `${width}px`;
      plot.style.height = `${height}px`;
      canvas.style.imageRendering = cell >= 1 ? "pixelated" : "auto";
      const ratio = window.devicePixelRatio || 1;
      overlay.width = Math.round(width * ratio);
      overlay.height = Math.round(height * ratio);
      canvas.setAttribute("aria-label", `${rows} by ${cols} heatmap`);
      // tick labels: every row/col when small, else none (the hover says where you are)
      const ticks = (/** @type {number[]} */ ids, /** @type {number} */ n) =>
        n <= TICKS_MAX
          ? ids.slice(0, n).map((id, i) => {
              const t = h("span", { text: String(id) });
              t.style.setProperty("--i", String(i));
              return t;
            })
          : [];
      rowTicks.replaceChildren(...ticks(rowIds, rows));
      colTicks.replaceChildren(...ticks(colIds, cols));
      area.style.setProperty("--cell", `${cell}px`);
      area.classList.toggle("acc-hm-noticks", rows > TICKS_MAX && cols > TICKS_MAX);
      drawLegend(scale);
      hovered = null;
      drawOverlay();
      drawn += 1;
      canvas.dataset.drawMs = (performance.now() - t0).toFixed(2);
      canvas.dataset.drawn = String(drawn);
    };

    /** @param {ReturnType<typeof colourScale>} scale */
    const drawLegend = (scale) => {
      const ratio = window.devicePixelRatio || 1;
      const w = 220;
      const hgt = 10;
      bar.width = w * ratio;
      bar.height = hgt * ratio;
      bar.style.width = `${w}px`;
      bar.style.height = `${hgt}px`;
      const b = bar.getContext("2d");
      if (!b) return;
      const grad = b.createLinearGradient(0, 0, bar.width, 0);
      for (let i = 0; i < scale.points.length; i++) grad.addColorStop((scale.points[i].v - scale.lo) / scale.span, scale.css[i]);
      b.fillStyle = grad;
      b.fillRect(0, 0, bar.width, bar.height);
      barLabels.replaceChildren(
        ...scale.points.map((p) => {
          const t = h("span", { text: fmtNum(p.v).replace(/\.?0+$/, "") || "0" });
          t.style.left = `${((p.v - scale.lo) / scale.span) * w}px`;
          return t;
        }),
      );
      barLabels.style.width = `${w}px`;
    };

    const drawOverlay = () => {
      if (!octx) return;
      const ratio = window.devicePixelRatio || 1;
      octx.setTransform(ratio, 0, 0, ratio, 0, 0);
      octx.clearRect(0, 0, overlay.width, overlay.height);
      if (!hovered) return;
      const [r, c] = hovered;
      const width = cols * cell;
      const height = rows * cell;
      const size = Math.max(cell, 3);
      octx.fillStyle = "rgba(0, 0, 0, 0.08)";
      octx.fillRect(0, r * cell, width, cell);
      octx.fillRect(c * cell, 0, cell, height);
      octx.lineWidth = 1.5;
      octx.strokeStyle = "#000";
      octx.strokeRect(c * cell + cell / 2 - size / 2 - 0.75, r * cell + cell / 2 - size / 2 - 0.75, size + 1.5, size + 1.5);
      octx.strokeStyle = "#fff";
      octx.lineWidth = 0.75;
      octx.strokeRect(c * cell + cell / 2 - size / 2 - 0.75, r * cell + cell / 2 - size / 2 - 0.75, size + 1.5, size + 1.5);
    };

    /** @param {number} r @param {number} c */
    const cellText = (r, c) => {
      const v = values[r * cols + c];
      const rl = String(model.get("row_label") || "row");
      const cl = String(model.get("col_label") || "col");
      const rid = rowIds[r] ?? r;
      const cid = colIds[c] ?? c;
      const moved = rid !== r || cid !== c;
      return { v, text: `${rl} ${rid} × ${cl} ${cid} = ${fmtNum(v)}${moved ? `   (row ${r}, col ${c})` : ""}` };
    };

    /** @param {MouseEvent} e */
    const onMove = (e) => {
      const rect = overlay.getBoundingClientRect();
      if (!rows || !cols || rect.width === 0) return;
      const c = Math.min(cols - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * cols)));
      const r = Math.min(rows - 1, Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * rows)));
      tooltip.style.left = `${e.clientX - rect.left + 14}px`;
      tooltip.style.top = `${e.clientY - rect.top + 14}px`;
      if (!hovered || hovered[0] !== r || hovered[1] !== c) {
        hovered = [r, c];
        const { v, text } = cellText(r, c);
        hover.textContent = text;
        hover.dataset.row = String(rowIds[r] ?? r);
        hover.dataset.col = String(colIds[c] ?? c);
        hover.dataset.value = String(v);
        tooltip.textContent = text;
        drawOverlay();
      }
      tooltip.hidden = false;
      // latency of this hover: from the input event to handled, and to the next frame (benchmarks read these)
      const handled = performance.now();
      hover.dataset.handledMs = (handled - e.timeStamp).toFixed(2);
      requestAnimationFrame(() => {
        hover.dataset.frameMs = (performance.now() - e.timeStamp).toFixed(2);
      });
    };
    const onLeave = () => {
      hovered = null;
      tooltip.hidden = true;
      drawOverlay();
    };
    listen(overlay, "mousemove", onMove);
    listen(overlay, "mouseleave", onLeave);
    tooltip.hidden = true;

    cleanups.push(bind(model, ["matrix", "shape", "row_ids", "col_ids", "color_stops"], drawMatrix));
    cleanups.push(
      bind(model, ["title", "step", "stats", "note", "bound", "sources", "source_name", "order_by", "order_options"], () => {
        title.textContent = String(model.get("title") || "heatmap");
        const step = model.get("step");
        stepText.textContent = step != null ? `step ${fmtInt(step)}` : "";
        const s = model.get("stats") || {};
        const where = s.off_diagonal ? "off the diagonal" : "all entries";
        const shape = model.get("shape") || [0, 0];
        stats.textContent =
          s.n != null
            ? `${shape[0]} × ${shape[1]} · mean ${fmtNum(s.mean)} · std ${fmtNum(s.std)} · min ${fmtNum(s.min)} · max ${fmtNum(s.max)} (${where})${s.n_nonfinite ? ` · ${fmtInt(s.n_nonfinite)} non-finite` : ""}`
            : "";
        const text = String(model.get("note") || "");
        note.textContent = text;
        note.hidden = !text;
        const bound = !!model.get("bound");
        sourceLabel.hidden = !bound;
        /** @type {string[]} */
        const sources = model.get("sources") || [];
        const picked = String(model.get("source_name") || "");
        const srcs = sources.includes(picked) || !picked ? sources : [picked, ...sources];
        sourceSelect.replaceChildren(
          ...srcs.map((s) => {
            const o = h("option", { text: s, attrs: { value: s } });
            o.selected = s === picked;
            return o;
          }),
        );
        /** @type {string[]} */
        const options = model.get("order_options") || [];
        const order = String(model.get("order_by") || "");
        orderSelect.replaceChildren(
          ...["", ...options].map((m) => {
            const o = h("option", { text: m || "none (feature order)", attrs: { value: m } });
            o.selected = m === order;
            return o;
          }),
        );
        orderLabel.hidden = options.length === 0;
      }),
    );

    const errors = errorBox(model);
    cleanups.push(errors.dispose);
    hover.textContent = "hover over the matrix to read a cell";
    const root = h("div", { cls: "acc-root acc-hm" }, [head, note, area, hover, h("div", { cls: "acc-hm-foot" }, [legend, stats]), errors.node]);
    el.append(root);
    return () => {
      for (const fn of cleanups) fn();
      root.remove();
    };
  },
};
