// SPDX-License-Identifier: MIT
// The supervisors' dashboard (docs/web.md). Reads only the gateway's own
// JSON endpoints; the browser's Basic login travels with each request.
// The live feed is an EventSource on /api/alerts: on a dropped connection
// the browser reconnects with Last-Event-ID by itself; after a reload the
// page passes the id it kept, so no alert is missed or shown twice.

const $ = (sel) => document.querySelector(sel);
const TIER = { county: '县', township: '乡镇', community: '村社区' };
const KIND = { escalated: '升级', overdue: '超期', reminder: '催办', warning: '临期提醒',
               unanswered: '未响应', ranking: '排名', quota: '走访不足', hotspot: '热点' };
const STATUS = { open: '在办', resolved: '已解决', explained: '已解释', referred: '已转办', closed: '已办结' };
let units = [];
let categories = {}; // code -> configured name, from the Open311 service list
let selected = null;
let me = null;

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function banner(text) {
  const b = $('#banner');
  b.hidden = !text;
  b.textContent = text || '';
}

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (r.status === 503) banner('守护进程未响应，数据可能过时；网关会自动重连。 (daemon not answering)');
  else if (r.ok) banner('');
  return { status: r.status, body };
}

// Times in the county's local time (calendar.utc_offset), whatever the
// browser's own zone.
function localTime(ms) {
  if (ms == null) return '—';
  const d = new Date(ms + (me ? me.utc_offset_minutes : 480) * 60000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}

function countsOf(u) {
  return el('span', { class: 'counts' },
    el('span', { class: 'n open', title: '在办' }, String(u.open)), ' / ',
    el('span', { class: 'n soon', title: '临期' }, String(u.due_soon)), ' / ',
    el('span', { class: 'n over', title: '超期' }, String(u.overdue)));
}

// The tree: each unit under the longest path that is its prefix.
function renderTree() {
  const byParent = new Map();
  for (const u of units) {
    const parent = u.path.includes('.') ? u.path.slice(0, u.path.lastIndexOf('.')) : '';
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(u);
  }
  const known = new Set(units.map((u) => u.path));
  const roots = units.filter((u) => !known.has(u.path.slice(0, u.path.lastIndexOf('.'))));
  const build = (list) => el('ul', {}, ...list.map((u) => el('li', {},
    el('button', { 'data-path': u.path, class: u.path === selected ? 'sel' : '', onclick: () => openUnit(u.path) },
      el('span', {}, u.name), countsOf(u)),
    ...(byParent.has(u.path) ? [build(byParent.get(u.path))] : []))));
  const tree = $('#tree');
  tree.replaceChildren(...build(roots).children);
}

async function loadUnits() {
  const { status, body } = await api('/api/units');
  if (status === 200) { units = body; renderTree(); }
}

async function openUnit(path) {
  selected = path;
  renderTree();
  const u = units.find((x) => x.path === path);
  $('#unit-title').replaceChildren(`${u ? u.name : path} 在办诉求 `, el('small', {}, path));
  const { status, body } = await api(`/api/appeals?unit=${encodeURIComponent(path)}`);
  const rows = status === 200 ? body.appeals : [];
  const now = Date.now();
  $('#appeals tbody').replaceChildren(...rows.map((a) => el('tr',
    { class: a.deadline != null && a.deadline <= now ? 'overdue' : (a.deadline != null && a.deadline - now < 86400000 ? 'soon' : '') },
    el('td', {}, a.appeal), el('td', {}, categories[a.category] || a.category), el('td', {}, TIER[a.tier] || a.tier),
    el('td', {}, localTime(a.deadline)), el('td', {}, STATUS[a.status] || a.status))));
  if (!rows.length) $('#appeals tbody').replaceChildren(el('tr', {}, el('td', { colspan: '5', class: 'note' }, '没有在办诉求')));
}

// --- live feed -------------------------------------------------------------
function showAlert(ev) {
  let a;
  try { a = JSON.parse(ev.data); } catch (e) { return; }
  sessionStorage.setItem('lx-last-event', ev.lastEventId);
  const name = (units.find((u) => u.path === a.unit) || {}).name || a.unit;
  const li = el('li', { 'data-seq': String(a.seq) },
    el('span', { class: `kind ${ev.type}` }, KIND[ev.type] || ev.type),
    `${name} `, a.appeal ? `诉求 ${a.appeal} ` : '',
    a.from && a.to && a.from !== a.to ? `${TIER[a.from]}→${TIER[a.to]} ` : '',
    el('span', { class: 'note' }, localTime(a.at)));
  $('#feed').prepend(li);
  while ($('#feed').children.length > 200) $('#feed').lastChild.remove();
  if (['escalated', 'overdue'].includes(ev.type)) loadUnits();
}

function connectFeed() {
  const last = sessionStorage.getItem('lx-last-event');
  const q = `prefix=${encodeURIComponent(me.jurisdiction + '.')}` + (last ? `&last_event_id=${last}` : '');
  const es = new EventSource(`/api/alerts?${q}`);
  for (const k of Object.keys(KIND)) es.addEventListener(k, showAlert);
  es.onmessage = showAlert;
  es.onopen = () => { $('#feed-state').textContent = '已连接'; };
  es.onerror = () => {
    $('#feed-state').textContent = '重连中…';
    if (es.readyState === EventSource.CLOSED) { es.close(); setTimeout(connectFeed, 3000); }
  };
}

// --- red and black lists ------------------------------------------------------
const pct = (x) => (x == null ? '—' : `${(x * 100).toFixed(1)}%`);

function listTable(title, cls, paths, rows) {
  const byUnit = new Map(rows.map((r) => [r.unit, r]));
  const name = (p) => (units.find((u) => u.path === p) || {}).name || p;
  return el('div', { class: cls }, el('h3', {}, title), el('div', { class: 'scroll' }, el('table', {},
    el('thead', {}, el('tr', {}, ...['单位', '响应率', '解决率', '满意率'].map((h) => el('th', {}, h)))),
    el('tbody', {}, ...paths.map((p) => { const r = byUnit.get(p) || {};
      return el('tr', {}, el('td', {}, name(p)), el('td', {}, pct(r.response_rate)),
        el('td', {}, pct(r.resolution_rate)), el('td', {}, pct(r.satisfaction_rate))); })))));
}

async function loadRanking() {
  const box = $('#ranking');
  const { status, body } = await api('/api/ranking?tier=community');
  if (status === 404 && body && body.code === 'E_NOTENABLED') {
    box.replaceChildren(el('p', { class: 'note', id: 'ranking-off' }, '排名未启用：守护进程未加载 rank 插件。 (ranking not enabled)'));
    return false;
  }
  if (status !== 200) { box.replaceChildren(el('p', { class: 'note' }, '暂无排名')); return false; }
  const rk = body.ranking;
  $('#ranking-period').textContent = `${rk.period}${body.final ? '' : '（截至目前）'}`;
  box.replaceChildren(el('div', { class: 'lists', id: 'ranking-lists' },
    listTable('红榜', 'red', rk.red || [], rk.rows || []),
    listTable('黑榜', 'black', rk.black || [], rk.rows || [])));
  return true;
}

// --- chart: response and resolution rates by month ----------------------------
// /api/rates sums the rank op's rows of each month inside the user's
// jurisdiction; its months end with the daemon's current local month, not
// the browser's (a phone's clock or zone may be off; a test clock is).
async function loadChart(enabled) {
  const box = $('#chart');
  if (!enabled) { box.replaceChildren(el('p', { class: 'note' }, '排名未启用，无按月比率。')); return; }
  const { status, body } = await api('/api/rates?months=6');
  if (status !== 200) { box.replaceChildren(el('p', { class: 'note' }, '暂无按月比率')); return; }
  const ms = body.months.map((pt) => pt.period);
  const pts = body.months.map((pt) => ({ p: pt.period, resp: pt.response_rate, res: pt.resolution_rate }));
  const W = 480, H = 200, L = 36, B = 24;
  const x = (i) => L + 20 + i * ((W - L - 50) / Math.max(1, ms.length - 1)); // room for centred labels
  const y = (v) => H - B - v * (H - B - 10);
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', '按月响应率与解决率');
  const add = (tag, attrs, text) => { const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; svg.append(e); };
  for (const v of [0, 0.5, 1]) { add('line', { x1: L, x2: W - 10, y1: y(v), y2: y(v), stroke: '#dde3e8' }); add('text', { x: 2, y: y(v) + 4 }, `${v * 100}%`); }
  ms.forEach((p, i) => add('text', { x: x(i), y: H - 6, 'text-anchor': 'middle' }, p));
  for (const [k, color, label] of [['resp', '#0d47a1', '响应率'], ['res', '#2e7d32', '解决率']]) {
    const d = pts.map((pt, i) => (pt[k] == null ? null : `${x(i)},${y(pt[k])}`)).filter(Boolean);
    if (d.length) add('polyline', { points: d.join(' '), fill: 'none', stroke: color, 'stroke-width': 2 });
    // A dot per month with data: one month alone draws no line.
    pts.forEach((pt, i) => { if (pt[k] != null) add('circle', { cx: x(i), cy: y(pt[k]), r: 3, fill: color, 'data-series': k, 'data-period': pt.p }); });
    add('text', { x: k === 'resp' ? L + 4 : L + 70, y: 12, fill: color, style: `fill:${color}` }, label);
  }
  svg.id = 'chart-svg';
  box.replaceChildren(svg);
}

async function main() {
  const r = await api('/api/me');
  if (r.status !== 200) { banner('请登录 (log in)'); return; }
  me = r.body;
  $('#who').textContent = `${me.name} · ${me.jurisdiction}`;
  const svc = await api('/open311/v2/services.json');
  if (svc.status === 200) for (const c of svc.body) categories[c.service_code] = c.service_name;
  await loadUnits();
  connectFeed();
  loadChart(await loadRanking());
  setInterval(loadUnits, 10000);
}

main();
