// The browser half of `privrec bench latency` (privrec/benchmarks/latency.py starts it; not meant to be run by
// hand). Launches Debian's Chromium through playwright-core, opens BASE_URL/bench.html, then answers one JSON
// command per stdin line with one JSON line on stdout, so the Python side can interleave browser and native
// rounds:
//   {"cmd": "open", "url": "bundles/x/", "inputs": {...}}   -> {"numItems", "dim", "precision", "isolated"}
//   {"cmd": "round", "visits": v, "burst": b, "seed": s}    -> {"recommend": [[cold_ms, warm_ms], ...], "finetune": [...]}
//   {"cmd": "outputs"}                                      -> {"top_ids", "top_scores", "user_out", "loss"}
//   {"cmd": "quit"}
// The first line is {"ready": true, "browser": version} (or {"error": ...}); a failed command answers {"error": ...}.
// Usage: node scripts/bench.mjs BASE_URL CHROMIUM_PATH
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [baseUrl, executablePath] = process.argv.slice(2);
const LAUNCH_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

let browser;
try {
  browser = await chromium.launch({ executablePath, headless: true, args: LAUNCH_ARGS });
  const page = await browser.newPage();
  const offsite = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(baseUrl)) offsite.push(r.url());
  });
  await page.goto(`${baseUrl}bench.html`);
  await page.waitForFunction(() => window.privrecBench !== undefined, null, { timeout: 60_000 });
  say({ ready: true, browser: browser.version() });
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const msg = JSON.parse(line);
    if (msg.cmd === 'quit') break;
    try {
      if (msg.cmd === 'open') {
        say(await page.evaluate(([u, i]) => window.privrecBench.open(u, i), [msg.url, msg.inputs]));
      } else if (msg.cmd === 'round') {
        say(await page.evaluate(([v, b, s]) => window.privrecBench.round(v, b, s), [msg.visits, msg.burst, msg.seed]));
      } else if (msg.cmd === 'outputs') {
        say(await page.evaluate(() => window.privrecBench.outputs()));
      } else {
        say({ error: `unknown command ${JSON.stringify(msg.cmd)}` });
      }
    } catch (err) {
      say({ error: String(err && err.message ? err.message : err) });
    }
    if (offsite.length) {
      say({ error: `the page requested ${offsite[0]}: only ${baseUrl} may be contacted` });
      break;
    }
  }
} catch (err) {
  say({ error: String(err && err.message ? err.message : err) });
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
}
