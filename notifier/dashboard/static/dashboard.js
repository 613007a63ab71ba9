// notifier dashboard: keeps the server-rendered page live. No framework, no build step.
// One stream per page (server-sent events read through fetch, so a bearer token can go with
// it), charts fetched as SVG only while shown, actions sent with Authorization: Bearer.
"use strict";

(() => {
  const TOKEN_KEY = "notifier.token";
  const WINDOW_KEY = "notifier.window";
  const CHART_GAP = 5000; // ms between two loads of one chart
  const CHART_PARALLEL = 2;
  const body = document.body;
  const openReads = body.dataset.openReads === "1";
  const has = (name) => body.dataset["has" + name[0].toUpperCase() + name.slice(1)] === "1";
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  let version = Number(body.dataset.version);
  let boot = body.dataset.boot;
  const prices = {};
  const states = {};
  const charts = new Map(); // element -> {key, visible, stale, loadedAt, loading}
  const chartById = new Map(); // the pair's place (as prices are keyed) -> its chart's state
  const priceCells = new Map();
  const stateCells = new Map();
  let loading = 0;
  let notified = null;
  let episodes = null;
  // What an update costs here (ms of script per message), for `python -m notifier.bench.dashboard`.
  const costs = (window.notifierDashboard = { messages: 0, bytes: 0, applyMs: [] });

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const token = () => localStorage.getItem(TOKEN_KEY) || "";
  const auth = () => (token() ? { Authorization: "Bearer " + token() } : {});

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) if (child !== null) node.append(child);
    return node;
  }

  // -- times, in the browser's zone ----------------------------------------------------------

  const sameDay = (a, b) => a.toDateString() === b.toDateString();
  function clock(date) {
    const now = new Date();
    const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit" };
    if (!sameDay(date, now)) Object.assign(opts, { month: "short", day: "numeric" });
    return date.toLocaleString(undefined, opts);
  }
  function span(seconds) {
    const s = Math.round(Math.abs(seconds));
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  function showTime(node) {
    const date = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) return;
    const delta = (date.getTime() - Date.now()) / 1000;
    const rel = node.dataset.rel;
    node.title = date.toLocaleString();
    if (rel === "age") node.textContent = span(delta) + " ago";
    else if (rel === "ago") node.textContent = clock(date) + " (" + span(delta) + " ago)";
    else if (rel === "in") node.textContent = clock(date) + (delta > 0 ? " (in " + span(delta) + ")" : " (due)");
    else node.textContent = clock(date);
  }
  const localize = (root) => $$("time[datetime]", root).forEach(showTime);
  setInterval(() => $$("time[data-rel]").forEach(showTime), 1000);

  // -- token and read-only mode -------------------------------------------------------------

  function setMode(text, level = "") {
    const mode = $("#mode");
    mode.textContent = text;
    mode.className = "mode " + level;
  }
  const canAct = () => Boolean(token()) && has("actions");
  function applyToken() {
    $("#forget-token").hidden = !token();
    $$("[data-action], [data-needs-token]").forEach((b) => { b.disabled = !canAct(); });
    if (!has("actions")) setMode("Read-only: this daemon has no action API (acknowledge, snooze, silence) yet.", "warn");
    else if (token()) setMode("Actions are on: your token is kept in this browser and sent as a bearer header.", "ok");
    else if (openReads) setMode("Read-only: enter the API token (http.token, or the api_token file in the state directory) to acknowledge, snooze and silence.");
    else setMode("This daemon listens beyond loopback: enter the API token to see anything.", "warn");
  }
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token").value.trim();
    $("#token").value = "";
    if (value) localStorage.setItem(TOKEN_KEY, value);
    applyToken();
    refreshClient();
    if (!openReads) connect(0);
  });
  $("#forget-token").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    applyToken();
  });

  let toastTimer = null;
  function toast(text, bad = false) {
    const box = $("#toast");
    box.textContent = text;
    box.className = "toast" + (bad ? " bad" : "");
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  // -- applying the server's messages -------------------------------------------------------

  function focusKey(node) {
    if (!node || !node.dataset) return null;
    if (node.dataset.action) return `[data-action="${node.dataset.action}"][data-rule="${CSS.escape(node.dataset.rule || "")}"][data-key="${CSS.escape(node.dataset.key || "")}"]`;
    if (node.id) return "#" + CSS.escape(node.id);
    return null;
  }
  function replaceSection(name, html) {
    const box = $(`[data-section="${name}"]`);
    if (!box) return;
    const active = box.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    box.innerHTML = html;
    localize(box);
    if (name === "pairs") {
      for (const key of Object.keys(prices)) delete prices[key]; // keyed by place: all resent
      watchCharts(box);
    }
    if (name === "rules") {
      indexStates();
      Object.keys(states).forEach(showStates);
    }
    $$("[data-action]", box).forEach((b) => { b.disabled = !canAct(); });
    if (active) { const again = $(active, box); if (again) again.focus(); }
  }
  function indexStates() {
    stateCells.clear();
    for (const cell of $$("[data-rule-state]")) stateCells.set(cell.dataset.ruleState, cell);
  }
  function showPrice(key) {
    const cell = priceCells.get(key);
    if (cell) cell.textContent = prices[key] === null ? "—" : Number(prices[key]).toPrecision(6);
  }
  function showStates(rule) {
    const cell = stateCells.get(rule);
    if (!cell || $(".badge.bad", cell)?.textContent === "disabled") return;
    const list = states[rule];
    cell.replaceChildren();
    if (!list || !list.length) { cell.append(el("span", { class: "badge idle", text: "inactive" })); return; }
    for (const [key, state] of list) {
      cell.append(el("span", { class: "badge " + (state === "firing" ? "bad" : "warn"), text: state }), " ", el("span", { class: "key", text: key }), " ");
    }
  }
  function apply(message, size) {
    const begun = performance.now();
    applyMessage(message);
    costs.messages += 1;
    costs.bytes += size;
    costs.applyMs.push(performance.now() - begun);
    if (costs.applyMs.length > 500) costs.applyMs.shift();
  }
  function applyMessage(message) {
    if (message.full) for (const key of Object.keys(states)) delete states[key];
    for (const [name, html] of Object.entries(message.html || {})) replaceSection(name, html);
    for (const [key, price] of Object.entries(message.prices || {})) {
      prices[key] = price;
      showPrice(key);
      staleChart(key);
    }
    for (const [rule, list] of Object.entries(message.states || {})) {
      if (list === null) delete states[rule]; else states[rule] = list;
      showStates(rule);
    }
    const meta = message.meta;
    if (meta) {
      $("#summary").textContent = meta.summary;
      if (meta.notified !== notified) loadNotifications();
      if (episodes !== null && meta.episodes !== episodes) charts.forEach((c) => { c.stale = true; });
      notified = meta.notified;
      episodes = meta.episodes;
    }
    if (message.html && message.html.alerts !== undefined) loadSilences();
    version = message.v;
    boot = message.boot;
  }

  // -- the stream -----------------------------------------------------------------------------

  let attempt = 0;
  let controller = null;
  function live(text, ok) {
    const pill = $("#live");
    pill.textContent = text;
    pill.className = "pill " + (ok ? "ok" : "warn");
  }
  async function connect(delay) {
    if (controller) controller.abort();
    const mine = (controller = new AbortController());
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (mine.signal.aborted) return;
    try {
      const url = `/dashboard/stream?since=${version}&boot=${encodeURIComponent(boot)}`;
      const response = await fetch(url, { headers: auth(), signal: mine.signal, cache: "no-store" });
      if (response.status === 401) {
        live("needs token", false);
        setMode("Enter the API token to see this daemon (it listens beyond loopback).", "warn");
        return;
      }
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      live("live", true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (!data) continue;
          apply(JSON.parse(data), data.length);
          attempt = 0;
          live("live", true);
        }
      }
    } catch (error) {
      if (mine.signal.aborted) return;
    }
    if (mine.signal.aborted) return;
    attempt += 1;
    const wait = Math.min(15000, 1000 * 2 ** Math.min(attempt - 1, 4)) * (0.5 + Math.random() / 2);
    live("reconnecting…", false);
    connect(wait);
  }

  // -- charts -----------------------------------------------------------------------------------

  const chartWindow = () => $("#window").value;
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const chart = charts.get(entry.target);
      if (chart) chart.visible = entry.isIntersecting;
    }
    pumpCharts();
  }, { rootMargin: "200px" });
  function watchCharts(root) {
    for (const [node] of charts) if (!node.isConnected) { observer.unobserve(node); charts.delete(node); }
    chartById.clear();
    priceCells.clear();
    for (const card of $$("[data-pair-id]", root)) {
      const node = $("[data-chart]", card);
      const chart = { key: node.dataset.chart, visible: false, stale: true, loadedAt: 0, loading: false };
      charts.set(node, chart);
      chartById.set(card.dataset.pairId, chart);
      priceCells.set(card.dataset.pairId, $("[data-price]", card));
      observer.observe(node);
    }
  }
  function staleChart(id) {
    const chart = chartById.get(id);
    if (chart) chart.stale = true;
  }
  async function loadChart(node, chart) {
    chart.loading = true;
    chart.stale = false;
    loading += 1;
    try {
      const width = Math.max(240, Math.round(node.clientWidth || 600));
      const url = `/dashboard/pairs/${encodeURIComponent(chart.key)}/chart.svg?window=${encodeURIComponent(chartWindow())}&w=${width}&tz=${encodeURIComponent(zone)}`;
      const response = await fetch(url, { headers: auth(), cache: "no-store" });
      if (response.ok) node.innerHTML = await response.text();
      else node.replaceChildren(el("p", { class: "placeholder", text: "no chart (" + response.status + ")" }));
    } catch (error) {
      chart.stale = true;
    } finally {
      chart.loading = false;
      chart.loadedAt = Date.now();
      loading -= 1;
    }
  }
  function pumpCharts() {
    const now = Date.now();
    for (const [node, chart] of charts) {
      if (loading >= CHART_PARALLEL) return;
      if (chart.visible && chart.stale && !chart.loading && now - chart.loadedAt >= CHART_GAP) loadChart(node, chart).then(pumpCharts);
    }
  }
  setInterval(pumpCharts, 1000);
  $("#window").addEventListener("change", () => {
    localStorage.setItem(WINDOW_KEY, chartWindow());
    charts.forEach((c) => { c.stale = true; c.loadedAt = 0; });
    pumpCharts();
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { charts.forEach((c) => { c.stale = true; c.loadedAt = 0; }); pumpCharts(); }, 400);
  });

  // -- silences and notifications (the talkback API, SPEC §9) ---------------------------------

  async function getJson(path) {
    const response = await fetch(path, { headers: auth(), cache: "no-store" });
    if (response.ok) return { data: await response.json() };
    if (response.status === 404 || response.status === 405) return { missing: true };
    if (response.status === 401) return { locked: true };
    return { error: "HTTP " + response.status };
  }
  function clientNote(box, result, what) {
    if (result.missing) box.replaceChildren(el("p", { class: "empty", text: `Not available: this daemon has no ${what} API (SPEC §9) yet.` }));
    else if (result.locked) box.replaceChildren(el("p", { class: "empty", text: "Enter the API token to see these." }));
    else box.replaceChildren(el("p", { class: "empty", text: "Could not load: " + result.error }));
  }
  const when = (iso, rel) => (iso ? el("time", { datetime: iso, "data-rel": rel || null, text: iso }) : document.createTextNode("—"));

  let notificationsBusy = false;
  let notificationsAgain = false; // a change arrived while loading: load once more after
  async function loadNotifications() {
    if (!has("notifications")) { clientNote($('[data-client="notifications"]'), { missing: true }, "notifications"); return; }
    if (notificationsBusy) { notificationsAgain = true; return; }
    notificationsBusy = true;
    notificationsAgain = false;
    const box = $('[data-client="notifications"]');
    try {
      const result = await getJson("/api/v1/notifications?limit=30");
      if (!result.data) { clientNote(box, result, "notifications"); return; }
      if (!result.data.length) { box.replaceChildren(el("p", { class: "empty", text: "Nothing sent yet." })); return; }
      const list = el("ul", { class: "notes" });
      for (const n of result.data) {
        const channels = el("span", { class: "channels" });
        for (const c of n.channels || []) {
          const level = { sent: "ok", retrying: "warn", dead: "bad", queued: "idle" }[c.state] || "info";
          channels.append(el("span", { class: "badge " + level, text: `${c.tag}: ${c.state}` }));
          if (c.next_attempt) channels.append(" next ", when(c.next_attempt, "in"));
          channels.append(" ");
        }
        list.append(el("li", { class: "note" },
          el("span", { class: "when" }, when(n.created_at)), " ",
          el("strong", { text: n.title || "(no title)" }), " ",
          el("span", { class: "sub", text: [n.rule, n.key, n.transition].filter(Boolean).join(" · ") }), " ",
          channels));
      }
      box.replaceChildren(list);
      localize(box);
    } catch (error) {
      clientNote(box, { error: String(error) }, "notifications");
    } finally {
      notificationsBusy = false;
      if (notificationsAgain) loadNotifications();
    }
  }

  async function loadSilences() {
    const box = $('[data-client="silences"]');
    if (!has("silences")) { clientNote(box, { missing: true }, "silences"); return; }
    try {
      const result = await getJson("/api/v1/silences");
      if (!result.data) { clientNote(box, result, "silences"); return; }
      const current = result.data.filter((s) => !s.expired_by && new Date(s.ends_at) > new Date());
      if (!current.length) { box.replaceChildren(el("p", { class: "empty", text: "No silence is active or planned." })); return; }
      const list = el("ul", { class: "silences" });
      for (const s of current) {
        const matchers = Object.entries(s.matchers || {}).map(([k, v]) => `${k}=${v}`).join(" ");
        const expire = el("button", { type: "button", "data-action": "expire", "data-id": s.id, "data-rule": "", "data-key": s.id, text: "Expire" });
        expire.disabled = !canAct();
        list.append(el("li", { class: "silence" },
          el("code", { text: matchers }), " from ", when(s.starts_at), " until ", when(s.ends_at, "in"),
          s.comment ? el("span", { class: "sub", text: " — " + s.comment }) : null,
          el("span", { class: "sub", text: " by " + (s.created_by || "?") }), " ", expire));
      }
      box.replaceChildren(list);
      localize(box);
    } catch (error) {
      clientNote(box, { error: String(error) }, "silences");
    }
  }
  function refreshClient() { loadNotifications(); loadSilences(); }
  setInterval(loadSilences, 30000);

  // -- actions ------------------------------------------------------------------------------------

  async function send(method, path, payload, done) {
    if (!token()) { toast("Enter the API token first: the page is read-only without it.", true); return; }
    try {
      const response = await fetch(path, {
        method,
        headers: { ...auth(), "Content-Type": "application/json" },
        body: payload === null ? undefined : JSON.stringify(payload),
      });
      let answer = {};
      try { answer = await response.json(); } catch (error) { answer = {}; }
      if (response.ok) { toast(done(answer)); refreshClient(); return; }
      if (response.status === 404 && !answer.error) toast("Not available: this daemon has no such action yet.", true);
      else if (response.status === 401) toast("The token was refused: " + (answer.error || "401"), true);
      else toast(answer.error || "HTTP " + response.status, true);
    } catch (error) {
      toast("Request failed: " + error, true);
    }
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { action, rule, key, duration, id } = button.dataset;
    const where = `/api/v1/alerts/${encodeURIComponent(rule)}`;
    if (action === "ack") send("POST", where + "/ack", { key, by: "dashboard" }, () => `Acknowledged ${rule} ${key}.`);
    else if (action === "snooze") send("POST", where + "/snooze", { key, duration, by: "dashboard" }, () => `Snoozed ${rule} ${key} for ${duration}.`);
    else if (action === "silence") send("POST", "/api/v1/silences", { matchers: { rule, key }, duration, comment: "from the dashboard", created_by: "dashboard" }, (a) => `Silence ${a.id} added for ${duration}.`);
    else if (action === "expire") send("DELETE", `/api/v1/silences/${encodeURIComponent(id)}`, null, () => `Silence ${id} expired.`);
  });
  $("#silence-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const matchers = {};
    for (const name of ["rule", "key", "severity", "source", "tag"]) {
      const value = form.elements[name].value.trim();
      if (value) matchers[name] = value;
    }
    if (!Object.keys(matchers).length) { toast("A silence needs at least one matcher.", true); return; }
    const duration = form.elements.duration.value.trim();
    const comment = form.elements.comment.value.trim();
    send("POST", "/api/v1/silences", { matchers, duration, comment, created_by: "dashboard" }, (a) => { form.reset(); return `Silence ${a.id} added.`; });
  });

  // -- start ----------------------------------------------------------------------------------------

  const saved = localStorage.getItem(WINDOW_KEY);
  if (saved && $(`#window option[value="${CSS.escape(saved)}"]`)) $("#window").value = saved;
  const initial = JSON.parse($("#initial").textContent || "{}");
  Object.assign(prices, initial.prices || {});
  for (const [rule, list] of Object.entries(initial.states || {})) if (list) states[rule] = list;
  if (initial.meta) { notified = initial.meta.notified; episodes = initial.meta.episodes; }
  localize(document);
  watchCharts(document);
  indexStates();
  Object.keys(states).forEach(showStates);
  Object.keys(prices).forEach(showPrice);
  applyToken();
  refreshClient();
  if (openReads || token()) connect(0);
  else live("needs token", false);
})();
