// Studies: what the benchmarks wrote (quantization now, search studies when they exist).
'use strict';

(() => {
  // a study's columns as the server describes them: key, label and unit
  const FORMAT = {
    '%': nf.pct, 's': (v) => nf.si(v, 's'), 'B': (v) => nf.si(v, 'B'), 'J': (v) => nf.si(v, 'J'),
    '×': (v) => (v === null || v === undefined ? '–' : v.toFixed(2)),
  };
  const columns = (study) => study.columns.map((c) => ({
    key: c.key, label: c.label, num: c.unit !== '', fmt: FORMAT[c.unit]}));

  function element(tag, text, cls) {
    const el = document.createElement(tag);
    if (text) el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }

  async function show() {
    const d = await nf.getJSON('/api/studies');
    const search = document.getElementById('search');
    search.replaceChildren(...(d.search.length ? d.search.map((s) => element('p',
      `Search study ${s.name}: ${s.trials} trials` +
      (s.hypervolume !== null && s.hypervolume !== undefined ? `, hypervolume ${s.hypervolume}` : '')))
      : [element('p', d.search_message)]));
    const root = document.getElementById('studies');
    const parts = [];
    if (!d.studies.length) {
      parts.push(element('p', d.folder ? `No study results under ${d.folder}.` :
        'No studies folder: start the server in the repository (or pass --studies DIR).', 'notice'));
    }
    for (const s of d.studies) {
      const sec = element('section', '', 'study');
      sec.append(element('h2', `${s.name === s.kind ? s.kind : `${s.name}: ${s.kind}`} study (${s.variants} variants)`),
                 element('p', [s.dataset, s.date, s.file].filter(Boolean).join(' · '), 'meta'));
      if (s.command) sec.append(element('code', s.command, 'command'));
      const plots = element('div', '', 'two');
      sec.append(plots);
      const tbl = element('div', '', 'table-wrap');
      sec.append(tbl);
      parts.push(sec);
      s._plots = plots;
      s._table = tbl;
    }
    for (const p of d.problems) parts.push(element('p', `could not read ${p}`, 'notice'));
    root.replaceChildren(...parts);
    for (const s of d.studies) {
      for (const fig of s.figures) {
        const div = element('div', '', 'plot small');
        s._plots.append(div);
        await nf.plot(div, fig);
      }
      nf.table(s._table, columns(s), s.rows);
    }
  }

  nf.guarded(show);
})();
