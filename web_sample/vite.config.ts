import { resolve } from 'node:path';
import { defineConfig } from 'vite';

// A static site: relative URLs (`base: './'`), so `dist/` works from any folder of any static server.
// Two pages: the app (index.html) and the latency page `privrec bench latency` drives (bench.html).
export default defineConfig({
  base: './',
  build: {
    target: 'es2022',
    assetsInlineLimit: 0,
    rollupOptions: {
      input: { app: resolve(import.meta.dirname, 'index.html'), bench: resolve(import.meta.dirname, 'bench.html') },
    },
  },
});
