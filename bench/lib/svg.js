// Charts as SVG text: a horizontal bar chart and a line chart with a log x axis.
// Small on purpose (no dependency): labels, bars or lines, an axis with round ticks.

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const PALETTE = ['#4472c4', '#ed7d31', '#70ad47', '#ffc000', '#5b9bd5', '#a5a5a5', '#9e480e', '#264478'];

/** Round tick step for an axis from 0 to max. */
function niceStep(max, ticks = 5) {
  if (!(max > 0)) return 1;
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

function fmt(v) {
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 1) return Number(v.toFixed(2)).toString();
  return Number(v.toPrecision(2)).toString();
}

/**
 * Horizontal bars. rows: [{ label, value (number or null), note? }]; null values draw
 * no bar and show the note ("not available", ...). `reference`: an optional vertical
 * line { value, label }.
 */
export function barChart({ title, unit, rows, reference }) {
  const labelW = 210;
  const chartW = 440;
  const rowH = 24;
  const top = 40;
  const h = top + rows.length * rowH + 40;
  const w = labelW + chartW + 120;
  const values = rows.map((r) => r.value).filter((v) => typeof v === 'number' && Number.isFinite(v));
  const max = Math.max(...values, reference?.value ?? 0, 0) || 1;
  const step = niceStep(max);
  const axisMax = Math.ceil(max / step) * step;
  const x = (v) => labelW + (v / axisMax) * chartW;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let t = 0; t <= axisMax + step / 2; t += step) {
    parts.push(`<line x1="${x(t)}" y1="${top - 5}" x2="${x(t)}" y2="${top + rows.length * rowH}" stroke="#ddd"/>`);
    parts.push(`<text x="${x(t)}" y="${top + rows.length * rowH + 15}" text-anchor="middle" fill="#555">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${labelW + chartW / 2}" y="${h - 8}" text-anchor="middle" fill="#333">${esc(unit)}</text>`);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${esc(r.label)}</text>`);
    if (typeof r.value === 'number' && Number.isFinite(r.value)) {
      const bw = Math.max(1, x(r.value) - labelW);
      parts.push(`<rect x="${labelW}" y="${y + 4}" width="${bw}" height="${rowH - 8}" fill="${r.color ?? PALETTE[0]}"/>`);
      parts.push(`<text x="${labelW + bw + 5}" y="${y + 16}" fill="#333">${esc(fmt(r.value))}${r.note ? ` ${esc(r.note)}` : ''}</text>`);
    } else {
      parts.push(`<text x="${labelW + 5}" y="${y + 16}" fill="#999">${esc(r.note ?? 'n/a')}</text>`);
    }
  });
  if (reference && Number.isFinite(reference.value)) {
    const rx = x(reference.value);
    parts.push(`<line x1="${rx}" y1="${top - 8}" x2="${rx}" y2="${top + rows.length * rowH}" stroke="#c00" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${rx + 3}" y="${top - 10}" fill="#c00">${esc(reference.label)}</text>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/**
 * Lines over a log10 x axis. series: [{ label, points: [[x, y], ...] }] (y null: gap).
 */
export function lineChart({ title, xLabel, yLabel, series }) {
  const left = 70;
  const plotW = 480;
  const plotH = 260;
  const top = 40;
  const w = left + plotW + 190;
  const h = top + plotH + 50;
  const xs = series.flatMap((s) => s.points.map((p) => p[0])).filter((v) => v > 0);
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => typeof v === 'number' && Number.isFinite(v));
  const lx0 = Math.floor(Math.log10(Math.min(...xs, 1)));
  const lx1 = Math.ceil(Math.log10(Math.max(...xs, 10)));
  const step = niceStep(Math.max(...ys, 0) || 1);
  const yMax = Math.ceil((Math.max(...ys, 0) || 1) / step) * step;
  const X = (v) => left + ((Math.log10(v) - lx0) / (lx1 - lx0 || 1)) * plotW;
  const Y = (v) => top + plotH - (v / yMax) * plotH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let e = lx0; e <= lx1; e++) {
    const v = 10 ** e;
    parts.push(`<line x1="${X(v)}" y1="${top}" x2="${X(v)}" y2="${top + plotH}" stroke="#ddd"/>`);
    parts.push(`<text x="${X(v)}" y="${top + plotH + 15}" text-anchor="middle" fill="#555">${fmt(v)}</text>`);
  }
  for (let t = 0; t <= yMax + step / 2; t += step) {
    parts.push(`<line x1="${left}" y1="${Y(t)}" x2="${left + plotW}" y2="${Y(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${Y(t) + 4}" text-anchor="end" fill="#555">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${left + plotW / 2}" y="${h - 10}" text-anchor="middle" fill="#333">${esc(xLabel)}</text>`);
  parts.push(
    `<text x="14" y="${top + plotH / 2}" text-anchor="middle" fill="#333" transform="rotate(-90 14 ${top + plotH / 2})">${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = s.points.filter((p) => typeof p[1] === 'number' && Number.isFinite(p[1]));
    if (pts.length > 0) {
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ')}"/>`,
      );
      for (const p of pts) parts.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3" fill="${color}"/>`);
    }
    const ly = top + 10 + i * 18;
    parts.push(`<rect x="${left + plotW + 15}" y="${ly - 9}" width="12" height="12" fill="${color}"/>`);
    parts.push(`<text x="${left + plotW + 32}" y="${ly + 1}">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
