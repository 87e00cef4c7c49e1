// @ts-check
/**
 * LossChartInfo (acc/widgets/loss_chart.py): legend, status line, hover read-out and errors of a LossChart.
 *
 * The chart itself is a bqplot Figure in the same ipywidgets box. bqplot's
 * tooltips cannot fire while its PanZoom layer covers the plot, so the
 * hover read-out lives here: on pointer moves over the figure it finds the
 * drawn point nearest to the mouse and shows its exact step and value. The
 * points come from the page, not the kernel: each bqplot line is a `.curve`
 * group whose d3 datum holds the drawn values ({name, values: [{x, y}]}),
 * and whose `.line` path holds the same points in pixels (one per value:
 * the kernel sends only drawable points, so every value is on the path).
 * NaN/Inf markers are the figure's `.dot` elements; their datum's `name`
 * says which series and which kind.
 *
 * Tests and benchmarks read `data-acc-view` / `data-acc-revision` (the drawn
 * step range and a redraw counter) and the `data-acc-hover` fields.
 */
import { h, bind, errorBox } from "./_shared.js";

/** @typedef {import("./_shared.js").AnyModel} AnyModel */
/** @typedef {{label: string, color: string, dashed?: boolean, marker?: boolean}} LegendEntry */
/**
 * A drawn point under the mouse; px/py in client pixels, plot the figure's box.
 * @typedef {{series: string, color: string, step: number, value: number | string, px: number, py: number, plot?: DOMRect}} Hit
 */

/** Pixels around the mouse in which the nearest drawn point is shown. */
const HOVER_RADIUS = 40;
/** NaN/Inf markers win over line points when the mouse is this close to them. */
const MARKER_RADIUS = 10;

const NUMBER = /-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?/gi;

/** @type {WeakMap<Element, {d: string, xy: Float64Array}>} */
const pathCache = new WeakMap();

/**
 * The points of a d3 linear path ("M x,y L x,y ...") as [x0, y0, x1, y1, ...].
 * @param {Element} path
 * @returns {Float64Array}
 */
function pathPoints(path) {
  const d = path.getAttribute("d") ?? "";
  const cached = pathCache.get(path);
  if (cached && cached.d === d) return cached.xy;
  const numbers = d.match(NUMBER) ?? [];
  const xy = new Float64Array(numbers.length);
  for (let i = 0; i < numbers.length; i++) xy[i] = Number(numbers[i]);
  pathCache.set(path, { d, xy });
  return xy;
}

/**
 * First index i with xy[2i] >= x (the path's x are ascending: steps are).
 * @param {Float64Array} xy
 * @param {number} x
 */
function lowerBound(xy, x) {
  let lo = 0;
  let hi = xy.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xy[2 * mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The drawn point nearest to the mouse, or null.
 * @param {Element} figure
 * @param {number} clientX
 * @param {number} clientY
 * @returns {Hit | null}
 */
function nearestPoint(figure, clientX, clientY) {
  /** @type {Hit | null} */
  let best = null;
  let bestD2 = MARKER_RADIUS * MARKER_RADIUS;
  for (const dot of figure.querySelectorAll(".dot")) {
    const datum = /** @type {any} */ (dot).__data__;
    if (!datum || typeof datum.name !== "string") continue;
    const r = dot.getBoundingClientRect();
    const px = r.x + r.width / 2;
    const py = r.y + r.height / 2;
    const d2 = (px - clientX) ** 2 + (py - clientY) ** 2;
    if (d2 <= bestD2) {
      bestD2 = d2;
      const [kind, ...series] = datum.name.split(" · ");
      best = { series: series.join(" · "), color: getComputedStyle(dot).fill, step: Number(datum.x), value: kind, px, py };
    }
  }
  if (best) return best; // a NaN/Inf marker under the mouse wins over line points
  bestD2 = HOVER_RADIUS * HOVER_RADIUS;
  for (const curve of figure.querySelectorAll(".curve")) {
    const datum = /** @type {any} */ (curve).__data__;
    const path = curve.querySelector(".line");
    if (!datum || !Array.isArray(datum.values) || !(path instanceof SVGGraphicsElement)) continue;
    if (curve.getAttribute("display") === "none") continue;
    const xy = pathPoints(path);
    if (xy.length !== 2 * datum.values.length) continue; // mid-redraw: the path is from the last frame
    const ctm = path.getScreenCTM();
    if (!ctm) continue;
    const local = new DOMPoint(clientX, clientY).matrixTransform(ctm.inverse());
    const scale = Math.hypot(ctm.a, ctm.b) || 1;
    const reach = HOVER_RADIUS / scale;
    for (let i = lowerBound(xy, local.x - reach); i < xy.length / 2 && xy[2 * i] <= local.x + reach; i++) {
      const d2 = ((xy[2 * i] - local.x) ** 2 + (xy[2 * i + 1] - local.y) ** 2) * scale * scale;
      if (d2 < bestD2) {
        bestD2 = d2;
        const point = new DOMPoint(xy[2 * i], xy[2 * i + 1]).matrixTransform(ctm);
        const v = datum.values[i];
        best = {
          series: String(datum.name),
          color: /** @type {SVGElement} */ (path).style.stroke,
          step: Number(v.x),
          value: Number(v.y),
          px: point.x,
          py: point.y,
        };
      }
    }
  }
  return best;
}

/**
 * @param {LegendEntry} entry
 * @returns {HTMLElement}
 */
function legendItem(entry) {
  const swatch = entry.marker
    ? h("span", { cls: "acc-chart-swatch acc-chart-swatch-marker", text: "◆" })
    : h("span", { cls: `acc-chart-swatch${entry.dashed ? " acc-chart-swatch-dashed" : ""}` });
  swatch.style.color = entry.color;
  return h("span", { cls: "acc-chart-legend-item" }, [swatch, h("span", { text: entry.label })]);
}

/**
 * The hover read-out: a box with series, step and value, and a ring on the point.
 * @param {HTMLElement} host the chart's box (positioned), both are appended to it
 */
function hoverBox(host) {
  const swatch = h("span", { cls: "acc-chart-swatch" });
  const series = h("span", { data: { accHover: "series" } });
  const step = h("span", { cls: "acc-num", data: { accHover: "step" } });
  const value = h("span", { cls: "acc-num", data: { accHover: "value" } });
  const box = h("div", { cls: "acc-root acc-chart-hover", attrs: { role: "status" } }, [
    h("div", { cls: "acc-chart-hover-series" }, [swatch, series]),
    h("div", {}, [h("span", { cls: "acc-chart-hover-key", text: "step" }), step]),
    h("div", {}, [h("span", { cls: "acc-chart-hover-key", text: "value" }), value]),
  ]);
  const ring = h("div", { cls: "acc-chart-hover-ring" });
  box.hidden = ring.hidden = true;
  host.append(box, ring);
  return {
    /** @param {Hit} hit */
    show(hit) {
      const frame = host.getBoundingClientRect();
      series.textContent = hit.series;
      step.textContent = String(hit.step);
      value.textContent = String(hit.value); // the shortest text that reads back as the same double
      swatch.style.color = hit.color;
      ring.style.borderColor = hit.color;
      const x = hit.px - frame.left;
      const y = hit.py - frame.top;
      ring.style.left = `${x}px`;
      ring.style.top = `${y}px`;
      box.hidden = ring.hidden = false;
      // Beside the point, inside the plot: right of it unless that leaves the box, above unless that does.
      const plot = hit.plot ?? frame;
      const flipX = hit.px + 16 + box.offsetWidth > plot.right;
      const flipY = hit.py - box.offsetHeight - 8 < plot.top;
      box.style.left = `${flipX ? x - 16 - box.offsetWidth : x + 16}px`;
      box.style.top = `${flipY ? y + 12 : y - box.offsetHeight - 8}px`;
    },
    hide() {
      box.hidden = ring.hidden = true;
    },
    dispose() {
      box.remove();
      ring.remove();
    },
  };
}

export default {
  /**
   * @param {{model: AnyModel, el: HTMLElement}} ctx
   * @returns {() => void}
   */
  render({ model, el }) {
    const legend = h("div", { cls: "acc-chart-legend", attrs: { "aria-label": "legend" } });
    const text = h("div", { cls: "acc-chart-status-text" });
    const root = h("div", { cls: "acc-root acc-chart-status" }, [legend, text]);
    const errors = errorBox(model);
    root.append(errors.node);
    el.append(root);

    const unbind = bind(model, ["text", "view", "revision", "legend"], () => {
      text.textContent = String(model.get("text") ?? "");
      root.dataset.accView = String(model.get("view") ?? "auto");
      root.dataset.accRevision = String(model.get("revision") ?? 0);
      /** @type {LegendEntry[]} */
      const entries = model.get("legend") ?? [];
      legend.replaceChildren(...entries.map(legendItem));
    });

    // Hover: find the chart's box once this view is in the page, then follow the pointer over the figure.
    /** @type {HTMLElement | null} */
    let host = null;
    /** @type {ReturnType<typeof hoverBox> | null} */
    let hover = null;
    let frame = 0;
    /** @type {PointerEvent | null} */
    let pending = null;
    const update = () => {
      frame = 0;
      const event = pending;
      pending = null;
      if (!event || !host || !hover) return;
      const figure = /** @type {Element | null} */ (event.target instanceof Element ? event.target : null)?.closest(
        ".acc-loss-chart-figure",
      );
      if (!figure || event.buttons) return hover.hide(); // dragging pans the chart
      const hit = nearestPoint(figure, event.clientX, event.clientY);
      if (hit) hover.show({ ...hit, plot: figure.getBoundingClientRect() });
      else hover.hide();
    };
    /** @param {PointerEvent} event */
    const onMove = (event) => {
      pending = event;
      if (!frame) frame = requestAnimationFrame(update);
    };
    const onLeave = () => hover?.hide();
    const attach = () => {
      host = el.closest(".acc-loss-chart");
      if (!host) return false;
      hover = hoverBox(host);
      host.addEventListener("pointermove", onMove);
      host.addEventListener("pointerleave", onLeave);
      host.addEventListener("pointerdown", onLeave);
      host.addEventListener("wheel", onLeave, { passive: true });
      return true;
    };
    const poll = setInterval(() => attach() && clearInterval(poll), 100);
    if (attach()) clearInterval(poll);

    return () => {
      clearInterval(poll);
      if (frame) cancelAnimationFrame(frame);
      if (host) {
        host.removeEventListener("pointermove", onMove);
        host.removeEventListener("pointerleave", onLeave);
        host.removeEventListener("pointerdown", onLeave);
        host.removeEventListener("wheel", onLeave);
      }
      hover?.dispose();
      unbind();
      errors.dispose();
      root.remove();
    };
  },
};
