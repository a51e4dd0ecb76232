/* pipeforge dashboard: the Release panel. Plain JavaScript, no libraries, no build step.
 *
 * Reads GET /release (aliases, traffic, live scores over time, drift) and shows
 * each alias side by side: its version and tags, its share of each service's
 * traffic, its stored and live scores, the drift of its inputs; above them the
 * live score of each aliased version over time. The Promote button moves the
 * alias "champion" with POST /alias {"alias": "champion", "promote": <alias>},
 * through that route's decorators; it is there only when the route is enabled.
 * It uses the helpers dashboard.js shares as window.pipeforgeDashboard.
 */
"use strict";

(() => {
  const pf = window.pipeforgeDashboard;
  if (!pf) return;
  const { el, svg, fill, api, announce, problem, fmtNumber, state } = pf;
  const TARGET = "champion";  // the alias Promote moves, as pf-admin promote does by default
  const mine = { body: null, rendered: null };

  function ordered(aliases) {
    // "active" gets a card of its own only when no other alias names its version
    const shared = (name) => name === "active" && Object.entries(aliases).some(([other, v]) => other !== name && v === aliases[name]);
    const rank = (name) => (name === TARGET ? 0 : name === "challenger" ? 1 : name === "active" ? 3 : 2);
    return Object.keys(aliases).filter((name) => !shared(name)).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  }

  function percent(share) {
    return `${Math.round(share * 1000) / 10} %`;  // 0.3 -> "30 %", 0.125 -> "12.5 %"
  }

  function trafficOf(name, services) {
    const parts = [];
    for (const s of services) {
      if (s.shares[name] !== undefined) parts.push(`${percent(s.shares[name])} of ${s.service}`);
      if (s.shadow && s.shadow.alias === name) parts.push(`shadows ${percent(s.shadow.fraction)} of ${s.service}`);
    }
    return parts.length ? parts.join("; ") : "no traffic";
  }

  function timeLabel(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString("en-GB");
  }

  function chart(lines, names) {
    const points = lines.flatMap((line) => line.points);
    if (!points.length) return el("p", { class: "muted" }, "No live scores yet: log predictions (prediction_log) and post their ground truth to /feedback.");
    const width = Math.round(Math.max(300, Math.min(760, document.getElementById("release-body").clientWidth || 640)));
    const height = 220;
    const pad = { left: 52, right: 16, top: 14, bottom: 34 };
    const t0 = Math.min(...points.map((p) => p.time));
    const t1 = Math.max(...points.map((p) => p.time));
    let lo = Math.min(...points.map((p) => p.score));
    let hi = Math.max(...points.map((p) => p.score));
    if (hi - lo < 1e-9) {
      lo -= 0.05;
      hi += 0.05;
    }
    const x = (t) => pad.left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * (height - pad.top - pad.bottom);
    const said = lines.map((line) => {
      const last = line.points[line.points.length - 1];
      return `version ${line.version}${names[line.version] ? ` (${names[line.version]})` : ""}: ${line.metric} ${fmtNumber(last.score)} over ${last.n} feedbacks`;
    });
    const picture = svg("svg", { class: "chart", id: "release-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Live score over time. ${said.join("; ")}` });
    for (let k = 0; k <= 4; k += 1) {
      const value = lo + ((hi - lo) * k) / 4;
      picture.append(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }));
      picture.append(svg("text", { x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" }, value.toFixed(3)));
    }
    picture.append(svg("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom }));
    picture.append(svg("text", { x: pad.left, y: height - pad.bottom + 16, "text-anchor": "start" }, timeLabel(t0)));
    if (t1 > t0) picture.append(svg("text", { x: width - pad.right, y: height - pad.bottom + 16, "text-anchor": "end" }, timeLabel(t1)));
    lines.forEach((line, i) => {
      const tone = `s${i % 4}`;
      const d = line.points.map((p, k) => `${k ? "L" : "M"}${x(p.time).toFixed(1)},${y(p.score).toFixed(1)}`).join(" ");
      picture.append(svg("path", { class: `line ${tone}`, d, "data-version": line.version }));
      const last = line.points[line.points.length - 1];
      picture.append(svg("circle", { class: `dot ${tone}`, cx: x(last.time), cy: y(last.score), r: 4, "data-version": line.version, "data-score": last.score, "data-n": last.n },
        svg("title", {}, said[i])));
    });
    const legend = el("ul", { class: "legend" }, lines.map((line, i) => el("li", { "data-version": line.version },
      el("span", { class: `swatch s${i % 4}`, "aria-hidden": "true" }), said[i])));
    return el("div", {}, picture, legend);
  }

  function scoresTable(version, row, body) {
    const stored = Object.entries(row?.scores || {});
    const own = body.version_scores.find((s) => s.version === version);
    const arms = body.live_scores.filter((s) => s.version === version);
    const rows = [
      ...stored.map(([key, value]) => el("tr", { "data-score": key }, el("th", { scope: "row" }, `${key} (stored)`), el("td", { class: "num" }, fmtNumber(value)), el("td", { class: "num" }, "–"))),
      own ? el("tr", { "data-live": "version" }, el("th", { scope: "row" }, `live ${own.metric}, every answer`), el("td", { class: "num" }, fmtNumber(own.score)), el("td", { class: "num" }, fmtNumber(own.n))) : null,
      ...arms.map((s) => el("tr", { "data-live": "arm", "data-role": s.role },
        el("th", { scope: "row" }, `live ${s.metric}, ${s.role} via ${s.alias ?? "active"} on ${s.service}`), el("td", { class: "num" }, fmtNumber(s.score)), el("td", { class: "num" }, fmtNumber(s.n)))),
    ].filter(Boolean);
    if (!rows.length) return el("p", { class: "muted" }, "No stored or live scores for this version yet.");
    return el("div", { class: "table-wrap" }, el("table", { class: "release-scores" },
      el("caption", {}, "Stored test scores next to live scores"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "score"), el("th", { scope: "col", class: "num" }, "value"), el("th", { scope: "col", class: "num" }, "feedbacks"))),
      el("tbody", {}, rows)));
  }

  function driftTables(version, drift) {
    if (!drift) return el("p", { class: "note" }, "Drift is not watched here (no drift entry in the config).");
    const found = (drift.versions || []).filter((v) => v.version === version);
    if (!found.length) return el("p", { class: "note" }, "No logged inputs of this version to compare yet.");
    return found.map((v) => el("div", { class: "drift", "data-service": v.service },
      el("h4", {}, `Drift on ${v.service} `, v.note ? el("span", { class: "badge" }, "no verdict") : el("span", { class: v.drifted ? "badge bad" : "badge ok" }, v.drifted ? "drifted" : "no drift")),
      v.note ? el("p", { class: "note" }, v.note) : el("div", { class: "table-wrap" }, el("table", { class: "release-drift" },
        el("caption", {}, `${fmtNumber(v.rows)} logged samples; PSI above ${drift.threshold} or more than ${percent(drift.max_outside)} outside the training range is drift`),
        el("thead", {}, el("tr", {}, ["feature", "PSI", "outside range"].map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
        el("tbody", {}, v.features.map((f) => el("tr", { "data-feature": f.name, class: f.drifted ? "drifted" : null },
          el("th", { scope: "row" }, f.drifted ? `⚠ ${f.name}` : f.name),
          el("td", { class: "num", "data-psi": f.psi ?? "" }, f.psi === null ? "–" : f.psi.toFixed(3)),
          el("td", { class: "num" }, f.outside === null ? "–" : percent(f.outside)))))))));
  }

  async function promote(name, version, form) {
    const route = state.config.routes.move_alias;
    const least = form.elements.min_feedback.value.trim();
    const margin = form.elements.margin.value.trim();
    const evidence = least || margin ? ` if its live score ${margin ? `beats ${TARGET}'s by ${margin}` : "is known"}${least ? ` over at least ${least} feedbacks` : ""}` : "";
    if (!window.confirm(`Move ${TARGET} to version ${version} (${name})${evidence}?`)) return;
    const body = { alias: TARGET, promote: name };
    if (least) body.min_feedback = Number(least);
    if (margin) body.margin = Number(margin);
    try {
      const { body: answer } = await api(route.path, { method: route.method, json: body });
      announce(`${TARGET} now names version ${answer.model_version} (was ${answer.previous ?? "none"}): ${answer.reason}.`, "ok");
      await Promise.all([refresh(0, true), pf.refreshModels(true)]);
    } catch (error) {
      announce(`Not promoted: ${error.message}`, "error");
    }
  }

  function promoteForm(name, version, aliases) {
    const route = state.config.routes.move_alias;
    if (!route || name === TARGET || name === "active" || aliases[TARGET] === version) return null;
    const id = `promote-${name}`;
    const form = el("form", { class: "promote", "data-alias": name, "aria-label": `Promote ${name} to ${TARGET}` },
      el("label", { for: `${id}-n` }, "min feedback"), el("input", { id: `${id}-n`, name: "min_feedback", type: "number", min: "0", step: "1", inputmode: "numeric", placeholder: "none" }),
      el("label", { for: `${id}-m` }, "margin"), el("input", { id: `${id}-m`, name: "margin", type: "number", min: "0", step: "any", placeholder: "none" }),
      el("button", { type: "submit", class: "primary", "data-action": "promote" }, `Promote to ${TARGET}`));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      promote(name, version, form);
    });
    return form;
  }

  function card(name, body) {
    const version = body.aliases[name];
    const row = body.versions.find((v) => v.version === version);
    const own = body.version_scores.find((s) => s.version === version);
    const tags = Object.entries(row?.tags || {});
    return el("article", { class: "card release-card", "data-alias": name, "data-version": version },
      el("h3", {}, `${name} `, el("span", { class: "badge" }, `version ${version}`),
        name !== "active" && body.aliases.active === version ? el("span", { class: "badge ok", "data-active": "" }, "active") : null),
      el("dl", { class: "figures" },
        el("div", {}, el("dt", {}, "version"), el("dd", { "data-figure": "version" }, String(version))),
        el("div", {}, el("dt", {}, "live score"), el("dd", { "data-figure": "live-score" }, own ? `${own.metric} ${fmtNumber(own.score)}` : "–")),
        el("div", {}, el("dt", {}, "feedbacks"), el("dd", { "data-figure": "feedback" }, own ? fmtNumber(own.n) : "0")),
        el("div", { class: "wide" }, el("dt", {}, "traffic"), el("dd", { "data-figure": "traffic" }, trafficOf(name, body.services)))),
      tags.length ? el("p", { class: "tags" }, "tags ", tags.map(([k, v]) => el("code", { "data-tag": k }, `${k}=${v}`))) : null,
      scoresTable(version, row, body),
      driftTables(version, body.drift),
      promoteForm(name, version, body.aliases));
  }

  function servicesTable(services) {
    return el("div", { class: "table-wrap" }, el("table", { id: "release-services" },
      el("caption", {}, "Who answers each predict service (a stored split wins over the config's)"),
      el("thead", {}, el("tr", {}, ["service", "answered by", "split", "shadow", "prediction log"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, services.map((s) => el("tr", { "data-service": s.service },
        el("th", { scope: "row" }, el("code", {}, s.service)),
        el("td", { "data-shares": "" }, Object.entries(s.shares).map(([a, share]) => `${a} ${percent(share)}`).join(", ") || "no alias has a version"),
        el("td", {}, s.traffic ? `${Object.entries(s.traffic).map(([a, w]) => `${a}=${w}`).join(" ")} (${s.stored ? "stored" : "config"})` : s.model_alias ? `serves ${s.model_alias}` : "–"),
        el("td", {}, s.shadow ? `${s.shadow.alias}, ${percent(s.shadow.fraction)}` : "–"),
        el("td", {}, s.logged ? "on" : "off"))))));
  }

  function render(body) {
    const target = document.getElementById("release-body");
    const names = ordered(body.aliases);
    const byVersion = {};
    for (const name of ordered(body.aliases).concat(names.includes("active") ? [] : ["active"])) {
      if (body.aliases[name] !== undefined) (byVersion[body.aliases[name]] ||= []).push(name);
    }
    const labels = Object.fromEntries(Object.entries(byVersion).map(([v, list]) => [v, list.join(", ")]));
    const lines = body.timeline.filter((line) => line.points.length && byVersion[line.version]);
    fill(target,
      names.length ? null : el("p", { class: "muted" }, "No aliases yet: name versions with pf-admin alias champion VERSION."),
      servicesTable(body.services),
      el("h3", {}, "Live score over time"),
      el("div", { id: "release-timeline" }, chart(lines, labels)),
      names.length ? el("div", { class: "cards release-cards" }, names.map((name) => card(name, body))) : null,
      state.config.routes.move_alias ? null : el("p", { class: "note" }, "The Promote button appears when /alias is enabled in flask_add_url_rules (docs/releasing.md)."));
  }

  async function refresh(round, force) {
    const target = document.getElementById("release-body");
    const route = state.config.routes.release;
    if (!route) {
      fill(target, el("p", { class: "muted" }, "This service has no /release route (it has no model store)."));
      return;
    }
    try {
      const { body } = await api(route);
      const key = JSON.stringify({ ...body, metadata: null });
      mine.body = body;
      const typing = document.activeElement?.closest?.("#release-body form.promote");
      if (force || (key !== mine.rendered && !typing)) {  // never under the user's fingers
        mine.rendered = key;
        render(body);
      }
    } catch (error) {
      mine.rendered = null;
      problem(target, error, "Cannot read the release");
    }
  }

  pf.panels.push({ refresh: (round) => refresh(round, false) });
})();
