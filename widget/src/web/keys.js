// Reading key presses (see keys.rs), in JavaScript: the dozen `KeyboardEvent` and element
// reads made from Rust were as many imports in the wasm and its glue.

/**
 * The parts of a `keydown` the rules look at: `[key, code, modifiers, keyCode]`, the
 * modifiers as bits: 1 Ctrl, 2 Shift, 4 Alt, 8 Meta, 16 AltGraph, 32 repeat, 64 isComposing.
 */
export function press(e) {
  const bits = [e.ctrlKey, e.shiftKey, e.altKey, e.metaKey, e.getModifierState('AltGraph'), e.repeat, e.isComposing];
  return [e.key, e.code, bits.reduce((sum, on, i) => sum | (on ? 1 << i : 0), 0), e.keyCode];
}

/** Input types that take no typed text (a key on them is not a character being written). */
const NOT_TEXT = ['button', 'checkbox', 'color', 'file', 'hidden', 'image', 'radio', 'range', 'reset', 'submit'];

const editable = (el) => {
  switch (el.tagName) {
    case 'TEXTAREA':
    case 'SELECT':
      return true;
    case 'INPUT':
      return !NOT_TEXT.includes((el.getAttribute('type') ?? '').toLowerCase());
    default:
      return (
        (el instanceof HTMLElement && el.isContentEditable) ||
        ['textbox', 'searchbox', 'combobox'].includes(el.getAttribute('role'))
      );
  }
};

/**
 * Whether the event's target is an editable place. `composedPath()` is read rather than
 * `target`, which a shadow root retargets to its host: an input inside another component's
 * (open) shadow root, or inside ours, is seen as what it is.
 */
export function inEditable(e) {
  return e.composedPath().some((n) => n instanceof Element && editable(n));
}
