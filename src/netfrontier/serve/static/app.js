// Shared by every page: JSON requests, the status line, plots, sortable tables, URL state.
'use strict';

const nf = (() => {
  const SI = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, ''], [1e-3, 'm'],
              [1e-6, 'µ'], [1e-9, 'n']];

  // 3 significant digits with an SI prefix: si(1.5e9, 'Hz') -> '1.5 GHz'
  function si(x, unit = '') {
    if (x === null || x === undefined || !isFinite(x)) return '–';
    if (x === 0) return `0 ${unit}`.trim();
    for (const [scale, prefix] of SI) {
      if (Math.abs(x) >= scale) return `${+(x / scale).toPrecision(3)} ${prefix}${unit}`.trim();
    }
    return `${+x.toPrecision(3)} ${unit}`.trim();
  }

  async function request(url, options) {
    const res = await fetch(url, options);
    const isJson = (res.headers.get('content-type') || '').includes('json');
    const body = isJson ? await res.json() : await res.text();
    if (!res.ok) throw new Error((isJson && body.error) || `${res.status} ${res.statusText}`);
    return body;
  }

  const getJSON = (path, params) =>
    request(params ? `${path}?${new URLSearchParams(params)}` : path);
  const postJSON = (path, data) => request(path, {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(data)});

  function status(text, isError = false) {
    const el = document.getElementById('status');
    if (!el) return;
    el.textContent = text || '';
    el.classList.toggle('error', !!isError);
  }

  // run an async page update; its failure is shown on the page, not thrown
  async function guarded(fn) {
    try {
      status('');
      return await fn();
    } catch (err) {
      status(err.message, true);
      return undefined;
    }
  }

  // draw a server-built figure; data-version counts redraws (tests wait on it)
  async function plot(el, fig) {
    if (fig.layout.height) el.style.height = `${fig.layout.height}px`;
    await Plotly.react(el, fig.data, fig.layout,
                       {displaylogo: false, responsive: true, modeBarButtonsToRemove: ['lasso2d']});
    el.dataset.version = String(Number(el.dataset.version || 0) + 1);
  }

  // the form's values as an object (selects and inputs with a name)
  function values(form) {
    const out = {};
    for (const el of form.elements) {
      if (el.name && el.type !== 'file' && el.value !== '') out[el.name] = el.value;
    }
    return out;
  }

  function keepInUrl(params) {
    history.replaceState(null, '', `${location.pathname}?${new URLSearchParams(params)}`);
  }

  function notes(el, list) {
    el.replaceChildren(...(list || []).map((text) => {
      const li = document.createElement('li');
      li.textContent = text;
      return li;
    }));
  }

  // refill a bits <select> with the chip's choices, keeping the value when it still fits
  function setOptions(select, values, fallback) {
    const keep = values.map(String).includes(select.value) ? select.value : String(fallback);
    select.replaceChildren(...values.map((v) => new Option(`${v}-bit`, v)));
    select.value = keep;
  }

  async function refillBits(form, hwName) {
    const hw = await getJSON('/api/hardware', {hw: hwName});
    setOptions(form.elements.wbits, hw.weight_bits, hw.default_wbits);
    setOptions(form.elements.abits, hw.activation_bits, hw.default_abits);
    return hw;
  }

  const collator = new Intl.Collator('en', {numeric: true});

  // a sortable table: columns [{key, label, fmt?(value,row), num?, link?(row), title?(row)}]
  function table(el, columns, rows, {sortKey, descending = false, rowClass} = {}) {
    const state = el._sort || {key: sortKey || columns[0].key, desc: descending};
    el._sort = state;
    const col = columns.find((c) => c.key === state.key) || columns[0];
    const cmp = (a, b) => {
      const x = a[col.key], y = b[col.key];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      const d = col.num ? x - y : collator.compare(String(x), String(y));
      return state.desc ? -d : d;
    };
    const sorted = [...rows].sort(cmp);
    const t = document.createElement('table');
    const head = t.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement('th');
      th.textContent = c.label + (c.key === state.key ? (state.desc ? ' ▼' : ' ▲') : '');
      th.tabIndex = 0;
      th.dataset.key = c.key;
      if (c.num) th.className = 'num';
      const go = () => {
        state.desc = state.key === c.key ? !state.desc : false;  // a new column sorts ascending
        state.key = c.key;
        table(el, columns, rows, {rowClass});
      };
      th.addEventListener('click', go);
      th.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const r of sorted) {
      const tr = body.insertRow();
      if (rowClass) tr.className = rowClass(r) || '';
      for (const c of columns) {
        const td = tr.insertCell();
        const text = c.fmt ? c.fmt(r[c.key], r) : (r[c.key] ?? '');
        if (c.link) {
          const a = document.createElement('a');
          a.href = c.link(r);
          a.textContent = text;
          td.appendChild(a);
        } else {
          td.textContent = text;
        }
        if (c.num) td.className = 'num';
        if (c.title) td.title = c.title(r);
      }
    }
    el.replaceChildren(t);
  }

  const modelUrl = (name, params) => `/model?${new URLSearchParams({name, ...params})}`;
  const pct = (x) => (x === null || x === undefined ? '–' : `${x.toFixed(2)}`);

  return {si, getJSON, postJSON, status, guarded, plot, values, keepInUrl, notes, refillBits,
          setOptions, table, modelUrl, pct};
})();
