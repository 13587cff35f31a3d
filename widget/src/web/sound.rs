//! The notification chime, synthesised with Web Audio: two short sine notes with a fast
//! attack and an exponential decay. No audio file is downloaded.
//!
//! Browsers only let an `AudioContext` run after a user gesture, so the context is created
//! (or resumed) on the visitor's first click or key press in the widget, and a chime before
//! any gesture on the page is skipped silently rather than logging autoplay warnings.
//!
//! The page's `sound` event means the chime played, so [`Sound::chime`] says whether it did:
//! at once, not at all, or once a suspended context has resumed (if the browser lets it).

use wasm_bindgen::prelude::*;
use web_sys::{AudioContext, AudioContextState};

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

/// Owns the page's `AudioContext` for the widget.
#[derive(Default)]
pub(crate) struct Sound {
    ctx: Option<AudioContext>,
}

fn page_has_been_active() -> bool {
    web_sys::window().is_some_and(|w| w.navigator().user_activation().has_been_active())
}

impl Sound {
    /// Called inside a user gesture: makes sure a running context exists.
    pub(crate) fn unlock(&mut self) {
        match &self.ctx {
            None => self.ctx = AudioContext::new().ok(),
            Some(ctx) if ctx.state() == AudioContextState::Suspended => {
                let _ = ctx.resume();
            }
            Some(_) => {}
        }
    }

    /// Plays the chime if the browser allows sound.
    pub(crate) fn chime(&mut self) -> Chime {
        if self.ctx.is_none() {
            if !page_has_been_active() {
                return Chime::Silent;
            }
            self.unlock();
        }
        match &self.ctx {
            Some(ctx) if ctx.state() == AudioContextState::Running => {
                if play(ctx).is_ok() {
                    Chime::Played
                } else {
                    Chime::Silent
                }
            }
            Some(ctx) if ctx.state() == AudioContextState::Suspended => {
                ctx.resume().map_or(Chime::Silent, Chime::Later)
            }
            _ => Chime::Silent,
        }
    }

    /// After [`Chime::Later`]: plays if the context runs now; returns whether it played.
    pub(crate) fn play_if_running(&self) -> bool {
        self.ctx.as_ref().is_some_and(|ctx| ctx.state() == AudioContextState::Running && play(ctx).is_ok())
    }

    /// Releases the audio hardware.
    pub(crate) fn close(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            let _ = ctx.close();
        }
    }
}

#[wasm_bindgen(module = "/src/web/chime.js")]
extern "C" {
    /// Plays the two notes on `ctx` (see chime.js): a rising major sixth (A5 → F♯6), friendly,
    /// short, unlike a system alert. Written in JavaScript: a dozen Web Audio calls made from
    /// Rust were as many imports in the wasm and its glue.
    #[wasm_bindgen(catch, js_name = chime)]
    fn play(ctx: &AudioContext) -> Result<(), JsValue>;
}
