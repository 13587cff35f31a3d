// The notification chime's two notes (see sound.rs), written in JavaScript: the Web Audio
// graph is a dozen calls, and made from Rust each was an import of its own in the wasm and in
// its glue (0.5 KiB more to download than this function).

/** Plays two short sine notes (A5, then F♯6) on `ctx`, a running AudioContext; throws if the browser refuses. */
export function chime(ctx) {
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
