/*
 * The web sample's service worker: the page and its bundle keep working offline after one visit.
 *
 * Same-origin GETs go to the network first and are cached on success; when the network fails, the cached
 * copy answers (for a page navigation, whatever its query string). The page verifies every bundle file's
 * sha256 against the manifest anyway, so a stale or mixed cache is refused, never used. On the first visit
 * the page fetched its files before this worker existed: it posts their URLs (`cache-urls`) to be cached.
 * This worker talks to this origin only and sends nothing anywhere.
 */
const CACHE = 'privrec-web-v1';

self.addEventListener('install', (event) => {
  event.waitUntil(self.skipWaiting());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

function sameOrigin(url) {
  return new URL(url).origin === self.location.origin;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || !sameOrigin(request.url)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(request);
      if (response.ok && response.status === 200) event.waitUntil(cache.put(request, response.clone()));
      return response;
    } catch (error) {
      const cached = await cache.match(request, { ignoreSearch: request.mode === 'navigate' });
      if (cached) return cached;
      throw error;
    }
  })());
});

self.addEventListener('message', (event) => {
  const data = event.data;
  if (!data || data.type !== 'cache-urls' || !Array.isArray(data.urls)) return;
  const urls = data.urls.filter((u) => typeof u === 'string' && sameOrigin(u));
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await Promise.all(urls.map(async (url) => {
      if (await cache.match(url)) return;
      try {
        const response = await fetch(url);
        if (response.ok && response.status === 200) await cache.put(url, response);
      } catch {
        // offline again already: the next online visit caches it
      }
    }));
  })());
});
