// app.js — the baton dashboard: hash-routed pages over the JSON API, refreshed every second.
// Everything shown goes through text nodes (never innerHTML), so data cannot become markup.
'use strict';

let session = null;   // {csrf, user, database, version}
let timer = null;
let gen = 0;          // bumps on navigation: late answers for an old page are dropped

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'onclick' || k === 'onchange' || k === 'onsubmit') e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

const txt = (v) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const pretty = (v) => (v === null || v === undefined ? '' : JSON.stringify(v, null, 2));
const badge = (s) => el('span', {class: 'badge s-' + txt(s), 'data-state': txt(s)}, txt(s));
const link = (href, label) => el('a', {href}, txt(label));
const time = (t) => (t ? txt(t).replace('T', ' ').replace(/\.\d+/, '').replace(/\+00:00$/, ' UTC') : '');

async function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  const r = await fetch(path + (q.toString() ? '?' + q : ''), {credentials: 'same-origin'});
  const body = await r.json().catch(() => ({error: 'HTTP ' + r.status}));
  if (!r.ok) throw new Error(body.error || 'HTTP ' + r.status);
  return body;
}

async function act(what, params, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  const q = new URLSearchParams(Object.assign({do: what}, params));
  const r = await fetch('/api/action?' + q, {method: 'POST', credentials: 'same-origin',
                                             headers: {'X-CSRF-Token': session ? session.csrf : ''}});
  let body;
  try { body = await r.json(); } catch (e) { body = {error: await r.text().catch(() => 'HTTP ' + r.status)}; }
  if (!r.ok) toast(what + ' failed: ' + (body.error || r.status), true);
  else toast(what.replace(/_/g, ' ') + ': done' + (body.count !== undefined ? ' (' + body.count + ')' : ''));
  refresh();
}

function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = 'toast' + (bad ? ' bad' : '');
  t.hidden = false;
  clearTimeout(toast.t);
  toast.t = setTimeout(() => { t.hidden = true; }, 4000);
}

function table(cols, rows, empty) {
  if (!rows || rows.length === 0) return el('p', {class: 'muted'}, empty || 'Nothing here.');
  return el('table', {},
    el('thead', {}, el('tr', {}, cols.map((c) => el('th', {class: c.num ? 'num' : null}, c.h)))),
    el('tbody', {}, rows.map((r) => el('tr', {'data-id': r.id !== undefined ? r.id : null},
      cols.map((c) => {
        const v = c.f ? c.f(r) : txt(r[c.k]);
        return el('td', {class: c.num ? 'num' : c.clip ? 'clip' : null, title: c.clip ? txt(r[c.k]) : null}, v);
      })))));
}

function card(title, ...kids) { return el('section', {class: 'card'}, title ? el('h2', {}, title) : null, kids); }

function kv(pairs) {
  return el('div', {class: 'kv'}, pairs.filter((p) => p[1] !== null && p[1] !== undefined && p[1] !== '')
    .map(([k, v]) => [el('div', {class: 'k'}, k), el('div', {}, v instanceof Node ? v : txt(v))]));
}

function sparkline(values) {
  const ns = 'http://www.w3.org/2000/svg';
  const w = 150, h = 30, vals = values && values.length ? values : [0];
  const max = Math.max(1, ...vals);
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', w); svg.setAttribute('height', h);
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const step = w / Math.max(1, vals.length - 1);
  const pts = vals.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 6)).toFixed(1)}`);
  const area = document.createElementNS(ns, 'path');
  area.setAttribute('d', `M0,${h} L${pts.join(' L')} L${w},${h} Z`);
  area.setAttribute('fill', '#d0ebff');
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts.join(' '));
  line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#1c7ed6'); line.setAttribute('stroke-width', '1.6');
  const title = document.createElementNS(ns, 'title');
  title.textContent = `finished per 10 s over the last 10 minutes (max ${max}, now ${vals[vals.length - 1]})`;
  svg.append(title, area, line);
  return svg;
}

// ---- pages: each returns {load: async () => data, render: (data) => Node}, optional form (not redrawn)

const pages = {
  overview: () => ({
    load: () => api('/api/overview'),
    render: (d) => {
      const sum = (k) => d.queues.reduce((a, q) => a + Number(q[k] || 0), 0);
      return el('div', {},
        el('div', {class: 'grid'},
          stat('pending', sum('pending')), stat('running', sum('running')), stat('failed', sum('failed')),
          stat('done last minute', sum('done_last_minute')), stat('runs running', d.runs_running),
          stat('workers alive', d.workers.length),
          stat('scheduler', d.scheduler_running === null ? 'unknown' : d.scheduler_running ? 'running' : 'off')),
        card('Queues', table([
          {h: 'queue', f: (q) => [link('#/tasks?queue=' + encodeURIComponent(q.queue), q.queue), ' ',
                                  q.paused ? el('span', {class: 'badge paused'}, 'paused') : null]},
          {h: 'pending', k: 'pending', num: true}, {h: 'running', k: 'running', num: true},
          {h: 'failed', num: true, f: (q) => q.failed > 0
            ? link('#/tasks?queue=' + encodeURIComponent(q.queue) + '&state=failed', q.failed) : '0'},
          {h: 'oldest pending', k: 'oldest_pending'}, {h: 'done / min', k: 'done_last_minute', num: true},
          {h: 'throughput (10 min)', f: (q) => sparkline(q.spark)}, {h: 'limits', k: 'limits'},
          {h: '', f: (q) => q.paused
            ? el('button', {onclick: () => act('resume', {queue: q.queue})}, 'Resume')
            : el('button', {onclick: () => act('pause', {queue: q.queue})}, 'Pause')},
        ], d.queues, 'No queues yet: SELECT baton.create_queue(...)')),
        card('Workers alive', table([
          {h: 'worker', k: 'worker'}, {h: 'host', k: 'host'}, {h: 'pid', k: 'pid', num: true},
          {h: 'queues', k: 'queues'}, {h: 'running', k: 'running', num: true}, {h: 'seen', f: (w) => w.seen_ago + ' ago'},
        ], d.workers, 'No live worker: start baton-worker.')));
    },
  }),

  tasks: (q) => ({
    form: filterForm('tasks', q, [['queue', 'queue'], ['state', 'state', ['', 'pending', 'running', 'succeeded',
      'failed', 'cancelled']], ['q', 'text in payload, result or error']], (f) => f.queue ? [
      el('button', {class: 'danger', onclick: () => act('retry_queue', {queue: f.queue},
        `Retry every failed task of queue "${f.queue}"?`)}, 'Retry all failed'),
      el('button', {class: 'danger', onclick: () => act('cancel_queue', {queue: f.queue},
        `Cancel every pending and running task of queue "${f.queue}"?`)}, 'Cancel all pending'),
    ] : []),
    load: () => api('/api/tasks', q),
    render: (rows) => card(null, table([
      {h: 'id', f: (t) => link('#/task/' + t.id, t.id)}, {h: 'queue', k: 'queue'}, {h: 'state', f: (t) => badge(t.state)},
      {h: 'attempts', k: 'attempts'}, {h: 'created', k: 'created'},
      {h: 'run', f: (t) => t.run_id ? link('#/run/' + t.run_id, t.run_id + ' ' + txt(t.step)) : ''},
      {h: 'payload', k: 'payload', clip: true}, {h: 'error', k: 'error', clip: true},
    ], rows, 'No task matches.')),
  }),

  task: (q, id) => ({
    load: () => api('/api/task', {id}),
    render: (t) => el('div', {},
      el('div', {class: 'row'}, el('h1', {}, 'Task ' + t.id + ' '), badge(t.state),
        ['failed', 'cancelled'].includes(t.state)
          ? el('button', {class: 'primary', id: 'retry', onclick: () => act('retry', {id: t.id})}, 'Retry') : null,
        ['pending', 'running'].includes(t.state)
          ? el('button', {class: 'danger', id: 'cancel', onclick: () => act('cancel', {id: t.id},
              'Cancel task ' + t.id + '?')}, 'Cancel') : null),
      el('div', {class: 'explain', id: 'explain'}, el('strong', {}, 'Why is it here? '), txt(t.explanation)),
      el('div', {class: 'split'},
        card('Task', kv([['queue', link('#/tasks?queue=' + encodeURIComponent(t.queue), t.queue)],
          ['attempt', t.attempt + ' of ' + t.max_attempts], ['priority', t.priority], ['created', time(t.created_at)],
          ['run at', time(t.run_at)], ['started', time(t.started_at)], ['finished', time(t.finished_at)],
          ['worker', t.worker], ['lease until', time(t.lease_expires_at)],
          ['run', t.run_id ? link('#/run/' + t.run_id, t.run_id + ' (step ' + txt(t.step) + ')') : null],
          ['event', t.event_id], ['correlation', link('#/trace?correlation=' + t.correlation_id, t.correlation_id)]])),
        card('Payload', el('pre', {id: 'payload'}, pretty(t.payload)))),
      t.error ? card('Last error', el('pre', {class: 'error'}, txt(t.error))) : null,
      t.result !== null ? card('Result', el('pre', {}, pretty(t.result))) : null),
  }),

  runs: (q) => ({
    form: filterForm('runs', q, [['workflow', 'workflow'], ['state', 'state', ['', 'running', 'succeeded', 'failed',
      'cancelled']]]),
    load: () => api('/api/runs', q),
    render: (rows) => card(null, table([
      {h: 'id', f: (r) => link('#/run/' + r.id, r.id)}, {h: 'workflow', f: (r) => r.workflow + ' v' + r.version},
      {h: 'state', f: (r) => badge(r.state)}, {h: 'steps done', k: 'progress'}, {h: 'created', k: 'created'},
      {h: 'duration', k: 'duration'}, {h: 'compensation', k: 'compensation'}, {h: 'error', k: 'error', clip: true},
    ], rows, 'No run matches.')),
  }),

  run: (q, id) => ({
    load: () => api('/api/run', {id}),
    render: (r) => {
      const [done, total] = txt(r.progress).split('/').map(Number);
      return el('div', {},
        el('div', {class: 'row'}, el('h1', {}, `Run ${r.id} · ${r.workflow} v${r.version} `),
          el('span', {id: 'run-state'}, badge(r.state)),
          r.state === 'running' ? el('button', {class: 'danger', onclick: () => act('cancel_run', {id: r.id},
            'Cancel run ' + r.id + '? Compensations run for finished steps.')}, 'Cancel run') : null,
          link('#/trace?run=' + r.id, 'trace')),
        card(`Steps ${r.progress}`, el('div', {class: 'progress'}, el('div', {style: null, 'data-w': total ? Math.round(100 * done / total) : 0})),
          el('div', {class: 'dag'}, dagImage(r))),
        card('Steps', table([
          {h: 'step', k: 'step'}, {h: 'kind', k: 'kind'}, {h: 'state', f: (s) => badge(s.state)},
          {h: 'attempt', k: 'attempt', num: true}, {h: 'duration', k: 'duration'}, {h: 'map', k: 'map'},
          {h: 'task', f: (s) => s.task_id ? link('#/task/' + s.task_id, s.task_id) : ''},
          {h: 'child run', f: (s) => s.child_run_id ? link('#/run/' + s.child_run_id, s.child_run_id) : ''},
          {h: 'compensation', f: (s) => s.compensation_task_id ? link('#/task/' + s.compensation_task_id, s.compensation_task_id) : ''},
          {h: 'input', k: 'input', clip: true}, {h: 'output', k: 'output', clip: true}, {h: 'error', k: 'error', clip: true},
        ], r.steps.map((s) => Object.assign({id: s.step}, s)))),
        el('div', {class: 'split'}, card('Input', el('pre', {}, pretty(r.input))),
          card(r.error ? 'Error' : 'Output', el('pre', {class: r.error ? 'error' : null}, r.error ? txt(r.error) : pretty(r.output)))));
    },
  }),

  events: (q) => ({
    form: filterForm('events', q, [['topic', 'topic']]),
    load: () => api('/api/events', q),
    render: (rows) => card(null, table([
      {h: 'id', k: 'id', num: true}, {h: 'topic', k: 'topic'}, {h: 'key', k: 'key'}, {h: 'published', k: 'published'},
      {h: 'cause', f: (e) => e.cause_task_id ? link('#/task/' + e.cause_task_id, 'task ' + e.cause_task_id)
        : e.cause_run_id ? link('#/run/' + e.cause_run_id, 'run ' + e.cause_run_id) : ''},
      {h: 'trace', f: (e) => link('#/trace?event=' + e.id, 'trace')}, {h: 'payload', k: 'payload', clip: true},
    ], rows, 'No events.')),
  }),

  subscriptions: () => ({
    load: () => api('/api/subscriptions'),
    render: (d) => el('div', {},
      card('Subscriptions', table([
        {h: 'name', k: 'name'}, {h: 'topic', k: 'topic'}, {h: 'target', f: (s) => s.target_kind + ' ' + s.target},
        {h: 'filter', k: 'filter'}, {h: 'delivered', k: 'delivered', num: true}, {h: 'live', k: 'live', num: true},
        {h: 'succeeded', k: 'succeeded', num: true}, {h: 'failed', k: 'failed', num: true},
        {h: '', f: (s) => [
          el('button', {onclick: () => act('replay', {subscription: s.name, since: prompt('Replay events published since (timestamp):',
            new Date(Date.now() - 3600e3).toISOString()) || ''}, null)}, 'Replay…'), ' ',
          s.failed > 0 ? el('button', {class: 'danger', onclick: () => act('retry_dead_letters', {subscription: s.name},
            `Retry the ${s.failed} dead letters of "${s.name}"?`)}, 'Retry dead letters') : null]},
      ], d.subscriptions, 'No subscriptions.')),
      card('Dead letters', table([
        {h: 'subscription', k: 'subscription'}, {h: 'task', f: (x) => link('#/task/' + x.task_id, x.task_id)},
        {h: 'event', k: 'event_id'}, {h: 'topic', k: 'topic'}, {h: 'key', k: 'key'}, {h: 'attempts', k: 'attempts', num: true},
        {h: 'error', k: 'error', clip: true},
      ], d.dead_letters, 'No dead letters.'))),
  }),

  trace: (q) => ({
    form: filterForm('trace', q, [['correlation', 'correlation id']]),
    load: () => (q.correlation || q.task || q.run || q.event) ? api('/api/trace', q) : Promise.resolve(null),
    render: (d) => d === null ? card(null, el('p', {class: 'muted'}, 'Enter a correlation id, or follow a "trace" link.'))
      : el('div', {},
        card('Causal chain of ' + d.correlation, el('div', {class: 'dag'},
          el('img', {alt: 'trace graph', src: '/api/trace.svg?correlation=' + encodeURIComponent(d.correlation)}))),
        card('In order', table([
          {h: 'at', f: (x) => time(x.at)}, {h: 'kind', k: 'kind'},
          {h: 'id', f: (x) => x.kind === 'task' ? link('#/task/' + x.id, x.id) : x.kind === 'run' || x.kind === 'step'
            ? link('#/run/' + x.id, x.id) : txt(x.id)},
          {h: 'name', k: 'name'}, {h: 'state', f: (x) => x.state ? badge(x.state) : ''},
          {h: 'cause', f: (x) => x.cause_kind ? x.cause_kind + ' ' + x.cause_id : ''}, {h: 'detail', k: 'detail', clip: true},
        ], d.rows))),
  }),

  schedules: () => ({
    load: () => api('/api/schedules'),
    render: (rows) => card(null, table([
      {h: 'name', k: 'name'}, {h: 'cron', f: (s) => el('code', {}, s.cron)}, {h: 'target', f: (s) => s.target_kind + ' ' + s.target},
      {h: 'next fire (UTC)', k: 'next_fire'}, {h: 'last fired for', f: (s) => time(s.last_fire_at)},
      {h: 'fired', k: 'fire_count', num: true}, {h: 'last error', k: 'last_error', clip: true},
    ], rows, 'No schedules.')),
  }),

  workflows: () => ({
    load: () => api('/api/workflows'),
    render: (rows) => card(null, table([
      {h: 'name', f: (w) => link('#/runs?workflow=' + encodeURIComponent(w.name), w.name)}, {h: 'version', k: 'version', num: true},
      {h: 'steps', k: 'steps', num: true}, {h: 'created', k: 'created'}, {h: 'runs', k: 'runs', num: true},
      {h: 'definition', k: 'definition', clip: true},
    ], rows, 'No workflows.')),
  }),
};

function stat(label, n) { return el('div', {class: 'stat'}, el('div', {class: 'n'}, txt(n)), el('div', {class: 'l'}, label)); }

// The DAG picture: Graphviz SVG from the server, loaded as an image (no script in it can run);
// redrawn only when a step's state changed, swapped once loaded so it never flickers.
let dagKey = '', dagImg = null;
function dagImage(r) {
  const key = r.id + ':' + r.steps.map((s) => s.step + '=' + s.state + '/' + txt(s.map)).join(',');
  if (key !== dagKey || !dagImg) {
    dagKey = key;
    const img = new Image();
    img.alt = 'graph of run ' + r.id;
    img.id = 'dag';
    img.onload = () => { if (dagImg !== img) { const old = dagImg; dagImg = img; if (old && old.parentNode) old.replaceWith(img); } };
    img.src = '/api/run.svg?id=' + r.id + '&k=' + encodeURIComponent(key);
    if (!dagImg) dagImg = img;
  }
  return dagImg;
}

function filterForm(page, q, fields, extra) {
  const inputs = {};
  const form = el('form', {class: 'row', onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, i] of Object.entries(inputs)) if (i.value) p.set(k, i.value);
    location.hash = '#/' + page + (p.toString() ? '?' + p : '');
  }}, fields.map(([k, label, options]) => {
    const i = options
      ? el('select', {name: k}, options.map((o) => el('option', {value: o, selected: (q[k] || '') === o}, o || 'any ' + label)))
      : el('input', {name: k, placeholder: label, value: q[k] || ''});
    inputs[k] = i;
    return i;
  }), el('button', {type: 'submit', class: 'primary'}, 'Filter'), extra ? extra(q) : []);
  return form;
}

// ---- routing and the refresh loop

let current = null;

function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, qs] = h.split('?');
  const q = Object.fromEntries(new URLSearchParams(qs || ''));
  const [name, id] = path.split('/');
  const page = name || 'overview';
  const make = pages[page] || pages.overview;
  gen++;
  dagKey = ''; dagImg = null;
  current = make(q, id);
  current.name = page;
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('active', a.dataset.page === (page === 'task' ? 'tasks' : page === 'run' ? 'runs' : page));
  const main = document.getElementById('main');
  main.replaceChildren(el('h1', {}, page === 'task' || page === 'run' ? '' : page[0].toUpperCase() + page.slice(1)),
    current.form || '', el('div', {id: 'content'}, el('p', {class: 'muted'}, 'Loading…')));
  if (page === 'task' || page === 'run') main.firstChild.remove();
  refresh();
}

async function refresh() {
  if (!current) return;
  const mine = gen, page = current;
  const live = document.getElementById('live');
  try {
    const data = await page.load();
    if (mine !== gen) return;
    const node = page.render(data);
    const content = document.getElementById('content');
    content.replaceChildren(node);
    for (const bar of content.querySelectorAll('.progress > div')) bar.style.width = bar.dataset.w + '%';
    live.classList.remove('stale');
    live.textContent = 'live';
  } catch (e) {
    if (mine !== gen) return;
    document.getElementById('content').replaceChildren(card(null, el('p', {class: 'error'}, txt(e.message))));
    live.classList.add('stale');
    live.textContent = 'error';
  }
}

async function start() {
  try {
    session = await api('/api/session');
    document.getElementById('who').textContent = `${session.user} @ ${session.database} · baton ${session.extension}`;
  } catch (e) {
    document.getElementById('main').replaceChildren(el('p', {class: 'error'}, 'Cannot reach the API: ' + e.message));
    return;
  }
  window.addEventListener('hashchange', route);
  route();
  timer = setInterval(() => { if (!document.hidden) refresh(); }, 1000);
}

document.addEventListener('DOMContentLoaded', start);
