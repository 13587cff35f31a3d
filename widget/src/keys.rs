//! Keyboard rules that need no browser: when the toggle shortcut may fire, and when an Enter
//! in the chat box sends. The web layer reads the events into a [`KeyPress`] (and says whether
//! the key went to an editable place); the decisions are here, tested natively.
//!
//! Two kinds of mistakes are ruled out:
//! - a shortcut without Ctrl, Alt or Meta (`/`, `?`, `Shift+C`) is a character the visitor may
//!   be typing: it never fires in an editable place (input, textarea, select, contenteditable,
//!   also inside other components' shadow roots) — Ctrl/Alt/Meta combinations still work
//!   everywhere, as the visitor expects of a shortcut, except one that types a character: AltGr
//!   (reported as Ctrl+Alt, with the `AltGraph` modifier: AltGr+E is `€` on a German keyboard)
//!   and a Mac's Option (Alt: Option+C is `ç`) write text, so in an editable place they fire
//!   only when the key they produce is the shortcut's own;
//! - a key that belongs to an IME composition (Japanese, Chinese, Korean input) is the IME's:
//!   browsers mark it with `isComposing` or keyCode 229, but not all in the same order.
//!   Chrome, Edge and Firefox send the confirming Enter *before* `compositionend`, marked
//!   `isComposing`; Safari sends `compositionend` first and then an Enter with `isComposing:
//!   false` and keyCode 229. Tracking `compositionstart`/`compositionend` *and* honouring 229
//!   covers every order.

use crate::prelude::*;

use crate::options::Shortcut;

/// The keyCode browsers give every keydown an IME handles.
const IME_KEY_CODE: u32 = 229;

/// What the web layer read from one `keydown`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPress {
    /// `KeyboardEvent.key`.
    pub key: String,
    /// `KeyboardEvent.code` (the physical key).
    pub code: String,
    /// Modifiers.
    pub ctrl: bool,
    /// Shift.
    pub shift: bool,
    /// Alt / Option.
    pub alt: bool,
    /// Meta / Cmd.
    pub meta: bool,
    /// `getModifierState("AltGraph")`: AltGr is held (browsers also report it as Ctrl+Alt).
    pub alt_graph: bool,
    /// Auto-repeat.
    pub repeat: bool,
    /// `KeyboardEvent.isComposing`.
    pub is_composing: bool,
    /// `KeyboardEvent.keyCode` (legacy, but the only IME signal Safari gives on keydown).
    pub key_code: u32,
}

impl KeyPress {
    /// The key belongs to an IME composition.
    fn in_composition(&self) -> bool {
        self.is_composing || self.key_code == IME_KEY_CODE
    }

    /// Whether the modifiers held may make the key write a character: AltGr, or Alt alone (a
    /// Mac's Option key composes `ç`, `©`, `÷`…).
    fn may_write(&self) -> bool {
        self.alt_graph || (self.alt && !self.ctrl && !self.meta)
    }
}

impl Shortcut {
    /// Whether the shortcut has no Ctrl, Alt or Meta: a character someone may be typing.
    fn is_typed(&self) -> bool {
        !(self.ctrl || self.alt || self.meta)
    }

    /// Whether `k`, if it is this shortcut, is the visitor writing text: a shortcut without
    /// Ctrl, Alt or Meta, or a press whose modifiers wrote another character than the
    /// shortcut's key (AltGr+E is `€`, not `e`).
    fn writes(&self, k: &KeyPress) -> bool {
        self.is_typed() || (k.may_write() && !k.key.eq_ignore_ascii_case(&self.key))
    }

    /// Whether `k` toggles the panel; `editable`: the key went to a place where text is typed.
    pub(crate) fn fires(&self, k: &KeyPress, editable: bool) -> bool {
        let typing = editable && self.writes(k);
        !k.repeat
            && !k.in_composition()
            && !typing
            && self.matches(&k.key, &k.code, k.ctrl, k.shift, k.alt, k.meta)
    }

    /// Whether the rule depends on where `k` went (so the web layer only looks then).
    pub(crate) fn needs_target(&self, k: &KeyPress) -> bool {
        self.writes(k)
    }
}

/// The chat box's IME state, from its `compositionstart` / `compositionend` events.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Composition {
    active: bool,
}

impl Composition {
    /// `compositionstart`.
    pub(crate) fn start(&mut self) {
        self.active = true;
    }

    /// `compositionend`.
    pub(crate) fn end(&mut self) {
        self.active = false;
    }

    /// Whether this keydown in the chat box sends the message: a plain Enter (Shift+Enter
    /// breaks the line) that no IME is using to confirm a conversion.
    pub(crate) fn enter_sends(&self, k: &KeyPress) -> bool {
        k.key == "Enter" && !k.shift && !self.active && !k.in_composition()
    }

    /// Whether this keydown in the widget closes the panel: an Escape that no IME is using to
    /// cancel a conversion (in every browser's order, like [`Composition::enter_sends`]).
    pub(crate) fn escape_closes(&self, k: &KeyPress) -> bool {
        k.key == "Escape" && !self.active && !k.in_composition()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(key: &str, code: &str) -> KeyPress {
        KeyPress { key: key.into(), code: code.into(), key_code: 0, ..KeyPress::default() }
    }

    fn parse(s: &str) -> Shortcut {
        Shortcut::parse(s).expect("parses")
    }

    #[test]
    fn a_typed_shortcut_never_fires_in_editable_places() {
        let slash = parse("/");
        let k = press("/", "Slash");
        assert!(slash.fires(&k, false));
        assert!(!slash.fires(&k, true));
        // Shift alone is still typing (`?`, capitals).
        let shift = parse("Shift+C");
        let k = KeyPress { shift: true, ..press("C", "KeyC") };
        assert!(shift.fires(&k, false));
        assert!(!shift.fires(&k, true));
        assert!(slash.needs_target(&press("/", "Slash")) && shift.needs_target(&k));
    }

    #[test]
    fn ctrl_alt_meta_shortcuts_fire_everywhere() {
        for (s, k) in [
            ("Ctrl+Shift+C", KeyPress { ctrl: true, shift: true, ..press("C", "KeyC") }),
            ("Alt+K", KeyPress { alt: true, ..press("k", "KeyK") }),
            ("Meta+/", KeyPress { meta: true, ..press("/", "Slash") }),
        ] {
            let sc = parse(s);
            assert!(sc.fires(&k, false), "{s}");
            assert!(sc.fires(&k, true), "{s} in an input");
            assert!(!sc.needs_target(&k), "{s}");
        }
    }

    #[test]
    fn no_shortcut_fires_during_a_composition_or_on_repeat() {
        for (sc, base) in [
            (parse("/"), press("/", "Slash")),
            (parse("Ctrl+Shift+C"), KeyPress { ctrl: true, shift: true, ..press("C", "KeyC") }),
        ] {
            assert!(sc.fires(&base, false));
            for k in [
                KeyPress { is_composing: true, ..base.clone() },
                KeyPress { key_code: 229, ..base.clone() },
                KeyPress { repeat: true, ..base.clone() },
            ] {
                assert!(!sc.fires(&k, false), "{k:?}");
            }
        }
    }

    fn enter(is_composing: bool, key_code: u32) -> KeyPress {
        KeyPress { is_composing, key_code, ..press("Enter", "Enter") }
    }

    #[test]
    fn an_enter_that_confirms_a_composition_never_sends_in_any_order() {
        // Chrome, Edge, Firefox: keydown (composing) first, then compositionend.
        let mut c = Composition::default();
        c.start();
        assert!(!c.enter_sends(&enter(true, 229)));
        c.end();
        // Safari: compositionend first, then keydown with isComposing false and keyCode 229.
        let mut c = Composition::default();
        c.start();
        c.end();
        assert!(!c.enter_sends(&enter(false, 229)));
        // A browser that reports neither flag while the composition is still open.
        let mut c = Composition::default();
        c.start();
        assert!(!c.enter_sends(&enter(false, 13)));
        // The visitor's own Enter afterwards sends; Shift+Enter never does.
        c.end();
        assert!(c.enter_sends(&enter(false, 13)));
        assert!(!c.enter_sends(&KeyPress { shift: true, ..enter(false, 13) }));
        assert!(!c.enter_sends(&press("a", "KeyA")));
    }

    #[test]
    fn a_punctuation_shortcut_is_its_character_whatever_shift_the_layout_needs() {
        // `?` is Shift+/ on a US keyboard.
        let question = KeyPress { shift: true, ..press("?", "Slash") };
        assert!(parse("?").fires(&question, false));
        assert!(parse("Shift+?").fires(&question, false));
        // `/` is Shift+7 on a German keyboard, the key left of Shift on a US one.
        let slash = parse("/");
        assert!(slash.fires(&KeyPress { shift: true, ..press("/", "Digit7") }, false));
        assert!(slash.fires(&press("/", "Slash"), false));
        assert!(!slash.fires(&question, false));
        // `Shift+/`: the US / key with Shift (which types `?`), or a `/` typed with Shift.
        let shift_slash = parse("Shift+/");
        assert!(shift_slash.fires(&question, false));
        assert!(shift_slash.fires(&KeyPress { shift: true, ..press("/", "Digit7") }, false));
        assert!(!shift_slash.fires(&press("/", "Slash"), false));
        // Ctrl+/ on a German keyboard is Ctrl+Shift+7.
        let ctrl_slash = parse("Ctrl+/");
        assert!(ctrl_slash.fires(&KeyPress { ctrl: true, shift: true, ..press("/", "Digit7") }, true));
        // Still characters the visitor types: never in an editable place.
        assert!(!parse("?").fires(&question, true));
        assert!(!shift_slash.fires(&question, true));
        // A space is written `Space`.
        assert!(parse("Alt+Space").fires(&KeyPress { alt: true, ..press(" ", "Space") }, false));
    }

    #[test]
    fn a_combination_that_writes_a_character_is_typing() {
        // AltGr+E writes `€` on a German keyboard; browsers report Ctrl+Alt and AltGraph.
        let sc = parse("Ctrl+Alt+E");
        let euro = KeyPress { ctrl: true, alt: true, alt_graph: true, ..press("€", "KeyE") };
        assert!(sc.needs_target(&euro));
        assert!(!sc.fires(&euro, true), "AltGr+E in an input is the € sign");
        assert!(sc.fires(&euro, false), "outside editable places it is the shortcut");
        // Ctrl+Alt+E on a US keyboard writes nothing: a shortcut everywhere.
        let us = KeyPress { ctrl: true, alt: true, ..press("e", "KeyE") };
        assert!(!sc.needs_target(&us));
        assert!(sc.fires(&us, true));
        // A Mac's Option+C writes `ç`.
        let alt_c = parse("Alt+C");
        let cedilla = KeyPress { alt: true, ..press("ç", "KeyC") };
        assert!(!alt_c.fires(&cedilla, true));
        assert!(alt_c.fires(&cedilla, false));
        // Alt+C on Windows (or a Mac layout where Option+C is `c`) is the shortcut anywhere.
        assert!(alt_c.fires(&KeyPress { alt: true, ..press("c", "KeyC") }, true));
        // Ctrl+Shift+C on a Russian layout (`С`) writes nothing: Ctrl is held.
        let cyrillic = KeyPress { ctrl: true, shift: true, ..press("С", "KeyC") };
        assert!(parse("Ctrl+Shift+C").fires(&cyrillic, true));
    }

    #[test]
    fn an_escape_that_cancels_a_composition_does_not_close_the_panel() {
        let esc = |is_composing, key_code| KeyPress { is_composing, key_code, ..press("Escape", "Escape") };
        let mut c = Composition::default();
        assert!(c.escape_closes(&esc(false, 27)));
        // Chrome, Edge, Firefox: the keydown comes during the composition.
        c.start();
        assert!(!c.escape_closes(&esc(true, 229)));
        assert!(!c.escape_closes(&esc(false, 27)), "a composition is still open");
        // Safari: compositionend first, then the keydown with keyCode 229.
        c.end();
        assert!(!c.escape_closes(&esc(false, 229)));
        // The visitor's own Escape afterwards closes.
        assert!(c.escape_closes(&esc(false, 27)));
        assert!(!c.escape_closes(&press("Enter", "Enter")));
    }
}
