/**
 * privrec for the browser: load a bundle written by `privrec export`, verify it, and run its ONNX graphs
 * on the device with onnxruntime-web (WebAssembly, one thread). Nothing here sends anything anywhere: the
 * only requests are the GETs of the bundle's own files.
 *
 *     import { load } from './privrec';
 *     const bundle = await load('bundle/');            // every listed file's sha256 checked first
 *     const report = await bundle.selfTest();          // golden.json through these graphs
 *     const user = await bundle.reconstruct([49, 171]); // the manifest's reconstruction recipe
 *     const top = await bundle.recommend(user, [49, 171]);
 *
 * The bundle format is docs/BUNDLE.md (schema version 1); the recipe is the one every privrec device
 * follows (`privrec.sdk.recipe`, the iOS and Android samples): labels from the history with a recency
 * half-life, then `calls` calls of the exported `finetune` graph from the zero vector.
 */
import * as ort from 'onnxruntime-web/wasm';

export const SCHEMA_VERSION = 1;
export const MANIFEST_NAME = 'manifest.json';
export const GOLDEN_NAME = 'golden.json';
export const WEIGHTS_NAME = 'weights.safetensors';
export const SIGNATURE_NAME = 'manifest.sig';
export const SIGNATURES = ['score', 'recommend', 'finetune'] as const;
export type SignatureName = (typeof SIGNATURES)[number];

/** A bundle that must not be used: `file` names the bundle file at fault (`manifest.json` for a bad field). */
export class BundleError extends Error {
  readonly file: string;

  constructor(file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'BundleError';
    this.file = file;
  }
}

export interface FileEntry {
  sha256: string;
  size: number;
}

export interface Item {
  index: number;
  id: string;
  title?: string;
  [key: string]: unknown;
}

/** The manifest's `finetune` block: how a device rebuilds its user vector. */
export interface Recipe {
  steps: number;
  lr: number;
  l2: number;
  calls: number;
  recency_half_life: number | null;
}

/** The manifest's `privacy` object (the trainer's ledger; `{"mode": "none", "ledger": []}` makes no claim). */
export interface Privacy {
  mode: string;
  ledger: Array<Record<string, unknown>>;
  epsilon?: number | null;
  delta?: number;
  mechanism?: string;
  rounds?: number;
  warnings?: string[];
  [key: string]: unknown;
}

export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

export interface Artifact {
  files: string[];
  precision: 'float32' | 'int8';
  details?: Record<string, unknown>;
}

export interface Manifest {
  schema_version: number;
  model_version: string;
  privrec_version: string;
  dim: number;
  num_items: number;
  precision: 'float32' | 'int8';
  sparsity: number;
  top_k: number;
  finetune: Recipe;
  items: Item[];
  weights: Record<string, { dtype: string; shape: number[] }>;
  signatures: Record<SignatureName, { inputs: TensorSpec[]; outputs: TensorSpec[] }>;
  artifacts: Record<string, Artifact>;
  files: Record<string, FileEntry>;
  privacy: Privacy;
}

export interface GoldenCase {
  signature: SignatureName;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  tolerance: number;
}

export interface SelfTestReport {
  /** every case within its tolerance, and `recommend`'s ids equal to the golden ones up to ties */
  ok: boolean;
  tolerance: number;
  maxAbsErr: Record<SignatureName, number>;
  cases: number;
  /** one line per failed case, e.g. `golden.json cases[4] (recommend): top_ids differ beyond ties` */
  failures: string[];
}

export interface Recommendation {
  ids: number[];
  scores: number[];
}

export interface RawSignatures {
  score(user: Float32Array, itemIds: Int32Array): Promise<Float32Array>;
  recommend(user: Float32Array, mask: Float32Array): Promise<{ ids: Int32Array; scores: Float32Array }>;
  finetune(user: Float32Array, itemIds: Int32Array, labels: Float32Array, lr: number, l2: number): Promise<{ user: Float32Array; loss: number }>;
}

export interface LoadOptions {
  /**
   * The publisher's pinned Ed25519 public key: the base64 of its raw 32 bytes, the one line of the `.pub` file
   * `privrec keys generate` writes. When given, `manifest.sig` must be a valid signature of the exact bytes of
   * `manifest.json` by this key, checked before anything in the manifest is used.
   */
  publicKey?: string;
  /** sha256 (hex) of files the page was built for: the manifest must list exactly these hashes. */
  expectedFiles?: Record<string, string>;
  /** how to GET a bundle file (default `fetch` with `cache: 'no-cache'`); a test may read files from disk. */
  fetch?: (url: string) => Promise<Response>;
  /** progress lines for a loading screen */
  onProgress?: (message: string) => void;
}

type Vector = Float32Array | ArrayLike<number>;

const HEX64 = /^[0-9a-f]{64}$/;
const SAFETENSORS_DTYPES: Record<string, string> = { F32: 'float32', I8: 'int8', I32: 'int32', F64: 'float64' };
const REQUIRED_FIELDS = [
  'schema_version', 'model_version', 'privrec_version', 'dim', 'num_items', 'precision', 'sparsity', 'top_k',
  'finetune', 'items', 'weights', 'signatures', 'artifacts', 'files', 'privacy',
];

/** Tell onnxruntime-web where its `.wasm` binary is (the page's bundler knows the URL) and use one thread. */
export function useWasm(wasmUrl: string): void {
  ort.env.wasm.wasmPaths = { wasm: wasmUrl };
  ort.env.wasm.numThreads = 1;
}

function fail(detail: string): never {
  throw new BundleError(MANIFEST_NAME, detail);
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positiveInt(raw: Record<string, unknown>, key: string): number {
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`field \`${key}\` must be an int > 0. Found ${show(v)}.`);
  return v;
}

/** The docs/BUNDLE.md signatures of a model of this size (-1 = dynamic). */
export function bundleSignatures(dim: number, numItems: number, topK: number): Manifest['signatures'] {
  const user = { name: 'user', dtype: 'float32', shape: [dim] };
  const ids = { name: 'item_ids', dtype: 'int32', shape: [-1] };
  return {
    score: { inputs: [user, ids], outputs: [{ name: 'scores', dtype: 'float32', shape: [-1] }] },
    recommend: {
      inputs: [user, { name: 'mask', dtype: 'float32', shape: [numItems] }],
      outputs: [{ name: 'top_ids', dtype: 'int32', shape: [topK] }, { name: 'top_scores', dtype: 'float32', shape: [topK] }],
    },
    finetune: {
      inputs: [
        user, ids,
        { name: 'labels', dtype: 'float32', shape: [-1] },
        { name: 'lr', dtype: 'float32', shape: [1] },
        { name: 'l2', dtype: 'float32', shape: [1] },
      ],
      outputs: [{ name: 'user_out', dtype: 'float32', shape: [dim] }, { name: 'loss', dtype: 'float32', shape: [1] }],
    },
  };
}

function weightSpecs(precision: string, numItems: number, dim: number): Manifest['weights'] {
  const specs: Manifest['weights'] = { item_embedding: { dtype: precision, shape: [numItems, dim] } };
  if (precision === 'int8') specs.item_scale = { dtype: 'float32', shape: [numItems] };
  specs.item_bias = { dtype: 'float32', shape: [numItems] };
  return specs;
}

/** Key order does not matter (JSON objects), array order does. */
function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return sameJson(ka, kb) && ka.every((k) => sameJson(a[k], b[k]));
  }
  return a === b;
}

function checkRecipe(raw: unknown): Recipe {
  if (!isObject(raw)) fail(`field \`finetune\` must be an object. Found ${show(raw)}.`);
  const steps = raw.steps;
  if (typeof steps !== 'number' || !Number.isInteger(steps) || steps <= 0) {
    fail(`field \`finetune.steps\` must be an int > 0. Found ${show(steps)}.`);
  }
  const calls = raw.calls ?? 1;
  if (typeof calls !== 'number' || !Number.isInteger(calls) || calls <= 0) {
    fail(`field \`finetune.calls\` must be an int > 0. Found ${show(calls)}.`);
  }
  const lr = raw.lr;
  const l2 = raw.l2;
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) fail(`field \`finetune.lr\` must be a finite number > 0. Found ${show(lr)}.`);
  if (typeof l2 !== 'number' || !Number.isFinite(l2) || l2 < 0) fail(`field \`finetune.l2\` must be a finite number >= 0. Found ${show(l2)}.`);
  const half = raw.recency_half_life ?? null;
  if (half !== null && (typeof half !== 'number' || !Number.isFinite(half) || half <= 0)) {
    fail(`field \`finetune.recency_half_life\` must be null or a finite number > 0. Found ${show(half)}.`);
  }
  return { steps, lr, l2, calls, recency_half_life: half };
}

function checkRelPath(rel: string): void {
  const parts = rel.split('/');
  if (!rel || rel.startsWith('/') || rel.includes('\\') || parts.includes('..') || parts.includes('') || rel === MANIFEST_NAME
    || rel === SIGNATURE_NAME) {
    fail(`field \`files\` holds an invalid path ${show(rel)} (must be relative, inside the bundle).`);
  }
}

/** Validate a decoded `manifest.json` (docs/BUNDLE.md): a `BundleError` names the first bad field. */
export function parseManifest(raw: unknown): Manifest {
  if (!isObject(raw)) fail(`must hold a JSON object. Found ${show(raw)}.`);
  if (raw.schema_version !== SCHEMA_VERSION) {
    fail(`field \`schema_version\` must be ${SCHEMA_VERSION} (the only version this reader knows). Found ${show(raw.schema_version)}: export the bundle again with this privrec version.`);
  }
  const missing = REQUIRED_FIELDS.filter((k) => !(k in raw));
  if (missing.length) fail(`missing field(s) ${show(missing)}.`);
  const dim = positiveInt(raw, 'dim');
  const numItems = positiveInt(raw, 'num_items');
  const topK = positiveInt(raw, 'top_k');
  if (topK > numItems) fail(`field \`top_k\` must be at most \`num_items\` (${numItems}). Found ${topK}.`);
  const precision = raw.precision;
  if (precision !== 'float32' && precision !== 'int8') fail(`field \`precision\` must be 'float32' or 'int8'. Found ${show(precision)}.`);
  const sparsity = raw.sparsity;
  if (typeof sparsity !== 'number' || !(sparsity >= 0 && sparsity <= 1)) fail(`field \`sparsity\` must be a number in [0, 1]. Found ${show(sparsity)}.`);
  for (const key of ['model_version', 'privrec_version']) {
    if (typeof raw[key] !== 'string') fail(`field \`${key}\` must be a string. Found ${show(raw[key])}.`);
  }
  const finetune = checkRecipe(raw.finetune);
  const items = checkItemMap(raw.items, numItems);
  const weights = weightSpecs(precision, numItems, dim);
  if (!sameJson(raw.weights, weights)) {
    fail(`field \`weights\` must be ${show(weights)} for a ${precision} model of ${numItems} items × ${dim}. Found ${show(raw.weights)}.`);
  }
  if (!sameJson(raw.signatures, bundleSignatures(dim, numItems, topK))) {
    fail(`field \`signatures\` must be the docs/BUNDLE.md signatures for dim=${dim}, num_items=${numItems}, top_k=${topK}. Found ${show(raw.signatures)}.`);
  }
  const files = raw.files;
  if (!isObject(files) || !Object.keys(files).length) fail(`field \`files\` must be a non-empty object. Found ${show(files)}.`);
  for (const [rel, entry] of Object.entries(files)) {
    checkRelPath(rel);
    const ok = isObject(entry) && typeof entry.sha256 === 'string' && HEX64.test(entry.sha256)
      && typeof entry.size === 'number' && Number.isInteger(entry.size) && entry.size >= 0;
    if (!ok) fail(`field \`files[${show(rel)}]\` must be {"sha256": 64 hex, "size": int}. Found ${show(entry)}.`);
  }
  for (const required of [WEIGHTS_NAME, GOLDEN_NAME]) {
    if (!(required in files)) fail(`field \`files\` must list ${required}. Found ${show(Object.keys(files).sort())}.`);
  }
  const artifacts = raw.artifacts;
  if (!isObject(artifacts) || !Object.keys(artifacts).length) fail(`field \`artifacts\` must be a non-empty object. Found ${show(artifacts)}.`);
  for (const [fmt, art] of Object.entries(artifacts)) {
    if (!isObject(art) || !Array.isArray(art.files) || !art.files.length) {
      fail(`field \`artifacts.${fmt}.files\` must be a non-empty list. Found ${show(art)}.`);
    }
    const unlisted = (art.files as unknown[]).filter((f) => typeof f !== 'string' || !(f in files));
    if (unlisted.length) fail(`field \`artifacts.${fmt}.files\` names ${show(unlisted)}, absent from \`files\`.`);
  }
  if (!isObject(raw.privacy) || typeof raw.privacy.mode !== 'string') {
    fail(`field \`privacy\` must be an object with a string \`mode\`. Found ${show(raw.privacy)}.`);
  }
  return { ...(raw as unknown as Manifest), finetune, items };
}

/**
 * The manifest's item map (`items`), checked: empty (row `r` holds id `String(r)`) or one object per row in any
 * order, with an integer `index` (the indices a permutation of `0 … numItems − 1`), a non-empty string `id` (the
 * app's own item id, unique: a device stores its history by it) and an optional string `title`. Returned sorted
 * by index. Throws `BundleError` naming the entry and what was found.
 */
export function checkItemMap(raw: unknown, numItems: number): Item[] {
  if (!Array.isArray(raw)) fail(`field \`items\` must be a list. Found ${show(raw)}.`);
  if (raw.length && raw.length !== numItems) {
    fail(`field \`items\` must be empty or hold one entry per item (${numItems}). Found ${raw.length}.`);
  }
  const atIndex = new Map<number, number>();
  const atId = new Map<string, number>();
  raw.forEach((item: unknown, pos: number) => {
    const where = `field \`items[${pos}]\``;
    if (!isObject(item)) fail(`${where} must be an object {"index", "id", …}. Found ${show(item)}.`);
    const { index, id } = item;
    if (typeof index !== 'number' || !Number.isInteger(index)) fail(`${where}.index must be an int. Found ${show(index)}.`);
    if (index < 0 || index >= numItems) fail(`${where}.index must be in [0, ${numItems}). Found ${index}.`);
    const other = atIndex.get(index);
    if (other !== undefined) {
      const present = new Set(raw.map((e: unknown) => (isObject(e) ? e.index : undefined)));
      let missing = 0;
      while (present.has(missing)) missing++;
      fail(`${where}.index repeats index ${index} of items[${other}]: the indices must be a permutation of 0..${numItems - 1}, and index ${missing} has no entry.`);
    }
    if (typeof id !== 'string' || id === '') fail(`${where}.id must be a non-empty string (the app's item id). Found ${show(id)}.`);
    const sameId = atId.get(id);
    if (sameId !== undefined) fail(`${where}.id repeats id ${show(id)} of items[${sameId}]: item ids must be unique.`);
    if ('title' in item && typeof item.title !== 'string') fail(`${where}.title must be a string. Found ${show(item.title)}.`);
    atIndex.set(index, pos);
    atId.set(id, pos);
  });
  return [...(raw as Item[])].sort((a, b) => a.index - b.index);
}

/** A history of item ids mapped onto one bundle's rows ({@link ItemMap.map}). */
export interface MappedHistory {
  /** rows of the ids the bundle holds, in history order (oldest first) */
  rows: number[];
  /** their weights */
  weights: number[];
  /** the ids the bundle does not hold (removed by a catalog update, or never in it), in history order */
  dropped: string[];
}

/**
 * Row ↔ the app's own item id for one bundle (the manifest's item map). A device stores its history by id and
 * maps it through the map of the bundle it holds, so after a catalog update (a new bundle with items added,
 * removed and re-ordered) every surviving item keeps its place and the removed ones are left out. A bundle
 * without `items` has the implicit map (`explicit` false): row `r` holds id `String(r)`.
 */
export class ItemMap {
  readonly ids: readonly string[];
  readonly explicit: boolean;
  private readonly rowOf: Map<string, number>;

  constructor(ids: readonly string[], explicit = true) {
    this.ids = [...ids];
    this.explicit = explicit;
    this.rowOf = new Map();
    this.ids.forEach((id, row) => {
      if (typeof id !== 'string' || id === '') throw new TypeError(`item ids must be non-empty strings. Found ${show(id)} at row ${row}.`);
      const before = this.rowOf.get(id);
      if (before !== undefined) throw new RangeError(`item ids must be unique. Found ${show(id)} at rows ${before} and ${row}.`);
      this.rowOf.set(id, row);
    });
  }

  /** The map of a checked manifest's `items` (sorted by index), or the implicit one when it has none. */
  static of(manifest: Pick<Manifest, 'items' | 'num_items'>): ItemMap {
    if (!manifest.items.length) return new ItemMap(Array.from({ length: manifest.num_items }, (_, r) => String(r)), false);
    return new ItemMap(manifest.items.map((i) => i.id));
  }

  get numItems(): number {
    return this.ids.length;
  }

  /** The row holding `id`, or undefined when this catalog does not hold it. */
  row(id: string): number | undefined {
    return this.rowOf.get(id);
  }

  /** The app's id of `row` (an integer in `[0, numItems)`). */
  id(row: number): string {
    if (!Number.isInteger(row) || row < 0 || row >= this.ids.length) {
      throw new RangeError(`\`row\` must be an integer in [0, ${this.ids.length}). Found ${show(row)}.`);
    }
    return this.ids[row];
  }

  /** Map a history of item ids (oldest first) and optional weights (default 1) onto this map's rows. */
  map(history: readonly string[], weights?: ArrayLike<number>): MappedHistory {
    if (!Array.isArray(history)) throw new TypeError(`\`history\` must be an array of item ids. Found ${show(history)}.`);
    if (weights !== undefined && weights.length !== history.length) {
      throw new RangeError(`\`weights\` must have one weight per item id (${history.length}). Found ${weights.length}.`);
    }
    const out: MappedHistory = { rows: [], weights: [], dropped: [] };
    history.forEach((id: unknown, pos: number) => {
      if (typeof id !== 'string' || id === '') {
        throw new TypeError(`\`history\` must hold non-empty item id strings. Found ${show(id)} at position ${pos}.`);
      }
      const row = this.rowOf.get(id);
      if (row === undefined) {
        out.dropped.push(id);
      } else {
        out.rows.push(row);
        out.weights.push(weights === undefined ? 1 : Number(weights[pos]));
      }
    });
    return out;
  }
}

/** The ONNX graph file of each signature and the shared external-data file, as the manifest names them. */
export function onnxLayout(manifest: Manifest): { graphs: Record<SignatureName, string>; externalData: string } {
  const art = manifest.artifacts.onnx;
  if (!art) {
    fail(`field \`artifacts\` has no \`onnx\` artifact (found ${show(Object.keys(manifest.artifacts))}): export with --formats onnx for the web.`);
  }
  const details = art.details ?? {};
  const graphs = details.graphs;
  const external = details.external_data;
  if (!isObject(graphs) || SIGNATURES.some((s) => typeof graphs[s] !== 'string' || !art.files.includes(graphs[s] as string))) {
    fail(`field \`artifacts.onnx.details.graphs\` must name one listed graph file per signature ${show(SIGNATURES)}. Found ${show(graphs)}.`);
  }
  if (typeof external !== 'string' || !art.files.includes(external)) {
    fail(`field \`artifacts.onnx.details.external_data\` must name a listed file. Found ${show(external)}.`);
  }
  return { graphs: graphs as Record<SignatureName, string>, externalData: external };
}

function base64Bytes(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/**
 * Check `manifest.sig` (`{"algorithm": "ed25519", "key_id": first 16 hex of sha256(raw key), "signature": base64}`)
 * over the exact `manifest.json` bytes with the pinned `publicKey` (WebCrypto Ed25519). Returns the key id;
 * a `BundleError` names `manifest.sig`: unsigned, malformed, another key, or a manifest changed after signing.
 */
export async function verifyManifestSignature(manifestBytes: Uint8Array, sigBytes: Uint8Array | null, publicKey: string): Promise<string> {
  const bad: (detail: string) => never = (detail) => {
    throw new BundleError(SIGNATURE_NAME, detail);
  };
  const raw = base64Bytes(publicKey.trim());
  if (raw === null || raw.length !== 32) {
    throw new TypeError('`publicKey` must be the base64 of a raw 32-byte Ed25519 public key (the .pub file of `privrec keys generate`).');
  }
  const pinned = (await sha256Hex(raw)).slice(0, 16);
  if (sigBytes === null) {
    bad(`missing: the bundle is unsigned, and this page pins public key ${pinned}. Sign it with \`privrec export --sign-key\`.`);
  }
  let record: unknown;
  try {
    record = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(sigBytes as Uint8Array));
  } catch (exc) {
    bad(`not valid JSON (${String(exc)}).`);
  }
  const keys = isObject(record) ? Object.keys(record).sort() : [];
  if (!isObject(record) || !sameJson(keys, ['algorithm', 'key_id', 'signature'])) {
    bad(`must be a JSON object with keys ["algorithm", "key_id", "signature"]. Found ${show(isObject(record) ? keys : record)}.`);
  }
  const rec = record as Record<string, unknown>;
  if (rec.algorithm !== 'ed25519') bad(`field \`algorithm\` must be 'ed25519'. Found ${show(rec.algorithm)}.`);
  if (rec.key_id !== pinned) {
    bad(`field \`key_id\` is ${show(rec.key_id)}, not the pinned public key ${show(pinned)}: the bundle was signed by another key (or the page pins the wrong one).`);
  }
  const signature = typeof rec.signature === 'string' ? base64Bytes(rec.signature) : null;
  if (signature === null || signature.length !== 64) bad('field `signature` must be the base64 of a 64-byte Ed25519 signature.');
  const key = await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, { name: 'Ed25519' }, false, ['verify']);
  const ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, signature as Uint8Array<ArrayBuffer>, manifestBytes as Uint8Array<ArrayBuffer>);
  if (!ok) {
    bad(`the signature does not verify ${MANIFEST_NAME} under public key ${pinned}: ${MANIFEST_NAME} was changed after it was signed, or the bundle is corrupt.`);
  }
  return pinned;
}

/** Lower-case hex sha256 of `bytes` (WebCrypto). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Check a listed file's size and sha256; a `BundleError` names it (the messages of the Python reader). */
export async function verifyFile(rel: string, bytes: Uint8Array, entry: FileEntry): Promise<void> {
  if (bytes.byteLength !== entry.size) {
    throw new BundleError(rel, `size mismatch (manifest ${entry.size} bytes, file ${bytes.byteLength} bytes): the bundle is corrupt or tampered.`);
  }
  const sha = await sha256Hex(bytes);
  if (sha !== entry.sha256) {
    throw new BundleError(rel, `sha256 mismatch (manifest ${entry.sha256.slice(0, 8)}…, file ${sha.slice(0, 8)}…): the bundle is corrupt or tampered.`);
  }
}

/** `weights.safetensors` must hold exactly the manifest's tensors, dtypes and shapes (its header only). */
export function checkWeightsHeader(bytes: Uint8Array, weights: Manifest['weights']): void {
  const fault: (detail: string) => never = (detail) => {
    throw new BundleError(WEIGHTS_NAME, detail);
  };
  if (bytes.byteLength < 8) fault(`header is truncated (${bytes.byteLength} bytes): not a safetensors file.`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.byteLength - 8 || n > 100_000_000) fault(`header length ${n} is implausible: not a safetensors file.`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (exc) {
    fault(`header is not valid JSON (${String(exc)}).`);
  }
  if (!isObject(header)) fault(`header must be a JSON object. Found ${show(header)}.`);
  const names = Object.keys(header).filter((k) => k !== '__metadata__').sort();
  if (!sameJson(names, Object.keys(weights).sort())) {
    fault(`tensors ${show(names)} differ from the manifest's \`weights\` ${show(Object.keys(weights).sort())}.`);
  }
  for (const [name, spec] of Object.entries(weights)) {
    const entry = header[name] as Record<string, unknown>;
    const dtype = SAFETENSORS_DTYPES[String(entry.dtype)] ?? String(entry.dtype);
    if (dtype !== spec.dtype) fault(`\`${name}\` dtype mismatch (manifest ${spec.dtype}, file ${dtype}).`);
    if (!sameJson(entry.shape, spec.shape)) fault(`\`${name}\` shape mismatch (manifest ${show(spec.shape)}, file ${show(entry.shape)}).`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Validation at the boundary: TypeError for a wrong type, RangeError for a wrong value, the argument named.

function userVector(user: Vector, dim: number, name = 'user'): Float32Array {
  if (!(user instanceof Float32Array) && !Array.isArray(user)) {
    throw new TypeError(`\`${name}\` must be a Float32Array or an array of numbers of length ${dim}. Found ${typeof user}.`);
  }
  if (user.length !== dim) throw new RangeError(`\`${name}\` must have length ${dim}. Found ${user.length}.`);
  const out = Float32Array.from(user);
  const bad = out.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new RangeError(`\`${name}\` must be finite. Found ${user[bad]} at position ${bad}.`);
  return out;
}

function itemIds(ids: ArrayLike<number>, numItems: number, name: string): Int32Array {
  if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) {
    throw new TypeError(`\`${name}\` must be an array of item rows. Found ${typeof ids}.`);
  }
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`\`${name}\` must hold integers. Found ${show(v)} at position ${i}.`);
    if (v < 0 || v >= numItems) throw new RangeError(`\`${name}\` must be in [0, ${numItems}). Found ${v} at position ${i}.`);
    out[i] = v;
  }
  return out;
}

function positiveNumber(value: number, name: string, allowZero: boolean): number {
  if (typeof value !== 'number') throw new TypeError(`\`${name}\` must be a number. Found ${typeof value}.`);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !allowZero)) {
    throw new RangeError(`\`${name}\` must be a finite number ${allowZero ? '>= 0' : '> 0'}. Found ${value}.`);
  }
  return value;
}

/**
 * Step 1 of the recipe: labels `Float32Array(numItems)` of a history (item rows, oldest first). The item at
 * position j of M was r = M - 1 - j interactions before the latest; its label is `w_j · 0.5 ** (r / h)`
 * (`w_j`, default 1, without a half-life h); a repeated item keeps its largest label; other items are 0.
 * Computed in float64 and rounded to float32 once, as `privrec.sdk.recipe.recipe_labels`.
 */
export function recipeLabels(
  history: ArrayLike<number>,
  numItems: number,
  recencyHalfLife: number | null,
  weights?: ArrayLike<number>,
): Float32Array {
  const ids = itemIds(history, numItems, 'history');
  if (ids.length === 0) {
    throw new RangeError('`history` must hold at least one item: a device with no interactions has no user vector.');
  }
  if (weights !== undefined && weights.length !== ids.length) {
    throw new RangeError(`\`weights\` must have one weight per history item (${ids.length}). Found ${weights.length}.`);
  }
  const labels = new Float32Array(numItems);
  let sum = 0;
  for (let j = 0; j < ids.length; j++) {
    const w = weights === undefined ? 1 : weights[j];
    if (typeof w !== 'number' || !Number.isFinite(w)) throw new RangeError(`\`weights\` must be finite. Found ${w} at position ${j}.`);
    if (w < 0) throw new RangeError(`\`weights\` must be >= 0. Found ${w} at position ${j}.`);
    const back = ids.length - 1 - j;
    const value = recencyHalfLife === null ? w : w * 0.5 ** (back / recencyHalfLife);
    if (value > 3.4028234663852886e38) {
      throw new RangeError(`\`weights\` must fit in float32 (at most 3.4e38). Found ${value} at position ${j}.`);
    }
    const f = Math.fround(value);
    if (f > labels[ids[j]]) labels[ids[j]] = f;
  }
  for (const x of labels) sum += x;
  if (!(sum > 0) || !Number.isFinite(sum)) throw new RangeError("the history's labels are all zero: at least one item needs a positive weight.");
  return labels;
}

function maxAbsErr(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === e) continue; // equal infinities count as 0
    const d = Math.abs(a - e);
    if (Number.isNaN(d)) return Infinity;
    worst = Math.max(worst, d);
  }
  return worst;
}

async function getBytes(get: (url: string) => Promise<Response>, url: string, rel: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await get(url);
  } catch (exc) {
    throw new BundleError(rel, `could not be fetched from ${url} (${String(exc)}).`);
  }
  if (!response.ok) throw new BundleError(rel, `listed in ${MANIFEST_NAME} but missing from the bundle (HTTP ${response.status} at ${url}).`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Load a bundle from `url` (its folder; `manifest.json` is read from there): with `publicKey`, check `manifest.sig`
 * over the manifest's exact bytes first; validate the manifest, check every
 * listed file's size and sha256 with WebCrypto (and, with `expectedFiles`, that the manifest lists exactly the
 * pinned hashes), then open the three ONNX graphs with the shared external weights. Throws `BundleError` naming
 * the file and field at fault; nothing from the bundle is used before it is verified.
 */
export async function load(url: string | URL, options: LoadOptions = {}): Promise<PrivRecBundle> {
  const base = new URL(String(url).endsWith('/') ? String(url) : `${String(url)}/`, globalThis.location?.href);
  const get = options.fetch ?? ((u: string) => fetch(u, { cache: 'no-cache' }));
  const say = options.onProgress ?? (() => undefined);
  say('Reading manifest.json');
  const manifestBytes = await getBytes(get, new URL(MANIFEST_NAME, base).href, MANIFEST_NAME);
  let signedBy: string | null = null;
  if (options.publicKey !== undefined) {
    say('Checking manifest.sig');
    const response = await get(new URL(SIGNATURE_NAME, base).href).catch(() => null);
    const sig = response?.ok ? new Uint8Array(await response.arrayBuffer()) : null;
    signedBy = await verifyManifestSignature(manifestBytes, sig, options.publicKey);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(manifestBytes));
  } catch (exc) {
    fail(`not valid JSON (${String(exc)}): the bundle is corrupt.`);
  }
  const manifest = parseManifest(raw);
  const layout = onnxLayout(manifest);
  for (const [rel, sha] of Object.entries(options.expectedFiles ?? {})) {
    const listed = manifest.files[rel];
    if (!listed) throw new BundleError(rel, `pinned by the page but not listed in ${MANIFEST_NAME}.`);
    if (listed.sha256 !== sha.toLowerCase()) {
      throw new BundleError(rel, `${MANIFEST_NAME} lists sha256 ${listed.sha256.slice(0, 8)}…, the page pins ${sha.slice(0, 8)}…: not the bundle this page was built for.`);
    }
  }
  const names = Object.keys(manifest.files).sort();
  say(`Checking the sha256 of ${names.length} files`);
  const blobs = new Map<string, Uint8Array>();
  await Promise.all(names.map(async (rel) => {
    const bytes = await getBytes(get, new URL(rel, base).href, rel);
    await verifyFile(rel, bytes, manifest.files[rel]);
    blobs.set(rel, bytes);
  }));
  checkWeightsHeader(blobs.get(WEIGHTS_NAME) as Uint8Array, manifest.weights);
  blobs.delete(WEIGHTS_NAME); // checked; the graphs carry their own copy of the weights
  let golden: { schema_version?: unknown; cases?: unknown };
  try {
    golden = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(blobs.get(GOLDEN_NAME)));
  } catch (exc) {
    throw new BundleError(GOLDEN_NAME, `not valid JSON (${String(exc)}).`);
  }
  if (!isObject(golden) || golden.schema_version !== SCHEMA_VERSION) {
    throw new BundleError(GOLDEN_NAME, `field \`schema_version\` must be ${SCHEMA_VERSION}.`);
  }
  if (!Array.isArray(golden.cases)) throw new BundleError(GOLDEN_NAME, 'field `cases` must be a list.');
  say('Opening the ONNX graphs (onnxruntime-web, WebAssembly)');
  ort.env.wasm.numThreads = 1;
  const data = blobs.get(layout.externalData) as Uint8Array;
  const sessions = {} as Record<SignatureName, ort.InferenceSession>;
  for (const sig of SIGNATURES) {
    const file = layout.graphs[sig];
    try {
      sessions[sig] = await ort.InferenceSession.create(blobs.get(file) as Uint8Array, {
        executionProviders: ['wasm'],
        graphOptimizationLevel: 'all',
        externalData: [{ path: layout.externalData, data }],
      });
    } catch (exc) {
      throw new BundleError(file, `onnxruntime-web could not open it (${String(exc)}).`);
    }
  }
  return new PrivRecBundle(manifest, sessions, golden.cases as GoldenCase[], base.href, signedBy);
}

/** A verified bundle: the manifest, its golden cases, and the three signatures on onnxruntime-web. */
export class PrivRecBundle {
  readonly manifest: Manifest;
  readonly golden: GoldenCase[];
  readonly url: string;
  /** the pinned key id that verified `manifest.sig`, or null when no key was pinned (nothing checked) */
  readonly signedBy: string | null;
  private readonly sessions: Record<SignatureName, ort.InferenceSession>;
  private readonly allIds: Int32Array;
  private map: ItemMap | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    manifest: Manifest, sessions: Record<SignatureName, ort.InferenceSession>, golden: GoldenCase[], url: string, signedBy: string | null,
  ) {
    this.manifest = manifest;
    this.signedBy = signedBy;
    this.sessions = sessions;
    this.golden = golden;
    this.url = url;
    this.allIds = Int32Array.from({ length: manifest.num_items }, (_, i) => i);
  }

  get numItems(): number {
    return this.manifest.num_items;
  }

  get dim(): number {
    return this.manifest.dim;
  }

  get topK(): number {
    return this.manifest.top_k;
  }

  get recipe(): Recipe {
    return this.manifest.finetune;
  }

  get privacy(): Privacy {
    return this.manifest.privacy;
  }

  /** Row ↔ the app's item id for this bundle (the implicit `String(row)` map without `items`). */
  get itemMap(): ItemMap {
    if (this.map === null) this.map = ItemMap.of(this.manifest);
    return this.map;
  }

  /** The item's title from the manifest's `items`, else its data-set id, else `#row`. */
  title(row: number): string {
    const item = this.manifest.items[row];
    return item?.title || (item ? `item ${item.id}` : `#${row}`);
  }

  /** One session runs one call at a time: calls are queued in order. */
  private run(sig: SignatureName, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const next = this.queue.then(() => this.sessions[sig].run(feeds));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async rawScore(user: Float32Array, ids: Int32Array): Promise<Float32Array> {
    const out = await this.run('score', {
      user: new ort.Tensor('float32', user, [this.dim]),
      item_ids: new ort.Tensor('int32', ids, [ids.length]),
    });
    return out.scores.data as Float32Array;
  }

  private async rawRecommend(user: Float32Array, mask: Float32Array): Promise<{ ids: Int32Array; scores: Float32Array }> {
    const out = await this.run('recommend', {
      user: new ort.Tensor('float32', user, [this.dim]),
      mask: new ort.Tensor('float32', mask, [this.numItems]),
    });
    return { ids: out.top_ids.data as Int32Array, scores: out.top_scores.data as Float32Array };
  }

  private async rawFinetune(
    user: Float32Array, ids: Int32Array, labels: Float32Array, lr: number, l2: number,
  ): Promise<{ user: Float32Array; loss: number }> {
    const out = await this.run('finetune', {
      user: new ort.Tensor('float32', user, [this.dim]),
      item_ids: new ort.Tensor('int32', ids, [ids.length]),
      labels: new ort.Tensor('float32', labels, [labels.length]),
      lr: new ort.Tensor('float32', Float32Array.of(lr), [1]),
      l2: new ort.Tensor('float32', Float32Array.of(l2), [1]),
    });
    return { user: Float32Array.from(out.user_out.data as Float32Array), loss: (out.loss.data as Float32Array)[0] };
  }

  /**
   * The three signatures as exported, without input checks (typed arrays in and out): what `selfTest` and a
   * benchmark call. An app calls `score`, `recommend`, `finetune` and `reconstruct`, which validate their input.
   */
  get signatures(): RawSignatures {
    return {
      score: (user, ids) => this.rawScore(user, ids),
      recommend: (user, mask) => this.rawRecommend(user, mask),
      finetune: (user, ids, labels, lr, l2) => this.rawFinetune(user, ids, labels, lr, l2),
    };
  }

  /** Scores of `items` (default: the whole catalog, in row order) for `user`. */
  async score(user: Vector, items?: ArrayLike<number>): Promise<Float32Array> {
    const u = userVector(user, this.dim);
    const ids = items === undefined ? this.allIds : itemIds(items, this.numItems, 'item_ids');
    if (ids.length === 0) return new Float32Array(0);
    return Float32Array.from(await this.rawScore(u, ids));
  }

  /**
   * The `k` best items for `user` (highest first; `k` at most the exported `top_k`), never any of `exclude`.
   * Equal scores: the lower row first. Fewer than `k` come back only when fewer than `k` are not excluded.
   */
  async recommend(user: Vector, exclude: ArrayLike<number> = [], k: number = this.topK): Promise<Recommendation> {
    const u = userVector(user, this.dim);
    if (typeof k !== 'number' || !Number.isInteger(k)) throw new TypeError(`\`k\` must be an integer. Found ${show(k)}.`);
    if (k < 1 || k > this.topK) throw new RangeError(`\`k\` must be in [1, ${this.topK}] (the K this bundle was exported with). Found ${k}.`);
    const mask = new Float32Array(this.numItems);
    for (const i of itemIds(exclude, this.numItems, 'exclude')) mask[i] = -Infinity;
    const top = await this.rawRecommend(u, mask);
    const ids: number[] = [];
    const scores: number[] = [];
    for (let i = 0; i < k; i++) {
      if (!Number.isFinite(top.scores[i])) continue; // an excluded item filling the tail
      ids.push(top.ids[i]);
      scores.push(top.scores[i]);
    }
    return { ids, scores };
  }

  /** `steps` gradient steps (baked into the graph) fitting `user` to `labels` over `itemIds`. */
  async finetune(
    user: Vector, itemIdsIn: ArrayLike<number>, labels?: ArrayLike<number>, lr?: number, l2?: number,
  ): Promise<{ user: Float32Array; loss: number }> {
    const u = userVector(user, this.dim);
    const ids = itemIds(itemIdsIn, this.numItems, 'item_ids');
    if (ids.length === 0) throw new RangeError('`item_ids` must hold at least one item. Found an empty array.');
    let lab = new Float32Array(ids.length).fill(1);
    if (labels !== undefined) {
      if (labels.length !== ids.length) throw new RangeError(`\`labels\` must have length ${ids.length} (one per item id). Found ${labels.length}.`);
      lab = Float32Array.from(labels);
      const bad = lab.findIndex((x) => !Number.isFinite(x) || x < 0);
      if (bad >= 0) throw new RangeError(`\`labels\` must be finite and >= 0. Found ${lab[bad]} at position ${bad}.`);
      if (!(lab.reduce((a, b) => a + b, 0) > 0)) throw new RangeError('`labels` must have a positive sum. Found 0.');
    }
    const rate = positiveNumber(lr ?? this.recipe.lr, 'lr', false);
    const decay = positiveNumber(l2 ?? this.recipe.l2, 'l2', true);
    return this.rawFinetune(u, ids, lab, rate, decay);
  }

  /**
   * Rebuild this device's user vector from its `history` (item rows, oldest first; optional `weights`, the
   * stored label of each, default 1) with the manifest's recipe: `recipeLabels`, then `calls` calls of the
   * `finetune` graph over the whole catalog from the zero vector.
   */
  async reconstruct(history: ArrayLike<number>, weights?: ArrayLike<number>): Promise<Float32Array> {
    const r = this.recipe;
    const labels = recipeLabels(history, this.numItems, r.recency_half_life, weights);
    let u: Float32Array = new Float32Array(this.dim);
    for (let call = 0; call < r.calls; call++) {
      u = (await this.rawFinetune(u, this.allIds, labels, r.lr, r.l2)).user;
    }
    return u;
  }

  /**
   * `reconstruct` for a stored history of the app's item ids (oldest first, optional weights): mapped through
   * {@link itemMap} first, so items this catalog does not hold (removed by a catalog update) are left out and
   * returned as `dropped`; the vector is the one a device that started on this bundle with the surviving
   * history builds. With no surviving item the vector is zeros.
   */
  async reconstructIds(history: readonly string[], weights?: ArrayLike<number>): Promise<{ user: Float32Array; dropped: string[] }> {
    const mapped = this.itemMap.map(history, weights);
    if (!mapped.rows.length) return { user: new Float32Array(this.dim), dropped: mapped.dropped };
    return { user: await this.reconstruct(mapped.rows, mapped.weights), dropped: mapped.dropped };
  }

  /** `recommend` with the app's item ids: `exclude` holds ids (ids this catalog lacks are ignored), and `ids` come back as ids. */
  async recommendIds(user: Vector, exclude: readonly string[] = [], k: number = this.topK): Promise<{ ids: string[]; rows: number[]; scores: number[] }> {
    const top = await this.recommend(user, this.itemMap.map(exclude).rows, k);
    return { ids: top.ids.map((r) => this.itemMap.id(r)), rows: top.ids, scores: top.scores };
  }

  /**
   * Every `golden.json` case through these graphs (what an app runs before serving). `recommend`'s ids must
   * match the golden ones up to ties: an id may differ only if its score is within the tolerance of the K-th.
   */
  async selfTest(): Promise<SelfTestReport> {
    const errs: Record<SignatureName, number> = { score: 0, recommend: 0, finetune: 0 };
    const failures: string[] = [];
    let tolerance = 0;
    for (const [pos, c] of this.golden.entries()) {
      const inp = c.inputs;
      const out = c.outputs;
      const tol = Number(c.tolerance);
      tolerance = Math.max(tolerance, tol);
      const user = Float32Array.from(inp.user as number[]);
      let err: number;
      let idsOk = true;
      if (c.signature === 'score') {
        err = maxAbsErr(await this.rawScore(user, Int32Array.from(inp.item_ids as number[])), out.scores as number[]);
      } else if (c.signature === 'recommend') {
        const mask = new Float32Array(this.numItems);
        for (const i of inp.exclude as number[]) mask[i] = -Infinity;
        const got = await this.rawRecommend(user, mask);
        const want = out.top_scores as number[];
        err = maxAbsErr(got.scores, want);
        const kth = want[want.length - 1] - tol;
        const goldenTop = new Map((out.top_ids as number[]).map((id, i) => [id, want[i]]));
        const gotTop = new Map(Array.from(got.ids, (id, i) => [id, got.scores[i]]));
        for (const [id, s] of gotTop) if (!goldenTop.has(id) && !(s >= kth)) idsOk = false;
        for (const [id, s] of goldenTop) if (!gotTop.has(id) && !(s >= kth)) idsOk = false;
      } else if (c.signature === 'finetune') {
        const ids = Int32Array.from(inp.item_ids as number[]);
        const res = await this.rawFinetune(user, ids, Float32Array.from(inp.labels as number[]), Number(inp.lr), Number(inp.l2));
        err = Math.max(maxAbsErr(res.user, out.user_out as number[]), maxAbsErr([res.loss], [Number(out.loss)]));
      } else {
        failures.push(`${GOLDEN_NAME} cases[${pos}]: unknown signature ${show(c.signature)}`);
        continue;
      }
      errs[c.signature] = Math.max(errs[c.signature], err);
      if (!(err <= tol)) failures.push(`${GOLDEN_NAME} cases[${pos}] (${c.signature}): max abs error ${err.toExponential(2)} > ${tol}`);
      if (!idsOk) failures.push(`${GOLDEN_NAME} cases[${pos}] (recommend): top_ids differ beyond ties`);
    }
    if (!this.golden.length) failures.push(`${GOLDEN_NAME}: no cases`);
    return { ok: failures.length === 0, tolerance, maxAbsErr: errs, cases: this.golden.length, failures };
  }

  /** Free the WebAssembly sessions. */
  async release(): Promise<void> {
    await Promise.all(SIGNATURES.map((s) => this.sessions[s].release()));
  }
}
