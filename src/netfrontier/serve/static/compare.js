// Compare chips: each model's rank and cost on A and on B; rank changes highlighted.
'use strict';

(() => {
  const form = document.getElementById('controls');
  let latest = 0;

  const change = (v) => (v > 0 ? `▲ ${v}` : v < 0 ? `▼ ${-v}` : '');
  const columns = (a, b) => [
    {key: 'model', label: 'model', link: (r) => nf.modelUrl(r.model, {hw: b})},
    {key: 'family', label: 'family'},
    {key: 'top1', label: 'top-1 %', num: true, fmt: nf.pct},
    {key: 'rank_a', label: `rank on ${a}`, num: true},
    {key: 'cost_a_text', label: `cost on ${a}`},
    {key: 'rank_b', label: `rank on ${b}`, num: true},
    {key: 'cost_b_text', label: `cost on ${b}`},
    {key: 'change', label: 'rank change on B', num: true, fmt: change},
    {key: 'ratio', label: 'B / A cost', num: true, fmt: (v) => (v === null ? '–' : `${v.toPrecision(3)}×`)},
    {key: 'bound_a', label: 'bound on A'},
    {key: 'bound_b', label: 'bound on B'},
  ];

  async function refresh() {
    const id = ++latest;
    const params = nf.values(form);
    const d = await nf.getJSON('/api/compare', params);
    if (id !== latest) return;
    nf.keepInUrl(params);
    await nf.plot(document.getElementById('plot'), d.figure);
    nf.notes(document.getElementById('notes'), d.notes);
    const big = d.big;
    nf.table(document.getElementById('table'), columns(d.a, d.b), d.rows, {
      sortKey: 'rank_a', rowClass: (r) => (r.change === 0 ? '' :
        `${r.change > 0 ? 'up' : 'down'}${Math.abs(r.change) >= big ? ' big' : ''}`)});
  }

  form.addEventListener('change', () => nf.guarded(refresh));
  nf.guarded(refresh);
})();
