// @ts-check
/**
 * DebugPanel (acc/widgets/debug_panel.py): Pause/Resume, Step, Step N, Stop, breakpoints, the paused step's
 * batch grid, its step data and a sortable, colour-coded per-feature table.
 *
 * Everything shown comes from the model's traits (the controller is the source of truth); the browser sends
 * commands only: {kind: "pause"|"resume"|"stop"|"refresh"}, {kind: "step", n}, {kind: "set_breakpoint", condition, on},
 * {kind: "pick_key", key}, {kind: "sort_table", by, descending}, {kind: "watch"|"unwatch", feature}.
 * A clicked button says "pausing…" (or "stepping…", "stopping…") until the kernel's state moves: the panel
 * never claims a state the loop is not in.
 * DOM contract: [data-acc-field=state|step|loss|health] hold bare values; buttons are named by their text.
 */
import { bind, errorBox, f32, fmtInt, fmtNum, h, healthClass, num } from "./_shared.js";

/** @typedef {import("./_shared.js").AnyModel} AnyModel */

const LIVE = ["running", "pausing", "paused"];
const STATUS_CLASS = /** @type {Record<string, string>} */ ({ ok: "", dead: "acc-status-warn", "non-finite": "acc-status-bad" });

/**
 * @param {string} text
 * @param {string} [cls]
 */
function button(text, cls = "") {
  return h("button", { cls, text, attrs: { type: "button" } });
}

/**
 * Draw bars (a per-feature metric, or row norms) into a canvas; non-finite values as critical ticks.
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} values
 */
function drawBars(canvas, values) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 64;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const n = values.length;
  if (n === 0) return;
  let lo = 0;
  let hi = 0;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  const span = hi - lo || 1;
  const style = getComputedStyle(canvas);
  const fg = style.getPropertyValue("--acc-accent").trim() || "#1976d2";
  const bad = style.getPropertyValue("--acc-critical").trim() || "#d32f2f";
  const axis = style.getPropertyValue("--acc-border").trim() || "#ccc";
  const w = width / n;
  const zero = height - 1 - ((0 - lo) / span) * (height - 2);
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) {
      ctx.fillStyle = bad;
      ctx.fillRect(i * w, 0, Math.max(1, w - (w > 3 ? 1 : 0)), 4);
      return;
    }
    const y = height - 1 - ((v - lo) / span) * (height - 2);
    ctx.fillStyle = fg;
    ctx.fillRect(i * w, Math.min(y, zero), Math.max(1, w - (w > 3 ? 1 : 0)), Math.max(1, Math.abs(zero - y)));
  });
  ctx.fillStyle = axis;
  ctx.fillRect(0, Math.round(zero), width, 1);
}

/**
 * "64 × 1 × 8 × 8 float32 · min 0 · max 1 · mean 0.31 · std 0.38"
 * @param {Record<string, any> | null | undefined} s
 */
function summaryText(s) {
  if (!s) return "";
  const parts = [];
  if (Array.isArray(s.shape)) parts.push(`${s.shape.length ? s.shape.join(" × ") : "scalar"} ${s.dtype ?? ""}`.trim());
  for (const k of ["min", "max", "mean", "std"]) if (s[k] !== undefined && s[k] !== null) parts.push(`${k} ${fmtNum(s[k])}`);
  if (s.n_nonfinite) parts.push(`${fmtInt(s.n_nonfinite)} non-finite`);
  return parts.join(" · ");
}

/**
 * @param {string} title
 * @param {Array<Node | null>} [extra]
 */
function card(title, extra = []) {
  const heading = h("h4", { text: title });
  const sub = h("span", { cls: "acc-card-sub" });
  const head = h("div", { cls: "acc-card-head" }, [heading, sub, ...extra]);
  const body = h("div", { cls: "acc-card-body" });
  const node = h("section", { cls: "acc-card", attrs: { "aria-label": title } }, [head, body]);
  return { node, body, sub };
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

    // ---- header: state, step, loss, health, why -------------------------------------------------
    const title = h("span", { cls: "acc-dbg-title" });
    const stateBadge = h("span", { cls: "acc-state", data: { accField: "state" } });
    const stepValue = h("span", { cls: "acc-num", data: { accField: "step" } });
    const stepOf = h("span", { cls: "acc-of acc-num" });
    const lossValue = h("span", { cls: "acc-num acc-dbg-loss", data: { accField: "loss" } });
    const healthWord = h("span", { cls: "acc-health-word", data: { accField: "health" } });
    const taskChips = h("span", { cls: "acc-dbg-tasks" });
    const reason = h("div", { cls: "acc-dbg-reason" });
    const busy = h("div", { cls: "acc-dbg-busy", attrs: { role: "status" } });
    /** @param {string} label @param {Node[]} value */
    const stat = (label, value) => h("div", { cls: "acc-stat" }, [h("span", { cls: "acc-stat-label", text: label }), h("span", { cls: "acc-stat-value" }, value)]);
    const header = h("div", { cls: "acc-dbg-head", attrs: { role: "status" } }, [
      h("div", { cls: "acc-dbg-main" }, [h("span", { cls: "acc-dbg-icon", attrs: { "aria-hidden": "true" } }), title, stateBadge]),
      h("div", { cls: "acc-dbg-stats" }, [stat("step", [stepValue, stepOf]), stat("loss", [lossValue]), stat("health", [healthWord])]),
      h("div", { cls: "acc-dbg-why" }, [reason, taskChips]),
    ]);

    // ---- controls ----------------------------------------------------------------------------
    const pauseBtn = button("Pause", "acc-primary");
    const stepBtn = button("Step");
    const stepNBtn = button("Step N");
    const nInput = h("input", { cls: "acc-dbg-n acc-num", attrs: { type: "number", min: "1", max: "1000000", step: "1", value: "10", "aria-label": "N" } });
    const stopBtn = button("Stop", "acc-danger");
    /** @param {string} kind @param {string} text */
    const toggle = (kind, text) => {
      const box = h("input", { attrs: { type: "checkbox" }, data: { bp: kind } });
      const label = h("label", { cls: "acc-dbg-bp" }, [box, h("span", { text })]);
      return { box, label };
    };
    const bpNan = toggle("nan", "NaN");
    const bpCritical = toggle("critical", "critical");
    const bpOthers = h("span", { cls: "acc-dbg-bp-others acc-dim" });
    const controls = h("div", { cls: "acc-dbg-controls", attrs: { role: "toolbar", "aria-label": "debugger controls" } }, [
      pauseBtn,
      stepBtn,
      h("span", { cls: "acc-dbg-stepn" }, [stepNBtn, h("label", { cls: "acc-dbg-n-label" }, [h("span", { text: "N", attrs: { "aria-hidden": "true" } }), nInput])]),
      stopBtn,
      h("span", { cls: "acc-dbg-sep", attrs: { "aria-hidden": "true" } }),
      h("span", { cls: "acc-dbg-bps" }, [h("span", { cls: "acc-dim", text: "break on" }), bpNan.label, bpCritical.label, bpOthers]),
    ]);

    /** The command this view sent and the kernel has not answered yet (shown on its button). */
    let sent = /** @type {string | null} */ (null);
    /** @param {Record<string, any>} content */
    const send = (content) => {
      sent = content.kind;
      sentAt = { step: model.get("step"), error: String(model.get("error") || "") };
      model.send(content);
      renderControls();
      // a kernel that answers nothing for 10 s (and holds no cell) lost the message: offer the buttons again
      clearTimeout(giveUp);
      giveUp = setTimeout(() => {
        if (sent !== null && !model.get("foreground")) {
          sent = null;
          renderControls();
        }
      }, 10_000);
    };
    let giveUp = 0;
    cleanups.push(() => clearTimeout(giveUp));
    listen(pauseBtn, "click", () => send({ kind: model.get("run_state") === "paused" ? "resume" : "pause" }));
    listen(stepBtn, "click", () => send({ kind: "step", n: 1 }));
    const stepN = () => {
      const n = Number(nInput.value);
      if (!Number.isInteger(n) || n < 1) {
        nInput.setCustomValidity("a whole number of steps, 1 or more");
        nInput.reportValidity();
        return;
      }
      nInput.setCustomValidity("");
      send({ kind: "step", n });
    };
    listen(stepNBtn, "click", stepN);
    listen(nInput, "keydown", (/** @type {KeyboardEvent} */ e) => {
      if (e.key === "Enter") stepN();
    });
    listen(stopBtn, "click", () => send({ kind: "stop" }));
    for (const t of [bpNan, bpCritical]) {
      listen(t.box, "change", () => model.send({ kind: "set_breakpoint", condition: t.box.dataset.bp, on: t.box.checked }));
    }

    const renderControls = () => {
      const state = String(model.get("run_state") || "idle");
      const pending = model.get("pending");
      const live = LIVE.includes(state);
      const stepping = state === "running" && model.get("steps_left") != null;
      let pauseText = state === "paused" ? "Resume" : "Pause";
      if (state === "pausing" || pending === "pause" || sent === "pause") pauseText = "pausing…";
      else if (sent === "resume" || pending === "resume") pauseText = "resuming…";
      pauseBtn.textContent = pauseText;
      pauseBtn.disabled = !live || pauseText.endsWith("…");
      pauseBtn.classList.toggle("acc-resume", pauseText === "Resume");
      const stepBusy = sent === "step" || pending === "step" || stepping;
      stepBtn.textContent = stepBusy ? "stepping…" : "Step";
      stepBtn.disabled = !live || stepBusy;
      stepNBtn.disabled = !live || stepBusy;
      nInput.disabled = !live;
      const stopping = sent === "stop" || pending === "stop";
      stopBtn.textContent = stopping ? "stopping…" : "Stop";
      stopBtn.disabled = !live || stopping;
    };

    // A view's own "sent" mark ends when the kernel shows the command taken (pending, or its effect),
    // or rejected (an error). Until then the button says "pausing…" (etc.), never the state it asked for.
    let sentAt = { step: 0, error: "" };
    const taken = () => {
      const state = String(model.get("run_state") || "idle");
      const pending = model.get("pending");
      if (String(model.get("error") || "") !== sentAt.error) return true;
      if (pending === sent || !LIVE.includes(state)) return true;
      if (sent === "pause") return state === "pausing" || state === "paused";
      if (sent === "resume") return state === "running";
      if (sent === "step") return model.get("step") !== sentAt.step || model.get("steps_left") != null;
      return false; // stop: only its pending mark or the end of the job
    };
    const settle = () => {
      if (sent !== null && !taken()) return;
      sent = null;
      renderControls();
      renderBreakpoints(); // a rejected toggle shows the controller's breakpoints again
    };
    for (const name of ["run_state", "pending", "steps_left", "error", "step"]) {
      model.on(`change:${name}`, settle);
      cleanups.push(() => model.off(`change:${name}`, settle));
    }

    cleanups.push(
      bind(model, ["run_state", "step", "max_steps", "loss", "loss_step", "health", "losses", "reason", "job", "foreground", "steps_left", "pending"], () => {
        const state = String(model.get("run_state") || "idle");
        const job = model.get("job") || {};
        title.textContent = job.id != null ? `Debugger · job ${job.id} · ${job.name ?? ""}` : "Debugger · no job yet";
        stateBadge.textContent = state;
        stateBadge.className = `acc-state acc-state-${state}`;
        stepValue.textContent = String(model.get("step") ?? 0);
        const max = model.get("max_steps");
        stepOf.textContent = typeof max === "number" ? ` / ${fmtInt(max)}` : "";
        lossValue.textContent = fmtNum(model.get("loss"));
        const lossStep = model.get("loss_step");
        lossValue.title = lossStep != null ? `total loss at step ${lossStep}` : "";
        const health = String(model.get("health") || "");
        healthWord.textContent = health || "–";
        healthWord.className = `acc-health-word ${healthClass(health)}`;
        header.className = `acc-dbg-head acc-dbg-${state} ${healthClass(health)}`;
        /** @type {Array<{task: string, value: any, health: string}>} */
        const losses = model.get("losses") || [];
        taskChips.replaceChildren(
          ...losses.map((t) => h("span", { cls: `acc-chip ${healthClass(t.health)}` }, [h("span", { cls: "acc-dim", text: `${t.task} ` }), h("span", { cls: "acc-num", text: fmtNum(t.value) })])),
        );
        const why = model.get("reason");
        const left = model.get("steps_left");
        let text = "";
        if (state === "paused") text = why === "user" ? "paused by you" : why === "step budget" ? "paused: the steps asked for are done" : `paused · ${why ?? ""}`;
        else if (state === "pausing") text = "pausing at the end of the step in progress…";
        else if (state === "running") text = left != null ? `stepping: ${fmtInt(left)} step${left === 1 ? "" : "s"} to go` : "running";
        else if (state === "idle") text = "no job yet: start one with trainer.start(steps=...)";
        else text = `${state}${why ? ` · ${why}` : ""}${job.error ? ` · ${job.error}` : ""}`;
        reason.textContent = text;
        const fg = !!model.get("foreground");
        busy.hidden = !fg;
        busy.textContent = fg ? "This cell is running the loop in the kernel (trainer.fit()): clicks wait until the cell finishes. Use trainer.start(...) to debug a run live." : "";
        renderControls();
      }),
    );
    const renderBreakpoints = () => {
        /** @type {Array<{id: number, kind: string, description: string, hits: number}>} */
        const bps = model.get("breakpoints") || [];
        for (const t of [bpNan, bpCritical]) {
          const mine = bps.filter((b) => b.kind === t.box.dataset.bp);
          t.box.checked = mine.length > 0;
          const hits = mine.reduce((a, b) => a + (b.hits || 0), 0);
          t.label.title = hits ? `hit ${hits} time${hits === 1 ? "" : "s"}` : "";
        }
        const others = bps.filter((b) => b.kind !== "nan" && b.kind !== "critical");
        bpOthers.textContent = others.length ? `+ ${others.map((b) => b.description).join(", ")}` : "";
    };
    cleanups.push(bind(model, ["breakpoints"], renderBreakpoints));

    // ---- batch ----------------------------------------------------------------------------------
    const batchCard = card("Batch");
    const img = h("img", { cls: "acc-dbg-grid", attrs: { alt: "the batch of the paused step" } });
    const labelLayer = h("div", { cls: "acc-dbg-labels", attrs: { "aria-hidden": "true" } });
    const frame = h("div", { cls: "acc-dbg-frame" }, [img, labelLayer]);
    const batchInfo = h("div", { cls: "acc-dbg-batch-info" });
    const batchEmpty = h("div", { cls: "acc-empty", text: "Pause to see the batch of the step just taken." });
    batchCard.body.append(frame, batchInfo, batchEmpty);
    let url = "";
    const renderBatch = () => {
      const batch = model.get("batch") || {};
      const data = model.get("batch_png");
      const bytes = data && data.byteLength ? data : null;
      if (url) URL.revokeObjectURL(url);
      url = "";
      const has = batch.step != null;
      batchEmpty.hidden = has;
      frame.hidden = !bytes;
      batchCard.sub.textContent = has ? `step ${fmtInt(batch.step)} · loss ${fmtNum(batch.loss)}` : "";
      img.dataset.step = has ? String(batch.step) : "";
      labelLayer.replaceChildren();
      if (bytes) {
        url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
        img.src = url;
        const grid = batch.grid || {};
        const scale = Math.max(1, Math.min(6, Math.floor(360 / Math.max(1, grid.width || 1))));
        img.style.width = `${(grid.width || 0) * scale}px`;
        img.style.height = `${(grid.height || 0) * scale}px`;
        /** @type {unknown[]} */
        const labels = Array.isArray(batch.labels) ? batch.labels : [];
        const n = Math.min(labels.length, grid.n || 0);
        const cellW = (grid.image_width || 0) + (grid.padding || 0);
        const cellH = (grid.image_height || 0) + (grid.padding || 0);
        for (let i = 0; i < n; i++) {
          const col = i % (grid.nrow || 1);
          const row = Math.floor(i / (grid.nrow || 1));
          const tag = h("span", { cls: "acc-dbg-label", text: String(labels[i]) });
          tag.style.left = `${((grid.padding || 0) + col * cellW) * scale}px`;
          tag.style.top = `${((grid.padding || 0) + row * cellH) * scale}px`;
          labelLayer.append(tag);
        }
      } else {
        img.removeAttribute("src");
      }
      const lines = [];
      if (has && batch.kind !== "image" && batch.kind !== "none") lines.push(`${batch.kind} batch`);
      if (batch.summary) lines.push(batch.kind === "object" ? String(batch.summary.repr ?? "") : `inputs ${summaryText(batch.summary)}`);
      if (Array.isArray(batch.labels) && batch.labels.length && !bytes) lines.push(`labels ${batch.labels.slice(0, 32).join(" ")}${batch.labels.length > 32 ? " …" : ""}`);
      if (batch.targets) lines.push(`targets ${summaryText(batch.targets)}`);
      batchInfo.replaceChildren(
        ...Object.entries(batch.losses || {}).map(([task, value]) => h("span", { cls: "acc-chip" }, [h("span", { cls: "acc-dim", text: `${task} ` }), h("span", { cls: "acc-num", text: fmtNum(value) })])),
        ...lines.map((t) => h("div", { cls: "acc-dim acc-num", text: t })),
      );
    };
    cleanups.push(bind(model, ["batch", "batch_png"], renderBatch));
    cleanups.push(() => {
      if (url) URL.revokeObjectURL(url);
    });

    // ---- step data ---------------------------------------------------------------------------------
    const dataCard = card("Step data");
    const keySelect = h("select", { cls: "acc-dbg-key", attrs: { "aria-label": "step data key" } });
    const valueInfo = h("div", { cls: "acc-dim acc-num acc-dbg-value" });
    const barsLabel = h("div", { cls: "acc-dim acc-dbg-bars-label" });
    const bars = h("canvas", { cls: "acc-dbg-bars" });
    const dataEmpty = h("div", { cls: "acc-empty", text: "Pause to see the data of the step just taken." });
    dataCard.body.append(keySelect, valueInfo, bars, barsLabel, dataEmpty);
    listen(keySelect, "change", () => model.send({ kind: "pick_key", key: keySelect.value }));
    const drawData = () => drawBars(bars, f32(model.get("step_bars")));
    const renderData = () => {
      /** @type {Array<Record<string, any>>} */
      const keys = model.get("step_keys") || [];
      const picked = String(model.get("step_key") || "");
      const step = model.get("data_step");
      dataCard.sub.textContent = step != null ? `step ${fmtInt(step)} · ${keys.length} key${keys.length === 1 ? "" : "s"}` : "";
      keySelect.replaceChildren(
        ...keys.map((k) => {
          const shape = Array.isArray(k.shape) ? `[${k.shape.join(", ")}]` : k.kind;
          const option = h("option", { text: `${k.key}  ${shape}${k.dtype ? ` ${k.dtype}` : ""}`, attrs: { value: String(k.key) } });
          option.selected = k.key === picked;
          return option;
        }),
      );
      keySelect.hidden = keys.length === 0;
      dataEmpty.hidden = keys.length > 0;
      if (step != null && keys.length === 0) dataEmpty.textContent = "This step captured no data (dbg.capture_step_data(key, value) in a hook).";
      const view = model.get("step_value") || {};
      let text = "";
      if (view.kind === "tensor") text = summaryText(view.summary) + (view.value !== undefined ? ` · value ${fmtNum(view.value)}` : "");
      else if (view.kind === "number") text = `value ${fmtNum(view.value)}`;
      else if (view.repr) text = String(view.repr);
      valueInfo.textContent = text;
      const n = view.n_bars || 0;
      bars.hidden = n === 0;
      barsLabel.textContent = n ? `${view.bars_of} of ${view.key}${n >= 4096 ? " (first 4,096)" : ""}, feature 0 → ${fmtInt(n - 1)}` : "";
      requestAnimationFrame(drawData);
    };
    cleanups.push(bind(model, ["step_keys", "step_key", "step_value", "step_bars", "data_step"], renderData));

    // ---- per-feature table -------------------------------------------------------------------------
    const tableCard = card("Features");
    const counts = h("div", { cls: "acc-dbg-counts" });
    const thead = h("thead");
    const tbody = h("tbody");
    const tfoot = h("tfoot");
    const table = h("table", { cls: "acc-table acc-dbg-table" }, [thead, tbody, tfoot]);
    const tableWrap = h("div", { cls: "acc-dbg-table-wrap" }, [table]);
    const tableNote = h("div", { cls: "acc-dim acc-dbg-table-note" });
    const tableEmpty = h("div", { cls: "acc-empty", text: "Pause to see one row per feature (the step's [D] metrics)." });
    tableCard.body.append(counts, tableWrap, tableNote, tableEmpty);
    listen(thead, "click", (/** @type {MouseEvent} */ e) => {
      const target = /** @type {HTMLElement | null} */ (e.target);
      const btn = target?.closest("button[data-col]");
      if (!(btn instanceof HTMLElement)) return;
      const col = btn.dataset.col ?? "";
      const sort = model.get("table_sort") || {};
      const descending = sort.by === col ? !sort.descending : col !== "feature";
      model.send({ kind: "sort_table", by: col, descending });
    });
    /** @param {HTMLElement | null} row */
    const toggleWatch = (row) => {
      if (!row || row.dataset.feature === undefined) return;
      const feature = Number(row.dataset.feature);
      const watched = (model.get("watched") || []).includes(feature);
      model.send({ kind: watched ? "unwatch" : "watch", feature });
    };
    listen(tbody, "click", (/** @type {MouseEvent} */ e) => toggleWatch(/** @type {HTMLElement} */ (e.target)?.closest("tr")));
    listen(tbody, "keydown", (/** @type {KeyboardEvent} */ e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        toggleWatch(/** @type {HTMLElement} */ (e.target)?.closest("tr"));
      }
    });
    const renderTable = () => {
      const t = model.get("table") || {};
      /** @type {string[]} */
      const columns = t.columns || [];
      const rows = /** @type {Array<Record<string, any>>} */ (t.rows || []);
      const watched = new Set(model.get("watched") || []);
      const has = columns.length > 0;
      tableEmpty.hidden = has;
      tableWrap.hidden = !has;
      tableCard.sub.textContent = has ? `step ${fmtInt(t.step)} · ${fmtInt(t.n_features)} features` : "";
      counts.replaceChildren(
        ...Object.entries(t.status_counts || {}).map(([status, n]) => h("span", { cls: `acc-chip acc-status ${STATUS_CLASS[status] ?? "acc-status-other"}`, text: `${n} ${status}` })),
        watched.size ? h("span", { cls: "acc-chip acc-watch-chip", text: `◉ watching ${[...watched].join(", ")}` }) : null,
      );
      if (!has) return;
      const sortBy = t.sort_by;
      thead.replaceChildren(
        h(
          "tr",
          {},
          columns.map((c) => {
            const arrow = sortBy === c ? (t.descending ? " ↓" : " ↑") : "";
            const th = h("th", { attrs: { scope: "col" } }, [h("button", { cls: "acc-sort", text: `${c}${arrow}`, data: { col: c }, attrs: { type: "button" } })]);
            if (sortBy === c) th.setAttribute("aria-sort", t.descending ? "descending" : "ascending");
            return th;
          }),
        ),
      );
      const ranges = t.range || {};
      tbody.replaceChildren(
        ...rows.map((r) => {
          const isWatched = watched.has(r.feature);
          const tr = h("tr", {
            cls: `${STATUS_CLASS[r.status] ?? "acc-status-other"}${isWatched ? " acc-watched" : ""}`,
            data: { feature: String(r.feature) },
            title: isWatched ? `feature ${r.feature} is watched: click to stop` : `click to watch feature ${r.feature} (TrajectoryWidget)`,
            attrs: { tabindex: "0", "aria-selected": String(isWatched) },
          });
          for (const c of columns) {
            if (c === "feature") {
              tr.append(h("th", { cls: "acc-num acc-feature", attrs: { scope: "row" } }, [h("span", { cls: "acc-eye", text: isWatched ? "◉" : "○", attrs: { "aria-hidden": "true" } }), ` ${r.feature}`]));
            } else if (c === "status") {
              tr.append(h("td", { cls: "acc-status-cell", text: String(r.status) }));
            } else {
              const v = r[c];
              const td = h("td", { cls: "acc-num acc-barcell", text: v === null || v === undefined ? "–" : fmtNum(v) });
              const [lo, hi] = ranges[c] || [null, null];
              const x = num(v);
              if (Number.isFinite(x) && typeof lo === "number" && typeof hi === "number") {
                const frac = hi > lo ? (x - lo) / (hi - lo) : 1;
                td.style.setProperty("--frac", `${(100 * Math.max(0, Math.min(1, frac))).toFixed(1)}%`);
              }
              tr.append(td);
            }
          }
          return tr;
        }),
      );
      const summary = t.summary || {};
      /** @param {string} label @param {(s: Record<string, any>) => string} cell */
      const footRow = (label, cell) =>
        h(
          "tr",
          {},
          columns.map((c) => {
            if (c === "feature") return h("th", { text: label, attrs: { scope: "row" } });
            if (c === "status") return h("td", {});
            return h("td", { cls: "acc-num", text: summary[c] ? cell(summary[c]) : "" });
          }),
        );
      tfoot.replaceChildren(footRow("mean", (s) => fmtNum(s.mean)), footRow("min", (s) => fmtNum(s.min)), footRow("max", (s) => fmtNum(s.max)));
      tableNote.textContent = t.shown < t.n_features ? `showing ${fmtInt(t.shown)} of ${fmtInt(t.n_features)} rows (sort to see others); the summary covers all` : "click a row to watch that feature";
    };
    cleanups.push(bind(model, ["table", "watched"], renderTable));

    // ---- layout ------------------------------------------------------------------------------------
    const errors = errorBox(model);
    cleanups.push(errors.dispose);
    const root = h("div", { cls: "acc-root acc-dbg" }, [
      header,
      busy,
      controls,
      h("div", { cls: "acc-dbg-grid" }, [h("div", { cls: "acc-col" }, [batchCard.node, dataCard.node]), h("div", { cls: "acc-col" }, [tableCard.node])]),
      errors.node,
    ]);
    el.append(root);
    const resize = new ResizeObserver(() => requestAnimationFrame(drawData));
    resize.observe(bars);
    cleanups.push(() => resize.disconnect());

    return () => {
      for (const fn of cleanups) fn();
      root.remove();
    };
  },
};
