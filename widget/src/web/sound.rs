//! The notification chime, synthesised with Web Audio: two short sine notes with a fast
//! attack and an exponential decay. No audio file is downloaded.
//!
//! Browsers only let an `AudioContext` run after a user gesture, so the context is created
//! (or resumed) on the visitor's first click or key press in the widget, and a chime before
//! any gesture on the page is skipped silently rather than logging autoplay warnings.
//!
//! The page's `sound` event means the chime played, so [`Sound::chime`] says whether it did:
//! at once, not at all, or once a suspended context has resumed (if the browser lets it).
//!
//! The context and the Web Audio graph are JavaScript (view.js): a few dozen browser calls made
//! from Rust were as many imports in the wasm and its glue.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/web/view.js")]
extern "C" {
    /// The page's `AudioContext` for the widget (see view.js).
    #[wasm_bindgen(js_name = Sound)]
    type Audio;

    #[wasm_bindgen(constructor, js_class = "Sound")]
    fn new() -> Audio;

    #[wasm_bindgen(method)]
    fn unlock(this: &Audio);

    /// 1: played; 0: silent; a promise: resuming.
    #[wasm_bindgen(method)]
    fn chime(this: &Audio) -> JsValue;

    #[wasm_bindgen(method, js_name = playIfRunning)]
    fn play_if_running(this: &Audio) -> bool;

    #[wasm_bindgen(method)]
    fn close(this: &Audio);
}

/// What became of a chime.
pub(crate) enum Chime {
    /// It is playing.
    Played,
    /// The context was suspended and is resuming: [`Sound::play_if_running`] when the promise
    /// settles.
    Later(js_sys::Promise),
    /// The browser does not let the page play sound (yet).
    Silent,
}

/// Owns the page's `AudioContext` for the widget. The notes are a rising major sixth (A5 →
/// F♯6): friendly, short, unlike a system alert.
pub(crate) struct Sound(Audio);

impl Default for Sound {
    fn default() -> Sound {
        Sound(Audio::new())
    }
}

impl Sound {
    /// Called inside a user gesture: makes sure a running context exists.
    pub(crate) fn unlock(&mut self) {
        self.0.unlock();
    }

    /// Plays the chime if the browser allows sound.
    pub(crate) fn chime(&mut self) -> Chime {
        let played = self.0.chime();
        match played.as_f64() {
            Some(n) if n > 0.0 => Chime::Played,
            Some(_) => Chime::Silent,
            None => Chime::Later(played.unchecked_into()),
        }
    }

    /// After [`Chime::Later`]: plays if the context runs now; returns whether it played.
    pub(crate) fn play_if_running(&self) -> bool {
        self.0.play_if_running()
    }

    /// Releases the audio hardware.
    pub(crate) fn close(&mut self) {
        self.0.close();
    }
}
