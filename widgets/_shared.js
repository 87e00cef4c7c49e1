// @ts-check
/**
 * Helpers shared by every acc widget.
 *
 * anywidget loads a widget as ONE module from a blob URL, so this file is not
 * imported at run time: acc/widgets/_assets.py replaces a widget's line
 *   import { h, fmtNum } from "./_shared.js";
 * with this file's text (its `export` keywords removed). Keep it free of
 * imports and of top-level side effects.
 *
 * Rules every widget follows: user strings go into textContent (never
 * innerHTML), colours come from JupyterLab's --jp-* variables (see
 * _shared.css), and render() returns a cleanup function.
 */

/**
 * The part of anywidget's model that acc widgets use.
 * @typedef {{
 *   get(name: string): any,
 *   set(name: string, value: any): void,
 *   save_changes(): void,
 *   on(event: string, callback: (...args: any[]) => void): void,
 *   off(event: string, callback?: (...args: any[]) => void): void,
 *   send(content: any, callbacks?: any, buffers?: ArrayBuffer[]): void,
 * }} AnyModel
 */

/** The three verdicts, mildest first. */
export const HEALTHS = ["healthy", "warning", "critical"];

/**
 * Create an element. Text goes in as textContent; never HTML.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{cls?: string, text?: string | number, attrs?: Record<string, string>, data?: Record<string, string>, title?: string}} [opts]
 * @param {Array<Node | string | null | undefined | false>} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, opts = {}, children = []) {
  const node = document.createElement(tag);
  if (opts.cls) node.className = opts.cls;
  if (opts.text !== undefined) node.textContent = String(opts.text);
  if (opts.title) node.title = opts.title;
  for (const [k, v] of Object.entries(opts.attrs ?? {})) node.setAttribute(k, v);
  for (const [k, v] of Object.entries(opts.data ?? {})) node.dataset[k] = v;
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child);
  }
  return node;
}

/**
 * A number from a JSON trait: the kernel sends NaN/Inf as strings (acc/widgets/_binary.py).
 * @param {unknown} value
 * @returns {number}
 */
export function num(value) {
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return NaN;
}

/**
 * A loss as people read it: 4 decimals, or 3 significant digits in e-notation when tiny or huge.
 * @param {unknown} value
 * @returns {string}
 */
export function fmtNum(value) {
  if (value === null || value === undefined) return "–";
  const x = num(value);
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Inf" : "-Inf";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
  return x.toFixed(4);
}

/**
 * An integer with thin thousands separators (steps).
 * @param {unknown} value
 * @returns {string}
 */
export function fmtInt(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return Math.round(value).toLocaleString("en-US");
}

/**
 * Seconds as "42 s", "3 min 5 s", "1 h 02 min".
 * @param {unknown} seconds
 * @returns {string}
 */
export function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds - 60 * m)} s`;
  const hours = Math.floor(m / 60);
  return `${hours} h ${String(m - 60 * hours).padStart(2, "0")} min`;
}

/**
 * The CSS class of a verdict ("loss-healthy", ...); "" for anything else.
 * @param {unknown} health
 * @returns {string}
 */
export function healthClass(health) {
  return typeof health === "string" && HEALTHS.includes(health) ? `loss-${health}` : "";
}

/**
 * A float32 buffer from the kernel (a DataView, ArrayBuffer or typed array) as a Float32Array, without a copy.
 * @param {unknown} data
 * @returns {Float32Array}
 */
export function f32(data) {
  if (data instanceof Float32Array) return data;
  if (data instanceof DataView) return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  if (ArrayBuffer.isView(data)) return new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4);
  if (data instanceof ArrayBuffer) return new Float32Array(data);
  return new Float32Array(0);
}

/**
 * Call fn now and whenever one of the traits changes; returns the unsubscribe function.
 * @param {AnyModel} model
 * @param {string[]} names
 * @param {() => void} fn
 * @returns {() => void}
 */
export function bind(model, names, fn) {
  for (const name of names) model.on(`change:${name}`, fn);
  fn();
  return () => {
    for (const name of names) model.off(`change:${name}`, fn);
  };
}

/**
 * The error box under a widget: shows the `error` trait; "Dismiss" sends {kind: "clear_error"}.
 * @param {AnyModel} model
 * @returns {{node: HTMLElement, dispose: () => void}}
 */
export function errorBox(model) {
  const text = h("span", { cls: "acc-error-text" });
  const dismiss = h("button", { cls: "acc-error-dismiss", text: "Dismiss", attrs: { type: "button" } });
  const node = h("div", { cls: "acc-error", attrs: { role: "alert" } }, [text, dismiss]);
  const onDismiss = () => model.send({ kind: "clear_error" });
  dismiss.addEventListener("click", onDismiss);
  const unbind = bind(model, ["error"], () => {
    const message = String(model.get("error") ?? "");
    text.textContent = message;
    node.hidden = message === "";
  });
  return {
    node,
    dispose: () => {
      unbind();
      dismiss.removeEventListener("click", onDismiss);
    },
  };
}
