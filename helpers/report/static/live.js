/* The trained model in the reader's browser: a sampler and a neuron explorer, no library, no network.
 *
 * The forward pass mirrors helpers/model (rnn.py, lstm.py, gru.py; layers stacked, dropout off) in
 * double precision on the float32 weights the page carries, and the sampler mirrors
 * helpers/model/sample.py (temperature, top-p, inverse-CDF draws), with its own seeded generator.
 * Every element with data-charrnn-live="ID" is mounted once with the model in the JSON script
 * element whose id is ID.
 */
(function () {
  "use strict";
  if (window.CharRNNLive) { window.CharRNNLive.mountAll(); return; }

  function floats(b64) {  // base64 little-endian float32 -> Float64Array
    const bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return Float64Array.from(new Float32Array(bytes.buffer));
  }
  const sigmoid = (x) => 0.5 * (1 + Math.tanh(0.5 * x));  // as helpers/model/base.sigmoid

  class Model {
    constructor(d) {
      Object.assign(this, {cell: d.cell, layers: d.layers, m: d.m, K: d.K, chars: d.chars});
      this.G = {rnn: 1, lstm: 4, gru: 3}[d.cell] * d.m;
      this.S = d.cell === "lstm" ? 2 : 1;  // state vectors per layer
      const flat = floats(d.weights), w = {};
      for (const [name, shape, start] of d.layout) w[name] = flat.subarray(start, start + shape.reduce((a, b) => a * b, 1));
      this.w = w;
      this.index = new Map(d.chars.map((ch, i) => [ch, i]));
    }
    zero() { return new Float64Array(this.layers * this.S * this.m); }
    matvec(A, cols, v, out, add) {  // out (+)= A v, A row-major (rows, cols)
      for (let r = 0; r < out.length; r++) {
        let s = add ? out[r] : 0;
        const o = r * cols;
        for (let c = 0; c < cols; c++) s += A[o + c] * v[c];
        out[r] = s;
      }
    }
    step(state, x) {  // one step of every layer from input index x; returns the new state
      const m = this.m, G = this.G, next = new Float64Array(state.length), u = new Float64Array(G);
      for (let l = 0; l < this.layers; l++) {
        const sfx = l ? String(l + 1) : "", U = this.w["U" + sfx], W = this.w["W" + sfx], b = this.w["b" + sfx];
        const off = l * this.S * m, h = state.subarray(off, off + m);
        if (l === 0) for (let r = 0; r < G; r++) u[r] = U[r * this.K + x] + b[r];  // U x_t + b
        else { this.matvec(U, m, next.subarray(off - this.S * m, off - this.S * m + m), u, false); for (let r = 0; r < G; r++) u[r] += b[r]; }
        const out = next.subarray(off, off + this.S * m);
        if (this.cell === "rnn") {
          this.matvec(W, m, h, u, true);
          for (let i = 0; i < m; i++) out[i] = Math.tanh(u[i]);  // h_t = tanh(W h + U x + b)
        } else if (this.cell === "lstm") {
          this.matvec(W, m, h, u, true);  // z = W h + U x + b = [i, f, g, o]
          const s = state.subarray(off + m, off + 2 * m);
          for (let i = 0; i < m; i++) {
            const c = sigmoid(u[m + i]) * s[i] + sigmoid(u[i]) * Math.tanh(u[2 * m + i]);  // s_t = f s + i g
            out[m + i] = c;
            out[i] = sigmoid(u[3 * m + i]) * Math.tanh(c);  // h_t = o tanh(s_t)
          }
        } else {  // gru: r, z from a + W h; n = tanh(a_n + r (W_n h)); h_t = n + z (h - n)
          const R = new Float64Array(G);
          this.matvec(W, m, h, R, false);
          for (let i = 0; i < m; i++) {
            const r = sigmoid(u[i] + R[i]), z = sigmoid(u[m + i] + R[m + i]);
            const n = Math.tanh(u[2 * m + i] + r * R[2 * m + i]);
            out[i] = n + z * (h[i] - n);
          }
        }
      }
      return next;
    }
    top(state) { const o = (this.layers - 1) * this.S * this.m; return state.subarray(o, o + this.m); }
    probs(state, temperature = 1, topP = 1) {  // p_t = softmax((V h_t + c) / temperature), then top-p
      const o = new Float64Array(this.K);
      this.matvec(this.w.V, this.m, this.top(state), o, false);
      let max = -Infinity;
      for (let k = 0; k < this.K; k++) { o[k] = (o[k] + this.w.c[k]) / temperature; if (o[k] > max) max = o[k]; }
      let sum = 0;
      for (let k = 0; k < this.K; k++) { o[k] = Math.exp(o[k] - max); sum += o[k]; }
      for (let k = 0; k < this.K; k++) o[k] /= sum;
      if (topP < 1) nucleus(o, topP);
      return o;
    }
    known(text) {  // [indices, characters left out]
      const idx = [], gone = new Set();
      for (const ch of text) { const i = this.index.get(ch); if (i === undefined) gone.add(ch); else idx.push(i); }
      return [idx, [...gone]];
    }
    defaultPrime() { return ["\n", " "].find((ch) => this.index.has(ch)) || this.chars[0]; }
  }

  function nucleus(p, topP) {  // as sample._nucleus_: keep the smallest head whose mass reaches top_p
    const order = [...p.keys()].sort((a, b) => p[b] - p[a] || a - b);
    let total = 0, mass = 0, keep = order.length;
    for (const k of order) total += p[k];
    for (let j = 0; j < order.length; j++) { mass += p[order[j]]; if (mass >= topP * total) { keep = j + 1; break; } }
    let sum = 0;
    for (let j = 0; j < order.length; j++) { if (j >= keep) p[order[j]] = 0; sum += p[order[j]]; }
    for (let k = 0; k < p.length; k++) p[k] /= sum;
  }

  function generator(seed) {  // mulberry32: uniform numbers in [0, 1) from a 32-bit seed
    let a = seed >>> 0;
    return () => { a = (a + 0x6D2B79F5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  }

  function draw(p, u) {  // the first index whose cumulative probability passes u
    let c = 0;
    for (let k = 0; k < p.length; k++) { c += p[k]; if (u < c) return k; }
    return p.length - 1;
  }

  function primed(model, prime) {  // [state after prime[:-1], x0, note]
    let [idx, gone] = model.known(prime);
    let note = gone.length ? "left out of the prime: " + gone.map((c) => JSON.stringify(c)).join(", ") : "";
    if (!idx.length) idx = model.known(model.defaultPrime())[0];
    let state = model.zero();
    for (const x of idx.slice(0, -1)) state = model.step(state, x);
    return [state, idx[idx.length - 1], note];
  }

  function explain(model, text) {  // per character: the top layer's h after it, and p(next)
    const [idx] = model.known(text), H = [], P = [];
    let state = model.zero();
    for (const x of idx) { state = model.step(state, x); H.push(Float64Array.from(model.top(state))); P.push(model.probs(state)); }
    return {idx, H, P};
  }

  const Live = {Model, nucleus, generator, primed, explain, models: {}};
  window.CharRNNLive = Live;
  Live.model = function (id) {
    if (!Live.models[id]) Live.models[id] = new Model(JSON.parse(document.getElementById(id).textContent));
    return Live.models[id];
  };
  Live.mountAll = function () {
    document.querySelectorAll("[data-charrnn-live]").forEach((el) => {
      if (el.dataset.mounted) return;
      el.dataset.mounted = "1";
      const model = Live.model(el.dataset.charrnnLive), data = JSON.parse(document.getElementById(el.dataset.charrnnLive).textContent);
      Live.ui(el, model, data);
    });
  };

  // ---- the page: a sampler and a neuron explorer, built from plain DOM elements ----
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (k === "class") e.className = v; else e.setAttribute(k, v);
    for (const kid of kids) e.append(kid);
    return e;
  }
  const shown = (text) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t");
  const typed = (text) => text.replace(/\\([nt\\])/g, (_, c) => ({n: "\n", t: "\t", "\\": "\\"})[c]);
  const colour = (v) => `hsl(${v > 0 ? 8 : 210}, 80%, ${Math.round(100 - 20 * Math.min(1, Math.abs(v)))}%)`;
  const label = (ch) => ({"\n": "↵", " ": "␣", "\t": "⇥"})[ch] || ch;
  function control(name, input) { return el("label", {class: "charrnn-control"}, el("span", {}, name), input); }

  function sampler(root, model, data) {
    const prime = el("input", {type: "text", value: shown(data.prime || model.defaultPrime()), "aria-label": "prime"});
    const temperature = el("input", {type: "range", min: "0.05", max: "2", step: "0.05", value: "1", "aria-label": "temperature"});
    const topP = el("input", {type: "range", min: "0.01", max: "1", step: "0.01", value: "1", "aria-label": "top-p"});
    const length = el("input", {type: "number", min: "0", max: "5000", step: "10", value: String(data.length || 300), "aria-label": "length"});
    const seed = el("input", {type: "number", min: "0", step: "1", value: "0", "aria-label": "seed"});
    const write = el("button", {type: "button"}, "Write again");
    const values = el("span", {class: "charrnn-values"}), note = el("div", {class: "charrnn-note"});
    const out = el("div", {class: "charrnn-text charrnn-sample"});
    root.append(el("div", {class: "charrnn-controls"}, control("prime", prime), control("temperature", temperature),
      control("top-p", topP), control("length", length), control("seed", seed), write), values, note, out);
    let run = 0;
    function start() {
      const mine = ++run, T = +temperature.value, p = +topP.value, n = Math.max(0, Math.min(5000, +length.value | 0));
      const rand = generator(+seed.value | 0);
      let [state, x, left] = primed(model, typed(prime.value)), text = "", t = 0;
      values.textContent = `temperature ${T.toFixed(2)}, top-p ${p.toFixed(2)}, seed ${+seed.value | 0}`;
      note.textContent = left;
      out.textContent = "";
      root.dataset.state = "writing";
      (function chunk() {  // write for about 12 ms, show the text, yield to the page, go on
        if (mine !== run) return;
        const until = performance.now() + 12;
        while (t < n && performance.now() < until) {
          state = model.step(state, x);
          x = draw(model.probs(state, T, p), rand());
          text += model.chars[x];
          t++;
        }
        out.textContent = text;
        if (t < n) setTimeout(chunk, 0); else root.dataset.state = "done";
      })();
    }
    for (const input of [prime, temperature, topP, length, seed]) input.addEventListener("input", start);
    write.addEventListener("click", () => { seed.value = String((+seed.value | 0) + 1); start(); });
    start();
  }

  function explorer(root, model, data) {
    const passage = el("textarea", {rows: "5", "aria-label": "passage"});
    passage.value = data.passage || "";
    const unit = el("select", {"aria-label": "hidden unit"});
    for (const u of data.units || []) unit.append(el("option", {value: String(u.unit)}, `unit ${u.unit}: ${u.feature} (r = ${u.r >= 0 ? "+" : ""}${u.r.toFixed(2)})`));
    for (let i = 0; i < model.m; i++) unit.append(el("option", {value: String(i)}, `unit ${i}`));
    const out = el("div", {class: "charrnn-text charrnn-activations"}), hover = el("div", {class: "charrnn-hover"}, "Point at a character: the five likeliest next characters appear here.");
    root.append(el("div", {class: "charrnn-controls"}, control("hidden unit", unit)), passage, out, hover);
    let seen = null, timer = 0;
    function paint() {
      if (!seen) seen = explain(model, passage.value);
      const k = +unit.value;
      out.replaceChildren(...seen.idx.map((x, t) => {
        const ch = model.chars[x], span = el("span", {"data-t": String(t)}, ch === "\n" ? "↵\n" : ch);
        span.style.background = colour(seen.H[t][k]);
        return span;
      }));
    }
    out.addEventListener("mouseover", (e) => {
      const t = e.target.dataset && e.target.dataset.t;
      if (t === undefined || !seen) return;
      const p = seen.P[+t], best = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, 5);
      hover.textContent = `after ${JSON.stringify(model.chars[seen.idx[+t]])} (unit ${unit.value}: ${seen.H[+t][+unit.value].toFixed(2)}), next: ` +
        best.map((k) => `${label(model.chars[k])} ${p[k].toFixed(3)}`).join("   ");
    });
    unit.addEventListener("change", paint);
    passage.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { seen = null; paint(); }, 200); });
    paint();
  }

  Live.ui = function (root, model, data) {
    root.classList.add("mounted");  // the printed version gives way on screen, and comes back in print
    const s = el("div", {class: "charrnn-sampler"}), x = el("div", {class: "charrnn-explorer"});
    if (root.dataset.parts !== "explorer") root.append(el("h4", {}, "Write with the model"), s);
    if (root.dataset.parts !== "sampler") root.append(el("h4", {}, "Look at a hidden unit"), x);
    if (root.dataset.parts !== "explorer") sampler(s, model, data);
    if (root.dataset.parts !== "sampler") explorer(x, model, data);
  };
  Live.mountAll();
})();
