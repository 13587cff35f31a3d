import { defineConfig } from 'vite';

export default defineConfig({
  // The package loads its .wasm with `new URL('./natter_widget_bg.wasm', import.meta.url)`.
  // Pre-bundling would copy its JS into node_modules/.vite/deps without the wasm, so the dev
  // server must serve it from the package as it is. `vite build` copies the wasm by itself.
  optimizeDeps: { exclude: ['@natter/widget'] },
});
