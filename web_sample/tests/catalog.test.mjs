// A catalog update in the web sample's modules under Node (compiled by `tsc -p tsconfig.json` into build/tsc/):
// the stored likes are item ids, so after the page loads bundle v2 (items added, removed and re-ordered since
// v1) the rebuilt user vector and recommendations equal those of a browser that started on v2 with the
// surviving likes, and the Python runtime's. Run by tests/samples/test_web.py with
//   PRIVREC_CATALOG  the catalog-update fixture (tests/samples/catalog_fixture.py): bundles v1 and v2, a
//                    history of v1 item ids, the ids v2 removed, the history as v1 rows, Python's top-10 on v2
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { BundleError, ItemMap, load, parseManifest } from '../build/tsc/privrec.js';
import { StoreError, upgradeLog } from '../build/tsc/store.js';

const FX = JSON.parse(readFileSync(process.env.PRIVREC_CATALOG, 'utf8'));

async function readFile(url) {
  try {
    return new Response(readFileSync(new URL(url)));
  } catch {
    return new Response('not found', { status: 404 });
  }
}

const open = (dir) => load(pathToFileURL(`${dir}/`), { fetch: readFile });
const v1 = await open(FX.v1);
const v2 = await open(FX.v2);

/** The sealed document a browser on `bundle` keeps for `ids` (what IndexedDB holds, decrypted). */
const logOf = (bundle, ids, weights, user) => ({
  version: 2, model_version: bundle.manifest.model_version, user: Array.from(user),
  interactions: ids.map((item_id, t) => ({ item_id, label: weights[t], time_ms: 1700000000000 + t })),
});

/** What the page serves on `bundle` for a stored log: the recipe's vector, then the top-K without the likes. */
async function serve(bundle, log) {
  const ids = log.interactions.map((i) => i.item_id);
  const { user, dropped } = await bundle.reconstructIds(ids, log.interactions.map((i) => i.label));
  const top = await bundle.recommendIds(user, ids);
  return { user: Array.from(user), dropped, ids: top.ids, scores: top.scores };
}

test('a catalog update rebuilds what a browser that started on v2 gets, and what the Python runtime recommends', async () => {
  assert.ok(FX.history.every((id) => v1.itemMap.row(id) !== undefined), 'the history is recorded on v1');
  const onV1 = await serve(v1, logOf(v1, FX.history, FX.weights, new Float32Array(v1.dim)));
  const sealed = JSON.stringify(logOf(v1, FX.history, FX.weights, onV1.user));

  const updated = upgradeLog(JSON.parse(sealed)); // the page on v2 reads the stored log back
  const got = await serve(v2, updated);
  assert.deepEqual(got.dropped, FX.dropped);

  const survivors = FX.history.map((id, t) => [id, FX.weights[t]]).filter(([id]) => !FX.dropped.includes(id));
  const fresh = await serve(v2, logOf(v2, survivors.map(([id]) => id), survivors.map(([, w]) => w), new Float32Array(v2.dim)));
  assert.deepEqual(got.user, fresh.user);
  assert.deepEqual(got.ids, fresh.ids);
  assert.deepEqual(got.scores, fresh.scores);
  assert.equal(got.ids.length, 10);
  assert.ok(got.ids.every((id) => !FX.history.includes(id)));

  // Python's top-10 on v2 for the surviving history: equal up to ties at the K-th score.
  const kth = FX.python_top_scores.at(-1) - FX.tolerance;
  const python = new Map(FX.python_top_ids.map((id, i) => [id, FX.python_top_scores[i]]));
  const web = new Map(got.ids.map((id, i) => [id, got.scores[i]]));
  for (const [id, s] of web) assert.ok(python.has(id) || s >= kth, `${id} (${s}) is not in Python's top-10`);
  for (const [id, s] of python) assert.ok(web.has(id) || s >= kth, `Python's ${id} (${s}) is not in the page's top-10`);
  let worst = 0;
  for (const [id, s] of web) if (python.has(id)) worst = Math.max(worst, Math.abs(python.get(id) - s));
  assert.ok(worst <= FX.tolerance, `scores differ from Python's by ${worst}`);
  console.log(`catalog update: ${got.dropped.length} of ${FX.history.length} stored likes name items v2 removed; `
    + `top-${got.ids.length} equals a browser that started on v2 and the Python runtime's (max |score err| ${worst.toExponential(2)})`);
});

test('a log of model rows (version 1) converts to item ids only with the bundle it was written with', () => {
  const doc = {
    version: 1, model_version: v1.manifest.model_version, user: [0, 0],
    interactions: [...FX.v1_rows, v1.numItems].map((item, t) => ({ item, label: 1, time_ms: t })),
  };
  const rows = (b) => ({ model_version: b.manifest.model_version, ids: b.itemMap.ids });
  assert.deepEqual(upgradeLog(doc, rows(v1)).interactions.map((i) => i.item_id), FX.history); // the row past v1 is dropped
  for (const other of [undefined, rows(v2)]) {
    assert.throws(() => upgradeLog(doc, other), { name: 'StoreError', message: /converts to item ids only with that bundle's item map/ });
  }
});

test('a stored log whose item ids are not strings is refused, naming the entry', () => {
  const doc = (item_id) => ({ version: 2, model_version: 'm', user: [0], interactions: [{ item_id, label: 1, time_ms: 1 }] });
  for (const [bad, found] of [[3, '3'], [null, 'null'], ['', '""']]) {
    assert.throws(() => upgradeLog(doc(bad)), (e) => e instanceof StoreError
      && e.message === `interaction store: \`interactions[0].item_id\` must be a non-empty item id string. Found ${found}.`);
  }
  assert.throws(() => upgradeLog({ ...doc('a'), version: 3 }), /`version` must be 1 or 2. Found 3./);
});

test('a tampered item map is refused naming the problem; entries in any order are sorted by row', () => {
  const raw = JSON.parse(readFileSync(`${FX.v2}/manifest.json`, 'utf8'));
  const n = raw.num_items;
  const edited = (edit) => {
    const copy = structuredClone(raw);
    edit(copy.items);
    return copy;
  };
  const cases = [
    [(it) => { it[7].id = it[3].id; }, `field \`items[7]\`.id repeats id "${raw.items[3].id}" of items[3]: item ids must be unique.`],
    [(it) => { it[9].index = it[4].index; }, new RegExp(`field \`items\\[9\\]\`\\.index repeats index \\d+ of items\\[4\\]: the indices must be a permutation of 0\\.\\.${n - 1}, and index \\d+ has no entry\\.`)],
    [(it) => { it[5].index = n; }, `field \`items[5]\`.index must be in [0, ${n}). Found ${n}.`],
    [(it) => { it[6].id = 6; }, "field `items[6]`.id must be a non-empty string (the app's item id). Found 6."],
    [(it) => { it[6].title = 6; }, 'field `items[6]`.title must be a string. Found 6.'],
    [(it) => { it.pop(); }, `field \`items\` must be empty or hold one entry per item (${n}). Found ${n - 1}.`],
  ];
  for (const [edit, message] of cases) {
    assert.throws(() => parseManifest(edited(edit)), (e) => e instanceof BundleError
      && (typeof message === 'string' ? e.message === `manifest.json: ${message}` : message.test(e.message)), String(message));
  }
  const reversed = parseManifest(edited((it) => it.reverse()));
  assert.deepEqual(reversed.items.map((i) => i.index), Array.from({ length: n }, (_, i) => i));
  assert.deepEqual(ItemMap.of(reversed).ids, v2.itemMap.ids);
  assert.deepEqual(ItemMap.of({ items: [], num_items: 3 }).ids, ['0', '1', '2']);
});
