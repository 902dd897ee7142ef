/** DOM rendering of the dashboard's tables and the subtask mosaic. No framework: a few tables. */

/** A stable colour per worker name, so a worker's tiles share a stripe colour. */
export function workerColor(name) {
  if (!name) return 'transparent';
  // FNV-1a, then golden-angle steps: names that differ by one character still get distant hues.
  let h = 0x811c9dc5;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return `hsl(${Math.round((h % 64) * 137.508) % 360} 75% 60%)`;
}

export function fmtDuration(ms) {
  if (!(ms >= 0)) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

function badge(state) {
  const b = document.createElement('span');
  b.className = `badge ${state}`;
  b.textContent = state.replace('_', ' ');
  return b;
}

function slotsView(used, total) {
  const span = document.createElement('span');
  span.className = 'slots';
  span.title = `${used} of ${total} slots in use`;
  for (let i = 0; i < total && i < 32; i++) {
    const s = document.createElement('i');
    if (i < used) s.className = 'used';
    span.append(s);
  }
  span.append(document.createTextNode(` ${used}/${total}`));
  return span;
}

/** Rewrites the workers table. */
export function renderWorkers(tbody, workers, now) {
  const rows = [...workers].sort((a, b) => (a.state === 'lost') - (b.state === 'lost') || a.name.localeCompare(b.name));
  tbody.replaceChildren(
    ...rows.map((w) => {
      const tr = document.createElement('tr');
      tr.dataset.worker = w.name;
      tr.dataset.state = w.state;
      tr.dataset.slotsUsed = String(w.slotsUsed);
      const sw = document.createElement('span');
      sw.className = 'key';
      sw.style.background = workerColor(w.name);
      const name = document.createElement('span');
      name.append(sw, document.createTextNode(w.name));
      cell(tr, name);
      cell(tr, w.address);
      cell(tr, badge(w.state));
      cell(tr, slotsView(w.slotsUsed, w.slots));
      cell(tr, Number(w.load).toFixed(2));
      cell(tr, `${fmtDuration(Math.max(0, now - w.lastHeartbeatMs))} ago`);
      cell(tr, `${w.done} / ${w.failed}`);
      return tr;
    }),
  );
}

/**
 * Rewrites the jobs table. Selection is the caller's, by delegation on `tbody` (rows are replaced
 * several times a second while jobs run: a listener on a row would miss a click whose press and
 * release landed on two renderings of it).
 */
export function renderJobs(tbody, jobs, now, selected) {
  const rows = [...jobs].sort((a, b) => b.createdAt - a.createdAt);
  tbody.replaceChildren(
    ...rows.map((j) => {
      const tr = document.createElement('tr');
      tr.dataset.job = j.id;
      tr.dataset.state = j.state;
      if (j.id === selected) tr.className = 'selected';
      // A label may be 1 KiB: cut to the cell (its whole text in the tooltip), not the table 8,500 px wide.
      const name = cell(tr, j.label ? `${j.id.slice(0, 8)} · ${j.label}` : j.id.slice(0, 8), 'job');
      name.title = j.label ? `${j.id}\n${j.label}` : j.id;
      cell(tr, j.kind);
      cell(tr, badge(j.state));
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('span');
      fill.style.width = `${Math.round(j.progress * 100)}%`;
      bar.append(fill);
      const p = document.createElement('span');
      p.append(bar, document.createTextNode(` ${Math.round(j.progress * 100)}%`));
      cell(tr, p);
      const counts = Object.entries(j.subtasks).map(([s, n]) => `${n} ${s}`).join(', ');
      cell(tr, counts);
      const end = j.finishedAt || now;
      cell(tr, fmtDuration(end - (j.startedAt || j.createdAt)));
      cell(tr, j.owner);
      cell(tr, j.message, 'message');
      return tr;
    }),
  );
}

/** Updates the mosaic in place: one tile per subtask, keyed by id. */
export function renderMosaic(container, subtasks, onHover, changed) {
  // Tiles by subtask id, kept with the container: a live update touches only the tiles it names.
  let tiles = container.tessTiles;
  if (!tiles) container.tessTiles = tiles = new Map();
  // An update that adds no tile changes those it names, in place: redrawing and re-inserting every
  // tile of a job of 20,000 on each update (a few a second) froze the page for seconds at a time.
  if (changed && tiles.size === subtasks.size && changed.every((s) => tiles.has(s.id))) {
    for (const s of changed) paintTile(tiles.get(s.id), s);
    return;
  }
  for (const id of tiles.keys()) if (!subtasks.has(id)) tiles.delete(id);
  const sorted = [...subtasks.values()].sort((a, b) => a.phase - b.phase || a.index - b.index);
  const els = sorted.map((s) => {
    let el = tiles.get(s.id);
    if (!el) {
      el = document.createElement('div');
      el.className = 'tile';
      el.setAttribute('role', 'listitem');
      el.dataset.id = s.id;
      el.addEventListener('mouseenter', () => onHover(el.dataset.id));
      tiles.set(s.id, el);
    }
    paintTile(el, s);
    return el;
  });
  container.replaceChildren(...els);
}

function paintTile(el, s) {
  el.dataset.state = s.state;
  el.dataset.worker = s.worker;
  el.dataset.attempt = String(s.attempt);
  el.dataset.phase = String(s.phase);
  el.classList.toggle('retried', s.attempt > 1);
  el.classList.toggle('speculative', s.speculative);
  el.style.setProperty('--worker', workerColor(s.worker));
  el.textContent = String(s.index);
  el.title = `${s.label || `#${s.index}`} · ${s.state}${s.worker ? ` on ${s.worker}` : ''} · attempt ${s.attempt}${s.speculative ? ' (speculative copy)' : ''}${s.error ? ` · ${s.error}` : ''}`;
}

/** Legend: states, then one swatch per worker seen in the mosaic. */
export function renderLegend(container, workerNames) {
  const workers = [...workerNames].sort();
  const parts = ['pending', 'running', 'succeeded', 'failed'].map((s) => {
    const span = document.createElement('span');
    const k = document.createElement('span');
    k.className = 'key';
    k.style.background = `var(--${s})`;
    span.append(k, document.createTextNode(s));
    return span;
  });
  for (const w of workers) {
    const span = document.createElement('span');
    const k = document.createElement('span');
    k.className = 'key';
    k.style.background = workerColor(w);
    span.append(k, document.createTextNode(w));
    parts.push(span);
  }
  const note = document.createElement('span');
  note.textContent = 'stripe = worker · corner number = attempt · hatched = speculative copy';
  parts.push(note);
  container.replaceChildren(...parts);
}
