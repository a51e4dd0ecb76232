/* pipeforge dashboard: plain JavaScript, no libraries, no build step.
 *
 * Reads the app's own JSON routes (named by <base>/config.json), renders four
 * panels and refreshes them. Data is always inserted as text (never as HTML);
 * the only markup taken from the server is the pipeline SVG that pipeforge
 * renders itself, parsed as XML. Requests carry the token the user typed, in
 * the header the service's decorators read.
 */
"use strict";

(() => {
  const BASE = document.querySelector('meta[name="pf-base"]').content;
  const AUTH_KEY = "pipeforge-dashboard-auth";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const state = {
    config: null,
    list: null,
    alive: null,
    chartScore: null,
    selected: new Set(),
    compare: null,
    onlyDiffs: false,
    rendered: {},
    scrapes: [],
    online: { history: {}, events: [], streams: {}, timer: null },
  };

  // -- small helpers ------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function fill(target, ...children) {
    target.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function fmtNumber(value, digits = 4) {
    if (value === null || value === undefined || value === "") return "–";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return value.toLocaleString("en");
      return value.toFixed(digits);
    }
    return String(value);
  }

  function fmtParam(value) {
    if (value === null) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function fmtDate(text) {
    if (!text) return "–";
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) return String(text);
    return date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
  }

  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function shortVersion(version) {
    if (!version) return "–";
    return String(version).split(".").map((part) => part.slice(0, 6)).join(".");
  }

  function announce(message, kind) {
    const box = document.getElementById("status");
    box.textContent = message;
    box.className = `status ${kind || ""}`;
  }

  // -- credentials and requests ------------------------------------------------------------
  function auth() {
    try {
      return JSON.parse(sessionStorage.getItem(AUTH_KEY)) || null;
    } catch (error) {
      return null;
    }
  }

  function showAuthState() {
    const current = auth();
    const badge = document.getElementById("auth-state");
    badge.textContent = current && current.token ? "set" : "none";
    badge.className = current && current.token ? "badge ok" : "badge";
    const header = document.getElementById("auth-header");
    header.value = (current && current.header) || state.config?.auth_header || "Authorization";
  }

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function headers(extra) {
    const result = new Headers(extra || {});
    const current = auth();
    if (current && current.token && current.header) {
      // a bare token in Authorization is sent as a bearer token (pipeforge.guards.require_token)
      const bare = current.header.toLowerCase() === "authorization" && !/\s/.test(current.token.trim());
      result.set(current.header, bare ? `Bearer ${current.token.trim()}` : current.token);
    }
    return result;
  }

  async function api(path, options = {}) {
    const init = { method: options.method || "GET", headers: headers(options.headers), credentials: "same-origin" };
    if (options.json !== undefined) {
      // routes that change state take JSON only (docs/security.md)
      init.headers.set("Content-Type", "application/json");
      init.body = JSON.stringify(options.json);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let body = text;
    if ((response.headers.get("content-type") || "").includes("json")) {
      try {
        body = JSON.parse(text);
      } catch (error) {
        body = text;
      }
    }
    if (!response.ok && !(options.allow || []).includes(response.status)) {
      const message = body?.metadata?.error_message || body?.message || `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message, body);
    }
    return { status: response.status, body };
  }

  function problem(target, error, what) {
    const needsToken = error instanceof ApiError && (error.status === 401 || error.status === 403);
    const box = el("div", { class: "error-box", role: "alert" },
      `${what}: ${error.message}`,
      needsToken ? el("span", {}, " — this data is protected; enter a token under “Access token”.") : null);
    fill(target, box);
    if (needsToken) document.getElementById("auth").open = true;
  }

  // -- server-sent events over fetch (EventSource cannot send a token header) ----------------
  function stream(path, onEvent, onState) {
    const controller = new AbortController();
    let stopped = false;
    async function run() {
      let delay = 1000;
      while (!stopped) {
        try {
          const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
          if (!response.ok || !response.body) throw new ApiError(response.status, `${response.status} ${response.statusText}`);
          onState("live");
          delay = 1000;
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value.replace(/\r\n?/g, "\n");
            let cut;
            while ((cut = buffer.indexOf("\n\n")) >= 0) {
              const block = buffer.slice(0, cut);
              buffer = buffer.slice(cut + 2);
              let event = "message";
              const data = [];
              for (const line of block.split("\n")) {
                if (line.startsWith("event:")) event = line.slice(6).trim();
                else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
              }
              if (data.length) onEvent(event, data.join("\n"));
            }
          }
        } catch (error) {
          if (stopped) return;
          onState(error instanceof ApiError ? `error ${error.status}` : "reconnecting");
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 15000);
      }
    }
    run();
    return () => {
      stopped = true;
      controller.abort();
    };
  }

  // -- models panel ---------------------------------------------------------------------------
  const TRAINING_KEYS = new Set(["version", "train_timestamp", "estimator", "params", "fit_seconds", "train_rows", "train_features", "library_versions", "test_timestamp"]);

  function scoreKeys(models) {
    const keys = new Set();
    for (const model of models) for (const key of Object.keys(model)) if (key.startsWith("score_")) keys.add(key);
    const order = ["score_train", "score_test", "score_grid_search"];
    return [...keys].sort((a, b) => {
      const ia = order.indexOf(a) < 0 ? 99 : order.indexOf(a);
      const ib = order.indexOf(b) < 0 ? 99 : order.indexOf(b);
      return ia - ib || a.localeCompare(b);
    });
  }

  function differingParams(models) {
    const keys = new Set();
    for (const model of models) for (const key of Object.keys(model.params || {})) keys.add(key);
    return [...keys].filter((key) => {
      const values = models.map((m) => JSON.stringify((m.params || {})[key]));
      return values.some((v) => v !== values[0]);
    }).sort();
  }

  async function versionAction(kind, version) {
    const route = state.config.routes[kind];
    if (kind === "delete" && !window.confirm(`Delete model version ${version}? This cannot be undone.`)) return;
    try {
      await api(route.path, { method: route.method, json: { model_version: Number(version) } });
      announce(kind === "activate" ? `Model version ${version} is now the active one.` : `Model version ${version} was deleted.`, "ok");
      state.selected.delete(version);
      await Promise.all([refreshModels(true), refreshService()]);
    } catch (error) {
      announce(`Could not ${kind} version ${version}: ${error.message}`, "error");
    }
  }

  function flatten(object, prefix = "") {
    const flat = {};
    for (const [key, value] of Object.entries(object)) {
      if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) {
        Object.assign(flat, flatten(value, `${prefix}${key}.`));
      } else {
        flat[`${prefix}${key}`] = value;
      }
    }
    return flat;
  }

  function compareTable(models, active) {
    const flats = models.map((m) => ({ active: String(m.version) === active, ...flatten(Object.fromEntries(Object.entries(m).filter(([k]) => k !== "version"))) }));
    const keys = [...new Set(flats.flatMap((f) => Object.keys(f)))];
    const first = ["active", "train_timestamp", "estimator", "fit_seconds", "train_rows", "train_features"];
    const rank = (key) => (first.includes(key) ? first.indexOf(key) : key.startsWith("score_") ? 10 : key.startsWith("params.") ? 11 : 12);
    keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const rows = keys.map((key) => {
      const values = flats.map((f) => f[key]);
      const differs = values.some((v) => JSON.stringify(v) !== JSON.stringify(values[0]));
      return { key, values, differs };
    }).filter((row) => !state.onlyDiffs || row.differs);
    const count = rows.filter((r) => r.differs).length;
    return el("div", { class: "table-wrap", id: "compare" },
      el("table", { "aria-describedby": "compare-note" },
        el("caption", { id: "compare-note" }, `Versions ${models.map((m) => m.version).join(", ")} side by side; ${count} differing rows are marked ≠.`),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "key"), models.map((m) => el("th", { scope: "col" }, `version ${m.version}`)))),
        el("tbody", {}, rows.map((row) => el("tr", { class: row.differs ? "differs" : null },
          el("th", { scope: "row" }, row.key),
          row.values.map((v) => el("td", {}, row.key === "active" ? (v ? "yes" : "no") : v === undefined ? "–" : fmtParam(v))))))));
  }

  function scoreChart(models, key, active) {
    const points = models.map((m, i) => ({ i, version: m.version, value: m[key] })).filter((p) => typeof p.value === "number");
    // As wide as the panel (up to 640), so that its labels stay readable on a phone.
    const width = Math.round(Math.max(300, Math.min(640, document.getElementById("models-body").clientWidth || 640)));
    const height = 220;
    const pad = { left: 52, right: 16, top: 14, bottom: 34 };
    if (!points.length) return el("p", { class: "muted" }, `No version has a ${key} yet.`);
    let lo = Math.min(...points.map((p) => p.value));
    let hi = Math.max(...points.map((p) => p.value));
    if (hi - lo < 1e-9) {
      lo -= 0.05;
      hi += 0.05;
    }
    const span = hi - lo;
    lo -= span * 0.08;
    hi += span * 0.08;
    const n = Math.max(models.length - 1, 1);
    const x = (i) => pad.left + (models.length === 1 ? (width - pad.left - pad.right) / 2 : (i / n) * (width - pad.left - pad.right));
    const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * (height - pad.top - pad.bottom);
    const label = points.map((p) => `version ${p.version}: ${fmtNumber(p.value)}`).join("; ");
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${key} across versions: ${label}` });
    for (let t = 0; t <= 4; t += 1) {
      const value = lo + ((hi - lo) * t) / 4;
      chart.append(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }));
      chart.append(svg("text", { x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" }, value.toFixed(3)));
    }
    chart.append(svg("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom }));
    const step = Math.ceil(models.length / Math.max(2, Math.floor(width / 48)));  // labels never overlap
    models.forEach((m, i) => {
      const last = i === models.length - 1 && i % step >= step / 2;
      if (i % step === 0 || last) chart.append(svg("text", { x: x(i), y: height - pad.bottom + 16, "text-anchor": "middle" }, `v${m.version}`));
    });
    chart.append(svg("path", { class: "line", d: points.map((p, k) => `${k ? "L" : "M"}${x(p.i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ") }));
    for (const p of points) {
      const isActive = String(p.version) === active;
      chart.append(svg("circle", { class: isActive ? "dot active" : "dot", cx: x(p.i), cy: y(p.value), r: isActive ? 6 : 4, "data-version": p.version },
        svg("title", {}, `version ${p.version}${isActive ? " (active)" : ""}: ${key} ${fmtNumber(p.value)}`)));
    }
    return chart;
  }

  function renderModels() {
    const target = document.getElementById("models-body");
    const { models, properties } = state.list;
    const active = properties["active-model"] || null;
    const served = state.alive?.model?.metadata?.version;
    if (!models.length) {
      fill(target, el("p", { class: "muted" }, "No models stored yet. Fit one with pf-fit."));
      return;
    }
    const routes = state.config.routes;
    const scores = scoreKeys(models);
    const params = differingParams(models).slice(0, 8);  // the rest: under "parameters" and Compare
    if (!state.chartScore || !scores.includes(state.chartScore)) state.chartScore = scores.includes("score_test") ? "score_test" : scores[0];
    const rows = [...models].reverse().map((m) => {
      const version = m.version;
      const isActive = String(version) === active;
      const extra = Object.entries(m.params || {}).map(([k, v]) => el("div", {}, el("code", {}, `${k}=${fmtParam(v)}`)));
      return el("tr", { class: isActive ? "is-active" : null, "data-version": version },
        el("td", {}, el("input", { type: "checkbox", "aria-label": `select version ${version} to compare`, checked: state.selected.has(version),
          onchange: (event) => {
            if (event.target.checked) state.selected.add(version);
            else state.selected.delete(version);
            document.getElementById("compare-button").disabled = state.selected.size < 2;
          } })),
        el("th", { scope: "row", class: "num" }, String(version)),
        el("td", {}, isActive ? el("span", { class: "badge ok" }, "active") : "",
          String(served) === String(version) ? el("span", { class: "badge", title: "the version the server answering /alive serves" }, " served") : "",
          (m.aliases || []).filter((name) => name !== "active").map((name) => el("span", { class: "badge alias", "data-alias": name }, ` ${name}`))),
        el("td", {}, fmtDate(m.train_timestamp)),
        el("td", { class: "num hide-narrow" }, m.train_rows !== undefined ? `${m.train_rows} × ${m.train_features ?? "?"}` : "–"),
        el("td", { class: "num hide-narrow" }, m.fit_seconds !== undefined ? `${fmtNumber(m.fit_seconds, 3)} s` : "–"),
        scores.map((key) => el("td", { class: "num", "data-score": key }, fmtNumber(m[key]))),
        params.map((key) => el("td", { class: "params", "data-param": key }, el("code", {}, fmtParam((m.params || {})[key])))),
        el("td", { class: "params" }, extra.length ? el("details", {}, el("summary", {}, `${extra.length} parameters`), extra) : "–"),
        el("td", {}, el("div", { class: "actions" },
          routes.activate && !isActive ? el("button", { type: "button", class: "primary", "data-action": "activate", onclick: () => versionAction("activate", version) }, "Activate") : null,
          routes.delete ? el("button", { type: "button", class: "danger", "data-action": "delete", onclick: () => versionAction("delete", version) }, "Delete") : null)));
    });
    const table = el("div", { class: "table-wrap" }, el("table", { id: "versions" },
      el("caption", {}, `${models.length} stored versions, newest first. Active: ${active ?? "none"}.`),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, el("span", { class: "muted" }, "✓")),
        el("th", { scope: "col", class: "num" }, "version"), el("th", { scope: "col" }, "state"),
        el("th", { scope: "col" }, "trained at"), el("th", { scope: "col", class: "num hide-narrow" }, "rows × features"),
        el("th", { scope: "col", class: "num hide-narrow" }, "fit time"),
        scores.map((key) => el("th", { scope: "col", class: "num" }, key)),
        params.map((key) => el("th", { scope: "col" }, key)),
        el("th", { scope: "col" }, "parameters"), el("th", { scope: "col" }, "actions"))),
      el("tbody", {}, rows)));
    const picker = el("select", { id: "score-select", "aria-label": "score to chart", onchange: (event) => {
      state.chartScore = event.target.value;
      document.getElementById("score-chart").replaceChildren(scoreChart(state.list.models, state.chartScore, active));
    } }, scores.map((key) => el("option", { value: key, selected: key === state.chartScore }, key)));
    const toolbar = el("div", { class: "toolbar" },
      el("button", { type: "button", id: "compare-button", disabled: state.selected.size < 2, onclick: () => {
        state.compare = [...state.selected].sort((a, b) => a - b);
        renderModels();
        document.getElementById("compare")?.focus?.();
      } }, "Compare selected"),
      el("label", {}, el("input", { type: "checkbox", checked: state.onlyDiffs, onchange: (event) => {
        state.onlyDiffs = event.target.checked;
        renderModels();
      } }), " only differences"),
      !routes.activate ? el("span", { class: "note" }, "Activate/delete buttons appear when /activate or /delete are enabled in flask_add_url_rules.") : null);
    const compared = (state.compare || []).map((v) => models.find((m) => m.version === v)).filter(Boolean);
    fill(target, 
      scores.length ? el("div", {}, el("div", { class: "toolbar" }, el("label", { for: "score-select" }, "Score across versions "), picker),
        el("div", { id: "score-chart" }, scoreChart(models, state.chartScore, active))) : el("p", { class: "muted" }, "No scores yet: pf-fit -e, pf-test and pf-grid-search --persist-best record them."),
      table, toolbar, compared.length >= 2 ? compareTable(compared, active) : null);
  }

  async function refreshModels(force) {
    const target = document.getElementById("models-body");
    if (!state.config.routes.list) {
      fill(target, el("p", { class: "muted" }, "This service has no /list route."));
      return;
    }
    try {
      const { body } = await api(state.config.routes.list);
      const key = JSON.stringify([body, state.alive?.model?.metadata?.version]);
      state.list = body;
      if (force || key !== state.rendered.models) {
        state.rendered.models = key;
        renderModels();
      }
    } catch (error) {
      state.rendered.models = null;
      problem(target, error, "Cannot read the models");
    }
  }

  // -- pipelines panel ------------------------------------------------------------------------
  function importSvg(text) {
    const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
    const root = parsed.documentElement;
    if (root.nodeName !== "svg") return el("p", { class: "error-box" }, "The picture could not be read.");
    const picture = document.importNode(root, true);
    picture.style.maxWidth = `${picture.getAttribute("width")}px`;
    picture.removeAttribute("height");
    return picture;
  }

  function pipelineCard(d) {
    const status = d.is_loaded ? el("span", { class: "badge ok" }, "loaded") : el("span", { class: "badge warn" }, "not loaded");
    const rows = d.nodes.map((n) => {
      const state = !n.trainable ? "–" : n.is_current === null ? el("span", { class: "badge" }, "not trained") : n.is_current ? el("span", { class: "badge ok" }, "current") : el("span", { class: "badge warn" }, "newer stored");
      const links = Object.entries(n.trained_on || {}).map(([up, v]) => el("div", {}, `${up} `, el("code", { title: v }, shortVersion(v))));
      return el("tr", { "data-node": n.name },
        el("th", { scope: "row" }, n.name), el("td", {}, n.op), el("td", {}, `${n.kind} ${n.runs}`), el("td", {}, n.trainable ? n.mode : "–"),
        el("td", {}, n.version ? el("code", { title: n.version }, shortVersion(n.version)) : "–"),
        el("td", {}, n.trainable && n.current ? el("code", { title: n.current }, shortVersion(n.current)) : "–"),
        el("td", {}, state), el("td", {}, links.length ? links : "–"));
    });
    return el("article", { class: "card", "data-pipeline": d.pipeline },
      el("h3", {}, `${d.pipeline} `, status),
      d.load_error ? el("p", { class: "note" }, d.load_error) : null,
      el("div", { class: "pipeline-grid" },
        el("div", { class: "dag-wrap" }, d.svg ? importSvg(d.svg) : null),
        el("div", { class: "table-wrap" }, el("table", {},
          el("caption", {}, "Op versions: loaded in this server and current in the op store"),
          el("thead", {}, el("tr", {}, ["node", "op", "runs", "mode", "loaded", "current", "state", "trained on"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, rows)))));
  }

  async function refreshPipelines() {
    const target = document.getElementById("pipelines-body");
    const route = state.config.routes.pipelines;
    if (!route) {
      fill(target, el("p", { class: "muted" }, "No pipelines in this service's config (see docs/pipelines.md)."));
      return;
    }
    try {
      const { body: names } = await api(route.available);
      const described = await Promise.all(names.map((name) => api(route.graph.replace("{name}", encodeURIComponent(name))).then((r) => r.body)));
      const key = JSON.stringify(described);
      if (key === state.rendered.pipelines) return;
      state.rendered.pipelines = key;
      fill(target, names.length ? el("div", { class: "stack" }, described.map(pipelineCard)) : el("p", { class: "muted" }, "The config declares no pipelines."));
    } catch (error) {
      state.rendered.pipelines = null;
      problem(target, error, "Cannot read the pipelines");
    }
  }

  // -- online models panel --------------------------------------------------------------------
  function sparkline(values) {
    const width = 120;
    const height = 28;
    const spark = svg("svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true" });
    if (values.length < 2) return spark;
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const scale = hi - lo || 1;
    const d = values.map((v, i) => `${i ? "L" : "M"}${((i / (values.length - 1)) * (width - 2) + 1).toFixed(1)},${(height - 2 - ((v - lo) / scale) * (height - 4)).toFixed(1)}`).join(" ");
    spark.append(svg("path", { d }));
    return spark;
  }

  function remember(model, metrics) {
    const history = (state.online.history[model] ||= {});
    for (const [name, value] of Object.entries(metrics || {})) {
      if (typeof value !== "number") continue;
      const series = (history[name] ||= []);
      if (series[series.length - 1] !== value) series.push(value);
      if (series.length > 60) series.shift();
    }
  }

  function renderOnline(models, metrics, stats) {
    const target = document.getElementById("online-body");
    const info = models.info || {};
    const cards = models.models.map((name) => {
      const values = metrics[name] || {};
      const history = state.online.history[name] || {};
      const details = info[name] || {};
      return el("article", { class: "card", "data-model": name },
        el("h3", {}, `${name} `, name === models.default ? el("span", { class: "badge" }, "default") : null),
        el("dl", { class: "figures" },
          el("div", {}, el("dt", {}, "flavor"), el("dd", {}, details.flavor ?? "–")),
          el("div", {}, el("dt", {}, "samples learnt"), el("dd", { "data-figure": "n_learnt" }, fmtNumber(details.n_learnt))),
          el("div", {}, el("dt", {}, "predictions scored"), el("dd", { "data-figure": "n_scored" }, fmtNumber(details.n_scored)))),
        Object.keys(values).length ? el("div", { class: "table-wrap" }, el("table", {},
          el("caption", {}, "Progressive validation metrics"),
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "metric"), el("th", { scope: "col", class: "num" }, "value"), el("th", { scope: "col", class: "hide-narrow" }, "trend"))),
          el("tbody", {}, Object.entries(values).map(([metric, value]) => el("tr", { "data-metric": metric },
            el("th", { scope: "row" }, metric), el("td", { class: "num" }, fmtNumber(value)), el("td", { class: "hide-narrow" }, sparkline(history[metric] || []))))))) : el("p", { class: "muted" }, "No metrics yet: predict with an id, then learn its ground truth."));
    });
    const statRows = Object.entries(stats || {}).map(([endpoint, s]) => el("tr", { "data-endpoint": endpoint },
      el("th", { scope: "row" }, endpoint), el("td", { class: "num", "data-stat": "n_calls" }, fmtNumber(s.n_calls)),
      el("td", { class: "num" }, s.mean_duration_human ?? fmtNumber(s.mean_duration)), el("td", { class: "num" }, s.ewm_duration_human ?? fmtNumber(s.ewm_duration))));
    const events = state.online.events.map((e) => el("li", {}, `${e.time} ${e.kind} · ${e.model ?? ""} · `, el("code", {}, e.text)));
    const live = Object.entries(state.online.streams).map(([name, s]) => el("span", { class: s === "live" ? "badge ok" : "badge warn" }, `${name}: ${s}`));
    fill(target, 
      el("div", { class: "toolbar" }, el("span", {}, "Streams "), live),
      models.models.length ? el("div", { class: "cards" }, cards) : el("p", { class: "muted" }, "No online models yet (declare them under online_models, or upload one)."),
      el("h3", {}, "Request statistics"),
      el("div", { class: "table-wrap" }, el("table", { id: "online-stats" },
        el("thead", {}, el("tr", {}, ["endpoint", "calls", "mean duration", "recent (ewm)"].map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
        el("tbody", {}, statRows))),
      el("h3", {}, "Latest events"),
      events.length ? el("ul", { class: "events", "aria-live": "off" }, events) : el("p", { class: "muted" }, "Events appear here as predict and learn calls arrive."));
  }

  async function refreshOnline() {
    const target = document.getElementById("online-body");
    const routes = state.config.routes.online;
    if (!routes) {
      fill(target, el("p", { class: "muted" }, "Online learning is not enabled in this service's config (see docs/online-learning.md)."));
      return;
    }
    try {
      const { body: models } = await api(routes.models);
      const metrics = {};
      await Promise.all(models.models.map(async (name) => {
        const { body } = await api(`${routes.metrics}?model=${encodeURIComponent(name)}`, { allow: [400, 404] });
        metrics[name] = body && typeof body === "object" && !body.metadata ? body : {};
        remember(name, metrics[name]);
      }));
      const stats = routes.stats ? (await api(routes.stats, { allow: [400] })).body : {};
      const key = JSON.stringify([models, metrics, stats, state.online.events.length, state.online.streams]);
      if (key !== state.rendered.online) {
        state.rendered.online = key;
        renderOnline(models, metrics, stats.metadata ? {} : stats);
      }
      startStreams(routes);
    } catch (error) {
      state.rendered.online = null;
      problem(target, error, "Cannot read the online models");
    }
  }

  function soon() {
    // Events may arrive hundreds a second: refresh at most once a second, and soon after one.
    if (state.online.timer) return;
    state.online.timer = setTimeout(() => {
      state.online.timer = null;
      refreshOnline();
    }, 1000);
  }

  function brief(value) {
    // A prediction or ground truth in a few characters: numbers rounded, probabilities too.
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(3);
    if (value && typeof value === "object") {
      return `{${Object.entries(value).map(([k, v]) => `${k}: ${brief(v)}`).join(", ")}}`;
    }
    return JSON.stringify(value);
  }

  function startStreams(routes) {
    const streams = state.online.streams;
    const setState = (name) => (value) => {
      if (streams[name] !== value) {
        streams[name] = value;
        soon();
      }
    };
    if (routes.stream_metrics && !state.online.stopMetrics) {
      streams.metrics = "connecting";
      state.online.stopMetrics = stream(routes.stream_metrics, (event, data) => {
        try {
          const message = JSON.parse(data);
          if (message && message.model && message.metrics) remember(message.model, message.metrics);
        } catch (error) {
          return;
        }
        soon();
      }, setState("metrics"));
    }
    if (routes.stream_events && !state.online.stopEvents) {
      streams.events = "connecting";
      state.online.stopEvents = stream(routes.stream_events, (event, data) => {
        let message = {};
        try {
          message = JSON.parse(data);
        } catch (error) {
          message = {};
        }
        const text = event === "learn" ? `truth ${brief(message.ground_truth)}, predicted ${brief(message.prediction)}` : `predicted ${brief(message.prediction)}`;
        state.online.events.unshift({ time: new Date().toLocaleTimeString("en-GB"), kind: event, model: message.model, text });
        state.online.events.length = Math.min(state.online.events.length, 25);
        soon();
      }, setState("events"));
    }
  }

  // -- service panel --------------------------------------------------------------------------
  function parsePrometheus(text) {
    const samples = [];
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const match = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
      if (!match) continue;
      const labels = {};
      for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2].replace(/\\(.)/g, "$1");
      samples.push({ name: match[1], labels, value: Number(match[4]) });
    }
    return samples;
  }

  function requestRates() {
    const latest = state.scrapes[state.scrapes.length - 1];
    const previous = state.scrapes.length > 1 ? state.scrapes[state.scrapes.length - 2] : null;
    if (!latest) return [];
    const routes = {};
    for (const s of latest.samples.filter((x) => x.name === "pipeforge_requests_total")) {
      const key = `${s.labels.method} ${s.labels.route}`;
      const row = (routes[key] ||= { route: s.labels.route, method: s.labels.method, total: 0, errors: 0, before: 0 });
      row.total += s.value;
      if (/^[45]/.test(s.labels.status || "")) row.errors += s.value;
    }
    if (previous) {
      for (const s of previous.samples.filter((x) => x.name === "pipeforge_requests_total")) {
        const row = routes[`${s.labels.method} ${s.labels.route}`];
        if (row) row.before += s.value;
      }
    }
    const seconds = previous ? (latest.at - previous.at) / 1000 : 0;
    return Object.values(routes).map((r) => ({ ...r, rate: previous && seconds > 0 ? Math.max(0, r.total - r.before) / seconds : null }))
      .sort((a, b) => (b.rate ?? 0) - (a.rate ?? 0) || b.total - a.total);
  }

  function renderService() {
    const target = document.getElementById("service-body");
    const alive = state.alive || {};
    const meta = alive.model?.metadata || null;
    const trained = meta?.train_timestamp ? new Date(meta.train_timestamp) : null;
    const age = trained ? (Date.now() - trained.getTime()) / 1000 : null;
    const jobs = Object.entries(alive.process_metadata?.jobs || {});
    const rates = requestRates();
    const total = rates.reduce((sum, r) => sum + (r.rate || 0), 0);
    fill(target, 
      alive.metadata?.status === "ERROR" ? el("p", { class: "error-box", role: "alert" }, alive.metadata.error_message) : null,
      el("dl", { class: "figures" },
        el("div", {}, el("dt", {}, "served model"), el("dd", { id: "served-version" }, meta ? `version ${meta.version}` : "none")),
        el("div", {}, el("dt", {}, "model age"), el("dd", { id: "model-age", "data-trained": meta?.train_timestamp || "" }, fmtAge(age))),
        el("div", {}, el("dt", {}, "loaded into this server"), el("dd", {}, alive.model?.updated ? fmtDate(alive.model.updated) : "–")),
        el("div", {}, el("dt", {}, "memory"), el("dd", {}, alive.memory_usage !== undefined ? `${alive.memory_usage} MB` : "–")),
        el("div", {}, el("dt", {}, "pipeforge"), el("dd", {}, alive.pipeforge_version || state.config.pipeforge_version)),
        el("div", {}, el("dt", {}, "requests / s"), el("dd", { id: "request-rate" }, state.config.routes.metrics ? (state.scrapes.length > 1 ? total.toFixed(2) : "…") : "–"))),
      el("h3", {}, "Requests by route"),
      !state.config.routes.metrics ? el("p", { class: "muted" }, "Prometheus metrics (/metrics) are off in this service's config.")
        : rates.length ? el("div", { class: "table-wrap" }, el("table", { id: "request-rates" },
          el("caption", {}, "From /metrics, summed over the server's workers; rates between the last two scrapes"),
          el("thead", {}, el("tr", {}, ["route", "method", "req/s", "total", "4xx/5xx"].map((h, i) => el("th", { scope: "col", class: i > 1 ? "num" : null }, h)))),
          el("tbody", {}, rates.map((r) => el("tr", {}, el("td", {}, el("code", {}, r.route)), el("td", {}, r.method),
            el("td", { class: "num" }, r.rate === null ? "…" : r.rate.toFixed(2)), el("td", { class: "num" }, fmtNumber(r.total)), el("td", { class: "num" }, fmtNumber(r.errors)))))))
          : el("p", { class: "muted" }, "No requests counted yet."),
      el("h3", {}, "Background jobs"),
      jobs.length ? el("div", { class: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, ["job", "what", "status", "submitted", "finished"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, jobs.map(([id, job]) => el("tr", {}, el("td", {}, el("code", {}, id.slice(0, 8))), el("td", {}, job.func), el("td", {}, job.status),
          el("td", {}, fmtDate(job.submitted)), el("td", {}, fmtDate(job.finished)))))))
        : el("p", { class: "muted" }, "No background jobs in this server process."));
  }

  async function refreshService() {
    const target = document.getElementById("service-body");
    const routes = state.config.routes;
    try {
      if (routes.alive) {
        const { body } = await api(routes.alive, { allow: [503] });
        state.alive = body;
      }
      if (routes.metrics) {
        const { body } = await api(routes.metrics);
        state.scrapes.push({ at: Date.now(), samples: parsePrometheus(String(body)) });
        state.scrapes = state.scrapes.slice(-2);
      }
      renderService();
    } catch (error) {
      problem(target, error, "Cannot read the service's state");
    }
  }

  function tick() {
    const age = document.getElementById("model-age");
    if (age && age.dataset.trained) age.textContent = fmtAge((Date.now() - new Date(age.dataset.trained).getTime()) / 1000);
  }

  // -- start ------------------------------------------------------------------------------------
  async function refreshAll(round) {
    if (document.hidden && round > 0) return;
    await refreshService();
    await refreshModels(false);
    for (const panel of shared.panels) await panel.refresh(round);
    if (round % 3 === 0) await refreshPipelines();
    if (round % 3 === 0 || !state.online.stopMetrics) await refreshOnline();
  }

  // What the panels in their own files (release.js) use: they register in `panels`.
  const shared = { el, svg, fill, api, announce, problem, fmtNumber, fmtDate, state, panels: [], refreshModels, refreshService };
  window.pipeforgeDashboard = shared;

  async function start() {
    document.getElementById("auth-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const header = document.getElementById("auth-header").value.trim();
      const token = document.getElementById("auth-token").value;
      sessionStorage.setItem(AUTH_KEY, JSON.stringify({ header, token }));
      document.getElementById("auth-token").value = "";
      document.getElementById("auth").open = false;
      showAuthState();
      announce("Token set for this tab; reloading the data.", "ok");
      location.reload();
    });
    document.getElementById("auth-forget").addEventListener("click", () => {
      sessionStorage.removeItem(AUTH_KEY);
      showAuthState();
      announce("Token forgotten.", "ok");
    });
    try {
      state.config = (await api(`${BASE}/config.json`)).body;
    } catch (error) {
      showAuthState();
      announce(`Cannot read the dashboard's configuration: ${error.message}`, "error");
      for (const body of document.querySelectorAll(".panel-body")) problem(body, error, "Not available");
      return;
    }
    showAuthState();
    const meta = state.config.service_metadata || {};
    document.getElementById("service-name").textContent = meta.service_name ? `· ${meta.service_name}` : "";
    document.getElementById("service-sub").textContent = [meta.service_version ? `version ${meta.service_version}` : null, `pipeforge ${state.config.pipeforge_version}`].filter(Boolean).join(" · ");
    let round = 0;
    await refreshAll(round);
    document.body.dataset.ready = "true";
    setInterval(() => {
      round += 1;
      refreshAll(round);
    }, state.config.refresh_seconds * 1000);
    setInterval(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
