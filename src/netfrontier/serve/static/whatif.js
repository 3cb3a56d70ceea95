// Hardware what-if: sliders and fields for the chip's figures; every change recosts the zoo.
'use strict';

(() => {
  const form = document.getElementById('controls');
  const knobsEl = document.getElementById('knobs');
  const plotEl = document.getElementById('plot');
  const STEPS = 1000;
  // what the server is asked: a preset name or uploaded YAML, plus the changed figures
  let base = {hw: form.elements.hw.value, yaml: null};
  let changes = {};
  let knobs = [];
  let inFlight = false;
  let pending = false;

  const columns = [
    {key: 'model', label: 'model'},
    {key: 'top1', label: 'top-1 %', num: true, fmt: nf.pct},
    {key: 'cost', label: 'cost (what-if)', num: true, fmt: (v, r) => r.costText},
    {key: 'base_cost', label: 'cost (preset)', num: true, fmt: (v, r) => r.baseText},
    {key: 'speedup', label: 'preset / what-if', num: true,
     fmt: (v) => (v === null ? '–' : `${v.toPrecision(3)}×`)},
    {key: 'bound', label: 'bound'},
    {key: 'on_frontier', label: 'on frontier', fmt: (v) => (v ? 'yes' : '')},
  ];
  const COST = {latency: ['latency_s', 's'], dram: ['dram_bytes', 'B'], energy: ['energy_j', 'J']};

  // slider position <-> value, logarithmic where the range spans decades
  const toSlider = (k, v) => Math.round(STEPS * (k.log ? Math.log(v / k.min) / Math.log(k.max / k.min)
    : (v - k.min) / (k.max - k.min)));
  function fromSlider(k, p) {
    const v = k.log ? k.min * Math.pow(k.max / k.min, p / STEPS) : k.min + (k.max - k.min) * p / STEPS;
    return k.integer ? Math.max(1, Math.round(v)) : Number(v.toPrecision(4));
  }
  const shown = (k, v) => Number((v * k.factor).toPrecision(4));

  function setChange(k, v) {
    if (k.key.startsWith('tile.')) {
      changes.tile = {...(changes.tile || {}), [k.key.slice(5)]: v};
    } else {
      changes[k.key] = v;
    }
  }

  function buildKnobs(list) {
    knobs = list;
    knobsEl.replaceChildren(...list.map((k) => {
      const row = document.createElement('div');
      row.className = 'knob';
      const label = document.createElement('label');
      label.textContent = k.label;
      label.htmlFor = `slider-${k.key}`;
      const slider = document.createElement('input');
      Object.assign(slider, {type: 'range', id: `slider-${k.key}`, min: 0, max: STEPS, step: 1,
                             name: `slider-${k.key}`});
      slider.value = toSlider(k, k.value);
      const field = document.createElement('input');
      Object.assign(field, {type: 'number', id: `field-${k.key}`, step: 'any',
                            name: `field-${k.key}`});
      field.value = shown(k, k.value);
      const unit = document.createElement('span');
      unit.className = 'unit';
      unit.textContent = k.unit;
      slider.addEventListener('input', () => {
        const v = fromSlider(k, Number(slider.value));
        field.value = shown(k, v);
        setChange(k, v);
        schedule();
      });
      field.addEventListener('change', () => {
        if (field.value.trim() === '') return;  // cleared to type a new figure
        let v = Number(field.value) / k.factor;
        if (k.integer) v = Math.round(v);
        slider.value = Math.min(STEPS, Math.max(0, toSlider(k, v)));
        setChange(k, v);
        schedule();
      });
      row.append(label, slider, field, unit);
      return row;
    }));
  }

  function body() {
    const v = nf.values(form);
    delete v.hw;
    const b = {...v, set: changes};
    if (base.yaml !== null) b.yaml = base.yaml; else b.hw = base.hw;
    return b;
  }

  async function recost(rebuild) {
    const t0 = performance.now();
    const d = await nf.postJSON('/api/whatif', body());
    const ms = performance.now() - t0;
    if (rebuild) {
      buildKnobs(d.base.knobs);
      nf.setOptions(form.elements.wbits, d.base.weight_bits, d.base.default_wbits);
      nf.setOptions(form.elements.abits, d.base.activation_bits, d.base.default_abits);
    }
    const [col, unit] = COST[form.elements.objective.value];
    const rows = d.rows.map((r) => ({...r, cost: r[col], costText: nf.si(r[col], unit),
                                     baseText: nf.si(r.base_cost, unit)}));
    await nf.plot(plotEl, d.figure);
    nf.notes(document.getElementById('notes'),
             [d.changes.length ? `what-if: ${d.changes.join('; ')}` : 'the preset as it is', ...d.notes]);
    nf.table(document.getElementById('table'), columns, rows);
    document.getElementById('timing').textContent =
      `recosted ${d.models} models in ${d.recost_ms.toFixed(1)} ms on the server, ${ms.toFixed(0)} ms round trip`;
  }

  // at most one request in flight; changes made meanwhile are sent when it returns
  async function schedule(rebuild = false) {
    if (inFlight) { pending = true; return; }
    inFlight = true;
    await nf.guarded(() => recost(rebuild));
    inFlight = false;
    if (pending) { pending = false; schedule(); }
  }

  form.addEventListener('change', (e) => {
    if (e.target.name === 'upload') return;
    if (e.target.name === 'hw') {
      base = {hw: e.target.value, yaml: null};
      changes = {};
      form.elements.upload.value = '';
      nf.keepInUrl({hw: e.target.value});
      schedule(true);
      return;
    }
    schedule();
  });

  form.elements.upload.addEventListener('change', async () => {
    const file = form.elements.upload.files[0];
    if (!file) return;
    if (file.size > 64 * 1024) {
      nf.status(`${file.name} is ${file.size.toLocaleString()} bytes; the limit is 65,536`, true);
      return;
    }
    const previous = base;
    base = {hw: null, yaml: await file.text()};
    changes = {};
    await nf.guarded(async () => {
      try {
        await recost(true);
      } catch (err) {
        base = previous;
        throw err;
      }
    });
  });

  document.getElementById('reset').addEventListener('click', () => {
    changes = {};
    schedule(true);
  });

  document.getElementById('download').addEventListener('click', () => nf.guarded(async () => {
    const res = await fetch('/api/whatif.yaml', {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body())});
    if (!res.ok) throw new Error((await res.json()).error);
    const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '');
    const a = document.createElement('a');
    a.href = URL.createObjectURL(await res.blob());
    a.download = name ? name[1] : 'whatif.yaml';
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }));

  schedule(true);
})();
