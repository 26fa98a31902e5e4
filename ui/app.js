// tabad's built-in page (/ui/): explores what tabad aggregates through the
// query routes of docs/api.md, with the token the user gives. Plain JS, no
// dependencies; everything is built with DOM calls (textContent only), so
// values posted by clients can never become markup.
'use strict';
(() => {
  const WINDOWS = ['1m', '10m', '1h', '1d'];
  const PCT_NAMES = ['p25', 'p50', 'p75', 'p90', 'p95', 'p99', 'p99.9'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const MAX_ROWS = 500;  // overview rows; refine the filter for more
  const MAX_DETAIL_ROWS = 200;
  const API = '../';  // the page is <base>/ui/, the routes are <base>/<route>
  const TOKEN_KEY = 'tabad.token';

  // Known types; others (aliases, third-party plugins) are guessed from their JSON.
  const KIND_OF_TYPE = {
    CounterGroup: 'window', PercentileGroup: 'window', PercentileCounter: 'sketch',
    TotalsCounter: 'totals', Gauge: 'gauge', ExpiryGauge: 'gauge', Buffer: 'list', Set: 'count', Noop: 'none',
  };

  const state = {
    token: '', filter: '', mode: 'prefix', window: '1m', selected: null, client: '',
    types: {}, timer: 0, inflight: null, again: false,
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers
  function build(node, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }
  const el = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
  const svg = (tag, attrs, ...kids) => build(document.createElementNS(SVG_NS, tag), attrs, kids);

  // ---------------------------------------------------------------- formatting
  function fmt(x) {
    if (x === null || x === undefined || (typeof x === 'number' && !Number.isFinite(x))) return '—';
    if (typeof x !== 'number') return String(x);
    if (Number.isInteger(x)) return String(x);
    const a = Math.abs(x);
    if (a >= 1000) return x.toFixed(0);
    if (a >= 100) return x.toFixed(1);
    if (a >= 0.01) return x.toFixed(2);
    return x.toPrecision(2);
  }
  function fmtSeconds(s) {
    if (typeof s !== 'number' || !Number.isFinite(s)) return '—';
    if (s === 0) return '0 s';
    if (s < 0.001) return (s * 1e6).toFixed(0) + ' µs';
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + ' ms';
    if (s < 120) return s.toFixed(1) + ' s';
    if (s < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  const pad = (n) => String(n).padStart(2, '0');
  function clock(epochS, withSeconds = true) {
    const d = new Date(epochS * 1000);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + (withSeconds ? ':' + pad(d.getSeconds()) : '');
  }
  function dateTime(epochS) {
    const d = new Date(epochS * 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + clock(epochS);
  }
  function fmtBytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
    if (n < 1024) return n + ' B';
    const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = n / 1024, u = 0;
    while (v >= 1023.95 && u + 1 < units.length) { v /= 1024; u++; }
    return v.toFixed(1) + ' ' + units[u];
  }
  const ago = (epochS) => fmtSeconds(Math.max(0, Date.now() / 1000 - epochS)) + ' ago';
  const fmtRate = (x) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(x && x < 10 ? 1 : 0) : '—');
  const valueText = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
  const plural = (n, word, many = word + 's') => n + ' ' + (n === 1 ? word : many);

  // ---------------------------------------------------------------- the API
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(route, accept = 'application/json') {
    const headers = { Accept: accept };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    let r;
    try {
      r = await fetch(API + route, { headers, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'cannot reach tabad (' + e.message + ')');
    }
    const text = await r.text();
    if (!r.ok) throw new ApiError(r.status, text.trim() || r.status + ' ' + r.statusText);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError(r.status, route + ': the answer is not JSON (' + e.message + ')');
    }
  }

  const reEscape = (s) => s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  // The name filter as query parameters (RE2 on the server for both modes).
  function nameQuery() {
    const f = state.filter.trim();
    if (!f) return '';
    const re = state.mode === 'regex' ? f : reEscape(f) + '.*';
    return 'name=' + encodeURIComponent(re) + '&re=1';
  }
  const withQuery = (route, q) => (q ? route + '?' + q : route);

  // ---------------------------------------------------------------- reading renders
  function kindOf(type, v) {
    if (KIND_OF_TYPE[type]) return KIND_OF_TYPE[type];
    if (v === null) return 'none';
    if (v === undefined) return 'json';
    if (Array.isArray(v)) return 'list';
    if (typeof v !== 'object') return 'json';
    if (v['1m'] && typeof v['1m'] === 'object' && 'count' in v['1m']) return 'window';
    if (typeof v.count === 'number' && Array.isArray(v.pct)) return 'sketch';
    if (typeof v.count === 'number' && 'average' in v) return 'totals';
    const keys = Object.keys(v);
    if (keys.length === 1 && typeof v.count === 'number') return 'count';
    if (keys.every((k) => typeof v[k] === 'number')) return 'gauge';
    return 'json';
  }

  // Headline numbers of one render: count, average, p50, p99 (in window w
  // where the type has windows) and a one-line summary.
  function headline(kind, v, w) {
    const h = { count: null, avg: null, p50: null, p99: null, allTime: false, summary: '' };
    if (v === undefined) {
      h.summary = 'nothing to show';
      return h;
    }
    const pcts = (count, pct) => {
      if (count && Array.isArray(pct)) {
        h.p50 = pct[1];
        h.p99 = pct[5];
      }
    };
    switch (kind) {
      case 'window': {
        const x = v[w] || {};
        h.count = x.count ?? null;
        if (x.count) h.avg = x.average !== undefined ? x.average : x.total / x.count;
        if (Array.isArray(x.pct)) {
          pcts(x.count, x.pct);
        } else if (v.pct && v.pct.count) {
          pcts(v.pct.count, v.pct.pct);  // CounterGroup: its sketch is all-time
          h.allTime = true;
        }
        h.summary = WINDOWS.filter((k) => k !== w && v[k]).map((k) => k + ' ' + fmt(v[k].count)).join(' · ');
        break;
      }
      case 'sketch':
        h.count = v.count;
        if (v.count) h.avg = v.total / v.count;
        pcts(v.count, v.pct);
        h.allTime = true;
        h.summary = 'total ' + fmt(v.total);
        break;
      case 'totals':
        h.count = v.count;
        h.avg = v.count ? v.average : null;
        h.summary = 'total ' + fmt(v.total);
        break;
      case 'count':
        h.count = v.count;
        h.summary = 'distinct values';
        break;
      case 'gauge': {
        const entries = Object.entries(v).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
        h.count = entries.reduce((sum, e) => sum + e[1], 0);
        h.countTitle = 'clients reporting a value';
        h.summary = entries.length
          ? entries.slice(0, 4).map(([val, n]) => val + ' ×' + n).join(' · ') + (entries.length > 4 ? ' …' : '')
          : 'no value';
        break;
      }
      case 'list':
        h.count = v.length;
        h.summary = v.length ? 'newest: ' + valueText(v[0][0]) + ' (' + ago(v[0][1]) + ')' : 'empty';
        break;
      case 'none':
        h.summary = 'ignored (Noop)';
        break;
      default: {
        const s = JSON.stringify(v);
        h.summary = s.length > 120 ? s.slice(0, 119) + '…' : s;
      }
    }
    return h;
  }

  const numCell = (field, x, title) => el('td', { 'data-field': field, class: 'num', title, text: fmt(x) });
  const headlineCells = (h) => [
    numCell('count', h.count, h.countTitle), numCell('avg', h.avg),
    numCell('p50', h.p50, h.allTime ? 'all time' : null), numCell('p99', h.p99, h.allTime ? 'all time' : null),
    el('td', { 'data-field': 'summary', class: 'summary', title: h.summary, text: h.summary }),
  ];

  // ---------------------------------------------------------------- overview
  async function loadOverview() {
    const q = nameQuery();
    const [types, tabs] = await Promise.all([api(withQuery('types', q)), api(withQuery('tabs', q))]);
    state.types = types;
    renderOverview(types, tabs);
  }

  function renderOverview(types, tabs) {
    const names = Array.from(new Set([...Object.keys(types), ...Object.keys(tabs)])).sort();
    const rows = names.slice(0, MAX_ROWS).map((name) => {
      const type = types[name] || '?';
      const h = headline(kindOf(type, tabs[name]), tabs[name], state.window);
      return el('tr', {
        'data-tab': name, 'data-type': type, tabindex: 0, class: name === state.selected ? 'selected' : null,
        onclick: () => select(name), onkeydown: (e) => { if (e.key === 'Enter') select(name); },
      }, el('td', { class: 'name', title: name, text: name }), el('td', { class: 'type', text: type }), headlineCells(h));
    });
    $('overview-rows').replaceChildren(...rows);
    $('overview-empty').hidden = names.length > 0;
    $('tab-count').textContent = plural(names.length, 'tab') +
      (names.length > MAX_ROWS ? ' (showing ' + MAX_ROWS + ': refine the filter)' : '');
  }

  // ---------------------------------------------------------------- detail
  function select(name) {
    state.selected = name;
    state.client = '';
    for (const tr of $('overview-rows').children) tr.classList.toggle('selected', tr.dataset.tab === name);
    saveHash();
    if (!name) {
      $('detail-panel').hidden = true;
      return;
    }
    refresh();
  }

  async function loadDetail() {
    const name = state.selected;
    if (!name) return;
    const q = 'name=' + encodeURIComponent(name);
    const [types, agg, proj] = await Promise.all([api('types?' + q), api('tabs?' + q), api('projection?' + q)]);
    if (name !== state.selected) return;
    const type = types[name];
    const kind = kindOf(type, agg[name]);
    let series = null;
    if (type && kind === 'window') {
      const cq = state.client ? q + '&client=' + encodeURIComponent(state.client) : q;
      series = (await api('tabs?' + cq, 'application/json-detailed'))[name] || null;
      if (name !== state.selected) return;
    }
    renderDetail(name, type, kind, agg[name], proj[name] || {}, series);
  }

  function renderDetail(name, type, kind, v, perClient, series) {
    const panel = $('detail-panel');
    const clients = Object.keys(perClient).sort();
    panel.hidden = false;
    panel.dataset.tab = name;
    const head = el('div', { class: 'detail-head' },
      el('h2', { id: 'detail-name', text: name }),
      el('span', { id: 'detail-type', class: 'badge', text: type || 'unknown' }),
      el('span', { class: 'muted', text: plural(clients.length, 'client') }),
      el('button', { type: 'button', class: 'close', title: 'Close', text: '×', onclick: () => select(null) }));
    if (!type) {
      panel.replaceChildren(head, el('p', { class: 'muted', text: 'No tab is named ' + name + ' (deleted, or pruned by GC).' }));
      return;
    }
    // /tabs leaves out names with nothing to show (e.g. every entry expired).
    if (v === undefined && kind === 'gauge') v = {};
    if (v === undefined && kind === 'list') v = [];
    const aggregate = (render) => section('Across all clients', v === undefined
      ? el('p', { class: 'muted', text: 'Nothing to show now: every state is empty or expired.' }) : render());
    const parts = [head];
    switch (kind) {
      case 'window':
        parts.push(aggregate(() => windowTable(v)));
        parts.push(chartSection(series, clients));
        parts.push(section('Per client · ' + state.window, clientTable(kind, perClient, clients, true)));
        break;
      case 'sketch':
      case 'totals':
      case 'count':
        parts.push(aggregate(() => flatTable(kind, v)));
        parts.push(section('Per client', clientTable(kind, perClient, clients, false)));
        break;
      case 'gauge':
        parts.push(section('Value → clients', gaugeTable(v, perClient, clients)));
        break;
      case 'list':
        parts.push(section('Entries, newest first', listTable(v, perClient, clients)));
        break;
      case 'none':
        parts.push(el('p', { class: 'muted', text: 'Noop: this type ignores its events.' }));
        break;
      default:
        parts.push(aggregate(() => el('pre', { text: JSON.stringify(v, null, 2) })));
        parts.push(section('Per client', el('pre', { text: JSON.stringify(perClient, null, 2) })));
    }
    panel.replaceChildren(...parts);
  }

  const section = (title, ...body) => el('div', { class: 'section' }, el('h3', { text: title }), body);
  const table = (id, heads, rows) => el('div', { class: 'scroll' }, el('table', { id },
    el('thead', null, el('tr', null, heads.map((h) => el('th', { class: h.startsWith('#') ? null : 'num', text: h.replace(/^#/, '') })))),
    el('tbody', null, rows)));

  function windowTable(v) {
    const rows = [];
    const pctCells = (count, pct) => [1, 3, 5, 6].map((i) => numCell(PCT_NAMES[i], count && pct ? pct[i] : null));
    for (const w of WINDOWS) {
      const x = v && v[w];
      if (!x) continue;
      const avg = x.count ? (x.average !== undefined ? x.average : x.total / x.count) : null;
      rows.push(el('tr', { 'data-window': w, class: w === state.window ? 'selected' : null },
        el('td', { text: w }), numCell('count', x.count), numCell('total', x.total), numCell('avg', avg),
        pctCells(x.count, x.pct)));
    }
    if (v && v.pct && typeof v.pct === 'object' && !Array.isArray(v.pct)) {
      const p = v.pct;
      rows.push(el('tr', { 'data-window': 'all' }, el('td', { text: 'all time' }), numCell('count', p.count),
        numCell('total', p.total), numCell('avg', p.count ? p.total / p.count : null), pctCells(p.count, p.pct)));
    }
    return table('aggregate', ['#window', 'count', 'total', 'avg', 'p50', 'p90', 'p99', 'p99.9'], rows);
  }

  function flatTable(kind, v) {
    const h = headline(kind, v, state.window);
    const cells = [numCell('count', h.count)];
    const heads = ['count'];
    if (kind !== 'count') {
      cells.push(numCell('total', v.total), numCell('avg', h.avg));
      heads.push('total', 'avg');
    }
    if (kind === 'sketch') {
      for (const i of [0, 1, 2, 3, 4, 5, 6]) cells.push(numCell(PCT_NAMES[i], v.count ? v.pct[i] : null));
      heads.push(...PCT_NAMES);
    }
    return table('aggregate', heads, [el('tr', { 'data-window': 'all' }, cells)]);
  }

  function clientTable(kind, perClient, clients, chartable) {
    const rows = clients.slice(0, MAX_DETAIL_ROWS).map((c) => el('tr', {
      'data-client': c,
      class: (chartable ? 'clickable' : '') + (c === state.client ? ' selected' : ''),
      title: chartable ? 'Chart this client' : null,
      onclick: chartable ? () => chartClient(c === state.client ? '' : c) : null,
    }, el('td', { class: 'name', title: c, text: c }), headlineCells(headline(kind, perClient[c], state.window))));
    if (clients.length > MAX_DETAIL_ROWS) rows.push(moreRow(clients.length - MAX_DETAIL_ROWS, 6));
    return table('clients', ['#client', 'count', 'avg', 'p50', 'p99', '#summary'], rows);
  }

  function gaugeTable(v, perClient, clients) {
    const byValue = new Map(Object.keys(v || {}).map((k) => [k, []]));
    for (const c of clients) {
      for (const val of Object.keys(perClient[c] || {})) {
        if (!byValue.has(val)) byValue.set(val, []);
        byValue.get(val).push(c);
      }
    }
    const values = Array.from(byValue.keys()).sort((a, b) => ((v[b] || 0) - (v[a] || 0)) || (a < b ? -1 : 1));
    const rows = values.slice(0, MAX_DETAIL_ROWS).map((val) => el('tr', { 'data-value': val },
      el('td', { class: 'name', text: val }), numCell('clients', v[val] ?? byValue.get(val).length),
      el('td', { 'data-field': 'client-list', class: 'summary', title: byValue.get(val).join(', '),
        text: byValue.get(val).join(', ') })));
    if (values.length > MAX_DETAIL_ROWS) rows.push(moreRow(values.length - MAX_DETAIL_ROWS, 3));
    if (!values.length) rows.push(el('tr', null, el('td', { colspan: 3, class: 'muted', text: 'no value (all expired)' })));
    return table('gauge-values', ['#value', 'clients', '#client IDs'], rows);
  }

  function listTable(v, perClient, clients) {
    const owners = new Map();
    for (const c of clients) {
      for (const entry of perClient[c] || []) {
        const key = JSON.stringify(entry);
        if (!owners.has(key)) owners.set(key, []);
        owners.get(key).push(c);
      }
    }
    const entries = Array.isArray(v) ? v : [];
    const rows = entries.slice(0, MAX_DETAIL_ROWS).map((entry, i) => el('tr', { 'data-entry': i },
      el('td', { class: 'summary', 'data-field': 'value', title: valueText(entry[0]), text: valueText(entry[0]) }),
      el('td', { 'data-field': 'time', class: 'nowrap', title: ago(entry[1]), text: dateTime(entry[1]) }),
      el('td', { 'data-field': 'client', text: (owners.get(JSON.stringify(entry)) || []).join(', ') })));
    if (entries.length > MAX_DETAIL_ROWS) rows.push(moreRow(entries.length - MAX_DETAIL_ROWS, 3));
    if (!entries.length) rows.push(el('tr', null, el('td', { colspan: 3, class: 'muted', text: 'empty' })));
    return table('buffer-entries', ['#value', '#time', '#client'], rows);
  }

  const moreRow = (n, span) => el('tr', null, el('td', { colspan: span, class: 'muted', text: '… ' + n + ' more' }));

  function chartClient(c) {
    state.client = c;
    saveHash();
    refresh();
  }

  function setWindow(w) {
    state.window = w;
    $('window').value = w;
    saveHash();
    refresh();
  }

  function chartSection(series, clients) {
    const buttons = WINDOWS.map((w) => el('button', {
      type: 'button', class: w === state.window ? 'active' : null, 'data-window': w, text: w,
      onclick: () => setWindow(w),
    }));
    const pick = el('select', { id: 'chart-client', title: 'Whose series to chart',
      onchange: (e) => chartClient(e.target.value) },
    el('option', { value: '', text: 'all clients' }),
    clients.map((c) => el('option', { value: c, text: c, selected: c === state.client })));
    const buckets = series && Array.isArray(series[state.window]) ? series[state.window] : null;
    const isPct = !!(buckets && buckets.some((b) => Array.isArray(b[3])));
    const legend = el('div', { class: 'legend' },
      el('span', { class: 'swatch bar' }), 'events per bucket (left axis)',
      el('span', { class: 'swatch l1' }), isPct ? 'p50' : 'average',
      isPct ? [el('span', { class: 'swatch l2' }), 'p99'] : null, ' (right axis)');
    return el('div', { class: 'section' },
      el('div', { class: 'chart-head' }, el('h3', { text: 'Per bucket' }), el('span', { class: 'buttons' }, buttons), pick),
      buckets ? chart(buckets, state.window) : el('p', { class: 'muted', text: 'No per-bucket series for this window.' }),
      legend);
  }

  // Bars: events per bucket; lines: average (CounterGroup) or p50/p99
  // (PercentileGroup) per bucket, on their own axis.
  function chart(buckets, w) {
    const W = 600, H = 190, L = 40, R = 50, T = 10, B = 22;
    const pw = W - L - R, ph = H - T - B;
    const n = Math.max(1, buckets.length);
    const counts = buckets.map((b) => b[1] || 0);
    const isPct = buckets.some((b) => Array.isArray(b[3]));
    const lines = isPct
      ? [{ cls: 'l1', name: 'p50', ys: buckets.map((b) => (b[1] ? b[3][1] : null)) },
        { cls: 'l2', name: 'p99', ys: buckets.map((b) => (b[1] ? b[3][5] : null)) }]
      : [{ cls: 'l1', name: 'avg', ys: buckets.map((b) => (b[1] ? b[2] / b[1] : null)) }];
    const values = lines.flatMap((l) => l.ys).filter((y) => y !== null);
    const maxC = Math.max(1, ...counts);
    const minV = Math.min(0, ...values);
    const maxV = values.length ? Math.max(...values) : 1;
    const span = maxV - minV || 1;
    const bw = pw / n;
    const step = buckets.length > 1 ? buckets[1][0] - buckets[0][0] : 0;
    const withSeconds = step < 60;
    const yC = (c) => T + ph - (c / maxC) * ph;
    const yV = (v) => T + ph - ((v - minV) / span) * ph;
    const total = counts.reduce((a, b) => a + b, 0);
    const s = svg('svg', {
      id: 'chart', viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'data-window': w,
      'data-buckets': buckets.length, 'data-events': total,
      'aria-label': total + ' events in ' + buckets.length + ' buckets of the ' + w + ' window',
    });
    for (const f of [0, 0.5, 1]) {
      const y = T + ph - f * ph;
      s.append(svg('line', { class: 'grid', x1: L, x2: L + pw, y1: y, y2: y }));
    }
    buckets.forEach((b, i) => {
      const c = counts[i];
      const h = (c / maxC) * ph;
      const tip = clock(b[0], withSeconds) + ': ' + plural(c, 'event') +
        lines.map((l) => (l.ys[i] === null ? '' : ', ' + l.name + ' ' + fmt(l.ys[i]))).join('');
      s.append(svg('rect', {
        class: c ? 'bar' : 'bar empty', x: (L + i * bw + bw * 0.1).toFixed(2), y: (T + ph - h).toFixed(2),
        width: Math.max(1, bw * 0.8).toFixed(2), height: Math.max(c ? 1 : 0, h).toFixed(2), 'data-count': c,
      }, svg('title', { text: tip })));
    });
    for (const line of lines) {
      let d = '';
      let pen = false;
      line.ys.forEach((y, i) => {
        if (y === null) {
          pen = false;
          return;
        }
        d += (pen ? 'L' : 'M') + (L + (i + 0.5) * bw).toFixed(2) + ' ' + yV(y).toFixed(2);
        pen = true;
        if (n <= 12 || line.ys.filter((v) => v !== null).length === 1) {
          s.append(svg('circle', { class: line.cls, cx: (L + (i + 0.5) * bw).toFixed(2), cy: yV(y).toFixed(2), r: 3 }));
        }
      });
      if (d) s.append(svg('path', { class: 'line ' + line.cls, d }));
    }
    const label = (x, y, text, anchor, cls) => svg('text', { x, y, 'text-anchor': anchor, class: cls, text });
    s.append(
      label(L - 6, T + 8, fmt(maxC), 'end', 'axis'), label(L - 6, T + ph, '0', 'end', 'axis'),
      label(L + pw + 6, T + 8, fmt(maxV), 'start', 'axis v'), label(L + pw + 6, T + ph, fmt(minV), 'start', 'axis v'),
      label(L, H - 6, buckets.length ? clock(buckets[0][0], withSeconds) : '', 'start', 'axis'),
      label(L + pw, H - 6, buckets.length ? clock(buckets[buckets.length - 1][0] + step, withSeconds) : '', 'end', 'axis'));
    return s;
  }

  // ---------------------------------------------------------------- cluster
  async function loadCluster() {
    const [status, servers, latency] = await Promise.all([api('status'), api('servers'), api('latency')]);
    renderCluster(status, servers, latency);
  }

  function renderCluster(status, servers, latency) {
    const facts = el('dl', { class: 'facts', id: 'cluster-facts' },
      el('dt', { text: 'store' }), el('dd', { 'data-field': 'store', text: status.store || '?' }),
      el('dt', { text: 'pipeline latency' }),
      el('dd', { 'data-field': 'pipeline-latency', text: latency.samples
        ? 'p50 ' + fmtSeconds(latency.p50_s) + ' · p99 ' + fmtSeconds(latency.p99_s) + ' over ' +
          plural(latency.samples, 'batch', 'batches') + ' in the last minute'
        : 'no batch applied in the last minute' }),
      el('dt', { text: 'queries read as of now −' }),
      el('dd', { 'data-field': 'query-lag', text: fmtSeconds(status.pipeline_latency_s) }));
    // Where the vbuckets live (Redis store; GET /reshard has the same).
    const placement = status.placement;
    const placed = !!(placement && placement.supported);
    if (placement) {
      facts.append(el('dt', { text: 'placement' }), el('dd', { 'data-field': 'placement',
        text: placed ? 'epoch ' + placement.epoch + ' · ' + plural(placement.vbuckets, 'vbucket')
          : 'one store, nothing to place' }));
    }

    const shards = (status.shards || []).map((sh) => el('tr', { 'data-shard': sh.name, class: sh.up ? null : 'bad' },
      el('td', { class: 'name', text: sh.name }), el('td', { text: sh.master || '?' }),
      el('td', { 'data-field': 'up', text: sh.up ? 'up' : 'DOWN' }),
      numCell('queued', sh.stream_length), numCell('pending', sh.pending),
      el('td', { class: 'num', 'data-field': 'oldest', text: fmtSeconds(sh.oldest_pending_age_s) }),
      el('td', { class: 'summary', text: sh.error || '' })));

    const rows = new Map();
    for (const sv of status.servers || []) rows.set(sv.id, sv);
    for (const id of Object.keys(servers || {})) if (!rows.has(id)) rows.set(id, { id });
    const serverRows = Array.from(rows.keys()).sort().map((id) => {
      const sv = rows.get(id);
      const roles = (servers && servers[id]) || sv.roles || [];
      return el('tr', { 'data-server': id },
        el('td', { class: 'name', text: id }), el('td', { 'data-field': 'roles', class: 'nowrap', text: roles.join(',') }),
        el('td', { text: sv.listen || '' }),
        el('td', { class: 'num', title: 'since its last heartbeat',
          text: sv.last_seen_age_s === undefined ? '—' : fmtSeconds(sv.last_seen_age_s) }),
        el('td', { class: 'num', 'data-field': 'events-per-s', title: 'events accepted per second',
          text: fmtRate(sv.events_per_s) }),
        el('td', { class: 'num', 'data-field': 'deltas-per-s', title: 'deltas applied per second',
          text: fmtRate(sv.deltas_per_s) }),
        el('td', { class: 'num', text: fmtSeconds(sv.latency_p50_s) + ' / ' + fmtSeconds(sv.latency_p99_s) }),
        placed ? el('td', { class: 'num', 'data-field': 'epoch', title: 'the placement epoch it routes by',
          text: fmt(sv.placement_epoch) }) : null);
    });

    const parts = [facts,
      el('h3', { text: 'Queues' }),
      table('shards', ['#shard', '#master', '#state', 'queued', 'pending', 'oldest pending', '#error'], shards),
      el('h3', { text: 'Servers' }),
      table('servers', ['#server', '#roles', '#listen', 'seen', 'in/s', 'applied/s', 'latency p50 / p99']
        .concat(placed ? ['epoch'] : []), serverRows)];
    if (placed) parts.push(el('h3', { text: 'Placement' }), ...placementParts(placement));
    // Anything else /status reports (e.g. a spool), shown as it comes.
    const known = new Set(['store', 'pipeline_latency_s', 'shards', 'servers', 'placement']);
    for (const [k, v] of Object.entries(status)) {
      if (known.has(k)) continue;
      parts.push(el('h3', { text: k }), el('pre', { 'data-status-field': k, text: JSON.stringify(v, null, 2) }));
    }
    $('cluster').replaceChildren(...parts);
  }

  // Each shard's vbucket ranges, and the move in progress on one line.
  function placementParts(p) {
    const range = (r) => (r[0] === r[1] ? String(r[0]) : r[0] + '–' + r[1]);
    const rows = (p.shards || []).map((sh) => el('tr', { 'data-placement-shard': sh.shard },
      el('td', { class: 'name', text: sh.shard }),
      el('td', { 'data-field': 'ranges', text: sh.ranges.length ? sh.ranges.map(range).join(', ') : '(none)' })));
    const m = p.move;
    let move = 'no move in progress';
    if (m) {
      const total = m.names_moved + m.names_left;
      move = m.id + ': ' + m.from + ' → ' + m.to + ', vbuckets ' + range([m.first, m.last]) + ' · ' + m.phase +
        ' · ' + m.names_moved + ' names moved, ' + m.names_left + ' left' +
        (total ? ' (' + Math.floor((100 * m.names_moved) / total) + ' %)' : '') + ' · ' + fmtBytes(m.bytes_moved) +
        ' · ' + fmtSeconds(m.elapsed_s) + ' · ' +
        (m.driver ? 'driver ' + m.driver + (m.driver_alive ? ' (alive)' : ' (gone)') : 'no driver') +
        (m.error ? ' · last error: ' + m.error : '');
    }
    return [table('placement', ['#shard', '#vbuckets'], rows),
      el('p', { 'data-field': 'move', class: m && (m.error || !m.driver_alive) ? 'bad' : null, text: move })];
  }

  // ---------------------------------------------------------------- refresh loop
  function showProblem(err) {
    const banner = $('banner');
    const token = $('token');
    token.classList.toggle('wanted', !!err && (err.status === 401 || err.status === 403));
    if (!err) {
      banner.hidden = true;
      document.body.dataset.state = 'ok';
      return;
    }
    let text = err.message;
    if (err.status === 401) {
      document.body.dataset.state = 'auth-required';
      text = 'This server requires a token for queries: enter the query (or admin) token above. (' + err.message + ')';
    } else if (err.status === 403) {
      document.body.dataset.state = 'auth-rejected';
      text = 'The token was refused: ' + err.message;
    } else {
      document.body.dataset.state = 'error';
    }
    banner.textContent = text;
    banner.hidden = false;
  }

  function schedule() {
    clearTimeout(state.timer);
    const every = Number($('refresh').value);
    if (every > 0) {
      state.timer = setTimeout(() => (document.hidden ? schedule() : refresh()), every * 1000);
    }
  }

  async function refresh() {
    if (state.inflight) {
      state.again = true;  // once this round ends, with the new settings
      return;
    }
    clearTimeout(state.timer);
    state.inflight = Promise.allSettled([loadOverview(), loadDetail(), loadCluster()]);
    try {
      const results = await state.inflight;
      const errors = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
      showProblem(errors.find((e) => e.status === 401 || e.status === 403) || errors[0] || null);
      if (!errors.length) $('updated').textContent = 'updated ' + clock(Date.now() / 1000);
    } finally {
      state.inflight = null;
      if (state.again) {
        state.again = false;
        refresh();
      } else {
        schedule();
      }
    }
  }

  // ---------------------------------------------------------------- settings
  // The location hash keeps the view: #tab=NAME&w=1m&q=FILTER&mode=regex&client=C.
  // A #token=T is moved to localStorage and removed from the address.
  function loadHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.has('token')) {
      setToken(p.get('token'));
      p.delete('token');
      history.replaceState(null, '', p.toString() ? '#' + p.toString() : location.pathname + location.search);
    }
    state.selected = p.get('tab') || null;
    state.client = p.get('client') || '';
    state.filter = p.get('q') || '';
    state.mode = p.get('mode') === 'regex' ? 'regex' : 'prefix';
    state.window = WINDOWS.includes(p.get('w')) ? p.get('w') : '1m';
    $('filter').value = state.filter;
    $('mode').value = state.mode;
    $('window').value = state.window;
    if (!state.selected) $('detail-panel').hidden = true;
  }

  function saveHash() {
    const p = new URLSearchParams();
    if (state.selected) p.set('tab', state.selected);
    if (state.client) p.set('client', state.client);
    if (state.filter) p.set('q', state.filter);
    if (state.mode !== 'prefix') p.set('mode', state.mode);
    if (state.window !== '1m') p.set('w', state.window);
    const hash = p.toString();
    history.replaceState(null, '', hash ? '#' + hash : location.pathname + location.search);
  }

  function setToken(t) {
    state.token = (t || '').trim();
    try {
      if (state.token) localStorage.setItem(TOKEN_KEY, state.token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // storage disabled: the token lasts as long as the page
    }
    $('token').value = state.token;
  }

  function start() {
    try {
      state.token = localStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      state.token = '';
    }
    $('token').value = state.token;
    $('server-name').textContent = location.host;
    loadHash();

    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      setToken($('token').value);
      refresh();
    });
    $('token-clear').addEventListener('click', () => {
      setToken('');
      refresh();
    });
    let debounce = 0;
    $('filter').addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        state.filter = $('filter').value;
        saveHash();
        refresh();
      }, 250);
    });
    $('mode').addEventListener('change', () => {
      state.mode = $('mode').value;
      saveHash();
      refresh();
    });
    $('window').addEventListener('change', () => setWindow($('window').value));
    $('refresh').addEventListener('change', schedule);
    $('refresh-now').addEventListener('click', refresh);
    window.addEventListener('hashchange', () => {
      loadHash();
      refresh();
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refresh();
    });
    refresh();
  }

  start();
})();
