
const W = props.width, H = props.height, colors = props.colors;
const canvas = element.querySelector('.lg-canvas');
const ctx = canvas.getContext('2d', {willReadFrequently: true});
const ids = new Int32Array(W * H);
const pixels = ctx.createImageData(W, H);
const lookup = new Map();
colors.forEach((c, i) => { const k = (c[0] << 16) | (c[1] << 8) | c[2]; if (!lookup.has(k)) lookup.set(k, i); });
const state = {cls: props.brush_class, tool: 'brush', size: props.brush, undo: [], sent: null, seen: null, seq: 0,
               drawing: false, last: null};
const q = (sel) => element.querySelector(sel);
function refresh() {
  element.querySelectorAll('.lg-tool').forEach(b => b.classList.toggle('lg-active', b.dataset.tool === state.tool));
  element.querySelectorAll('.lg-class').forEach(b => b.classList.toggle('lg-active', +b.dataset.class === state.cls));
  const c = colors[state.cls];
  q('.lg-current-swatch').style.background = `rgb(${c[0]},${c[1]},${c[2]})`;
  q('.lg-current-name').textContent = props.names[state.cls];
  q('.lg-size').value = state.size;
  q('.lg-size-value').textContent = state.size;
  element.dataset.lgClass = state.cls;
}
function render() {
  const d = pixels.data;
  for (let i = 0; i < W * H; i++) {
    const c = colors[ids[i]];
    d[4 * i] = c[0]; d[4 * i + 1] = c[1]; d[4 * i + 2] = c[2]; d[4 * i + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
}
function send() {
  render();
  const v = JSON.stringify({image: canvas.toDataURL('image/png'), class: state.cls, seq: ++state.seq});
  state.sent = v; state.seen = v;
  props.value = v;  // the server's change listener runs the generator
}
function remember() {
  state.undo.push(ids.slice());
  if (state.undo.length > 50) state.undo.shift();
}
function nearest(r, g, b) {
  let best = 0, bd = Infinity;
  colors.forEach((c, i) => {
    const d = (c[0] - r) ** 2 + (c[1] - g) ** 2 + (c[2] - b) ** 2;
    if (d < bd) { bd = d; best = i; }
  });
  return best;
}
function load(value, undoable) {
  let url = value;
  try { const m = JSON.parse(value); url = m.image; } catch (e) {}
  if (!url) return;
  const im = new Image();
  im.onload = () => {
    const t = document.createElement('canvas'); t.width = W; t.height = H;
    const tc = t.getContext('2d', {willReadFrequently: true});
    tc.imageSmoothingEnabled = false;
    tc.drawImage(im, 0, 0, W, H);
    const d = tc.getImageData(0, 0, W, H).data;
    if (undoable) remember();
    for (let i = 0; i < W * H; i++) {
      const k = (d[4 * i] << 16) | (d[4 * i + 1] << 8) | d[4 * i + 2];
      const id = lookup.get(k);
      ids[i] = id === undefined ? nearest(d[4 * i], d[4 * i + 1], d[4 * i + 2]) : id;
    }
    render(); refresh();
    element.dataset.lgReady = '1';
  };
  im.src = url;
}
function at(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) / r.width * W, (e.clientY - r.top) / r.height * H];
}
function dab(x, y) {
  const rad = state.size / 2;
  const x0 = Math.max(0, Math.floor(x - rad)), x1 = Math.min(W - 1, Math.ceil(x + rad));
  const y0 = Math.max(0, Math.floor(y - rad)), y1 = Math.min(H - 1, Math.ceil(y + rad));
  for (let py = y0; py <= y1; py++) for (let px = x0; px <= x1; px++) {
    const dx = px + 0.5 - x, dy = py + 0.5 - y;
    if (dx * dx + dy * dy <= rad * rad) ids[py * W + px] = state.cls;
  }
  const cx = Math.floor(x), cy = Math.floor(y);
  if (cx >= 0 && cx < W && cy >= 0 && cy < H) ids[cy * W + cx] = state.cls;
}
function line(a, b) {
  const dist = Math.hypot(b[0] - a[0], b[1] - a[1]);
  const steps = Math.max(1, Math.ceil(dist / Math.max(0.5, state.size / 4)));
  for (let s = 1; s <= steps; s++) dab(a[0] + (b[0] - a[0]) * s / steps, a[1] + (b[1] - a[1]) * s / steps);
}
function fill(x, y) {
  x = Math.floor(x); y = Math.floor(y);
  if (x < 0 || x >= W || y < 0 || y >= H) return false;
  const from = ids[y * W + x], to = state.cls;
  if (from === to) return false;
  const stack = [y * W + x];
  while (stack.length) {
    const i = stack.pop();
    if (ids[i] !== from) continue;
    ids[i] = to;
    const px = i % W;
    if (px > 0) stack.push(i - 1);
    if (px < W - 1) stack.push(i + 1);
    if (i >= W) stack.push(i - W);
    if (i < W * (H - 1)) stack.push(i + W);
  }
  return true;
}
canvas.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  e.preventDefault();
  const p = at(e);
  if (state.tool === 'fill') {
    const before = ids.slice();
    if (fill(p[0], p[1])) { state.undo.push(before); if (state.undo.length > 50) state.undo.shift(); send(); }
    return;
  }
  remember();
  canvas.setPointerCapture(e.pointerId);
  state.drawing = true; state.last = p;
  dab(p[0], p[1]); render();
});
canvas.addEventListener('pointermove', (e) => {
  if (!state.drawing) return;
  const p = at(e);
  line(state.last, p); state.last = p; render();
});
const end = (e) => {
  if (!state.drawing) return;
  state.drawing = false;
  try { canvas.releasePointerCapture(e.pointerId); } catch (err) {}
  send();
};
canvas.addEventListener('pointerup', end);
canvas.addEventListener('pointercancel', end);
element.addEventListener('click', (e) => {
  const tool = e.target.closest('.lg-tool');
  if (tool) { state.tool = tool.dataset.tool; refresh(); return; }
  const cls = e.target.closest('.lg-class');
  if (cls) { state.cls = +cls.dataset.class; refresh(); return; }
  if (e.target.closest('.lg-undo')) {
    if (state.undo.length) { ids.set(state.undo.pop()); send(); }
    return;
  }
  if (e.target.closest('.lg-clear')) { remember(); ids.fill(state.cls); send(); }
});
element.addEventListener('input', (e) => {
  if (e.target.classList.contains('lg-size')) { state.size = +e.target.value; refresh(); }
  if (e.target.classList.contains('lg-filter')) {
    const f = e.target.value.trim().toLowerCase();
    element.querySelectorAll('.lg-class').forEach(b => {
      b.style.display = (!f || b.textContent.toLowerCase().includes(f) || b.dataset.class === f) ? '' : 'none';
    });
  }
});
// A value from the server (an upload) is drawn onto the canvas; the painter's own values are not reloaded.
const fromServer = () => {
  const v = props.value;
  if (v === state.seen) { render(); refresh(); return; }
  state.seen = v;
  if (v !== state.sent) load(v, true);
};
if (typeof watch === 'function') watch('value', fromServer);
else setInterval(() => { if (props.value !== state.seen) fromServer(); }, 200);
state.seen = props.value;
load(props.value, false);
refresh();
