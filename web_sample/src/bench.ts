/**
 * The browser half of `privrec bench latency`: `window.privrecBench` loads a bundle (verified like the app does)
 * and times its `recommend` and `finetune` signatures in onnxruntime-web, one WebAssembly thread, with the
 * protocol of the Python suite: visits in a fresh random order each repeat, `burst` back-to-back calls per visit,
 * the first timed as cold and the last as warm. Times are `performance.now()` milliseconds (5 µs resolution when
 * the page is cross-origin isolated, as the bench's server makes it).
 */
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';
import { load, useWasm, type PrivRecBundle } from './privrec';

export interface BenchInputs {
  user: number[];
  finetune: { item_ids: number[]; labels: number[]; lr: number; l2: number };
}

export type BenchOp = 'recommend' | 'finetune';

interface Prepared {
  bundle: PrivRecBundle;
  calls: Record<BenchOp, () => Promise<unknown>>;
}

declare global {
  interface Window {
    privrecBench: {
      open(url: string, inputs: BenchInputs): Promise<{ numItems: number; dim: number; precision: string; isolated: boolean }>;
      round(visits: number, burst: number, seed: number): Promise<Record<BenchOp, Array<[number, number]>>>;
      outputs(): Promise<{ top_ids: number[]; top_scores: number[]; user_out: number[]; loss: number }>;
      close(): Promise<void>;
    };
  }
}

useWasm(wasmUrl);
let prepared: Prepared | null = null;

/** xorshift32: a seeded visiting order, so a run can be repeated. */
function shuffled<T>(items: T[], seed: number): T[] {
  let x = seed >>> 0 || 1;
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function current(): Prepared {
  if (!prepared) throw new Error('call privrecBench.open(url, inputs) first');
  return prepared;
}

window.privrecBench = {
  async open(url, inputs) {
    if (prepared) await prepared.bundle.release();
    const bundle = await load(new URL(url, location.href));
    const raw = bundle.signatures;
    const user = Float32Array.from(inputs.user);
    const mask = new Float32Array(bundle.numItems); // nothing excluded, as the Python suite
    const ids = Int32Array.from(inputs.finetune.item_ids);
    const labels = Float32Array.from(inputs.finetune.labels);
    const { lr, l2 } = inputs.finetune;
    prepared = {
      bundle,
      calls: {
        recommend: () => raw.recommend(user, mask),
        finetune: () => raw.finetune(user, ids, labels, lr, l2),
      },
    };
    return { numItems: bundle.numItems, dim: bundle.dim, precision: bundle.manifest.precision, isolated: crossOriginIsolated };
  },

  async round(visits, burst, seed) {
    const { calls } = current();
    if (!(burst >= 2)) throw new RangeError(`\`burst\` must be >= 2 (a cold and a warm call per visit). Found ${burst}.`);
    const times: Record<BenchOp, Array<[number, number]>> = { recommend: [], finetune: [] };
    for (let v = 0; v < visits; v++) {
      for (const op of shuffled<BenchOp>(['recommend', 'finetune'], seed + v)) {
        const fn = calls[op];
        const t0 = performance.now();
        await fn();
        const cold = performance.now() - t0;
        for (let i = 0; i < burst - 2; i++) await fn();
        const t1 = performance.now();
        await fn();
        times[op].push([cold, performance.now() - t1]);
      }
    }
    return times;
  },

  async outputs() {
    const { calls } = current();
    const top = (await calls.recommend()) as { ids: Int32Array; scores: Float32Array };
    const ft = (await calls.finetune()) as { user: Float32Array; loss: number };
    return { top_ids: Array.from(top.ids), top_scores: Array.from(top.scores), user_out: Array.from(ft.user), loss: ft.loss };
  },

  async close() {
    if (prepared) await prepared.bundle.release();
    prepared = null;
  },
};
