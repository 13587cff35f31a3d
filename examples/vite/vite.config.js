import { defineConfig } from 'vite';

export default defineConfig({
  // The package loads its .wasm with `new URL(..., import.meta.url)`; pre-bundling would move
  // the JS away from the wasm in dev mode, so leave it as is. `vite build` copies the wasm.
  optimizeDeps: { exclude: ['@natter/widget'] },
});
