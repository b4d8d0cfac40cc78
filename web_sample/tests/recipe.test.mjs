// src/privrec.ts under Node (compiled by `tsc -p tsconfig.json` into build/tsc/): the reconstruction
// recipe's pinned golden file, the bundle checks and the input checks, with onnxruntime-web's WebAssembly
// backend as the page runs it. Run by tests/samples/test_web.py with
//   PRIVREC_RECIPE_GOLDEN  tests/golden/reconstruction_recipe.json
//   PRIVREC_RECIPE_BUNDLE  that golden's 12 × 4 model exported by the Python exporter (its recipe in the manifest)
//   PRIVREC_ML_BUNDLE      an ML-100K-shaped int8 bundle exported in the same run
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { Buffer } from 'node:buffer';
import { BundleError, load, recipeLabels } from '../build/tsc/privrec.js';

const GOLDEN = JSON.parse(readFileSync(process.env.PRIVREC_RECIPE_GOLDEN, 'utf8'));
const RECIPE_BUNDLE = process.env.PRIVREC_RECIPE_BUNDLE;
const ML_BUNDLE = process.env.PRIVREC_ML_BUNDLE;

/** `fetch` for file:// URLs: the bundle's files as a static server would send them. */
async function readFile(url) {
  try {
    return new Response(readFileSync(new URL(url)));
  } catch {
    return new Response('not found', { status: 404 });
  }
}

const open = (dir, options = {}) => load(pathToFileURL(`${dir}/`), { fetch: readFile, ...options });

const recipeBundle = await open(RECIPE_BUNDLE);

test('the manifest carries the golden recipe', () => {
  assert.deepEqual(recipeBundle.recipe, GOLDEN.finetune);
});

for (const c of GOLDEN.cases) {
  test(`recipe case ${c.name}: labels exactly, user vector within ${GOLDEN.tolerance}`, async () => {
    const labels = recipeLabels(c.history, GOLDEN.num_items, GOLDEN.finetune.recency_half_life);
    assert.deepEqual(Array.from(labels), c.labels.map(Math.fround));
    const user = await recipeBundle.reconstruct(c.history);
    assert.equal(user.length, GOLDEN.dim);
    const worst = Math.max(...Array.from(user, (x, i) => Math.abs(x - c.user[i])));
    console.log(`recipe case ${c.name}: max abs error ${worst.toExponential(2)} (tolerance ${GOLDEN.tolerance})`);
    assert.ok(worst <= GOLDEN.tolerance, `user ${Array.from(user)} vs golden ${c.user}`);
  });
}

test('labels: repeats keep the largest, no half-life gives weights, bad histories are refused', () => {
  assert.deepEqual(Array.from(recipeLabels([2, 0, 2], 3, 1)), [0.5, 0, 1]);
  assert.deepEqual(Array.from(recipeLabels([2, 0, 2], 3, null, [3, 1, 2])), [1, 0, 3]);
  assert.throws(() => recipeLabels([], 3, 1), /`history` must hold at least one item/);
  assert.throws(() => recipeLabels([0, 3], 3, 1), { name: 'RangeError', message: '`history` must be in [0, 3). Found 3 at position 1.' });
  assert.throws(() => recipeLabels([0.5], 3, 1), { name: 'TypeError' });
  assert.throws(() => recipeLabels([0, 1], 3, null, [0, 0]), /labels are all zero/);
  assert.throws(() => recipeLabels([0, 1], 3, null, [1, -1]), /`weights` must be >= 0. Found -1 at position 1./);
});

test('the ML-100K-shaped bundle passes its golden self-test; inputs are checked at the boundary', async () => {
  const bundle = await open(ML_BUNDLE);
  const report = await bundle.selfTest();
  assert.equal(report.ok, true, report.failures.join('; '));
  assert.equal(report.cases, 9);
  const user = await bundle.reconstruct([49, 171, 180]);
  const top = await bundle.recommend(user, [49, 171, 180]);
  assert.equal(top.ids.length, bundle.topK);
  assert.ok(!top.ids.some((i) => [49, 171, 180].includes(i)));
  const scores = await bundle.score(user, top.ids);
  scores.forEach((s, i) => assert.ok(Math.abs(s - top.scores[i]) <= 2e-2));
  await assert.rejects(bundle.recommend(user, [], bundle.topK + 1), { name: 'RangeError', message: `\`k\` must be in [1, ${bundle.topK}] (the K this bundle was exported with). Found ${bundle.topK + 1}.` });
  await assert.rejects(bundle.recommend(user.slice(1)), { name: 'RangeError', message: `\`user\` must have length ${bundle.dim}. Found ${bundle.dim - 1}.` });
  await assert.rejects(bundle.score(user, [bundle.numItems]), { name: 'RangeError', message: `\`item_ids\` must be in [0, ${bundle.numItems}). Found ${bundle.numItems} at position 0.` });
  await assert.rejects(bundle.finetune(user, [1, 2], [1, -1]), /`labels` must be finite and >= 0. Found -1 at position 1./);
  await bundle.release();
});

function copyOf(dir) {
  const out = mkdtempSync(join(tmpdir(), 'privrec-web-'));
  cpSync(dir, out, { recursive: true });
  return out;
}

test('a flipped byte, a missing file, a pinned hash that differs and a newer schema are refused, naming the file', async () => {
  for (const name of ['model.onnx.data', 'model.finetune.onnx', 'golden.json', 'weights.safetensors']) {
    const dir = copyOf(RECIPE_BUNDLE);
    const bytes = readFileSync(join(dir, name));
    bytes[bytes.length >> 1] ^= 0x80;
    writeFileSync(join(dir, name), bytes);
    await assert.rejects(open(dir), (err) => err instanceof BundleError && err.file === name
      && err.message.startsWith(`${name}: sha256 mismatch (manifest `) && err.message.endsWith('the bundle is corrupt or tampered.'));
  }
  const missing = copyOf(RECIPE_BUNDLE);
  copyFileSync(join(missing, 'manifest.json'), join(missing, 'manifest.bak'));
  const manifest = JSON.parse(readFileSync(join(missing, 'manifest.json'), 'utf8'));
  manifest.files['extra.bin'] = { sha256: '0'.repeat(64), size: 1 };
  writeFileSync(join(missing, 'manifest.json'), JSON.stringify(manifest));
  await assert.rejects(open(missing), (err) => err instanceof BundleError && err.file === 'extra.bin' && /missing from the bundle/.test(err.message));
  await assert.rejects(open(RECIPE_BUNDLE, { expectedFiles: { 'model.onnx.data': 'f'.repeat(64) } }),
    (err) => err instanceof BundleError && err.file === 'model.onnx.data' && /not the bundle this page was built for/.test(err.message));
  const pinned = JSON.parse(readFileSync(join(RECIPE_BUNDLE, 'manifest.json'), 'utf8')).files['model.onnx.data'].sha256;
  (await open(RECIPE_BUNDLE, { expectedFiles: { 'model.onnx.data': pinned } })).release();
  const newer = copyOf(RECIPE_BUNDLE);
  const m2 = JSON.parse(readFileSync(join(newer, 'manifest.json'), 'utf8'));
  m2.schema_version = 2;
  writeFileSync(join(newer, 'manifest.json'), JSON.stringify(m2));
  await assert.rejects(open(newer), (err) => err instanceof BundleError && err.file === 'manifest.json' && /`schema_version` must be 1/.test(err.message));
});

/** Sign a copy's manifest.json as `privrec export --sign-key` does; returns the `.pub` line and the key id. */
async function signCopy(dir) {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const keyId = Buffer.from(await crypto.subtle.digest('SHA-256', raw)).toString('hex').slice(0, 16);
  const signature = await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, readFileSync(join(dir, 'manifest.json')));
  const record = { algorithm: 'ed25519', key_id: keyId, signature: Buffer.from(signature).toString('base64') };
  writeFileSync(join(dir, 'manifest.sig'), JSON.stringify(record));
  return { pub: Buffer.from(raw).toString('base64'), keyId };
}

test('a pinned key: a signed bundle loads, an edited manifest, another key and no signature are refused', async () => {
  const dir = copyOf(RECIPE_BUNDLE);
  const { pub, keyId } = await signCopy(dir);
  const bundle = await open(dir, { publicKey: `${pub}\n` });
  assert.equal(bundle.signedBy, keyId);
  await bundle.release();
  assert.equal((await open(RECIPE_BUNDLE)).signedBy, null); // no key pinned: nothing checked, and it says so
  const isSig = (pattern) => (err) => err instanceof BundleError && err.file === 'manifest.sig' && pattern.test(err.message);
  const other = await signCopy(copyOf(RECIPE_BUNDLE));
  await assert.rejects(open(dir, { publicKey: other.pub }), isSig(/`key_id` is .* not the pinned public key/));
  const edited = copyOf(dir);
  const m = JSON.parse(readFileSync(join(edited, 'manifest.json'), 'utf8'));
  m.finetune.lr = 10; // the recipe changed after signing; every file still matches its sha256
  writeFileSync(join(edited, 'manifest.json'), JSON.stringify(m));
  await assert.rejects(open(edited, { publicKey: pub }), isSig(/does not verify manifest.json under public key/));
  await assert.rejects(open(RECIPE_BUNDLE, { publicKey: pub }), isSig(/missing: the bundle is unsigned/));
  await assert.rejects(open(dir, { publicKey: 'not base64!' }), { name: 'TypeError' });
});
