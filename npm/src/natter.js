// Natter chat widget loader. Usage, on any page of any origin:
//   <script src="https://HUB/natter.js" data-server="https://HUB" async></script>
// data-* attributes are mount options (data-title, data-position, data-z-index, data-theme,
// data-greeting, data-shortcut, data-accent, data-open, data-locale, data-strings,
// data-identity-token, data-rooms, data-name). The handle is window.natter.
// (A plain comment, not a `/*!` one the minifier would keep: every visitor downloads this file,
// and the note was a third of it, gzipped. npm/README.md has it.)
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || !script.src) return;
  // Set before anything asynchronous, so that a second tag (a CMS that adds it in the header
  // and the footer) finds it even while the first one is still loading. Once loaded, the widget
  // itself is the mark (index.js keeps it under natter.widget, and forgets it on destroy(), so
  // a tag added after a destroy() mounts again).
  // (Every browser that parses this file's `import()` has Symbol.)
  var sym = Symbol.for;
  var loading = sym('natter.loader');
  if (window[sym('natter.widget')] || window[loading]) {
    console.warn('natter: the widget is already on this page; this second <script src="' + script.src + '"> is ignored');
    return;
  }
  window[loading] = true;
  var base = new URL('.', script.src).href;
  var options = {};
  for (var key in script.dataset) options[key] = script.dataset[key];
  // No data-server (or an empty one): the hub is where this file came from.
  if (!options.server) options.server = base.replace(/\/$/, '');
  // The build the page asks for (index.js's roomsOf): with rooms only for data-rooms (the
  // panel: no value, "true", "1"; its glue comes bundled with the panel) or data-rooms="api";
  // any other value gets the support chat alone, and index.js names it in a console error. Its
  // wasm and its glue module start downloading now, in parallel with index.js, which imports
  // the same glue (one fetch).
  var r = options.rooms;
  var panel = r === '' || r === 'true' || r === '1';
  var build = panel || r === 'api' ? 'natter_widget_rooms' : 'natter_widget';
  var wasm = fetch(base + build + '_bg.wasm', { credentials: 'omit' });
  wasm.catch(function () {});
  import(base + build + (panel ? '_panel' : '') + '.js').catch(function () {});
  import(base + 'index.js')
    .then(function (m) {
      window[loading] = false;
      var handle = m.mount(options, { wasm: wasm, tag: true });
      window.natter = handle;
      window.dispatchEvent(new CustomEvent('natter:load', { detail: handle }));
    })
    .catch(function (err) {
      window[loading] = false;
      console.error('natter: could not load the widget from ' + base, err);
    });
})();
