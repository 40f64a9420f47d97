// The operations view: GET /v1/ops/summary drawn as model cards, training curves (inline SVG),
// request latency and fallback rate, and feature freshness.
import { $, ago, api, duration, el, fmt, showMessage, status } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

export async function loadOps() {
  showMessage("ops-message", "");
  status("Loading the operations view…");
  try {
    const { data } = await api("v1/ops/summary");
    renderModels(data.models, data.models_error);
    renderCurves(data.models);
    renderServing(data.serving);
    renderFeatures(data.features, data.features_error);
    $("tensorboard").textContent = data.tensorboard;
    status("Operations view loaded.");
  } catch (error) {
    showMessage("ops-message", `Operations view not loaded — ${error.message}`);
    status(`Failed: ${error.message}`);
    for (const id of ["models", "curves", "serving", "features"]) {
      $(id).replaceChildren(el("p", { class: "hint" }, "Not available (see the message above)."));
    }
  }
}

function table(caption, head, rows) {
  return el("table", {},
    el("caption", { class: "visually-hidden" }, caption),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((row) => el("tr", {},
      ...row.map((cell, i) => (i ? el("td", {}, cell) : el("th", { scope: "row" }, cell)))))));
}

function facts(pairs) {
  return el("dl", { class: "facts" },
    ...pairs.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
}

function renderModels(report, error) {
  const box = $("models");
  if (!report) {
    box.replaceChildren(el("p", { class: "message error" }, `Models not read: ${error}`));
    return;
  }
  const cards = report.models.map((m) => {
    const metrics = Object.entries(m.metrics).filter(([k]) => k.endsWith("@10"));
    const baselines = Object.entries(m.baselines).map(([name, values]) =>
      `${name}: ${Object.entries(values).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}`);
    return el("article", { class: `model ${m.role}` },
      el("h4", {}, el("span", { class: `tag ${m.role}` }, m.role), " ", el("code", {}, m.version)),
      facts([
        ["Loaded", ago(m.loaded_at)],
        ["Trained", m.trained_at ? ago(m.trained_at) : "unknown (no training record)"],
        ["Tracks", m.items.toLocaleString()],
        ["Registry version", m.registered_version ?? "not registered"],
        ["Unknown seeds read from text", m.text_seeds ? "yes" : "no"],
        ...(m.decision ? [["Retraining decision", m.decision]] : []),
        ...(baselines.length ? [["Baselines", baselines.join("; ")]] : []),
      ]),
      metrics.length
        ? table(`Offline metrics of ${m.version}`, [`Offline (${m.protocol || "test"})`, "value"],
          metrics.map(([k, v]) => [k, fmt(v)]))
        : el("p", { class: "hint" }, "No offline metrics recorded for this model."));
  });
  const share = report.canary_share ? ` · canary share ${Math.round(report.canary_share * 100)}%` : "";
  const aliases = Object.entries(report.aliases).map(([a, v]) => `${a} → v${v}`).join(", ");
  const parts = [
    ...(cards.length ? cards : [el("p", { class: "message error" }, "No model loaded: serving popularity.")]),
    el("p", { class: "hint" }, `Registry aliases: ${aliases || "none (no registry)"}${share}`),
  ];
  if (report.last_error) {
    parts.push(el("p", { class: "message error" }, `Last reload error: ${report.last_error}`));
  }
  box.replaceChildren(...parts);
}

function renderCurves(report) {
  const box = $("curves");
  const model = report && report.models.find((m) => m.role === "production");
  const curve = model ? model.curve : [];
  if (!curve.length) {
    box.replaceChildren(el("p", { class: "hint" },
      "No training curve recorded for this model (see TensorBoard for logged runs)."));
    return;
  }
  const series = ["loss", "valid_ndcg@10", "valid_recall@10"]
    .filter((k) => curve.some((row) => row[k] !== null && row[k] !== undefined));
  box.replaceChildren(...series.map((name) => chart(name, curve)));
}

/** A line chart of one metric per epoch, with its range labelled and a text alternative. */
function chart(name, curve) {
  const points = curve.filter((row) => row[name] !== null && row[name] !== undefined)
    .map((row) => [row.epoch, row[name]]);
  const W = 300, H = 150, L = 44, R = 10, T = 12, B = 26;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const px = (x) => L + (x1 === x0 ? (W - L - R) / 2 : ((x - x0) / (x1 - x0)) * (W - L - R));
  const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const node = (tag, attrs, text) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const first = points[0], last = points[points.length - 1];
  const label = `${name} per epoch: ${fmt(first[1])} at epoch ${first[0]}, ${fmt(last[1])} at epoch ${last[0]}`;
  const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "chart" });
  svg.append(node("title", {}, label));
  svg.append(node("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  svg.append(node("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  svg.append(node("text", { x: L - 4, y: T + 4, class: "tick end" }, fmt(y1)));
  svg.append(node("text", { x: L - 4, y: H - B, class: "tick end" }, fmt(y0)));
  svg.append(node("text", { x: L, y: H - 8, class: "tick" }, `epoch ${x0}`));
  svg.append(node("text", { x: W - R, y: H - 8, class: "tick end" }, `${x1}`));
  svg.append(node("polyline", {
    points: points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" "),
    class: `line ${name === "loss" ? "loss" : "metric"}`,
  }));
  for (const [x, y] of points) svg.append(node("circle", { cx: px(x), cy: py(y), r: 2.5, class: "dot" }));
  return el("figure", { class: "curve" }, svg, el("figcaption", {}, name.replace("_", " ")));
}

function renderServing(serving) {
  const rate = serving.fallback_rate === null ? "no recommendations yet"
    : `${(serving.fallback_rate * 100).toFixed(1)}% (${serving.fallbacks} of ${serving.recommendations})`;
  const ms = (v) => (v === null ? "–" : v.toFixed(1));
  const breakable = (route) => route.replaceAll("/", "/\u200b"); // may wrap after a slash
  $("serving").replaceChildren(
    facts([["Fallback rate", rate], ["Model of the latest answer", serving.model_version || "none yet"]]),
    table("Request latency by route (milliseconds)",
      ["route", "requests", "p50 ms", "p95 ms", "p99 ms"],
      serving.routes.map((r) => [
        breakable(r.route), String(r.requests), ms(r.p50_ms), ms(r.p95_ms), ms(r.p99_ms)])),
    el("p", { class: "hint" }, "From the Prometheus histograms at /metrics, since this process started."));
}

function renderFeatures(features, error) {
  if (!features) {
    $("features").replaceChildren(el("p", { class: "message error" }, `Freshness not read: ${error}`));
    return;
  }
  const lag = features.batch_lag_seconds;
  $("features").replaceChildren(facts([
    ["Online store", features.online_store],
    ["Batch features up to", ago(features.batch_as_of)],
    ["Batch job finished", ago(features.batch_finished_at)],
    ["Newest event", ago(features.newest_event_at)],
    ["Batch behind newest event", lag === null ? "–" : lag <= 0 ? "no (up to date)" : duration(lag)],
    ["Last feedback stored (pushed online)", ago(features.last_event_received_at)],
  ]));
}
