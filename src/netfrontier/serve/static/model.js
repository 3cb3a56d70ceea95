// Model view: one model on one chip, layer by layer (roofline, waterfalls, table).
'use strict';

(() => {
  const form = document.getElementById('controls');
  let latest = 0;

  const columns = [
    {key: 'index', label: '#', num: true},
    {key: 'name', label: 'layer'},
    {key: 'op', label: 'ops (fused group)'},
    {key: 'macs', label: 'MACs', num: true, fmt: (v) => nf.si(v)},
    {key: 'weight_bytes', label: 'weights', num: true, fmt: (v) => nf.si(v, 'B')},
    {key: 'dram_bytes', label: 'DRAM', num: true, fmt: (v) => nf.si(v, 'B')},
    {key: 'intensity', label: 'ops/byte', num: true,
     fmt: (v) => (v === null ? 'on chip' : nf.si(v))},
    {key: 'compute_s', label: 'compute', num: true, fmt: (v) => nf.si(v, 's')},
    {key: 'memory_s', label: 'memory', num: true, fmt: (v) => nf.si(v, 's')},
    {key: 'latency_s', label: 'latency', num: true, fmt: (v) => nf.si(v, 's')},
    {key: 'achieved', label: 'achieved', num: true, fmt: (v) => nf.si(v, 'op/s')},
    {key: 'bound', label: 'bound'},
  ];

  function summary(d) {
    const t = d.totals;
    const items = [
      ['top-1', d.top1 === null ? '–' : `${d.top1.toFixed(2)}% (${d.top1_source})`],
      ['latency', nf.si(t.latency_s, 's')], ['DRAM', nf.si(t.dram_bytes, 'B')],
      ['energy', nf.si(t.energy_j, 'J')], ['MACs', nf.si(t.macs)], ['params', nf.si(t.params)],
      ['achieved', `${nf.si(t.achieved_ops_per_s, 'op/s')} of ${nf.si(d.peak_ops_per_s, 'op/s')}`],
      ['layers', `${t.layers} (${t.unsupported_layers} on the host, ${t.unknown_layers} unknown)`],
      ['time by bound', Object.entries(d.bound_share).filter(([, s]) => s > 0)
        .map(([b, s]) => `${b} ${Math.round(100 * s)}%`).join(', ')],
    ];
    const dl = document.createElement('dl');
    for (const [k, v] of items) {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = v;
      dl.append(dt, dd);
    }
    document.getElementById('summary').replaceChildren(dl);
  }

  async function refresh() {
    const id = ++latest;
    const params = nf.values(form);
    const d = await nf.getJSON('/api/model', params);
    if (id !== latest) return;
    nf.keepInUrl(params);
    document.title = `${d.model} on ${d.hardware} · netfrontier`;
    summary(d);
    nf.notes(document.getElementById('notes'), d.notes);
    await nf.plot(document.getElementById('roofline'), d.roofline);
    await nf.plot(document.getElementById('time'), d.time);
    await nf.plot(document.getElementById('dram'), d.dram);
    nf.table(document.getElementById('table'), columns, d.layers,
             {rowClass: (r) => `bound-${r.bound}${r.fused > 1 ? ' fused' : ''}`});
  }

  form.addEventListener('change', (e) => nf.guarded(async () => {
    if (e.target.name === 'hw') await nf.refillBits(form, e.target.value);
    await refresh();
  }));
  nf.guarded(refresh);
})();
