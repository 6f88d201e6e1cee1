// The phonetree console: polls the admin listener's JSON with the admin token, draws each machine's
// Mermaid export with the Mermaid bundle served beside this file, and decorates its nodes with
// their live calls and funnels. Plain JS, no framework; data goes into the DOM as text only.
"use strict";

// Errors seen by the page (console.error, uncaught errors and rejections, CSP violations): the
// browser tests read `window.phonetreeErrors` and fail on any.
window.phonetreeErrors = [];
(function collectErrors() {
  const keep = (what) => window.phonetreeErrors.push(String(what).slice(0, 500));
  const original = console.error.bind(console);
  console.error = (...args) => { keep(args.map(String).join(" ")); original(...args); };
  window.addEventListener("error", (e) => keep(`${e.message} at ${e.filename}:${e.lineno}`));
  window.addEventListener("unhandledrejection", (e) => keep(`unhandled rejection: ${e.reason}`));
  document.addEventListener("securitypolicyviolation", (e) => keep(`CSP blocked ${e.blockedURI} (${e.violatedDirective})`));
})();

const TOKEN_KEY = "phonetree-admin-token";
const POLL_MS = 1500;
const $ = (id) => document.getElementById(id);

const state = {
  // Null until the token is given (possibly empty: a listener without one).
  token: sessionStorage.getItem(TOKEN_KEY),
  // Machine name -> { version, svg drawn for it, its section's elements }.
  drawn: new Map(),
  renders: 0,
  transcript: null,
  timer: null,
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

class Unauthorized extends Error {}

async function api(path, as = "json") {
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const r = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  if (r.status === 401) throw new Unauthorized("the admin token was refused");
  if (!r.ok) {
    let why = `${r.status}`;
    try { why += `: ${(await r.json()).error.message}`; } catch (_) { /* not JSON */ }
    throw new Error(why);
  }
  return as === "json" ? r.json() : r.text();
}

function showLogin(message) {
  clearTimeout(state.timer);
  $("console").hidden = true;
  $("login").hidden = false;
  $("forget").hidden = true;
  $("login-error").textContent = message || "";
  $("status").dataset.open = "no";
  $("status").textContent = "The console needs the admin token.";
  $("token").focus();
}

function since(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const when = (ms) => (ms ? new Date(ms).toLocaleString() : "—");

async function poll() {
  clearTimeout(state.timer);
  try {
    const numbers = $("show-numbers").checked ? "shown" : "masked";
    const data = await api(`/admin/console?numbers=${numbers}`);
    $("login").hidden = true;
    $("console").hidden = false;
    $("forget").hidden = !state.token;
    // Open: the header no longer asks for the token, even while the machines are being drawn.
    if ($("status").dataset.open !== "yes") {
      $("status").dataset.open = "yes";
      $("status").textContent = state.token ? "Open with the admin token; loading…" : "Open (this admin listener needs no token); loading…";
    }
    renderLive(data.live);
    renderReload(data.lastReload, data.reloads);
    await renderMachines(data.machines);
    $("status").textContent = `Updated ${new Date(data.now).toLocaleTimeString()}: ${data.machines.length} machine(s), ${data.live.calls.length} live call(s).`;
  } catch (e) {
    if (e instanceof Unauthorized) {
      showLogin(state.token ? "That token was refused." : "This admin listener needs its token.");
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = null;
      return;
    }
    $("status").textContent = `Cannot reach the node (${e.message}); retrying.`;
  }
  state.timer = setTimeout(poll, POLL_MS);
}

function renderLive(live) {
  const body = $("live").querySelector("tbody");
  body.replaceChildren(...live.calls.map((c) => {
    const open = el("button", { type: "button", class: "open-transcript", "data-session": c.session, text: c.session });
    open.setAttribute("aria-label", `Transcript of call ${c.session}`);
    open.addEventListener("click", () => openTranscript(c.session));
    return el("tr", { "data-session": c.session, "data-machine": c.machine, "data-node": c.node },
      el("td", { "data-label": "Machine", text: c.machine }), el("td", { "data-label": "Node", class: "node", text: c.node }),
      el("td", { "data-label": "At node", text: since(c.atNodeMs) }),
      el("td", { "data-label": "Caller", class: "caller", text: c.caller }),
      el("td", { "data-label": "Session" }, open));
  }));
  $("live").hidden = live.calls.length === 0;
  $("live-empty").hidden = live.calls.length > 0;
  $("live-more").hidden = !live.more;
  if (state.transcript) openTranscript(state.transcript, false);
}

function renderReload(last, counts) {
  const box = $("reload");
  const total = el("p", { class: "muted", text: `Since the node started: ${counts.loaded} reload(s) loaded, ${counts.failed} failed.` });
  if (!last) {
    box.replaceChildren(el("p", { text: "No reload since the node started." }), total);
    return;
  }
  const head = el("p", { text: `${last.result === "loaded" ? "Loaded" : "Failed"} (${last.trigger}) at ${when(last.at)}.` });
  const parts = [head];
  if (last.reason) parts.push(el("p", { class: "error", text: last.reason }));
  if (last.diagnostics && last.diagnostics.length) {
    parts.push(el("ul", { class: "diagnostics" }, ...last.diagnostics.map((d) => el("li", { text: d }))));
  }
  parts.push(total);
  box.replaceChildren(...parts);
}

function dropClass(n) {
  if (!n.entered) return "drop-idle";
  const rate = n.dropped / n.entered;
  if (rate === 0) return "drop-none";
  if (rate < 0.2) return "drop-low";
  if (rate < 0.5) return "drop-mid";
  return "drop-high";
}

const exitsText = (exits) => Object.entries(exits).map(([k, v]) => `${k} ${v}`).join(", ") || "—";

async function renderMachines(machines) {
  const box = $("machines");
  const names = new Set(machines.map((m) => m.name));
  for (const [name, d] of state.drawn) {
    if (!names.has(name)) { d.section.remove(); state.drawn.delete(name); }
  }
  for (const m of machines) {
    let d = state.drawn.get(m.name);
    if (!d) {
      d = machineSection(m);
      state.drawn.set(m.name, d);
      box.append(d.section);
    }
    d.version.textContent = m.version.slice(0, 12);
    d.version.title = m.version;
    d.figures.replaceChildren(...figures(m));
    if (d.drawnVersion !== m.version) {
      d.drawnVersion = m.version;
      await draw(m, d);
    }
    decorate(m, d);
    decorateEdges(m, d);
    funnelTable(m, d);
  }
}

function machineSection(m) {
  const id = `machine-${m.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const version = el("span", { class: "version" });
  const figures = el("dl", { class: "figures" });
  const graph = el("div", { class: "graph", "data-machine": m.name, tabindex: "0", role: "img" });
  graph.setAttribute("aria-label", `Graph of ${m.name}; the table below lists the same nodes`);
  const funnel = el("table", { class: "funnel" });
  const details = el("details", {}, el("summary", { text: "Funnel by node" }), el("div", { class: "scroll" }, funnel));
  // The graph fits the width by default; "actual size" scrolls instead (small screens).
  const size = el("button", { type: "button", class: "size", "aria-pressed": "false", text: "Actual size" });
  size.addEventListener("click", () => {
    const actual = graph.classList.toggle("actual");
    size.setAttribute("aria-pressed", String(actual));
    const svg = graph.querySelector("svg");
    if (svg && svg.viewBox.baseVal) svg.setAttribute("width", actual ? String(svg.viewBox.baseVal.width) : "100%");
  });
  const section = el("section", { class: "machine", id, "data-machine": m.name, "aria-labelledby": `${id}-title` },
    el("div", { class: "machine-head" }, el("h3", { id: `${id}-title`, text: m.name }), version, size),
    figures, graph, details);
  return { section, version, figures, graph, funnel, size, drawnVersion: null };
}

function figures(m) {
  const item = (k, v) => el("div", {}, el("dt", { text: k }), el("dd", { text: String(v) }));
  const out = [item("numbers", m.numbers.join(", ") || "—"), item("current since", when(m.loadedAt))];
  if (m.proof) {
    const p = m.proof;
    out.push(item("states", p.states), item("transitions", p.transitions),
      item("edges covered", `${p.edgesCovered}/${p.edges}`),
      item("paths", `${p.pathsComplete ? "" : "at least "}${p.paths}`), item("longest", `${p.longest} answers`));
  }
  return out;
}

async function draw(m, d) {
  try {
    const text = await api(`/admin/machines/${encodeURIComponent(m.name)}/mermaid`, "text");
    state.renders += 1;
    const { svg } = await window.mermaid.render(`graph-${state.renders}`, text);
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    const root = doc.documentElement;
    if (root.nodeName !== "svg") throw new Error("Mermaid's SVG does not parse");
    d.graph.replaceChildren(document.importNode(root, true));
    d.graph.classList.remove("actual");
    d.size.setAttribute("aria-pressed", "false");
    d.graph.dataset.version = m.version;
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    d.drawnVersion = null;
    console.error(`cannot draw ${m.name}: ${e.message || e}`);
    d.graph.replaceChildren(el("p", { class: "failed", text: `The graph of ${m.name} could not be drawn: ${e.message || e}` }));
  }
}

// The rendered node of Mermaid id `id`.
function svgNode(graph, id) {
  return graph.querySelector(`g.node[data-id="${CSS.escape(id)}"]`)
    || [...graph.querySelectorAll("g.node")].find((g) => new RegExp(`-${id}-\\d+$`).test(g.id));
}

const SVG = "http://www.w3.org/2000/svg";

function decorate(m, d) {
  for (const n of m.nodes) {
    const g = svgNode(d.graph, n.id);
    if (!g) continue;
    g.classList.remove("drop-none", "drop-low", "drop-mid", "drop-high", "drop-idle");
    g.classList.add(dropClass(n));
    g.classList.toggle("has-live", n.live > 0);
    g.dataset.live = String(n.live);
    g.dataset.entered = String(n.entered);
    g.dataset.dropped = String(n.dropped);
    g.querySelectorAll(":scope > .badge, :scope > .counts, :scope > title").forEach((x) => x.remove());
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${n.name}: ${n.live} live, entered ${n.entered}, dropped ${n.dropped}; exits: ${exitsText(n.exits)}`;
    g.prepend(title);
    let box;
    try { box = g.getBBox(); } catch (_) { continue; }
    const counts = document.createElementNS(SVG, "g");
    counts.setAttribute("class", "counts");
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", String(box.x + box.width / 2));
    t.setAttribute("y", String(box.y + box.height + 12));
    t.setAttribute("text-anchor", "middle");
    t.textContent = `in ${n.entered} · dropped ${n.dropped}`;
    counts.append(t);
    g.append(counts);
    if (n.live > 0) {
      const badge = document.createElementNS(SVG, "g");
      badge.setAttribute("class", "badge");
      const label = `${n.live} live`;
      const w = 8 + label.length * 7;
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", String(box.x + box.width - w / 2));
      r.setAttribute("y", String(box.y - 10));
      r.setAttribute("width", String(w));
      r.setAttribute("height", "18");
      r.setAttribute("rx", "9");
      const bt = document.createElementNS(SVG, "text");
      bt.setAttribute("x", String(box.x + box.width));
      bt.setAttribute("y", String(box.y + 3));
      bt.setAttribute("text-anchor", "middle");
      bt.textContent = label;
      badge.append(r, bt);
      g.append(badge);
    }
  }
}

// Each drawn edge's label gets the times its exit was taken. Mermaid ids an edge
// `L_<from>_<to>_<n>`, numbered in the order the export declares them.
function decorateEdges(m, d) {
  const labels = [...d.graph.querySelectorAll("g.edgeLabel g.label[data-id]")];
  for (const n of m.nodes) {
    const byTarget = new Map();
    for (const e of n.edges) {
      if (!byTarget.has(e.to)) byTarget.set(e.to, []);
      byTarget.get(e.to).push(e);
    }
    for (const [to, edges] of byTarget) {
      const pattern = new RegExp(`^L_${n.id}_${to}_(\\d+)$`);
      const drawn = labels.map((l) => [l, pattern.exec(l.dataset.id)]).filter(([, hit]) => hit)
        .sort((a, b) => Number(a[1][1]) - Number(b[1][1])).map(([l]) => l);
      edges.forEach((e, i) => {
        const label = drawn[i];
        if (!label) return;
        label.dataset.taken = String(e.taken);
        label.querySelectorAll(":scope > .taken").forEach((x) => x.remove());
        let box;
        try { box = label.getBBox(); } catch (_) { return; }
        const t = document.createElementNS(SVG, "text");
        t.setAttribute("class", "taken");
        t.setAttribute("x", String(box.x + box.width / 2));
        t.setAttribute("y", String(box.y + box.height + 11));
        t.setAttribute("text-anchor", "middle");
        t.textContent = `× ${e.taken}`;
        label.append(t);
      });
    }
  }
}

function funnelTable(m, d) {
  const head = el("thead", {}, el("tr", {}, ...["Node", "Live", "Entered", "Exits", "Dropped"].map((h, i) =>
    el("th", { scope: "col", class: i === 3 ? "exits" : "", text: h }))));
  const rows = m.nodes.map((n) => el("tr", { class: dropClass(n), "data-node": n.name },
    el("th", { scope: "row", text: n.name }), el("td", { text: String(n.live) }), el("td", { text: String(n.entered) }),
    el("td", { class: "exits", text: exitsText(n.exits) }), el("td", { text: String(n.dropped) })));
  d.funnel.replaceChildren(head, el("tbody", {}, ...rows));
}

async function openTranscript(session, focus = true) {
  state.transcript = session;
  const panel = $("transcript-panel");
  try {
    const call = await api(`/calls/${encodeURIComponent(session)}`);
    const show = $("show-numbers").checked;
    const caller = call.direction === "inbound" ? call.source : call.destination;
    const masked = show || caller.length <= 6 ? (show ? caller : "•".repeat(caller.length))
      : `${caller.slice(0, 3)}${"•".repeat(caller.length - 6)}${caller.slice(-3)}`;
    const entries = call.entries.map((e) => {
      const what = e.event.type === "keys" ? `pressed ${e.event.keys}`
        : e.event.type === "callStarted" ? "call started"
          : e.event.type === "noInput" ? "no input"
            : e.event.type === "masked" ? "pressed [masked] (sensitive input)"
              : e.event.type === "dialRefused" ? "dial refused by the outbound guard"
                : `session ended (${e.event.status})`;
      const moved = e.left && e.left !== e.entered ? ` — ${e.left} → ${e.entered}` : ` — at ${e.entered}`;
      const said = el("ul", { class: "said" }, ...e.said.map((s) =>
        el("li", { class: "heard", text: `${s.node}: ${s.action}${s.text ? ` “${s.text}”` : ""}` })));
      return el("li", {}, el("span", { text: `${new Date(e.atMs).toLocaleTimeString()} ${what}${moved}` }), said);
    });
    $("transcript").replaceChildren(
      el("p", { text: `${call.session} on ${call.machine} (${call.version}), ${call.direction}, caller ${masked}: ${call.outcome} at ${call.node}.` }),
      entries.length ? el("ol", { class: "entries" }, ...entries) : el("p", { text: "No entry yet." }),
      call.cut ? el("p", { class: "muted", text: "Later entries were not kept." }) : "");
    panel.hidden = false;
    if (focus) $("transcript-title").focus();
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin("That token was refused."); return; }
    $("transcript").replaceChildren(el("p", { class: "error", text: `Cannot read the call: ${e.message}` }));
    panel.hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (!window.mermaid) {
    console.error("the Mermaid bundle did not load");
  } else {
    window.mermaid.initialize({
      startOnLoad: false,
      securityLevel: "strict",
      theme: "neutral",
      htmlLabels: false,
      flowchart: { htmlLabels: false, useMaxWidth: true, wrappingWidth: 260 },
    });
  }
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem(TOKEN_KEY, state.token);
    poll();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    showLogin("");
  });
  $("show-numbers").addEventListener("change", poll);
  // Without a token the data is not asked for (it would be refused): the form comes first, unless
  // the listener says it needs none (`--admin-no-token`).
  if (state.token !== null) { poll(); return; }
  fetch("/console/token", { cache: "no-store", credentials: "omit" })
    .then((r) => (r.ok ? r.json() : { required: true }))
    .then((t) => { if (t.required === false) { state.token = ""; poll(); } else showLogin(""); })
    .catch(() => showLogin(""));
});
