// The notification chime (see sound.rs), written in JavaScript: the Web Audio graph and the
// audio context's life are a few dozen calls, and made from Rust each was an import of its own
// in the wasm and in its glue.

/** Plays two short sine notes (A5, then F♯6) on `ctx`, a running AudioContext; throws if the browser refuses. */
function chime(ctx) {
  const t0 = ctx.currentTime + 0.01;
  [880, 1479.98].forEach((freq, i) => {
    const start = t0 + i * 0.11;
    const osc = ctx.createOscillator();
    osc.type = 'sine';
    osc.frequency.setValueAtTime(freq, start);
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.14, start + 0.012);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.32);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(start);
    osc.stop(start + 0.34);
  });
}

/** The page's AudioContext for the widget, made (or resumed) inside a user gesture. */
export class Sound {
  /** Called inside a user gesture: makes sure a running context exists. */
  unlock() {
    const ctx = this.ctx;
    if (!ctx) {
      try {
        this.ctx = new AudioContext();
      } catch {}
    } else if (ctx.state === 'suspended') {
      ctx.resume();
    }
  }

  /** Plays the chime on a running context; whether it played. */
  #play() {
    try {
      chime(this.ctx);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Plays the chime if the browser allows sound: 1 when it plays, 0 when it cannot (before any
   * gesture on the page, the browser refuses), or the promise of a suspended context resuming.
   */
  chime() {
    if (!this.ctx) {
      if (!navigator.userActivation?.hasBeenActive) return 0;
      this.unlock();
    }
    const state = this.ctx?.state;
    if (state === 'running') return this.#play() ? 1 : 0;
    if (state === 'suspended') {
      try {
        return this.ctx.resume();
      } catch {}
    }
    return 0;
  }

  /** After a resume: plays if the context runs now; whether it played. */
  playIfRunning() {
    return this.ctx?.state === 'running' && this.#play();
  }

  /** Releases the audio hardware. */
  close() {
    this.ctx?.close();
    this.ctx = null;
  }
}
