import {
  common,
  FORWARD_BINDINGS,
  KEY_VALUE_GRAD_BINDINGS,
  QUERY_GRAD_BINDINGS,
  type Unrolled,
  WG,
} from './attention-wgsl';

/**
 * The tiled layout's kernels (attention.ts, GPUs): a workgroup per tile of query (or key) rows of one head, the
 * tile pair's scores shared through workgroup memory, each row's lanes summing their slices of its vectors.
 */

/**
 * What the tiled kernels share. A workgroup's invocation `lid` works for the tile's row `lid / L` as lane
 * `lid % L`: it computes the scores of columns `lane + L e` (e < E) of that row, and owns the row's vectors
 * `lane + L m` (m < M) when summing.
 */
export class Tiling {
  readonly lanes: number;
  /** Scores per invocation per tile pair. */
  readonly entries: number[];
  /** The row's vectors each lane owns. */
  readonly slices: number[];

  constructor(
    readonly u: Unrolled,
    readonly tile: number,
  ) {
    if (![8, 16].includes(tile)) throw new Error(`attention tiles are 8 or 16 rows, not ${tile}`);
    this.lanes = WG / tile;
    this.entries = Array.from({ length: tile / this.lanes }, (_, e) => e);
    this.slices = Array.from({ length: Math.ceil(u.xs.length / this.lanes) }, (_, m) => m);
  }

  /** The tile's constants, and the workgroup arrays of tile × tile floats named in `shared`. */
  prelude(shared: string[]): string {
    return `${shared.map((name) => `var<workgroup> ${name}: array<f32, ${this.tile * this.tile}>;`).join('\n')}
const R = ${this.tile}u; // rows of a tile
const L = ${this.lanes}u; // lanes per row`;
  }

  /** One statement per score the invocation computes (`c`: the column's WGSL expression). */
  perEntry(statement: (e: number, c: string) => string): string {
    return this.entries.map((e) => statement(e, `(lane + ${this.lanes * e}u)`)).join('\n');
  }

  /**
   * One statement per vector the lane owns, guarded where the lanes do not divide the row (declarations, which
   * a guard's block would hide, unguarded: a lane without its last vector sums and stores nothing there).
   */
  perSlice(statement: (m: number, x: string) => string, guarded = true): string {
    const even = this.u.xs.length % this.lanes === 0;
    return this.slices
      .map((m) => {
        const x = `lane + ${this.lanes * m}u`;
        return even || !guarded ? statement(m, x) : `if (${x} < HDV) {\n${statement(m, x)}\n}`;
      })
      .join('\n');
  }

  /** One statement per column c of the tile, 0..tile-1. */
  perColumn(statement: (c: number) => string): string {
    return Array.from({ length: this.tile }, (_, c) => statement(c)).join('\n');
  }

  /** Σ over the tile's columns c of term(c), as one expression. */
  sumColumns(term: (c: number) => string): string {
    return Array.from({ length: this.tile }, (_, c) => term(c)).join(' + ');
  }

  /**
   * The entry point of a kernel whose tile rows are one head's queries (the forward, the query gradient): the
   * tile, the head, and the invocation's query row i (at qi) and lane.
   */
  queryRowEntry(): string {
    return /* wgsl */ `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let qt = wid.x; // the query tile
  let bh = wid.y; // b * heads + h
  let b = bh / p.heads;
  let h = bh % p.heads;
  let g = h / (p.heads / p.kvHeads);
  let r = lid / L;
  let lane = lid % L;
  // Rows past the end compute on the last row's data (so every lane reaches the barriers) and write nothing.
  let i = min(qt * R + r, p.seq - 1u);
  let qi = rowAt(b, i, p.heads, h);`;
  }

  /** Σ over the row's vectors of vdot(a[aAt + x], b[bAt + x]). */
  dot(a: string, aAt: string, b: string, bAt: string): string {
    return this.u.dot(
      (x) => `${a}[${aAt} + ${x}u]`,
      (x) => `${b}[${bAt} + ${x}u]`,
    );
  }
}

export function tiledForwardShader(t: Tiling): string {
  return /* wgsl */ `
${common(t.u)}
${t.prelude(['S'])}
${FORWARD_BINDINGS}

${t.queryRowEntry()}
  var m = -3.0e38;
  var t = 0.0;
${t.perSlice((m) => `  var a${m} = V(0.0);`, false)}
  // From the tile of the first key the tile's first query sees (a row seeing none of a tile's keys yet sums
  // exp(0)s there, which its first visible score's rescale, exp(-3e38 - m), then wipes out).
  for (var kt = firstKey(qt * R) / R; kt <= qt; kt++) {
    let jStart = kt * R;
${t.perEntry(
  (e, c) => `    let j${e} = jStart + ${c};
    let k${e} = rowAt(b, min(j${e}, p.seq - 1u), p.kvHeads, g);
    S[r * R + ${c}] = select(-3.0e38, (${t.dot('q', 'qi', 'k', `k${e}`)}) * p.scale, sees(i, j${e}));`,
)}
    workgroupBarrier();
    // The row's running maximum over this tile, the rescale of the sums so far, and the tile's probabilities.
    var mNew = m;
${t.perColumn((c) => `    let s${c} = S[r * R + ${c}u];\n    mNew = max(mNew, s${c});`)}
    let corr = exp(m - mNew);
    m = mNew;
${t.perColumn((c) => `    let e${c} = exp(s${c} - m);\n    let v${c} = rowAt(b, min(jStart + ${c}u, p.seq - 1u), p.kvHeads, g);`)}
    t = t * corr + ${t.sumColumns((c) => `e${c}`)};
${t.perSlice((m, x) => `    a${m} = a${m} * corr + ${t.sumColumns((c) => `e${c} * v[v${c} + ${x}]`)};`)}
    workgroupBarrier();
  }
  if (qt * R + r < p.seq) {
${t.perSlice((m, x) => `    out[qi + ${x}] = a${m} / t;`)}
    if (lane == 0u) { lse[bh * p.seq + i] = m + log(t); }
  }
}
`;
}

export function tiledQueryGradShader(t: Tiling): string {
  return /* wgsl */ `
${common(t.u)}
${t.prelude(['DS'])}
${QUERY_GRAD_BINDINGS}

${t.queryRowEntry()}
  let li = lse[bh * p.seq + i];
  // delta_i = dout_i · out_i, which each lane of the row computes whole.
  let di = ${t.dot('dout', 'qi', 'out', 'qi')};
${t.perSlice((m) => `  var a${m} = V(0.0);`, false)}
  for (var kt = firstKey(qt * R) / R; kt <= qt; kt++) {
    let jStart = kt * R;
${t.perEntry(
  (e, c) => `    let j${e} = jStart + ${c};
    let k${e} = rowAt(b, min(j${e}, p.seq - 1u), p.kvHeads, g);
    let s${e} = (${t.dot('q', 'qi', 'k', `k${e}`)}) * p.scale;
    let dp${e} = ${t.dot('dout', 'qi', 'v', `k${e}`)};
    DS[r * R + ${c}] = select(0.0, exp(s${e} - li) * (dp${e} - di), sees(i, j${e}));`,
)}
    workgroupBarrier();
${t.perColumn((c) => `    let ds${c} = DS[r * R + ${c}u];\n    let k${c}at = rowAt(b, min(jStart + ${c}u, p.seq - 1u), p.kvHeads, g);`)}
${t.perSlice((m, x) => `    a${m} += ${t.sumColumns((c) => `ds${c} * k[k${c}at + ${x}]`)};`)}
    workgroupBarrier();
  }
  if (qt * R + r < p.seq) {
${t.perSlice((m, x) => `    dq[qi + ${x}] = a${m} * p.scale;`)}
    if (lane == 0u) { delta[bh * p.seq + i] = di; }
  }
}
`;
}

export function tiledKeyValueGradShader(t: Tiling): string {
  return /* wgsl */ `
${common(t.u)}
${t.prelude(['P', 'DS'])}
${KEY_VALUE_GRAD_BINDINGS}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let kt = wid.x; // the key tile
  let bg = wid.y; // b * kvHeads + g
  let b = bg / p.kvHeads;
  let g = bg % p.kvHeads;
  let group = p.heads / p.kvHeads;
  let tiles = (p.seq + R - 1u) / R;
  // Here the tile's rows are keys, and the columns the queries of one head's query tile.
  let c = lid / L;
  let lane = lid % L;
  let j = min(kt * R + c, p.seq - 1u);
  let kj = rowAt(b, j, p.kvHeads, g);
${t.perSlice((m) => `  var ak${m} = V(0.0);\n  var av${m} = V(0.0);`, false)}
  // Up to the tile of the last query that sees the tile's last key.
  let lastTile = min(tiles, (kt * R + R - 2u + p.window) / R + 1u);
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let stats = (b * p.heads + h) * p.seq;
    for (var qt = kt; qt < lastTile; qt++) {
      let iStart = qt * R;
${t.perEntry(
  (e, col) => `      let i${e} = iStart + ${col};
      let iC${e} = min(i${e}, p.seq - 1u);
      let q${e} = rowAt(b, iC${e}, p.heads, h);
      let s${e} = (${t.dot('k', 'kj', 'q', `q${e}`)}) * p.scale;
      let dp${e} = ${t.dot('v', 'kj', 'dout', `q${e}`)};
      let p${e} = select(0.0, exp(s${e} - lse[stats + iC${e}]), sees(i${e}, j) && i${e} < p.seq);
      P[c * R + ${col}] = p${e};
      DS[c * R + ${col}] = p${e} * (dp${e} - delta[stats + iC${e}]);`,
)}
      workgroupBarrier();
${t.perColumn((col) => `      let p${col}c = P[c * R + ${col}u];\n      let ds${col} = DS[c * R + ${col}u];\n      let q${col}at = rowAt(b, min(iStart + ${col}u, p.seq - 1u), p.heads, h);`)}
${t.perSlice(
  (m, x) => `      av${m} += ${t.sumColumns((col) => `p${col}c * dout[q${col}at + ${x}]`)};
      ak${m} += ${t.sumColumns((col) => `ds${col} * q[q${col}at + ${x}]`)};`,
)}
      workgroupBarrier();
    }
  }
  if (kt * R + c < p.seq) {
${t.perSlice((m, x) => `    dk[kj + ${x}] = ak${m} * p.scale;\n    dv[kj + ${x}] = av${m};`)}
  }
}
`;
}
