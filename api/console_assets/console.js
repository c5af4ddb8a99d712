// exmeta's incident console: three views over the API's own /v1 routes (api/console.py).
// The URL holds every choice (view, instant, market, symbols, filters), so a link pasted
// into a ticket opens the same view. Times are shown in UTC with the viewer's local time
// beside; instants are sent to the API as typed, so it alone decides what is valid.
"use strict";

const CATALOGUE = JSON.parse(document.getElementById("catalogue").textContent);
const HOUR = 3600e3;
const DAY = 24 * HOUR;
const PAGE = 1000;
const MAX_PAGES = 20;
const MAX_ROWS = 1000;
const CHURN = "filters.MARKET_LOT_SIZE";
const TOKEN_KEY = "exmeta.token";
// The rules drawn as step lines, by filter type and Binance's field; the first present of
// each label wins (spot's NOTIONAL, older spot's MIN_NOTIONAL.minNotional, futures'
// MIN_NOTIONAL.notional).
const RULES = [
  ["tick size", ["filters.PRICE_FILTER.tickSize"]],
  ["min price", ["filters.PRICE_FILTER.minPrice"]],
  ["step size", ["filters.LOT_SIZE.stepSize"]],
  ["min qty", ["filters.LOT_SIZE.minQty"]],
  ["max qty", ["filters.LOT_SIZE.maxQty"]],
  ["min notional", ["filters.NOTIONAL.minNotional", "filters.MIN_NOTIONAL.minNotional", "filters.MIN_NOTIONAL.notional"]],
];
// The same rules in the API's typed answer (api.render), for the instant view's table.
const COLUMNS = [
  ["status", null, "status"],
  ["tick size", "PRICE_FILTER", "tick_size"],
  ["min price", "PRICE_FILTER", "min_price"],
  ["max price", "PRICE_FILTER", "max_price"],
  ["step size", "LOT_SIZE", "step_size"],
  ["min qty", "LOT_SIZE", "min_qty"],
  ["max qty", "LOT_SIZE", "max_qty"],
  ["min notional", ["NOTIONAL", "MIN_NOTIONAL"], ["min_notional", "notional"]],
];
// The change feed's entities keyed by a symbol (README, HTTP API: /v1/changes).
const SYMBOL_ENTITIES = ["symbol", "commission", "delisting", "margin_pair", "margin_isolated_pair"];
const SPOT_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"];
const FUTURES_ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"];

// ---------------------------------------------------------------- small helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(container, ...children) {
  const node = typeof container === "string" ? $(container) : container;
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

function utcText(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)} UTC`;
}

function localText(ms) {
  const d = new Date(ms);
  const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(d).find((p) => p.type === "timeZoneName");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)} ${zone ? zone.value : "local"}`;
}

// An instant as the API writes it (RFC 3339, ms, Z), for URLs and parameters.
function iso(ms) {
  return new Date(ms).toISOString();
}

// An instant shown: UTC, and the viewer's local time beside it.
function when(value) {
  if (value === null || value === undefined) return el("span", { class: "hint", text: "none" });
  const ms = typeof value === "number" ? value : Date.parse(value);
  return el("time", { datetime: iso(ms), "data-ms": String(ms) },
    el("span", { class: "utc", text: utcText(ms) }), " ", el("span", { class: "local", text: `(${localText(ms)})` }));
}

function show(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function table(headers, rows, attrs) {
  return el("div", { class: "scroll" },
    el("table", attrs || {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))))))));
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

function note(text) {
  return el("p", { class: "hint", text });
}

function alertShow(text) {
  const box = $("alert");
  box.textContent = text;
  box.hidden = !text;
}

// ---------------------------------------------------------------- the API

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) query.append(key, one);
  }
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const text = query.toString();
  // Relative to /ui/, so the console also works where a proxy mounts exmeta under a prefix.
  const url = `..${path}`;
  const response = await fetch(text ? `${url}?${text}` : url, { headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = body && body.error ? body.error : { code: "http_error", message: response.statusText };
    throw new ApiError(response.status, error.code, `${path}: ${error.message}`);
  }
  return body;
}

// Every page of a paged route (`next`), up to MAX_PAGES; `cut` says whether more remained.
async function allPages(path, params, key) {
  const found = [];
  let next = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const body = await api(path, { ...params, limit: PAGE, next });
    found.push(...body[key]);
    next = body.next;
    if (!next) return { items: found, cut: false };
  }
  return { items: found, cut: true };
}

// An answer, or the reason there is none (not observed by then, not listed...).
async function maybe(path, params) {
  try {
    return { body: await api(path, params) };
  } catch (error) {
    if (error instanceof ApiError && error.status < 500) return { error };
    throw error;
  }
}

function market(name) {
  return CATALOGUE.markets.find((m) => m.name === name) || CATALOGUE.markets[0];
}

function visibleStreams() {
  return CATALOGUE.streams.filter((s) => token() || !s.private);
}

// ---------------------------------------------------------------- the URL

function state() {
  return new URLSearchParams(location.search);
}

function go(params, replace) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const url = `${location.pathname}?${query}`;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

function formParams(form) {
  const params = {};
  for (const [key, value] of new FormData(form).entries()) params[key] = String(value).trim();
  return params;
}

function setForm(form, params) {
  for (const element of form.elements) {
    if (!element.name) continue;
    if (element.type === "checkbox") element.checked = params.get(element.name) === "on";
    else if (params.has(element.name)) element.value = params.get(element.name);
    else if (element.tagName === "SELECT") element.selectedIndex = 0;
    else element.value = "";
  }
}

// ---------------------------------------------------------------- rendering pieces

function evidence(found, stream) {
  if (!found) return note("no evidence");
  const gap = found.gap
    ? el("span", { class: "bad" }, "yes: no successful poll from ", when(found.gap_from), " to ", found.gap_to ? when(found.gap_to) : "now")
    : el("span", { class: "good", text: "no" });
  return el("div", { class: "evidence", "data-stream": stream },
    el("h4", { text: `Evidence: the ${stream} polls around that instant` }),
    facts([
      ["last poll at or before", when(found.observed_before)],
      ["first poll after", found.observed_after ? when(found.observed_after) : el("span", { class: "warn", text: "none yet" })],
      ["in a gap", gap],
      ["imported", found.imported ? "yes (from an archive)" : "no"],
    ]));
}

function statusCell(status) {
  return el("td", { class: `status-${status}`, "data-field": "status", text: status || "—" });
}

function ruleValue(symbol, filterTypes, fields) {
  const types = Array.isArray(filterTypes) ? filterTypes : [filterTypes];
  const names = Array.isArray(fields) ? fields : [fields];
  for (const type of types) {
    const filter = (symbol.filters || {})[type];
    if (!filter) continue;
    for (const name of names) if (filter[name] !== undefined && filter[name] !== null) return filter[name];
  }
  return null;
}

function symbolRow(symbol, marketName) {
  const link = el("a", { href: `?${new URLSearchParams({ view: "timeline", market: marketName, symbol: symbol.symbol, at: state().get("at") || "" })}`, text: symbol.symbol });
  const cells = [el("td", { "data-field": "symbol" }, link)];
  for (const [label, type, field] of COLUMNS) {
    if (!type) cells.push(statusCell(symbol[field] || symbol.contract_status));
    else cells.push(el("td", { class: "num", "data-field": label, text: show(ruleValue(symbol, type, field)) }));
  }
  cells.push(el("td", {}, when(symbol.valid_from)), el("td", {}, symbol.valid_to ? when(symbol.valid_to) : "still"));
  return el("tr", { "data-symbol": symbol.symbol }, cells);
}

function symbolTable(symbols, marketName) {
  const headers = ["symbol", ...COLUMNS.map((c) => c[0]), "in force since", "until"];
  return el("div", { class: "scroll" },
    el("table", { id: "symbols-table" },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, symbols.map((s) => symbolRow(s, marketName)))));
}

// A listing's value is the whole object: shown cut, whole in its title.
function shortValue(value) {
  const text = show(value);
  return text.length <= 60 ? text : el("span", { title: text, text: `${text.slice(0, 57)}…` });
}

function changeRows(changes) {
  return changes.map((c) => [when(c.changed_at), c.stream, `${c.entity} ${c.key}`, c.field, shortValue(c.old), shortValue(c.new)]);
}

function changeTable(changes, cut) {
  if (!changes.length) return note("no change");
  const shown = changes.slice(0, MAX_ROWS);
  return el("div", {},
    table(["seen at", "stream", "what", "field", "old", "new"], changeRows(shown), { class: "changes" }),
    shown.length < changes.length || cut ? note(`showing ${shown.length} of ${changes.length}${cut ? "+" : ""} changes: narrow the filters`) : null);
}

function notFound(result) {
  return el("p", { class: "warn", text: result.error.message });
}

// ---------------------------------------------------------------- instant view

async function instantView(params) {
  setForm($("instant-form"), params);
  setForm($("check-form"), params);
  const marketName = market(params.get("market")).name;
  const at = params.get("at") || null;
  const symbols = (params.get("symbols") || "").split(",").map((s) => s.trim()).filter(Boolean);
  fill("instant-summary", "Loading…");

  const list = await maybe("/v1/symbols", { as_of: at, market: marketName });
  if (list.error) {
    fill("instant-summary", notFound(list));
    for (const id of ["instant-evidence", "instant-exchange", "instant-symbols-table", "instant-before", "instant-after", "instant-account"]) fill(id);
    return;
  }
  const instant = Date.parse(list.body.as_of);
  fill("instant-summary", "In force at ", when(instant), at ? "" : " (now)", ` on ${marketName}`);
  fill("instant-evidence", evidence(list.body.evidence, market(marketName).exchange_info));
  const asOf = iso(instant);

  let shown;
  if (symbols.length) {
    const answers = await Promise.all(symbols.map((s) => maybe(`/v1/symbols/${encodeURIComponent(s)}`, { as_of: asOf, market: marketName })));
    shown = answers.filter((a) => a.body).map((a) => a.body);
    fill("instant-symbols-table", symbolTable(shown, marketName), answers.filter((a) => a.error).map(notFound));
  } else {
    shown = list.body.symbols;
    fill("instant-symbols-table", symbolTable(shown.slice(0, MAX_ROWS), marketName),
      shown.length > MAX_ROWS ? note(`showing ${MAX_ROWS} of ${shown.length} symbols: name some to narrow`) : note(`${shown.length} symbols`));
  }
  const checkSymbol = $("check-symbol");
  if (!params.get("symbol") && shown.length) checkSymbol.value = shown[0].symbol;
  orderTypes(marketName, params.get("type"));

  await Promise.all([
    instantExchange(asOf, marketName),
    instantAccount(asOf, symbols),
    instantChanges(instant, marketName, symbols),
    params.get("quantity") || params.get("quote_quantity") ? runCheck(params, asOf, marketName) : Promise.resolve(fill("check-result")),
  ]);
}

async function instantExchange(asOf, marketName) {
  const [status, delistings, limits, wallet, cross, isolated, marginDelistings] = await Promise.all([
    maybe("/v1/system-status", { as_of: asOf }),
    maybe("/v1/delistings", { as_of: asOf }),
    maybe("/v1/rate-limits", { as_of: asOf, market: marketName }),
    maybe("/v1/wallet/networks", { as_of: asOf }),
    maybe("/v1/margin/pairs", { as_of: asOf, type: "cross" }),
    maybe("/v1/margin/pairs", { as_of: asOf, type: "isolated" }),
    maybe("/v1/margin/delistings", { as_of: asOf }),
  ]);
  const left = [];
  const right = [];
  let parts = left;
  if (status.body) {
    const s = status.body;
    parts.push(facts([
      ["system status", el("span", { class: s.status === 0 ? "good" : "bad", id: "system-status", text: `${s.status} ${s.status === 0 ? "normal" : "maintenance"} (${s.message})` })],
      ["since", when(s.valid_from)],
    ]));
  } else parts.push(notFound(status));
  if (delistings.body) {
    const rows = delistings.body.delistings.map((d) => [d.symbol, when(d.delist_time), when(d.valid_from)]);
    parts.push(el("h4", { text: "Announced delistings" }),
      rows.length ? table(["symbol", "takes effect", "announced (first seen)"], rows, { id: "delistings" }) : note("none announced"));
  } else parts.push(notFound(delistings));
  if (limits.body) {
    const rows = limits.body.rate_limits.map((r) => [r.rate_limit_type, `${r.interval_num} ${r.interval}`, r.limit]);
    parts.push(el("h4", { text: `Rate limits (${marketName})` }), table(["type", "per", "limit"], rows));
  } else parts.push(notFound(limits));
  parts = right;
  if (wallet.body) {
    const networks = wallet.body.networks;
    const closed = networks.filter((n) => !n.deposit_enable || !n.withdraw_enable);
    parts.push(el("h4", { text: "Wallet" }), note(`${networks.length} networks, ${closed.length} with deposits or withdrawals off`),
      closed.length ? table(["coin", "network", "deposit", "withdraw", "why"],
        closed.slice(0, 50).map((n) => [n.coin, n.network, n.deposit_enable ? "on" : "off", n.withdraw_enable ? "on" : "off", n.withdraw_desc || n.deposit_desc || ""])) : null);
  } else parts.push(notFound(wallet));
  for (const [kind, margin] of [["cross", cross], ["isolated", isolated]]) {
    if (!margin.body) {
      parts.push(notFound(margin));
      continue;
    }
    const pairs = margin.body.pairs;
    const limited = pairs.filter((p) => !p.is_buy_allowed || !p.is_sell_allowed || !p.is_margin_trade || p.delist_time);
    parts.push(el("h4", { text: `Margin, ${kind}` }), note(`${pairs.length} ${kind} pairs, ${limited.length} restricted or delisting`),
      limited.length ? table(["pair", "margin", "buy", "sell", "delists"],
        limited.slice(0, 50).map((p) => [p.symbol, show(p.is_margin_trade), show(p.is_buy_allowed), show(p.is_sell_allowed), p.delist_time ? when(p.delist_time) : "—"])) : null);
  }
  if (marginDelistings.body && marginDelistings.body.delistings.length) {
    parts.push(note("Margin delistings scheduled"), table(["type", "name", "takes effect"],
      marginDelistings.body.delistings.map((d) => [d.type, d.name, when(d.delist_time)])));
  }
  fill("instant-exchange", el("div", { class: "grid" }, el("div", {}, left), el("div", {}, right)));
}

async function instantAccount(asOf, symbols) {
  const section = $("instant-account-section");
  section.hidden = !token();
  if (!token()) return;
  const [account, balances, ...commissions] = await Promise.all([
    maybe("/v1/account", { as_of: asOf }),
    maybe("/v1/account/balances", { as_of: asOf }),
    ...symbols.map((s) => maybe(`/v1/account/commission/${encodeURIComponent(s)}`, { as_of: asOf })),
  ]);
  const parts = [];
  if (account.body) {
    const a = account.body;
    parts.push(facts([
      ["can trade", el("span", { class: a.can_trade ? "good" : "bad", id: "account-can-trade", text: show(a.can_trade) })],
      ["permissions", show(a.permissions)],
      ["commission maker / taker", `${show(a.commission_rate_maker)} / ${show(a.commission_rate_taker)}`],
      ["account type", show(a.account_type)],
      ["since", when(a.valid_from)],
    ]), evidence(a.evidence, "account"));
  } else parts.push(notFound(account));
  commissions.forEach((c, i) => {
    if (c.body) parts.push(note(`${symbols[i]}: standard maker ${show(c.body.standard_maker)}, taker ${show(c.body.standard_taker)}`));
    else parts.push(notFound(c));
  });
  if (balances.body) {
    parts.push(el("h4", { text: "Balances" }), table(["asset", "available", "locked"], balances.body.balances.map((b) => [b.asset, b.free, b.locked])));
  }
  fill("instant-account", parts);
}

async function instantChanges(instant, marketName, symbols) {
  const window = (from, to) => allPages("/v1/changes", { from: iso(from), to: iso(to), market: marketName }, "changes");
  const [before, after] = await Promise.all([window(instant - HOUR, instant + 1), window(instant + 1, instant + HOUR)]);
  // With symbols named, other symbols' changes are left out; the exchange's (system
  // status, rate limits, wallet, account...) stay, whatever the symbols.
  const keep = (c) => !symbols.length || !SYMBOL_ENTITIES.includes(c.entity) || symbols.includes(c.key);
  fill("instant-before", changeTable(before.items.filter(keep).reverse(), before.cut));
  fill("instant-after", changeTable(after.items.filter(keep), after.cut));
}

function orderTypes(marketName, chosen) {
  const select = $("check-type");
  const types = marketName === CATALOGUE.default_market ? SPOT_ORDER_TYPES : FUTURES_ORDER_TYPES;
  fill(select, types.map((t) => el("option", { value: t, text: t })));
  select.value = types.includes(chosen) ? chosen : "LIMIT";
}

async function runCheck(params, asOf, marketName) {
  const symbol = params.get("symbol") || $("check-symbol").value;
  const query = { as_of: asOf, market: marketName };
  for (const name of ["side", "type", "quantity", "quote_quantity", "price", "reference_price"]) query[name] = params.get(name);
  // A link may name only the numbers: the side and type are then the form's (BUY, LIMIT).
  query.side = query.side || $("check-side").value;
  query.type = query.type || $("check-type").value;
  const found = await maybe(`/v1/symbols/${encodeURIComponent(symbol)}/check`, query);
  if (found.error) {
    fill("check-result", notFound(found));
    return;
  }
  const c = found.body;
  fill("check-result",
    el("p", { class: `verdict ${c.accepted ? "good" : "bad"}`, id: "check-verdict", text: c.accepted ? `Accepted: ${symbol} would have taken this order` : `Rejected: ${c.violations.length} rule(s) broken` }),
    c.violations.length ? table(["rule", "why"], c.violations.map((v) => [v.rule, v.message]), { id: "check-violations" }) : null,
    c.not_checked.length ? el("div", {}, el("h4", { text: "Not checked" }), table(["rule", "why"], c.not_checked.map((v) => [v.rule, v.reason]))) : null,
    el("h4", { text: "Nearest valid order" }),
    facts([["price", el("span", { id: "check-nearest-price", text: show(c.nearest && c.nearest.price) })], ["quantity", el("span", { id: "check-nearest-quantity", text: show(c.nearest && c.nearest.quantity) })]]),
    evidence(c.evidence, market(marketName).exchange_info));
}

// ---------------------------------------------------------------- timeline view

const timeline = { charts: [], range: null, full: null, syncing: false };

// The symbol's history replayed: its state after each version, as Binance's field paths.
function replay(versions) {
  const steps = [];
  let current = {};
  for (const version of versions) {
    if (version.listed === false) current = {};
    for (const change of version.changes) {
      if (change.field === "listed") continue;
      if (change.new === null || change.new === undefined) delete current[change.field];
      else current[change.field] = change.new;
    }
    steps.push({ from: Date.parse(version.valid_from), to: version.valid_to ? Date.parse(version.valid_to) : null, listed: version.listed !== false, state: { ...current }, version });
  }
  return steps;
}

function ruleSeries(steps) {
  const series = [];
  for (const [label, paths] of RULES) {
    const path = paths.find((p) => steps.some((s) => s.state[p] !== undefined));
    if (path) series.push({ label, path });
  }
  // Any other numeric filter value that changed: it is why someone is looking.
  const changed = new Set(steps.slice(1).flatMap((s) => s.version.changes.map((c) => c.field)));
  for (const field of changed) {
    if (!field.startsWith("filters.") || series.some((s) => s.path === field)) continue;
    if (steps.some((s) => s.state[field] !== undefined && !Number.isNaN(Number(s.state[field])))) series.push({ label: field.slice(8), path: field });
  }
  return series;
}

async function timelineView(params) {
  const form = $("timeline-form");
  setForm(form, params);
  const symbol = (params.get("symbol") || "").trim();
  const marketName = market(params.get("market")).name;
  destroyCharts();
  fill("timeline-marks");
  fill("timeline-legend");
  if (!symbol) {
    fill("timeline-range", "Name a symbol.");
    return;
  }
  fill("timeline-range", "Loading…");
  const history = await allPages(`/v1/symbols/${encodeURIComponent(symbol)}/history`, { market: marketName }, "versions");
  const steps = replay(history.items);
  if (!steps.length) {
    fill("timeline-range", "No version recorded.");
    return;
  }
  const now = Date.now();
  const first = steps[0].from;
  const stream = market(marketName).exchange_info;
  const window = { from: iso(first - 1), to: iso(now) };
  const [observed, delistings] = await Promise.all([
    maybe("/v1/observations", { stream, ...window, limit: 1 }),
    marketName === CATALOGUE.default_market
      ? allPages("/v1/changes", { stream: "delistings", symbol, ...window }, "changes")
      : Promise.resolve({ items: [] }),
  ]);
  const gaps = (observed.body ? observed.body.gaps : [])
    .filter((g) => g.start !== null)
    .map((g) => ({ from: Date.parse(g.start), to: g.end ? Date.parse(g.end) : now, open: !g.end }));
  const last = Math.max(now, ...steps.map((s) => s.to || 0));
  timeline.full = [first - (last - first) * 0.02, last];
  const from = params.get("from") ? Date.parse(params.get("from")) : NaN;
  const to = params.get("to") ? Date.parse(params.get("to")) : NaN;
  timeline.range = Number.isNaN(from) || Number.isNaN(to) || from >= to ? [...timeline.full] : [from, to];
  timeline.symbol = symbol;
  timeline.market = marketName;
  timeline.steps = steps;
  const marks = buildMarks(steps, delistings.items, gaps);
  drawTimeline(steps, marks);
  listMarks(marks);
  showRange();
  if (history.cut) fill("timeline-legend", note("history longer than the pages read: the oldest part is shown"));
  const at = params.get("at");
  if (at) await pointDetail(Date.parse(at));
}

function buildMarks(steps, delistings, gaps) {
  // One band per status run: a rule change does not split it.
  const bands = [];
  for (const s of steps) {
    const status = s.listed ? s.state.status || s.state.contractStatus || "?" : "unlisted";
    const last = bands[bands.length - 1];
    if (last && last.status === status && last.to === s.from) last.to = s.to;
    else bands.push({ kind: "band", from: s.from, to: s.to, status });
  }
  const changes = steps.slice(1).map((s) => ({ kind: "change", at: s.from, fields: s.version.changes.map((c) => c.field), version: s.version }));
  const delisting = delistings.map((c) => ({ kind: "delisting", at: Date.parse(c.changed_at), text: delistingText(c) }));
  return { bands, changes, delisting, gaps };
}

function delistingText(change) {
  if (change.field === "listed" && change.new) return `delisting announced for ${new Date(change.new.delistTime).toISOString()}`;
  if (change.field === "listed") return "delisting left the schedule";
  return `delisting moved to ${new Date(change.new).toISOString()}`;
}

function destroyCharts() {
  for (const chart of timeline.charts) chart.destroy();
  timeline.charts = [];
  fill("timeline-charts");
}

function chartWidth() {
  return Math.max(600, $("timeline-charts").clientWidth || 1000);
}

function overlay(u, items) {
  // Bands, marks and gaps as positioned elements over the plot: readable by assistive
  // technology and tests alike, moved on every redraw (zoom, pan, resize).
  const layer = el("div", { class: "overlays" });
  u.over.append(layer);
  const place = () => {
    const [min, max] = [u.scales.x.min * 1e3, u.scales.x.max * 1e3];
    for (const [node, from, to] of items) {
      const a = u.valToPos(Math.max(from, min) / 1e3, "x");
      const b = u.valToPos(Math.min(to === null ? max : to, max) / 1e3, "x");
      const outside = to !== undefined ? (to !== null && to < min) || from > max : from < min || from > max;
      node.hidden = outside;
      node.style.left = `${a}px`;
      if (to !== undefined) node.style.width = `${Math.max(1, b - a)}px`;
    }
  };
  for (const [node] of items) layer.append(node);
  return place;
}

function drawTimeline(steps, marks) {
  const container = $("timeline-charts");
  const width = chartWidth();
  const statusItems = [];
  for (const band of marks.bands) {
    const known = ["TRADING", "HALT", "BREAK", "unlisted"].includes(band.status) ? band.status : "other";
    const node = el("div", { class: `band band-${known}`, "data-status": band.status, "data-from": iso(band.from), "data-to": band.to ? iso(band.to) : "", title: `${band.status} from ${utcText(band.from)}` },
      el("span", { class: "band-label", text: band.status }));
    statusItems.push([node, band.from, band.to]);
  }
  const gapItems = marks.gaps.map((g) => [el("div", { class: "gap", "data-from": iso(g.from), "data-to": iso(g.to), title: `gap: no successful poll from ${utcText(g.from)} to ${utcText(g.to)}` }), g.from, g.to]);
  const markItems = () => [
    ...marks.changes.map((m) => [el("div", { class: "mark", "data-at": iso(m.at), "data-fields": m.fields.join(" ") }), m.at]),
    ...marks.delisting.map((m) => [el("div", { class: "mark mark-delisting", "data-at": iso(m.at) }), m.at]),
  ];

  const xs = [];
  const series = ruleSeries(steps);
  for (const step of steps) xs.push(step.from / 1e3);
  xs.push(timeline.full[1] / 1e3);
  const charts = [{ title: "status", values: null, path: null }, ...series];
  for (const chart of charts) {
    const pieces = [...gapItems.map(([n, f, t]) => [n.cloneNode(true), f, t]), ...markItems()];
    if (!chart.path) pieces.unshift(...statusItems);
    const ys = chart.path ? [...steps.map((s) => numberOr(s.state[chart.path])), numberOr(steps[steps.length - 1].state[chart.path])] : xs.map(() => null);
    const wrapper = el("div", { class: "chart", "data-rule": chart.path || "status" }, el("p", { class: "chart-title", text: chart.path ? `${chart.label} (${chart.path})` : "status (bands), changes (blue lines), delisting news (red dashed), gaps (grey)" }));
    container.append(wrapper);
    let place = () => {};
    const options = {
      width,
      height: chart.path ? 110 : 120,
      scales: { x: { time: true, min: timeline.range[0] / 1e3, max: timeline.range[1] / 1e3, auto: false }, y: chart.path ? {} : { range: [0, 1] } },
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: true }, points: { show: false } },
      axes: [
        { values: axisLabels, space: 90 },
        chart.path ? { size: 90, values: ruleLabels } : { show: true, size: 90, values: () => [] },
      ],
      series: [
        {},
        chart.path
          ? { label: chart.label, stroke: "#1d4f91", width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: true, size: 5, fill: "#1d4f91" } }
          : { label: "status", show: false },
      ],
      hooks: {
        ready: [(u) => { place = overlay(u, pieces); place(); }],
        draw: [() => place()],
        setScale: [(u, key) => { if (key === "x") sync(u); }],
      },
    };
    const u = new uPlot(options, [xs, ys], wrapper);
    clickable(u);
    timeline.charts.push(u);
  }
  fill("timeline-legend",
    ["TRADING", "HALT", "BREAK"].map((s) => el("span", { class: `swatch-${s}`, text: s })),
    el("span", { text: "other status" }), el("span", { text: "not listed" }), el("span", { text: "coverage gap" }));
  styleLegend();
}

function styleLegend() {
  const colours = ["#cfe8d4", "#f4b6b6", "#f6d28b", "#d8d0f0", "#e4e4e4", "#d6d6d6"];
  [...$("timeline-legend").children].forEach((node, i) => node.style.setProperty("--swatch", colours[i] || "#fff"));
}

function numberOr(value) {
  if (value === undefined || value === null) return null;
  const n = Number(value);
  return Number.isNaN(n) ? null : n;
}

// Rule values are decimals such as 0.00001: uPlot's default labels would round them to 0.
function ruleLabels(u, splits) {
  return splits.map((v) => (v === null ? "" : String(Number(v.toPrecision(8)))));
}

function axisLabels(u, splits) {
  const span = (u.scales.x.max - u.scales.x.min) * 1e3;
  return splits.map((s) => {
    const text = utcText(s * 1e3);
    if (span < 60e3) return text.slice(11, 23);
    if (span < DAY) return text.slice(11, 19);
    if (span < 90 * DAY) return text.slice(0, 16);
    return text.slice(0, 10);
  });
}

function sync(source) {
  if (timeline.syncing) return;
  timeline.syncing = true;
  const { min, max } = source.scales.x;
  timeline.range = [min * 1e3, max * 1e3];
  for (const chart of timeline.charts) if (chart !== source) chart.setScale("x", { min, max });
  timeline.syncing = false;
  showRange();
  const params = state();
  params.set("from", iso(timeline.range[0]));
  params.set("to", iso(timeline.range[1]));
  go(Object.fromEntries(params), true);
}

function setRange(from, to) {
  if (!timeline.charts.length) return;
  timeline.charts[0].setScale("x", { min: from / 1e3, max: to / 1e3 });
}

function zoom(factor, centre) {
  const [from, to] = timeline.range;
  const middle = centre === undefined ? (from + to) / 2 : centre;
  const span = Math.max(10, (to - from) * factor);
  const share = (middle - from) / (to - from);
  setRange(middle - span * share, middle + span * (1 - share));
}

function pan(direction) {
  const [from, to] = timeline.range;
  const step = (to - from) * 0.25 * direction;
  setRange(from + step, to + step);
}

function clickable(u) {
  let down = null;
  u.over.addEventListener("mousedown", (e) => { down = e.clientX; });
  u.over.addEventListener("click", (e) => {
    if (down !== null && Math.abs(e.clientX - down) > 3) return;  // a drag that zoomed
    const at = Math.round(u.posToVal(u.cursor.left, "x") * 1e3);
    choosePoint(at);
  });
  u.over.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoom(e.deltaY < 0 ? 0.8 : 1.25, u.posToVal(u.cursor.left, "x") * 1e3);
  }, { passive: false });
}

function showRange() {
  const [from, to] = timeline.range;
  fill("timeline-range", `${timeline.symbol} on ${timeline.market}: `, when(from), " to ", when(to));
}

function listMarks(marks) {
  const items = [
    ...marks.bands.filter((b) => b.status !== "TRADING" || marks.bands.length === 1).map((b) => ({ at: b.from, kind: "status", text: `${b.status} until `, until: b.to })),
    ...marks.changes.map((m) => ({ at: m.at, kind: "change", text: `changed: ${m.fields.join(", ")}` })),
    ...marks.delisting.map((m) => ({ at: m.at, kind: "delisting", text: m.text })),
    ...marks.gaps.map((g) => ({ at: g.from, kind: "gap", text: "gap: no successful poll until ", until: g.open ? null : g.to })),
  ].sort((a, b) => a.at - b.at);
  fill("timeline-marks", items.map((item) => el("li", { "data-kind": item.kind, "data-at": iso(item.at) },
    el("button", { type: "button", class: "link", onclick: () => choosePoint(item.at) }, when(item.at)), " ",
    el("span", { class: item.kind === "status" ? "bad" : "" }, item.text),
    item.until !== undefined ? (item.until === null ? "now" : when(item.until)) : null)));
}

async function choosePoint(at) {
  const params = state();
  params.set("at", iso(at));
  go(Object.fromEntries(params), true);
  await pointDetail(at);
}

async function pointDetail(at) {
  for (const chart of timeline.charts) {
    for (const old of chart.over.querySelectorAll(".mark-point")) old.remove();
    const [min, max] = [chart.scales.x.min * 1e3, chart.scales.x.max * 1e3];
    if (at < min || at > max) continue;
    const point = el("div", { class: "mark mark-point", "data-at": iso(at) });
    point.style.left = `${chart.valToPos(at / 1e3, "x")}px`;  // the CSP refuses style attributes
    chart.over.append(point);
  }
  const found = await maybe(`/v1/symbols/${encodeURIComponent(timeline.symbol)}`, { as_of: iso(at), market: timeline.market });
  if (found.error) {
    fill("timeline-point", el("p", {}, when(at)), notFound(found));
    return;
  }
  const s = found.body;
  const instant = `?${new URLSearchParams({ view: "instant", market: timeline.market, symbols: timeline.symbol, at: iso(at) })}`;
  fill("timeline-point",
    el("p", {}, "At ", when(at), ": ", el("a", { href: instant, text: "open the instant view" })),
    symbolTable([s], timeline.market),
    evidence(s.evidence, market(timeline.market).exchange_info),
    el("h4", { text: "Document in force then (as Binance sent it)" }),
    el("pre", { class: "raw", id: "point-raw", tabindex: "0" }, JSON.stringify(s.raw, null, 2)));
}

// ---------------------------------------------------------------- activity view

let activityChart = null;

async function activityView(params) {
  const form = $("activity-form");
  const marketName = market(params.get("market")).name;
  fill("activity-stream", el("option", { value: "", text: "every stream of the market" }),
    visibleStreams().filter((s) => s.market === marketName).map((s) => el("option", { value: s.name, text: s.name })));
  setForm(form, params);
  const now = Date.now();
  const to = params.get("to") || null;
  const from = params.get("from") || null;
  const query = {
    from: from || iso((to ? Date.parse(to) : now) - DAY),
    to,
    market: params.get("stream") ? null : marketName,
    stream: params.get("stream") || null,
    symbol: params.get("symbol") || null,
    field: params.get("field") || null,
    exclude_field: params.get("churn") === "on" ? null : CHURN,
  };
  fill("activity-summary", "Loading…");
  const [feed, coverage] = await Promise.all([
    allPages("/v1/changes", query, "changes"),
    Promise.all(visibleStreams().map((s) => maybe("/v1/observations", { stream: s.name, from: query.from, to: query.to, limit: 10000 }).then((r) => [s, r]))),
  ]);
  const start = Date.parse(query.from);
  const end = to ? Date.parse(to) : now;
  const bucket = params.get("bucket") === "day" ? DAY : HOUR;
  fill("activity-summary", `${feed.items.length}${feed.cut ? "+" : ""} changes from `, when(start), " to ", when(end),
    query.exclude_field ? " (the MARKET_LOT_SIZE churn left out)" : " (the MARKET_LOT_SIZE churn included)");
  drawActivity(feed.items, start, end, bucket);
  fill("activity-feed", changeTable(feed.items.slice().reverse(), feed.cut));
  fill("activity-coverage", table(["stream", "polls", "errors", "gaps", "time in gaps"], coverage.map(([s, r]) => coverageRow(s, r, end)), { id: "coverage" }));
}

function coverageRow(stream, result, end) {
  if (result.error) return [stream.name, el("span", { class: "warn", text: result.error.message }), "", "", ""];
  const body = result.body;
  const polls = body.observations.length;
  const errors = body.observations.filter((o) => o.outcome === "error").length;
  const gaps = body.gaps.filter((g) => g.start !== null);
  const seconds = gaps.reduce((sum, g) => sum + ((g.end ? Date.parse(g.end) : end) - Date.parse(g.start)) / 1e3, 0);
  return [stream.name, `${polls}${body.truncated ? "+" : ""}`, el("span", { class: errors ? "bad" : "", text: String(errors) }), String(gaps.length), gaps.length ? `${seconds.toFixed(1)} s` : "—"];
}

function drawActivity(changes, start, end, bucket) {
  if (activityChart) activityChart.destroy();
  const first = Math.floor(start / bucket) * bucket;
  const counts = new Map();
  for (let t = first; t < end; t += bucket) counts.set(t, 0);
  for (const c of changes) {
    const t = Math.floor(Date.parse(c.changed_at) / bucket) * bucket;
    counts.set(t, (counts.get(t) || 0) + 1);
  }
  const xs = [...counts.keys()].sort((a, b) => a - b);
  const span = [xs[0] / 1e3, (xs[xs.length - 1] + bucket) / 1e3];
  const container = fill("activity-chart", el("p", { class: "chart-title", text: `changes per ${bucket === DAY ? "day" : "hour"} (drag to zoom, double-click to reset)` }));
  activityChart = new uPlot({
    width: Math.max(600, container.clientWidth || 1000),
    height: 220,
    scales: { x: { time: true, range: () => span }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    legend: { show: false },
    axes: [{ values: axisLabels, space: 90 }, { size: 60 }],
    series: [{}, { label: "changes", fill: "rgba(29,79,145,.55)", stroke: "#1d4f91", paths: uPlot.paths.bars({ size: [0.8, 60] }), points: { show: false } }],
  }, [xs.map((x) => x / 1e3), xs.map((x) => counts.get(x))], container);
  container.dataset.buckets = JSON.stringify(xs.map((x) => [iso(x), counts.get(x)]));
}

// ---------------------------------------------------------------- wiring

const VIEWS = { instant: instantView, timeline: timelineView, activity: activityView };

async function render() {
  const params = state();
  const view = VIEWS[params.get("view")] ? params.get("view") : "instant";
  for (const name of Object.keys(VIEWS)) {
    $(`view-${name}`).hidden = name !== view;
    const link = $(`nav-${name}`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    const keep = new URLSearchParams();
    for (const key of ["market", "at", "symbols"]) if (params.get(key)) keep.set(key, params.get(key));
    if (name === "timeline" && params.get("symbols")) keep.set("symbol", params.get("symbols").split(",")[0]);
    keep.set("view", name);
    link.href = `?${keep}`;
  }
  document.title = `exmeta console: ${$(`nav-${view}`).textContent}`;
  alertShow("");
  document.body.dataset.ready = "";
  try {
    await VIEWS[view](params);
  } catch (error) {
    alertShow(error.message);
  }
  document.body.dataset.ready = "true";
}

function submitted(form, extra) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = { ...extra(), ...formParams(form) };
    go(params);
    render();
  });
}

function start() {
  for (const select of document.querySelectorAll("select.market")) {
    fill(select, CATALOGUE.markets.map((m) => el("option", { value: m.name, text: m.name })));
  }
  $("token").value = token();
  $("token-apply").addEventListener("click", () => {
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    render();
  });
  submitted($("instant-form"), () => ({ view: "instant" }));
  submitted($("timeline-form"), () => ({ view: "timeline" }));
  submitted($("activity-form"), () => ({ view: "activity" }));
  // The check keeps the instant view's own choices and adds the order's.
  submitted($("check-form"), () => {
    const keep = {};
    for (const [k, v] of state()) keep[k] = v;
    for (const name of ["side", "type", "quantity", "quote_quantity", "price", "reference_price", "symbol"]) delete keep[name];
    return { ...keep, view: "instant" };
  });
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => {
      const how = button.dataset.zoom;
      if (how === "reset") setRange(...timeline.full);
      else zoom(how === "in" ? 0.5 : 2);
    });
  }
  for (const button of document.querySelectorAll("[data-pan]")) button.addEventListener("click", () => pan(Number(button.dataset.pan)));
  $("timeline-charts").addEventListener("keydown", (e) => {
    const keys = { ArrowLeft: () => pan(-1), ArrowRight: () => pan(1), "+": () => zoom(0.5), "=": () => zoom(0.5), "-": () => zoom(2) };
    if (keys[e.key]) {
      e.preventDefault();
      keys[e.key]();
    }
  });
  window.addEventListener("popstate", render);
  render();
}

document.addEventListener("DOMContentLoaded", start);
