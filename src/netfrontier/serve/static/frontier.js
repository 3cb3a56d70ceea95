// Frontier explorer: top-1 against cost over the zoo on one chip; a click opens the model view.
'use strict';

(() => {
  const form = document.getElementById('controls');
  const plotEl = document.getElementById('plot');
  let latest = 0;

  const chip = () => {
    const v = nf.values(form);
    return {hw: v.hw, wbits: v.wbits, abits: v.abits, batch: v.batch};
  };
  const columns = [
    {key: 'model', label: 'model', link: (r) => nf.modelUrl(r.model, chip())},
    {key: 'family', label: 'family'},
    {key: 'top1', label: 'top-1 %', num: true, fmt: nf.pct},
    {key: 'top1_source', label: 'top-1', fmt: (v) => String(v).split(':')[0],
     title: (r) => r.top1_source},
    {key: 'latency_s', label: 'latency', num: true, fmt: (v) => nf.si(v, 's')},
    {key: 'dram_bytes', label: 'DRAM', num: true, fmt: (v) => nf.si(v, 'B')},
    {key: 'energy_j', label: 'energy', num: true, fmt: (v) => nf.si(v, 'J')},
    {key: 'macs', label: 'MACs', num: true, fmt: (v) => nf.si(v)},
    {key: 'params', label: 'params', num: true, fmt: (v) => nf.si(v)},
    {key: 'bound', label: 'bound', fmt: (v, r) => `${v} (${Math.round(100 * r.bound_share)}%)`},
    {key: 'on_frontier', label: 'on frontier', fmt: (v) => (v ? 'yes' : '')},
    {key: 'below_line', label: 'below line (pts)', num: true,
     fmt: (v) => (v === null ? '–' : v.toFixed(2))},
    {key: 'unsupported_layers', label: 'host layers', num: true},
  ];

  async function refresh() {
    const id = ++latest;
    const params = nf.values(form);
    const d = await nf.getJSON('/api/frontier', params);
    if (id !== latest) return;  // a newer request is on its way
    nf.keepInUrl(params);
    await nf.plot(plotEl, d.figure);
    nf.notes(document.getElementById('notes'), d.notes);
    nf.table(document.getElementById('table'), columns, d.rows,
             {rowClass: (r) => (r.on_frontier ? 'front' : '')});
  }

  form.addEventListener('change', (e) => nf.guarded(async () => {
    if (e.target.name === 'hw') await nf.refillBits(form, e.target.value);
    await refresh();
  }));

  nf.guarded(async () => {
    await refresh();
    plotEl.on('plotly_click', (ev) => {
      const p = ev.points && ev.points[0];
      if (p && typeof p.customdata === 'string') location.href = nf.modelUrl(p.customdata, chip());
    });
  });
})();
