// @natter/widget/react's hooks used wrongly, rendered with React itself (react-dom/server, in
// the test's Node: the mistakes are said at render, before any widget or hub is involved). React
// is the one examples/collab installs (`cargo xtask test` installs it in its examples step).
import { test, expect } from '@playwright/test';
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../lib/hub.js';

const app = join(ROOT, 'examples', 'collab');
let React;
let renderToString;
let hooks;
test.beforeAll(async () => {
  if (!existsSync(join(app, 'node_modules', 'react'))) throw new Error(`${app}/node_modules is installed by the examples step`);
  // npm/dist/react.js imports 'react' as an app's bundler would find it: here, from the example.
  const parentURL = pathToFileURL(join(app, 'package.json')).href;
  const hook = `export async function resolve(spec, context, next) {
    return next(spec, /^react(-dom)?(\\/|$)/.test(spec) ? { ...context, parentURL: ${JSON.stringify(parentURL)} } : context);
  }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  React = await import('react');
  ({ renderToString } = await import('react-dom/server'));
  hooks = await import(pathToFileURL(join(ROOT, 'npm', 'dist', 'react.js')).href);
});

/** What rendering `use()` in a component (inside a provider with `provided`) threw, as "Name: message". */
function renderError(use, provided = false) {
  const Probe = () => {
    use();
    return null;
  };
  const tree = React.createElement(Probe);
  try {
    renderToString(provided ? React.createElement(hooks.NatterProvider, { options: { server: 'http://127.0.0.1:9' } }, tree) : tree);
    return 'rendered';
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
}

test('useRoom and usePresence outside a NatterProvider throw an Error naming it, rather than stay joining for ever', () => {
  expect(renderError(() => hooks.useRoom('design'))).toBe(
    "Error: natter: useRoom() must be used inside a <NatterProvider>, which owns the widget's connection",
  );
  expect(renderError(() => hooks.usePresence('design'))).toBe(
    "Error: natter: usePresence() must be used inside a <NatterProvider>, which owns the widget's connection",
  );
  // Inside one (before it has mounted, as on a server or a first render) they render.
  expect(renderError(() => hooks.useRoom('design'), true)).toBe('rendered');
  expect(renderError(() => hooks.usePresence(null), true)).toBe('rendered');
});

test('a room id that is not a string is a TypeError, as joinRoom(42) is, not a room named "42"', () => {
  expect(renderError(() => hooks.useRoom(42), true)).toBe('TypeError: natter: useRoom(roomId) needs a string, not number');
  expect(renderError(() => hooks.usePresence({ id: 'x' }), true)).toBe('TypeError: natter: usePresence(roomId) needs a string, not object');
});
