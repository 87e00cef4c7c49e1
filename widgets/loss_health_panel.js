// @ts-check
/**
 * LossHealthPanel (acc/widgets/loss_health_panel.py): health banner, per-task summary with sparklines,
 * folded loss log, job history, checkpoint tree.
 *
 * Everything shown comes from the model's traits (state lives in the kernel); the only things sent back are
 * commands: {kind: "select_job", job_id}, {kind: "refresh"}, {kind: "clear_error"}.
 * DOM contract: [data-acc-field=health|state|step|loss] hold bare values; health colours via .loss-* classes.
 */
import { HEALTHS, bind, errorBox, f32, fmtDuration, fmtInt, fmtNum, h, healthClass, num } from "./_shared.js";

/** @typedef {import("./_shared.js").AnyModel} AnyModel */

const LOG_FOLDED = 6; // log entries shown before "Show all"
const TREND = /** @type {Record<string, [string, string]>} */ ({
  improving: ["↓", "improving: the second half of the run is lower than the first"],
  worsening: ["↑", "worsening: the second half of the run is higher than the first"],
  flat: ["→", "flat: the two halves of the run are within 5 %"],
});
const STATUS_HEALTH = /** @type {Record<string, string>} */ ({
  completed: "healthy",
  failed: "critical",
  interrupted: "warning",
  stopped: "warning",
});

/**
 * A health pill: the bare word, coloured.
 * @param {unknown} health
 */
function pill(health) {
  const word = typeof health === "string" && HEALTHS.includes(health) ? health : "–";
  return h("span", { cls: `acc-pill ${healthClass(health)}`, text: word });
}

/** @param {unknown} health */
function dot(health) {
  return h("span", { cls: `acc-dot ${healthClass(health)}`, attrs: { "aria-hidden": "true" } });
}

/**
 * Draw a sparkline (bucket means; NaN buckets as a critical tick at the top).
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} values
 */
function drawSpark(canvas, values) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 96;
  const height = canvas.clientHeight || 22;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const n = values.length;
  if (n === 0) return;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  const style = getComputedStyle(canvas);
  const critical = style.getPropertyValue("--acc-critical").trim() || "#d32f2f";
  if (lo <= hi) {
    // Losses often fall by decades: use a log scale when everything is positive and the range is wide.
    const useLog = lo > 0 && hi / lo > 10;
    const f = useLog ? Math.log : (/** @type {number} */ x) => x;
    const a = f(lo);
    const span = f(hi) - a || 1;
    const x = (/** @type {number} */ i) => (n === 1 ? width / 2 : 1 + (i * (width - 2)) / (n - 1));
    const y = (/** @type {number} */ v) => height - 2 - ((f(v) - a) / span) * (height - 4);
    ctx.strokeStyle = style.color;
    ctx.lineWidth = 1.25;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let pen = false;
    values.forEach((v, i) => {
      if (!Number.isFinite(v)) {
        pen = false;
        return;
      }
      if (pen) ctx.lineTo(x(i), y(v));
      else ctx.moveTo(x(i), y(v));
      pen = true;
    });
    ctx.stroke();
    const last = values[n - 1];
    if (Number.isFinite(last)) {
      ctx.fillStyle = style.color;
      ctx.beginPath();
      ctx.arc(x(n - 1), y(last), 1.8, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  ctx.fillStyle = critical;
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) ctx.fillRect((i * width) / n, 0, Math.max(1.5, width / n), 5);
  });
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

export default {
  /** @param {{model: AnyModel, el: HTMLElement}} ctx */
  render({ model, el }) {
    const cleanups = /** @type {Array<() => void>} */ ([]);

    // ---- banner -------------------------------------------------------------------
    const healthWord = h("span", { cls: "acc-health-word", data: { accField: "health" } });
    const bannerDot = h("span", { cls: "acc-dot acc-banner-dot", attrs: { "aria-hidden": "true" } });
    const title = h("span", { cls: "acc-banner-title" });
    const stateBadge = h("span", { cls: "acc-state", data: { accField: "state" } });
    const stepValue = h("span", { cls: "acc-num", data: { accField: "step" } });
    const stepOf = h("span", { cls: "acc-of acc-num" });
    const lossValue = h("span", { cls: "acc-num", data: { accField: "loss" } });
    const rateValue = h("span", { cls: "acc-num" });
    const elapsedValue = h("span", { cls: "acc-num" });
    const note = h("div", { cls: "acc-banner-note" });
    const bar = h("div", { cls: "acc-progress-bar" });
    const progress = h("div", { cls: "acc-progress", attrs: { role: "progressbar", "aria-label": "progress" } }, [bar]);
    /** @param {string} label @param {Node[]} value */
    const stat = (label, value) => h("div", { cls: "acc-stat" }, [h("span", { cls: "acc-stat-label", text: label }), h("span", { cls: "acc-stat-value" }, value)]);
    const banner = h("div", { cls: "acc-banner", attrs: { role: "status" } }, [
      h("div", { cls: "acc-banner-main" }, [bannerDot, healthWord, title, stateBadge]),
      h("div", { cls: "acc-banner-stats" }, [
        stat("step", [stepValue, stepOf]),
        stat("loss", [lossValue]),
        stat("speed", [rateValue]),
        stat("elapsed", [elapsedValue]),
      ]),
      note,
      progress,
    ]);

    cleanups.push(
      bind(model, ["health", "run_state", "step", "max_steps", "loss", "rate", "elapsed", "job", "summary", "source_kind"], () => {
        const health = String(model.get("health") || "");
        banner.className = `acc-banner ${healthClass(health)}`;
        healthWord.textContent = health || "no data";
        const job = model.get("job") || {};
        title.textContent = job.id != null ? `job ${job.id} · ${job.name ?? ""}` : "no job yet";
        const state = String(model.get("run_state") || "idle");
        stateBadge.textContent = state;
        stateBadge.className = `acc-state acc-state-${state}`;
        const step = model.get("step");
        const max = model.get("max_steps");
        stepValue.textContent = String(step ?? 0);
        stepOf.textContent = typeof max === "number" ? ` / ${fmtInt(max)}` : "";
        lossValue.textContent = fmtNum(model.get("loss"));
        const rate = num(model.get("rate"));
        rateValue.textContent = Number.isFinite(rate) ? `${rate >= 100 ? fmtInt(rate) : rate.toFixed(1)} steps/s` : "–";
        elapsedValue.textContent = fmtDuration(num(model.get("elapsed")));
        const fraction = typeof max === "number" && max > 0 ? Math.min(1, (step ?? 0) / max) : 0;
        bar.style.width = `${(100 * fraction).toFixed(1)}%`;
        progress.setAttribute("aria-valuenow", String(Math.round(100 * fraction)));
        progress.hidden = typeof max !== "number";
        /** @type {Array<{task: string, health: string}>} */
        const rows = model.get("summary") || [];
        const bad = rows.filter((r) => r.health !== "healthy");
        if (rows.length === 0) note.textContent = "waiting for the first losses…";
        else if (bad.length === 0) note.textContent = rows.length === 1 ? "the task is healthy" : `all ${rows.length} tasks healthy`;
        else note.textContent = bad.map((r) => `${r.task}: ${r.health}`).join(" · ");
      }),
    );

    // ---- per-task summary ------------------------------------------------------------
    const back = h("button", { cls: "acc-back", text: "Back to live", attrs: { type: "button" } });
    const onBack = () => model.send({ kind: "select_job", job_id: null });
    back.addEventListener("click", onBack);
    cleanups.push(() => back.removeEventListener("click", onBack));
    const summaryCard = card("Per-task loss", [back]);
    const headers = ["task", "curve", "final", "mean", "min", "max", "trend", "steps", "health"];
    const tbody = h("tbody");
    summaryCard.body.append(
      h("table", { cls: "acc-table acc-summary" }, [
        h("thead", {}, [h("tr", {}, headers.map((t) => h("th", { text: t, attrs: { scope: "col" } })))]),
        tbody,
      ]),
    );
    /** @type {HTMLCanvasElement[]} */
    let canvases = [];
    const drawSparks = () => {
      const sparks = model.get("sparklines") || {};
      for (const canvas of canvases) drawSpark(canvas, f32(sparks[canvas.dataset.task ?? ""]));
    };
    cleanups.push(
      bind(model, ["summary", "viewing"], () => {
        const viewing = model.get("viewing");
        back.hidden = viewing == null;
        summaryCard.title.textContent = viewing == null ? "Per-task loss" : `Per-task loss · job ${viewing} (history)`;
        /** @type {Array<Record<string, any>>} */
        const rows = model.get("summary") || [];
        canvases = [];
        tbody.replaceChildren(
          ...rows.map((r) => {
            const canvas = h("canvas", { cls: "acc-spark", data: { task: String(r.task) } });
            canvases.push(canvas);
            const [arrow, why] = TREND[r.trend] ?? ["", ""];
            const nonfinite = r.nonfinite ? ` (${r.nonfinite} non-finite)` : "";
            return h("tr", { cls: healthClass(r.health) }, [
              h("th", { attrs: { scope: "row" } }, [h("span", { cls: "acc-task", text: r.task }), h("span", { cls: "acc-type", text: r.type })]),
              h("td", { cls: "acc-spark-cell" }, [canvas]),
              h("td", { cls: "acc-num acc-final", text: fmtNum(r.final) }),
              h("td", { cls: "acc-num", text: fmtNum(r.mean) }),
              h("td", { cls: "acc-num", text: fmtNum(r.min) }),
              h("td", { cls: "acc-num", text: fmtNum(r.max) }),
              h("td", { cls: `acc-trend acc-trend-${r.trend}`, text: arrow, title: why, attrs: { "aria-label": String(r.trend) } }),
              h("td", { cls: "acc-num", text: fmtInt(r.steps) }),
              h("td", {}, [pill(r.health), nonfinite ? h("span", { cls: "acc-dim", text: nonfinite }) : null]),
            ]);
          }),
        );
        if (rows.length === 0) {
          tbody.append(h("tr", {}, [h("td", { cls: "acc-empty", text: "no losses yet", attrs: { colspan: String(headers.length) } })]));
        }
        requestAnimationFrame(drawSparks);
      }),
    );
    const onSparks = () => requestAnimationFrame(drawSparks);
    model.on("change:sparklines", onSparks);
    cleanups.push(() => model.off("change:sparklines", onSparks));

    // ---- loss log ----------------------------------------------------------------------
    let expanded = false;
    const more = h("button", { cls: "acc-more", attrs: { type: "button" } });
    const logCard = card("Loss log", []);
    const logList = h("ol", { cls: "acc-log" });
    logCard.body.append(logList, more);
    const renderLog = () => {
      /** @type {Array<Record<string, any>>} */
      const entries = model.get("log") || [];
      const every = model.get("log_every");
      logCard.title.textContent = `Loss log · every ${fmtInt(every)} steps`;
      const shown = expanded ? entries : entries.slice(0, LOG_FOLDED);
      logList.replaceChildren(
        ...shown.map((e) =>
          h("li", { cls: `acc-log-entry ${healthClass(e.health)}${e.open ? " acc-open" : ""}` }, [
            dot(e.health),
            h("span", { cls: "acc-log-steps acc-num", text: e.first === e.last ? `${e.last}` : `${e.first}–${e.last}` }),
            h(
              "span",
              { cls: "acc-log-values" },
              (e.tasks || []).map((/** @type {Record<string, any>} */ t) => {
                const worse = t.worst && t.worst !== t.health;
                return h("span", { cls: `acc-log-value ${healthClass(t.health)}`, title: worse ? `${t.task} was ${t.worst} within these steps` : "" }, [
                  h("span", { cls: "acc-dim", text: `${t.task} ` }),
                  h("span", { cls: "acc-num", text: fmtNum(t.value) }),
                  worse ? h("span", { cls: `acc-worst ${healthClass(t.worst)}`, text: "▲", attrs: { "aria-label": `was ${t.worst}` } }) : null,
                ]);
              }),
            ),
          ]),
        ),
      );
      if (entries.length === 0) logList.append(h("li", { cls: "acc-empty", text: "no steps yet" }));
      more.hidden = entries.length <= LOG_FOLDED;
      more.textContent = expanded ? "Show fewer" : `Show all ${entries.length}`;
    };
    const onMore = () => {
      expanded = !expanded;
      renderLog();
    };
    more.addEventListener("click", onMore);
    cleanups.push(() => more.removeEventListener("click", onMore));
    cleanups.push(bind(model, ["log", "log_every"], renderLog));

    // ---- job history ---------------------------------------------------------------------
    const refresh = h("button", { cls: "acc-refresh", text: "Refresh", attrs: { type: "button" } });
    const onRefresh = () => model.send({ kind: "refresh" });
    refresh.addEventListener("click", onRefresh);
    cleanups.push(() => refresh.removeEventListener("click", onRefresh));
    const jobsCard = card("Jobs", [refresh]);
    const jobsBody = h("tbody");
    jobsCard.body.append(
      h("table", { cls: "acc-table acc-history" }, [
        h("thead", {}, [h("tr", {}, [["", ""], ["job", "acc-left"], ["status", "acc-left"], ["steps", ""], ["final losses", "acc-left"]].map(([t, cls]) => h("th", { cls, text: t, attrs: { scope: "col" } })))]),
        jobsBody,
      ]),
    );
    /** @param {Event} event */
    const onJobClick = (event) => {
      const target = /** @type {HTMLElement | null} */ (event.target);
      const button = target?.closest("button[data-job-id]");
      if (!(button instanceof HTMLElement)) return;
      model.send({ kind: "select_job", job_id: Number(button.dataset.jobId) });
    };
    jobsBody.addEventListener("click", onJobClick);
    cleanups.push(() => jobsBody.removeEventListener("click", onJobClick));
    cleanups.push(
      bind(model, ["history", "job", "viewing"], () => {
        /** @type {Array<Record<string, any>>} */
        const rows = model.get("history") || [];
        const current = (model.get("job") || {}).id;
        const viewing = model.get("viewing");
        jobsBody.replaceChildren(
          ...rows.map((r) =>
            h("tr", { cls: `${r.id === current ? "acc-current" : ""}${r.id === viewing ? " acc-viewing" : ""}`, data: { jobId: String(r.id) } }, [
              h("td", {}, [dot(r.health)]),
              h("td", { cls: "acc-left acc-job" }, [
                h("button", { cls: "acc-link", text: `${r.id} · ${r.name}`, data: { jobId: String(r.id) }, title: r.reason ?? "show this job's summary and log" }),
              ]),
              h("td", { cls: `acc-left acc-status ${healthClass(STATUS_HEALTH[r.status] ?? "")}`, text: r.status, title: r.reason ?? "" }),
              h("td", { cls: "acc-num", text: fmtInt(r.steps) }),
              h(
                "td",
                { cls: "acc-left acc-finals" },
                (r.final || []).map((/** @type {Record<string, any>} */ f) =>
                  h("span", { cls: `acc-final-chip ${healthClass(f.health)}` }, [h("span", { cls: "acc-dim", text: `${f.task} ` }), h("span", { cls: "acc-num", text: fmtNum(f.value) })]),
                ),
              ),
            ]),
          ),
        );
        if (rows.length === 0) jobsBody.append(h("tr", {}, [h("td", { cls: "acc-empty", text: "no jobs in this store yet", attrs: { colspan: "5" } })]));
      }),
    );

    // ---- checkpoint tree -------------------------------------------------------------------
    const ckptCard = card("Checkpoints");
    const tree = h("ul", { cls: "acc-tree", attrs: { role: "tree" } });
    ckptCard.body.append(tree);
    cleanups.push(
      bind(model, ["checkpoints"], () => {
        /** @type {Array<Record<string, any>>} */
        const rows = model.get("checkpoints") || [];
        tree.replaceChildren(
          ...rows.map((c) => {
            const item = h("li", { cls: `acc-tree-node ${healthClass(c.health)}${c.current ? " acc-current" : ""}`, attrs: { role: "treeitem", "aria-level": String(c.depth + 1) } }, [
              h("span", { cls: "acc-tree-indent", text: c.depth > 0 ? "└ " : "" }),
              dot(c.health),
              h("span", { cls: "acc-tree-name", text: c.name || c.id, title: c.id }),
              h("span", { cls: "acc-dim acc-num", text: `step ${fmtInt(c.step)}` }),
              c.job_id != null ? h("span", { cls: "acc-dim", text: `job ${c.job_id}` }) : null,
              c.current ? h("span", { cls: "acc-tag", text: "latest" }) : null,
            ]);
            item.style.paddingLeft = `${Math.min(c.depth, 8) * 14}px`;
            return item;
          }),
        );
        if (rows.length === 0) tree.append(h("li", { cls: "acc-empty", text: "no checkpoints yet" }));
      }),
    );

    // ---- layout ------------------------------------------------------------------------------
    const errors = errorBox(model);
    cleanups.push(errors.dispose);
    const root = h("div", { cls: "acc-root acc-lhp" }, [
      banner,
      h("div", { cls: "acc-grid" }, [
        h("div", { cls: "acc-col acc-wide" }, [summaryCard.node]),
        h("div", { cls: "acc-col" }, [logCard.node]),
        h("div", { cls: "acc-col" }, [jobsCard.node, ckptCard.node]),
      ]),
      errors.node,
    ]);
    el.append(root);
    const resize = new ResizeObserver(() => requestAnimationFrame(drawSparks));
    resize.observe(root);
    cleanups.push(() => resize.disconnect());

    return () => {
      for (const fn of cleanups) fn();
      root.remove();
    };
  },
};
