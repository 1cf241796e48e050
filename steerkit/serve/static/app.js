// The live comparison page of `steerkit serve`: one unsteered column and any number of steered
// columns, each streamed from POST /v1/chat/completions with its own `steering` list, a word diff
// of each steered answer against the baseline, and panels drawn from /api/vectors and
// /api/vectors/geometry. Plain DOM; model output is only ever set through textContent.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const POSITIONS = ["response", "all", "prompt", "last", "first"];
const METHOD_LABELS = {vector: "contrastive vector", adapter: "trained", sae_feature: "SAE feature"};
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

const state = {model: null, nLayers: 0, vectors: [], adapters: [], columns: []};

// ---------- small DOM helpers ----------

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);  // strings become text nodes
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(errorMessage(body, response.status));
  return body;
}

// The one-line message of an OpenAI-style error body, or of FastAPI's validation details.
function errorMessage(body, status) {
  if (body && body.error && body.error.message) return body.error.message;
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; ");
  return (body && body.detail) || `HTTP ${status}`;
}

// ---------- streaming ----------

// Yield the parsed JSON payload of every `data:` event of a server-sent-event response body,
// stopping at `data: [DONE]`.
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), {stream: !done});
    buffer = buffer.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
    if (done) return;
  }
}

// Stream one chat completion into `column`; resolves with the full answer text.
async function streamColumn(column, prompt, settings) {
  column.answer.textContent = "";
  column.node.dataset.state = "streaming";
  const request = {
    model: state.model, stream: true, messages: [{role: "user", content: prompt}],
    max_tokens: settings.maxTokens, temperature: settings.temperature, seed: 0,
  };
  const steering = column.steering();
  if (steering.length) request.steering = steering;
  try {
    const response = await fetch("v1/chat/completions", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(request),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new Error(errorMessage(body, response.status));
    }
    for await (const chunk of sseEvents(response.body)) {
      if (chunk.error) throw new Error(errorMessage(chunk, 500));
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) column.answer.textContent += delta.content;
    }
    column.node.dataset.state = "done";
  } catch (error) {
    column.answer.textContent = `error: ${error.message}`;
    column.node.dataset.state = "error";
  }
  return column.answer.textContent;
}

// ---------- columns ----------

function newColumn(title) {
  const node = document.getElementById("column-template").content.firstElementChild.cloneNode(true);
  node.querySelector(".column-title").textContent = title;
  node.dataset.state = "idle";
  document.getElementById("columns").append(node);
  return {
    node, answer: node.querySelector(".answer"), controls: node.querySelector(".controls"),
    diff: node.querySelector(".diff"), diffText: node.querySelector(".diff-text"), steering: () => [],
  };
}

function labelled(text, control) {
  return el("label", {}, [text, " ", control]);
}

function methodsAvailable() {
  const methods = [...new Set(state.vectors.map((v) => v.kind))];
  if (state.adapters.length) methods.push("adapter");
  return methods;
}

// A steered column: method, vector or adapter, layer (recommended layers marked), strength, positions.
function addSteeredColumn(index) {
  const column = newColumn(`steered ${index}`);
  column.node.classList.add("steered");
  const method = el("select", {class: "method"});
  for (const kind of methodsAvailable()) method.append(el("option", {value: kind}, [METHOD_LABELS[kind] || kind]));
  const name = el("select", {class: "vector"});
  const layer = el("select", {class: "layer"});
  const strength = el("input", {class: "strength", type: "range", min: "-32", max: "32", step: "0.5", value: "8"});
  const strengthValue = el("output", {class: "strength-value"}, [strength.value]);
  const positions = el("select", {class: "positions"});
  for (const policy of POSITIONS) positions.append(el("option", {value: policy}, [policy]));
  const vectorRows = [labelled("layer", layer), labelled("strength", strength), strengthValue,
    labelled("positions", positions)];
  column.controls.append(labelled("method", method), labelled("name", name), ...vectorRows);

  const selected = () => (method.value === "adapter" ? state.adapters : state.vectors)
    .find((item) => item.name === name.value);
  const fillLayers = () => {
    const vector = selected();
    layer.replaceChildren();
    if (!vector || method.value === "adapter") return;
    const recommended = new Set(vector.recommended_layers || []);
    for (let l = 0; l < state.nLayers; l++) {
      const text = recommended.has(l) ? `${l} \u2605 recommended` : String(l);
      layer.append(el("option", {value: String(l), class: recommended.has(l) ? "recommended" : ""}, [text]));
    }
    layer.value = String(vector.layer ?? vector.recommended_layers?.[0] ?? Math.floor(state.nLayers / 2));
    const reach = Math.max(32, 2 * Math.abs(vector.coefficient ?? 0));  // the sidecar's strength fits the slider
    strength.min = String(-reach);
    strength.max = String(reach);
    strength.value = String(vector.coefficient ?? strength.value);
    strengthValue.textContent = strength.value;
    positions.value = vector.positions ?? "response";
  };
  const fillNames = () => {
    name.replaceChildren();
    const items = method.value === "adapter" ? state.adapters : state.vectors.filter((v) => v.kind === method.value);
    for (const item of items) {
      const about = [item.concept, item.construction || item.method].filter(Boolean).join(", ");
      name.append(el("option", {value: item.name}, [about ? `${item.name} (${about})` : item.name]));
    }
    for (const node of vectorRows) node.hidden = method.value === "adapter";
    fillLayers();
  };
  method.addEventListener("change", fillNames);
  name.addEventListener("change", fillLayers);
  strength.addEventListener("input", () => { strengthValue.textContent = strength.value; });
  fillNames();
  name.selectedIndex = Math.min(index - 1, name.options.length - 1);
  fillLayers();

  column.steering = () => {
    if (!name.value) return [];
    if (method.value === "adapter") return [{adapter: name.value}];
    return [{vector: name.value, layer: Number(layer.value), coefficient: Number(strength.value),
      positions: positions.value}];
  };
  state.columns.push(column);
}

// ---------- word diff ----------

function renderDiff(column, segments) {
  column.diffText.replaceChildren();
  for (const segment of segments) {
    const tag = {insert: "ins", delete: "del"}[segment.op] || "span";
    column.diffText.append(el(tag, {class: `diff-${segment.op}`}, [segment.text]));
  }
  column.diff.hidden = false;
}

// ---------- run ----------

async function run() {
  const status = document.getElementById("run-status");
  const prompt = document.getElementById("prompt").value.trim();
  if (!prompt) { status.textContent = "type a prompt first"; return; }
  const settings = {
    maxTokens: Number(document.getElementById("max-tokens").value),
    temperature: Number(document.getElementById("temperature").value),
  };
  status.dataset.state = "running";
  status.textContent = "streaming\u2026";
  document.getElementById("run").disabled = true;
  for (const column of state.columns) column.diff.hidden = true;
  try {
    const [baseline, ...steered] = await Promise.all(state.columns.map((c) => streamColumn(c, prompt, settings)));
    await Promise.all(state.columns.slice(1).map(async (column, i) => {
      if (column.node.dataset.state !== "done" || state.columns[0].node.dataset.state !== "done") return;
      const body = await getJSON("api/diff", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({baseline, steered: steered[i]}),
      });
      renderDiff(column, body.segments);
    }));
    status.textContent = "done";
  } catch (error) {
    status.textContent = `error: ${error.message}`;
  } finally {
    status.dataset.state = "done";
    document.getElementById("run").disabled = false;
  }
}

// ---------- panels ----------

function emptyNote(container, text) {
  container.replaceChildren(el("p", {class: "muted"}, [text]));
}

// Norm per layer of every all-layer vector: one polyline each, layers on x, norm on y.
function drawNormChart(container, vectors) {
  const series = vectors.filter((v) => Array.isArray(v.norms));
  if (!series.length) { emptyNote(container, "No all-layer vectors loaded."); return; }
  const width = 360, height = 220, left = 44, bottom = 28, top = 10, right = 10;
  const maxLayer = Math.max(...series.map((v) => v.norms.length - 1), 1);
  const maxNorm = Math.max(...series.flatMap((v) => v.norms), 1e-12);
  const x = (l) => left + (l / maxLayer) * (width - left - right);
  const y = (n) => height - bottom - (n / maxNorm) * (height - top - bottom);
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "norm-chart", role: "img"});
  chart.append(svg("line", {x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis"}));
  chart.append(svg("line", {x1: left, y1: top, x2: left, y2: height - bottom, class: "axis"}));
  chart.append(svg("text", {x: width / 2, y: height - 4, class: "axis-label"}, "layer"));
  chart.append(svg("text", {x: 4, y: top + 8, class: "axis-label"}, maxNorm.toPrecision(3)));
  chart.append(svg("text", {x: x(0), y: height - bottom + 12, class: "axis-label"}, "0"));
  chart.append(svg("text", {x: x(maxLayer), y: height - bottom + 12, class: "axis-label"}, String(maxLayer)));
  series.forEach((vector, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const points = vector.norms.map((n, l) => `${x(l).toFixed(1)},${y(n).toFixed(1)}`).join(" ");
    const line = svg("polyline", {points, fill: "none", stroke: colour, class: "norm-line"});
    line.append(svg("title", {}, vector.name));
    chart.append(line);
    chart.append(svg("text", {x: left + 6, y: top + 12 + 12 * i, fill: colour, class: "legend"}, vector.name));
  });
  container.replaceChildren(chart);
}

// Cosine matrix as an n x n grid of cells coloured from blue (-1) through white (0) to red (+1).
function drawHeatmap(container, names, cosine) {
  if (!names.length) { emptyNote(container, "No vectors loaded."); return; }
  const n = names.length, cell = Math.max(18, Math.min(48, Math.floor(240 / n))), label = 90;
  const size = label + n * cell;
  const map = svg("svg", {viewBox: `0 0 ${size} ${size}`, class: "heatmap", role: "img"});
  const colour = (c) => {
    const t = Math.round(255 * (1 - Math.min(1, Math.abs(c))));
    return c >= 0 ? `rgb(255,${t},${t})` : `rgb(${t},${t},255)`;
  };
  names.forEach((name, i) => {
    map.append(svg("text", {x: label - 4, y: label + i * cell + cell / 2 + 4, class: "row-label"}, name));
    map.append(svg("text", {x: label + i * cell + cell / 2, y: label - 4, class: "col-label",
      transform: `rotate(-45 ${label + i * cell + cell / 2} ${label - 4})`}, name));
    names.forEach((other, j) => {
      const rect = svg("rect", {x: label + j * cell, y: label + i * cell, width: cell, height: cell,
        fill: colour(cosine[i][j]), class: "cell", "data-value": cosine[i][j]});
      rect.append(svg("title", {}, `${name} \u00b7 ${other}: ${cosine[i][j].toFixed(3)}`));
      map.append(rect);
      if (cell >= 30) {
        map.append(svg("text", {x: label + j * cell + cell / 2, y: label + i * cell + cell / 2 + 4,
          class: "cell-value"}, cosine[i][j].toFixed(2)));
      }
    });
  });
  container.replaceChildren(map);
}

// 2-D PCA coordinates as a labelled scatter.
function drawScatter(container, names, points, explained) {
  if (!names.length) { emptyNote(container, "No vectors loaded."); return; }
  const width = 320, height = 240, pad = 30;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const span = (values) => [Math.min(...values), Math.max(...values)];
  const [x0, x1] = span(xs), [y0, y1] = span(ys);
  const scale = (v, lo, hi, a, b) => (hi - lo < 1e-12 ? (a + b) / 2 : a + ((v - lo) / (hi - lo)) * (b - a));
  const plot = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "scatter", role: "img"});
  const pct = (r) => (r === undefined ? "" : ` (${(100 * r).toFixed(0)}%)`);
  plot.append(svg("text", {x: width / 2, y: height - 4, class: "axis-label"}, `PC1${pct(explained[0])}`));
  plot.append(svg("text", {x: 2, y: 12, class: "axis-label"}, `PC2${pct(explained[1])}`));
  names.forEach((name, i) => {
    const cx = scale(xs[i], x0, x1, pad, width - pad), cy = scale(ys[i], y0, y1, height - pad, pad);
    const dot = svg("circle", {cx, cy, r: 5, fill: PALETTE[i % PALETTE.length], class: "point"});
    dot.append(svg("title", {}, name));
    const right = cx > width / 2;  // label on the inner side so it stays inside the plot
    plot.append(dot, svg("text", {x: right ? cx - 8 : cx + 8, y: cy + 4, class: "point-label",
      "text-anchor": right ? "end" : "start"}, name));
  });
  container.replaceChildren(plot);
}

// ---------- start ----------

async function start() {
  const [models, info, geometry] = await Promise.all([
    getJSON("v1/models"), getJSON("api/vectors"), getJSON("api/vectors/geometry"),
  ]);
  state.model = models.data[0].id;
  state.vectors = info.vectors.filter((v) => v.problem === null);  // the others cannot steer this model
  state.adapters = info.adapters.filter((a) => a.problem === null);
  state.nLayers = info.n_layers;
  document.getElementById("model-name").textContent = state.model;
  drawNormChart(document.getElementById("norm-chart"), info.vectors);
  drawHeatmap(document.getElementById("cosine-heatmap"), geometry.names, geometry.cosine);
  drawScatter(document.getElementById("pca-scatter"), geometry.names, geometry.pca, geometry.explained_variance_ratio);

  state.columns.push(newColumn("baseline (unsteered)"));
  state.columns[0].node.classList.add("baseline");
  const steerable = state.vectors.length + state.adapters.length > 0;
  if (steerable) addSteeredColumn(1);
  const addButton = document.getElementById("add-column");
  addButton.disabled = !steerable;
  addButton.addEventListener("click", () => addSteeredColumn(state.columns.length));
  document.getElementById("run").addEventListener("click", run);
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  document.getElementById("run-status").textContent = `could not load the page data: ${error.message}`;
});
