// Drives the built web sample in Debian's Chromium (playwright-core, never a downloaded browser) and reports
// what the page did as JSON; tests/samples/test_web.py serves the site, compares with the Python runtime and
// asserts. Usage: node tests/e2e.mjs PLAN.json OUT.json
//
// PLAN: {baseUrl, executablePath, screenshot, offlineUrl, onlineUrl, tampered: [{name, path}],
//        bundles: [{name, path, history: [row…], search: {row: text}}]}
// For each bundle, in a fresh browser context: load → self-test → like `history` through the search box →
// like the first recommendation → read the raw IndexedDB record → reload → (first bundle) reload again with
// the server offline, served by the service worker. Then each tampered bundle, which must be refused.
import { readFileSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [planPath, outPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, 'utf8'));
const LAUNCH_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
const TIMEOUT = 60_000;

const out = { browser: null, bundles: {}, tampered: null, requests: [], consoleErrors: [], pageErrors: [] };

function watch(page) {
  page.on('request', (r) => out.requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') out.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
}

async function settled(page) {
  await page.waitForFunction(() => document.body.dataset.state && document.body.dataset.state !== 'loading', null, { timeout: TIMEOUT });
  return page.evaluate(() => window.privrecApp.snapshot());
}

async function waitHistory(page, length) {
  await page.waitForFunction((n) => {
    const s = window.privrecApp.snapshot();
    return s.history.length === n && !document.body.dataset.busy;
  }, length, { timeout: TIMEOUT });
  return page.evaluate(() => window.privrecApp.snapshot());
}

/** The stored record as IndexedDB holds it (what any script of this origin could read), plus the key's flags. */
async function rawStore(page) {
  return page.evaluate(async () => {
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open('privrec');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const get = (key) => new Promise((resolve, reject) => {
      const req = db.transaction('vault').objectStore('vault').get(key);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const record = await get('interactions');
    const key = await get('key');
    const bytes = new Uint8Array(record.data);
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    let exported = null;
    try {
      await crypto.subtle.exportKey('raw', key);
      exported = 'exported';
    } catch (e) {
      exported = e.name;
    }
    db.close();
    return {
      fields: Object.keys(record).sort(),
      ivLength: record.iv.length,
      dataBase64: btoa(binary),
      keyType: Object.prototype.toString.call(key),
      keyExtractable: key.extractable,
      keyAlgorithm: key.algorithm,
      keyUsages: key.usages,
      exportAttempt: exported,
    };
  });
}

async function likedTitles(page) {
  return page.$$eval('#liked li[data-item]', (lis) => lis.map((li) => ({ item: Number(li.dataset.item), title: li.querySelector('.title').textContent })));
}

async function recommendedTitles(page) {
  return page.$$eval('#recommendations li[data-item]', (lis) => lis.map((li) => ({ item: Number(li.dataset.item), title: li.querySelector('.title').textContent })));
}

async function runBundle(browser, spec, first) {
  const context = await browser.newContext({ viewport: { width: 1320, height: 980 } });
  const page = await context.newPage();
  watch(page);
  const r = { name: spec.name };
  const t0 = Date.now();
  await page.goto(`${plan.baseUrl}?bundle=${spec.path}`);
  r.initial = await settled(page);
  r.loadMs = Date.now() - t0;
  if (r.initial.status !== 'ready') return r;
  for (const [i, row] of spec.history.entries()) {
    await page.fill('#search', spec.search[String(row)]);
    await page.click(`#search-results button[data-like="${row}"]`);
    await waitHistory(page, i + 1);
  }
  r.afterHistory = await page.evaluate(() => window.privrecApp.snapshot());
  r.afterHistoryTitles = await recommendedTitles(page);
  const top = r.afterHistory.recommendations.ids[0];
  r.likedFromList = top;
  const t1 = Date.now();
  await page.click(`#recommendations button[data-like="${top}"]`);
  r.afterLike = await waitHistory(page, spec.history.length + 1);
  r.likeMs = Date.now() - t1;
  r.raw = await rawStore(page);
  await page.reload();
  r.afterReload = await settled(page);
  r.likedAfterReload = await likedTitles(page);
  r.controlledBySW = await page.evaluate(() => navigator.serviceWorker.controller !== null);
  if (first) {
    await page.screenshot({ path: plan.screenshot, fullPage: true });
    await fetch(plan.offlineUrl);
    try {
      const probe = await page.evaluate(async () => {
        try {
          const res = await fetch(`never-cached-${Date.now()}.txt`);
          return `HTTP ${res.status}`;
        } catch (e) {
          return `failed: ${e.name}`;
        }
      });
      r.offlineProbe = probe;
      await page.reload();
      r.offline = await settled(page);
      r.likedOffline = await likedTitles(page);
    } finally {
      await fetch(plan.onlineUrl);
    }
  }
  await context.close();
  return r;
}

const browser = await chromium.launch({ executablePath: plan.executablePath, headless: true, args: LAUNCH_ARGS });
try {
  out.browser = browser.version();
  for (const [i, spec] of plan.bundles.entries()) out.bundles[spec.name] = await runBundle(browser, spec, i === 0);
  out.tampered = {};
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  for (const spec of plan.tampered) {
    await page.goto(`${plan.baseUrl}?bundle=${spec.path}`);
    const snap = await settled(page);
    out.tampered[spec.name] = { snapshot: snap, shown: await page.textContent('#error'), file: await page.getAttribute('#error', 'data-file') };
  }
  await context.close();
} finally {
  await browser.close();
}
writeFileSync(outPath, JSON.stringify(out, null, 1));
