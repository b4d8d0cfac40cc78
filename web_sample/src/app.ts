/**
 * The web sample: the bundle runs on this device in onnxruntime-web; likes, the user vector and the list never
 * leave the browser. Loads `?bundle=URL` (default `bundle/`, next to this page), verifies every file's sha256,
 * runs the golden self-test and refuses to serve if a case fails; then "For you" (tap ♥ to like), "Your likes"
 * (tap to unlike), a catalog search, and the privacy panel (the manifest's ledger, the self-test, the store).
 * A like or an unlike edits the stored history and rebuilds the user vector from zeros with the manifest's
 * recipe through the exported `finetune` graph, then `recommend` refreshes the list without the liked items.
 */
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';
import { BundleError, load, useWasm, type PrivRecBundle, type SelfTestReport } from './privrec';
import { InteractionStore, StoreError, type Interaction, type InteractionLog } from './store';
import './style.css';

interface AppState {
  bundle: PrivRecBundle;
  store: InteractionStore;
  selfTest: SelfTestReport;
  interactions: Interaction[];
  user: Float32Array;
  recommendations: { ids: number[]; scores: number[] };
}

/** The history's rows in the installed bundle (items its catalog lacks left out) and their weights. */
function mapped(s: { bundle: PrivRecBundle }, interactions: Interaction[]): { rows: number[]; weights: number[]; dropped: string[] } {
  return s.bundle.itemMap.map(interactions.map((i) => i.item_id), interactions.map((i) => i.label));
}

/** What a test (or the console) may read: a snapshot, never a handle on the store or the key. */
export interface AppSnapshot {
  status: 'loading' | 'ready' | 'error';
  error: string | null;
  errorFile: string | null;
  notice: string | null;
  modelVersion: string | null;
  precision: string | null;
  /** the pinned key id that verified manifest.sig, or null (no key pinned at build time) */
  signedBy: string | null;
  /** the stored history as rows of the installed bundle (items its catalog lacks left out) */
  history: number[];
  /** the stored history as the app's item ids, oldest first */
  historyIds: string[];
  user: number[];
  recommendations: { ids: number[]; scores: number[] };
  selfTest: SelfTestReport | null;
}

declare global {
  interface Window {
    privrecApp: { ready: Promise<AppSnapshot>; snapshot(): AppSnapshot };
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
/** The publisher's Ed25519 public key, pinned when the page is built (`VITE_PRIVREC_PUBLIC_KEY`, README). */
const PINNED_KEY: string | undefined = import.meta.env.VITE_PRIVREC_PUBLIC_KEY?.trim() || undefined;
const SEARCH_LIMIT = 8;

let state: AppState | null = null;
let status: AppSnapshot['status'] = 'loading';
let errorMessage: string | null = null;
let errorFile: string | null = null;
let notice: string | null = null;
let busy = false;

function snapshot(): AppSnapshot {
  return {
    status,
    error: errorMessage,
    errorFile,
    notice,
    modelVersion: state?.bundle.manifest.model_version ?? null,
    precision: state?.bundle.manifest.precision ?? null,
    signedBy: state?.bundle.signedBy ?? null,
    history: state ? mapped(state, state.interactions).rows : [],
    historyIds: state?.interactions.map((i) => i.item_id) ?? [],
    user: state ? Array.from(state.user) : [],
    recommendations: state?.recommendations ?? { ids: [], scores: [] },
    selfTest: state?.selfTest ?? null,
  };
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, string> = {}, text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function setStatus(text: string): void {
  $('status').textContent = text;
}

function showNotice(text: string | null): void {
  notice = text;
  const box = $('notice');
  box.hidden = text === null;
  box.textContent = text ?? '';
}

function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toPrecision(digits) : String(x);
}

// --- rendering -------------------------------------------------------------------------------------------

function renderLists(s: AppState): void {
  const recs = $('recommendations');
  recs.replaceChildren();
  s.recommendations.ids.forEach((row, i) => {
    const li = el('li', { 'data-item': String(row) });
    li.append(el('span', { class: 'title' }, s.bundle.title(row)), el('span', { class: 'score' }, fmt(s.recommendations.scores[i])));
    const like = el('button', { class: 'like', 'data-like': String(row), 'aria-label': `Like ${s.bundle.title(row)}` }, '♥ Like');
    like.addEventListener('click', () => void act(() => like_(row)));
    li.append(like);
    recs.append(li);
  });
  if (!s.recommendations.ids.length) recs.append(el('li', { class: 'empty' }, 'Nothing left to recommend.'));

  const liked = $('liked');
  liked.replaceChildren();
  const seen = new Set<string>();
  for (const { item_id: id } of [...s.interactions].reverse()) {
    if (seen.has(id)) continue;
    seen.add(id);
    // A like of an item this catalog no longer holds stays listed (by its id) so it can be unliked.
    const row = s.bundle.itemMap.row(id);
    const title = row === undefined ? `${id} (not in this catalog)` : s.bundle.title(row);
    const li = el('li', { 'data-item': row === undefined ? id : String(row) });
    li.append(el('span', { class: 'title' }, title));
    const unlike = el('button', { class: 'unlike', 'data-unlike': row === undefined ? id : String(row), 'aria-label': `Unlike ${title}` }, 'Unlike');
    unlike.addEventListener('click', () => void act(() => unlike_(id)));
    li.append(unlike);
    liked.append(li);
  }
  if (!seen.size) liked.append(el('li', { class: 'empty' }, 'No likes yet: ♥ a title to start. The list adapts on this device.'));
  $('liked-count').textContent = String(seen.size);
  renderSearch(s);
}

function renderSearch(s: AppState): void {
  const query = ($('search') as HTMLInputElement).value.trim().toLowerCase();
  const out = $('search-results');
  out.replaceChildren();
  if (!query) return;
  const liked = new Set(mapped(s, s.interactions).rows);
  let shown = 0;
  for (let row = 0; row < s.bundle.numItems && shown < SEARCH_LIMIT; row++) {
    const title = s.bundle.title(row);
    if (liked.has(row) || !title.toLowerCase().includes(query)) continue;
    const li = el('li', { 'data-item': String(row) });
    li.append(el('span', { class: 'title' }, title));
    const like = el('button', { class: 'like', 'data-like': String(row), 'aria-label': `Like ${title}` }, '♥ Like');
    like.addEventListener('click', () => void act(() => like_(row)));
    li.append(like);
    out.append(li);
    shown++;
  }
  if (!shown) out.append(el('li', { class: 'empty' }, 'No title matches.'));
}

function row(table: HTMLTableSectionElement, cells: string[]): void {
  const tr = el('tr');
  for (const c of cells) tr.append(el('td', {}, c));
  table.append(tr);
}

function renderPrivacy(s: AppState): void {
  const m = s.bundle.manifest;
  const p = m.privacy;
  const eps = typeof p.epsilon === 'number' ? p.epsilon : null;
  let summary: string;
  if (eps !== null) summary = `Trained with user-level differential privacy (${p.mode} noise).`;
  else if (p.mode === 'off') summary = 'Trained federated without differential privacy: ε = ∞ (no guarantee).';
  else if (p.mode === 'none') summary = 'Trained centrally: this model makes no differential-privacy claim.';
  else summary = `No privacy guarantee recorded (mode "${p.mode}").`;
  $('privacy-summary').textContent = summary;
  const body = $('privacy-table') as HTMLTableSectionElement;
  body.replaceChildren();
  row(body, ['ε (user-level)', eps !== null ? fmt(eps) : p.mode === 'none' ? '— (no claim)' : '∞ (no guarantee)']);
  row(body, ['δ', typeof p.delta === 'number' ? p.delta.toExponential(1) : '—']);
  row(body, ['mechanism', typeof p.mechanism === 'string' ? p.mechanism : p.mode === 'none' ? 'none (central training)' : '—']);
  const first = p.ledger[0];
  if (first) {
    row(body, ['noise multiplier z', String(first.noise_multiplier ?? '—')]);
    row(body, ['sample rate q', String(first.sample_rate ?? '—')]);
  }
  if (typeof p.rounds === 'number') row(body, ['rounds', String(p.rounds)]);
  const warnings = $('privacy-warnings');
  warnings.replaceChildren(...(p.warnings ?? []).map((w) => el('li', {}, w)));

  const t = s.selfTest;
  $('selftest-summary').textContent = t.ok
    ? `Self-test passed: ${t.cases} golden cases within ${t.tolerance} (max abs error).`
    : `Self-test FAILED: ${t.failures.join('; ')}`;
  const st = $('selftest-table') as HTMLTableSectionElement;
  st.replaceChildren();
  for (const sig of ['score', 'recommend', 'finetune'] as const) row(st, [sig, t.maxAbsErr[sig].toExponential(2), String(t.tolerance)]);
  $('signature').textContent = s.bundle.signedBy
    ? `manifest.sig verified with the pinned key ${s.bundle.signedBy}`
    : 'signature not checked: this page was built without a pinned public key';
  $('model').textContent = `${m.model_version} · ${m.precision} · ${m.num_items.toLocaleString('en')} items × d=${m.dim} · K=${m.top_k}`;
  $('recipe').textContent = `recipe: ${m.finetune.calls} × finetune (${m.finetune.steps} steps, lr ${m.finetune.lr}, l2 ${m.finetune.l2}), half-life ${m.finetune.recency_half_life ?? 'none'}`;
}

// --- actions ---------------------------------------------------------------------------------------------

function log(s: AppState, interactions: Interaction[], user: Float32Array): InteractionLog {
  return { version: 2, model_version: s.bundle.manifest.model_version, user: Array.from(user), interactions };
}

/**
 * The recipe over the whole history (never a step from the previous vector), mapped through this bundle's item
 * map: items its catalog does not hold are left out; with none left, zeros.
 */
async function rebuild(s: { bundle: PrivRecBundle }, interactions: Interaction[]): Promise<Float32Array> {
  return (await s.bundle.reconstructIds(interactions.map((i) => i.item_id), interactions.map((i) => i.label))).user;
}

/** Store first, then show: a failure leaves the previous, stored state on screen. */
async function commit(s: AppState, interactions: Interaction[]): Promise<void> {
  const user = await rebuild(s, interactions);
  await s.store.write(log(s, interactions, user));
  const recs = await s.bundle.recommend(user, mapped(s, interactions).rows);
  s.interactions = interactions;
  s.user = user;
  s.recommendations = recs;
}

async function like_(row: number): Promise<void> {
  const s = state as AppState;
  await commit(s, [...s.interactions, { item_id: s.bundle.itemMap.id(row), label: 1, time_ms: Date.now() }]);
}

async function unlike_(id: string): Promise<void> {
  const s = state as AppState;
  await commit(s, s.interactions.filter((i) => i.item_id !== id));
}

async function forget(): Promise<void> {
  const s = state as AppState;
  await s.store.erase();
  s.interactions = [];
  s.user = new Float32Array(s.bundle.dim);
  s.recommendations = await s.bundle.recommend(s.user, []);
}

async function act(fn: () => Promise<void>): Promise<void> {
  if (busy || !state) return;
  busy = true;
  document.body.dataset.busy = 'true';
  setStatus('Rebuilding your taste vector on this device…');
  try {
    await fn();
    showNotice(null);
  } catch (exc) {
    showNotice(`That did not work: ${exc instanceof Error ? exc.message : String(exc)}. Nothing was changed.`);
  } finally {
    busy = false;
    delete document.body.dataset.busy;
    renderLists(state);
    setStatus(ready());
  }
}

function ready(): string {
  const s = state as AppState;
  return `Ready · ${s.interactions.length} stored interaction${s.interactions.length === 1 ? '' : 's'} · computed in this browser`;
}

// --- start -----------------------------------------------------------------------------------------------

async function restore(store: InteractionStore, bundle: PrivRecBundle): Promise<Interaction[]> {
  try {
    // Likes are kept by item id, so they survive a new model version with a changed catalog.
    const saved = await store.read({ model_version: bundle.manifest.model_version, ids: bundle.itemMap.ids });
    if (saved === null) return [];
    const { dropped } = bundle.itemMap.map(saved.interactions.map((i) => i.item_id));
    if (dropped.length) {
      const n = new Set(dropped).size;
      showNotice(`${n} of your liked item${n === 1 ? ' is' : 's are'} not in this catalog any more: left out of your recommendations.`);
    }
    return saved.interactions;
  } catch (exc) {
    if (exc instanceof StoreError) {
      showNotice(`${exc.message} Starting a new history.`);
      return [];
    }
    throw exc;
  }
}

async function registerServiceWorker(): Promise<void> {
  if (!('serviceWorker' in navigator)) return;
  try {
    const reg = await navigator.serviceWorker.register('./sw.js', { scope: './' });
    const worker = reg.active ?? (await navigator.serviceWorker.ready).active;
    // What this first load fetched before the worker existed (page, scripts, wasm, the bundle): cache it for offline.
    const origin = location.origin;
    const urls = [location.href, ...performance.getEntriesByType('resource').map((e) => e.name)].filter((u) => u.startsWith(origin));
    worker?.postMessage({ type: 'cache-urls', urls });
  } catch (exc) {
    console.warn('service worker not registered: offline use unavailable', exc);
  }
}

async function start(): Promise<AppSnapshot> {
  useWasm(wasmUrl);
  const bundleUrl = new URL(new URLSearchParams(location.search).get('bundle') ?? 'bundle/', location.href);
  $('bundle-url').textContent = bundleUrl.pathname;
  try {
    const bundle = await load(bundleUrl, { onProgress: setStatus, publicKey: PINNED_KEY });
    setStatus('Running the golden self-test…');
    const selfTest = await bundle.selfTest();
    if (!selfTest.ok) throw new Error(`Self-test failed, refusing to serve: ${selfTest.failures.join('; ')}`);
    const store = await InteractionStore.open();
    const interactions = await restore(store, bundle);
    const s: AppState = { bundle, store, selfTest, interactions, user: new Float32Array(bundle.dim), recommendations: { ids: [], scores: [] } };
    s.user = await rebuild(s, interactions); // the stored vector is only a cache: rebuilt with this bundle's recipe
    s.recommendations = await bundle.recommend(s.user, mapped(s, interactions).rows);
    state = s;
    status = 'ready';
    renderPrivacy(s);
    renderLists(s);
    setStatus(ready());
    $('app').hidden = false;
    ($('search') as HTMLInputElement).addEventListener('input', () => renderSearch(s));
    $('forget').addEventListener('click', () => void act(forget));
    void registerServiceWorker();
  } catch (exc) {
    status = 'error';
    errorMessage = exc instanceof Error ? exc.message : String(exc);
    errorFile = exc instanceof BundleError ? exc.file : null;
    const box = $('error');
    box.hidden = false;
    box.textContent = exc instanceof BundleError ? `Bundle refused: ${errorMessage}` : `Could not start: ${errorMessage}`;
    if (errorFile) box.dataset.file = errorFile;
    setStatus('Not serving.');
  }
  document.body.dataset.state = status;
  return snapshot();
}

window.privrecApp = { ready: start(), snapshot };
