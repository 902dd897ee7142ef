/** A small throughput chart on a canvas: stacked-free line series over the last few minutes. */

const SERIES = [
  { key: 'subtasks', color: '#22a06b' },
  { key: 'jobs', color: '#3b82f6' },
  { key: 'failures', color: '#e5484d' },
];

/**
 * Draws `samples` ({t, subtasks, jobs, failures} per second) into `canvas`, newest on the right.
 * @param {HTMLCanvasElement} canvas
 * @param {{t: number, subtasks: number, jobs: number, failures: number}[]} samples
 * @param {number} seconds width of the window
 */
export function drawChart(canvas, samples, seconds) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 28, r: 6, t: 6, b: 16 };
  const now = samples.length ? samples[samples.length - 1].t : Math.floor(Date.now() / 1000);
  const max = Math.max(1, ...samples.map((s) => Math.max(s.subtasks, s.jobs, s.failures)));
  const x = (t) => pad.l + ((t - (now - seconds)) / seconds) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
  ctx.strokeStyle = '#26303a';
  ctx.fillStyle = '#8a96a3';
  ctx.font = '10px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (const v of [0, max / 2, max]) {
    ctx.beginPath();
    ctx.moveTo(pad.l, y(v));
    ctx.lineTo(w - pad.r, y(v));
    ctx.stroke();
    ctx.fillText(String(Math.round(v * 10) / 10), 2, y(v) + 3);
  }
  ctx.fillText(`-${seconds}s`, pad.l, h - 3);
  ctx.fillText('now', w - pad.r - 18, h - 3);
  for (const { key, color } of SERIES) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let first = true;
    for (const s of samples) {
      if (s.t < now - seconds) continue;
      if (first) ctx.moveTo(x(s.t), y(s[key]));
      else ctx.lineTo(x(s.t), y(s[key]));
      first = false;
    }
    ctx.stroke();
  }
}
