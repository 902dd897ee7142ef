/**
 * The Tessera dashboard: one EventSource to /events (plus ?job=ID for the selected job's subtasks).
 * The server coalesces changes, so the page never polls and never floods.
 */
import { drawChart } from './chart.js';
import { fmtDuration, renderJobs, renderLegend, renderMosaic, renderWorkers } from './render.js';

const CHART_SECONDS = 180;
const $ = (id) => document.getElementById(id);

/** The job the link selects: its fragment, as it is where it is not valid percent-encoding (`#50%` threw, and the page never went live). */
function hashJob() {
  const raw = location.hash.slice(1);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const state = {
  workers: [],
  jobs: new Map(),
  /** How many jobs the list holds (the server's snapshot size): updates of older ones push them out. */
  jobLimit: 100,
  subtasks: new Map(),
  /** Unfinished jobs, as the coordinator counts them (snapshot and ticks). */
  inProgress: undefined,
  throughput: [],
  selected: hashJob(),
  /** Server clock minus ours, so "last heartbeat" is right on a machine with a skewed clock. */
  skew: 0,
  source: undefined,
};

const now = () => Date.now() + state.skew;

function connect() {
  state.source?.close();
  const url = state.selected ? `/events?job=${encodeURIComponent(state.selected)}` : '/events';
  const es = new EventSource(url);
  state.source = es;
  es.addEventListener('open', () => setConn('live', 'live'));
  es.addEventListener('error', () => {
    setConn('reconnecting', 'reconnecting…');
    // A refusal (401 once the token's cookie expired, a coordinator started again with other
    // tokens) ends an EventSource for good, where a lost connection is retried: ask again, then
    // connect again.
    if (es.readyState === EventSource.CLOSED) {
      setTimeout(() => {
        if (state.source === es) ensureAccess().then(connect);
      }, 2000);
    }
  });
  es.addEventListener('snapshot', (e) => {
    const d = JSON.parse(e.data);
    state.skew = d.now - Date.now();
    state.workers = d.workers;
    state.jobs = new Map(d.jobs.map((j) => [j.id, j]));
    state.jobLimit = d.jobLimit ?? state.jobLimit;
    state.inProgress = d.inProgress;
    state.throughput = d.throughput;
    render();
  });
  es.addEventListener('jobs', (e) => {
    for (const j of JSON.parse(e.data).jobs) state.jobs.set(j.id, j);
    trimJobs();
    renderJobTable();
    renderJobMeta();
  });
  // Jobs the coordinator no longer keeps (past their retention).
  es.addEventListener('removed', (e) => {
    const gone = JSON.parse(e.data).jobs;
    for (const id of gone) state.jobs.delete(id);
    // The selected job went too: its mosaic with it (no more of its subtasks will come).
    if (gone.includes(state.selected)) {
      state.subtasks = new Map();
      renderSubtasks();
    }
    renderJobTable();
    renderJobMeta();
  });
  es.addEventListener('subtasks', (e) => {
    const d = JSON.parse(e.data);
    if (d.job !== state.selected) return;
    if (d.full) state.subtasks = new Map();
    for (const s of d.subtasks) state.subtasks.set(s.id, s);
    // A delta repaints only its own tiles (a full picture redraws them all).
    renderSubtasks(d.full ? undefined : d.subtasks);
  });
  es.addEventListener('tick', (e) => {
    const d = JSON.parse(e.data);
    state.skew = d.now - Date.now();
    state.workers = d.workers;
    state.inProgress = d.inProgress;
    state.throughput.push(d.sample);
    if (state.throughput.length > CHART_SECONDS) state.throughput.shift();
    renderWorkers($('workers').tBodies[0], state.workers, now());
    renderJobTable();
    renderSummary();
    drawChart($('chart'), state.throughput, CHART_SECONDS);
  });
}

/** Keeps the newest `jobLimit` jobs (and the selected one): an open page does not gather every job of its session. */
function trimJobs() {
  if (state.jobs.size <= state.jobLimit) return;
  const newest = [...state.jobs.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1));
  for (const j of newest.slice(state.jobLimit)) if (j.id !== state.selected) state.jobs.delete(j.id);
}

function setConn(s, text) {
  const el = $('conn');
  el.dataset.state = s;
  el.textContent = text;
}

function select(id) {
  if (id === state.selected) return;
  state.selected = id;
  state.subtasks = new Map();
  history.replaceState(null, '', `#${id}`);
  connect();
  render();
}

function renderJobTable() {
  renderJobs($('jobs').tBodies[0], state.jobs.values(), now(), state.selected);
}

function renderSummary() {
  const active = state.workers.filter((w) => w.state !== 'lost');
  const slots = active.reduce((n, w) => n + w.slots, 0);
  const used = active.reduce((n, w) => n + w.slotsUsed, 0);
  // The coordinator's own count: the list holds only the newest jobs.
  const running = state.inProgress ?? [...state.jobs.values()].filter((j) => j.state === 'running' || j.state === 'queued').length;
  $('summary').textContent = `${active.length} worker(s) · ${used}/${slots} slots busy · ${running} job(s) in progress`;
}

function renderJobMeta() {
  const job = state.jobs.get(state.selected);
  $('job-panel').hidden = !state.selected;
  if (!job) {
    $('job-title').textContent = state.selected.slice(0, 8);
    $('job-meta').textContent = state.selected ? 'unknown job' : '';
    return;
  }
  $('job-title').textContent = `${job.id.slice(0, 8)} (${job.kind})`;
  $('job-panel').dataset.state = job.state;
  $('job-meta').textContent = `${job.state.replace('_', ' ')} · ${Math.round(job.progress * 100)}% · ${job.inputs} input(s) · ${fmtDuration((job.finishedAt || now()) - (job.startedAt || job.createdAt))} · ${job.message}`;
}

/** Workers named in the mosaic's legend: redrawn only when one is added (or on a full picture). */
let legendWorkers = new Set();

function renderSubtasks(changed) {
  renderMosaic(
    $('mosaic'),
    state.subtasks,
    (id) => {
      const s = state.subtasks.get(id);
      if (s) $('tile-info').textContent = `${s.label || `subtask ${s.index}`} — ${s.state}${s.worker ? ` on ${s.worker}` : ''}, attempt ${s.attempt}${s.speculative ? ', speculative copy' : ''}${s.durationMs ? `, ${fmtDuration(s.durationMs)}` : ''}${s.error ? ` — ${s.error}` : ''}`;
    },
    changed,
  );
  const seen = changed ? new Set(legendWorkers) : new Set();
  for (const s of changed ?? state.subtasks.values()) if (s.worker) seen.add(s.worker);
  if (changed && seen.size === legendWorkers.size) return;
  legendWorkers = seen;
  renderLegend($('mosaic-legend'), legendWorkers);
}

function render() {
  renderWorkers($('workers').tBodies[0], state.workers, now());
  renderJobTable();
  renderSummary();
  renderJobMeta();
  renderSubtasks();
  drawChart($('chart'), state.throughput, CHART_SECONDS);
}

window.addEventListener('hashchange', () => select(hashJob()));
// A job is selected on the press, on whichever rendering of its row is there (see renderJobs);
const jobRows = $('jobs').tBodies[0];
jobRows.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  const tr = e.target.closest('tr[data-job]');
  if (tr) select(tr.dataset.job);
});
/**
 * When clients need tokens, the live view needs an admin client token: asked for once and shown
 * to /access, which keeps it in a cookie of its own (HttpOnly: no script of the page can read it;
 * sent only by this page's own requests, for 12 hours).
 */
async function ensureAccess() {
  let r = await fetch('/access', { cache: 'no-store' }).catch(() => undefined);
  while (r && (r.status === 401 || r.status === 403)) {
    const token = window.prompt(r.status === 403 ? 'That client token is not an admin token; the dashboard needs one to show every client\'s jobs:' : 'This coordinator needs an admin client token to show its jobs:');
    if (!token) return;
    r = await fetch('/access', { cache: 'no-store', headers: { authorization: `Bearer ${token.trim()}` } }).catch(() => undefined);
  }
}

ensureAccess().then(connect);
