//! The collaboration panel's CSS, which the panel (`npm/src/rooms-panel.js`) adopts into its
//! own shadow root as a constructable stylesheet (no `<style>` element, no `style` attribute: a
//! strict CSP needs no exception). Its colours are custom properties (`--bg`, `--text`,
//! `--accent`, …) that the panel sets per theme beside it.
//!
//! Why it is in the build with rooms rather than in the panel's script: beside the widget's own
//! stylesheet ([`crate::style`]), written in the same words, it compresses better — the panel's
//! script is 1.3 KiB of gzip smaller without it, this build 1.0 KiB larger with it — and only
//! pages with rooms download this build. A page with rooms but without the panel downloads it
//! too, which its budget can afford (see the size notes in the README). The npm module hands
//! it to the panel (op 10 of the `room` export).

/// The panel's stylesheet, one rule per line (the newlines are the only whitespace it keeps).
pub(crate) const PANEL_CSS: &str = r#"
:host{all:initial}
*{box-sizing:border-box}
[hidden]{display:none!important}
button{font:inherit;color:var(--text);background:none;border:0;border-radius:8px;padding:.4rem .5rem;cursor:pointer}
.launch{position:fixed;z-index:var(--z);bottom:5.25rem;right:1.25rem;font:600 14px/1 system-ui,sans-serif;background:var(--accent);color:var(--on-accent);border-radius:999px;padding:.7rem 1rem;box-shadow:0 4px 14px #0003}
:host([data-position=bottom-left]) :is(.launch,.panel){right:auto;left:1.25rem}
.badge{background:var(--on-accent);color:var(--accent);border-radius:999px;padding:0 .4rem;margin-inline-start:.4rem}
.panel{position:fixed;z-index:var(--z);bottom:9rem;right:1.25rem;width:min(46rem,calc(100vw - 2.5rem));height:min(34rem,calc(100vh - 11rem));display:grid;grid-template-columns:12rem 1fr;background:var(--bg);color:var(--text);border:1px solid var(--line);border-radius:14px;overflow:hidden;box-shadow:0 12px 40px rgb(0 0 0 / .25);font:14px/1.4 system-ui,sans-serif}
.side{border-inline-end:1px solid var(--line);padding:.75rem;display:flex;flex-direction:column;gap:.6rem;overflow:auto;background:var(--surface)}
h2,h3{margin:0;font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
ul{list-style:none;margin:0;padding:0}
ul.rooms,ul.browse{display:grid;grid-template-columns:minmax(0,1fr);gap:.15rem}
li button{width:100%;display:flex;align-items:center;justify-content:space-between;gap:.6rem;text-align:start}
li button bdi,.name{min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
[aria-current=true]{background:var(--sel);font-weight:600}
.count{flex:none;background:var(--accent);color:var(--on-accent);border-radius:999px;padding:0 .45rem;font-size:.75rem}
.join{display:grid;gap:.3rem}
label{font-size:.8rem;color:var(--muted)}
input,textarea{font:inherit;color:var(--text);background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:.4rem .5rem;min-width:0}
.primary{background:var(--accent);color:var(--on-accent);padding:.4rem .7rem}
.quiet{color:var(--muted);border:1px solid var(--line);padding:.2rem .5rem}
:focus-visible{outline:2px solid var(--ring,var(--accent));outline-offset:2px}
.error{color:var(--danger);font-size:.8rem;margin:0}
.alert{margin:0;padding:.5rem .75rem;border-bottom:1px solid var(--line);color:var(--danger);font-size:.85rem;display:grid;gap:.15rem}
.why{color:var(--muted);font-size:.75rem}
.main{display:flex;flex-direction:column;min-width:0;min-height:0}
.head{display:flex;align-items:center;gap:.5rem;padding:.6rem .75rem;border-bottom:1px solid var(--line)}
.head button{flex:none;white-space:nowrap}
.heading{flex:1;min-width:0}
.title{font-size:1rem;text-transform:none;letter-spacing:0;color:var(--text);overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.state{margin:0;color:var(--muted);font-size:.75rem;overflow-wrap:anywhere}
.body{flex:1;display:grid;grid-template-columns:minmax(0,1fr) 10rem;min-height:0}
.log{overflow:auto;padding:.6rem .75rem;display:flex;flex-direction:column;gap:.4rem}
.msg{display:grid;padding:.35rem .55rem;border-radius:10px;background:var(--surface);max-width:85%}
.mine{align-self:flex-end;background:var(--sel)}
.who{font-size:.75rem;font-weight:600;color:var(--muted)}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.meta{display:flex;flex-wrap:wrap;align-items:center;gap:.2rem .5rem;font-size:.7rem;color:var(--muted)}
.mine .meta{justify-content:flex-end}
.note{color:var(--muted)}
[data-state=failed] .note{color:var(--danger)}
.people{border-inline-start:1px solid var(--line);padding:.6rem;overflow:auto;display:grid;gap:.4rem;align-content:start}
.people ul{display:grid;gap:.35rem}
.here{flex:none;color:var(--muted);font-size:.75rem;white-space:nowrap}
.people li{display:flex;align-items:center;gap:.4rem;min-width:0}
.dot{width:.55rem;height:.55rem;border-radius:50%;background:var(--online);flex:none}
.typing{background:var(--accent)}
.typing-line{min-height:1.3em;padding:0 .75rem;color:var(--muted);font-size:.8rem;margin:0}
.say{display:flex;gap:.4rem;padding:.6rem .75rem;border-top:1px solid var(--line)}
.say textarea{flex:1;resize:none;height:2.4rem}
.say button{flex:none;white-space:nowrap}
[dir=rtl] :placeholder-shown{direction:rtl}
.empty{margin:auto;color:var(--muted);padding:1rem;text-align:center}
.empty .close{display:block;margin:0 auto .75rem}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:640px){.panel{inset:0;width:auto;height:auto;border-radius:0;grid-template-columns:1fr;grid-template-rows:auto 1fr}
.side{border-inline-end:0;border-bottom:1px solid var(--line);max-height:40vh}
.body{grid-template-columns:minmax(0,1fr);grid-template-rows:auto 1fr}
.people{order:-1;border-inline-start:0;border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;gap:.2rem .9rem;max-height:4.5rem;padding:.4rem .75rem}
.people h3{flex-basis:100%}
.people ul{display:contents}
.launch{bottom:5rem;right:1rem}
:host([data-position=bottom-left]) .launch{left:1rem}
:host([data-position=bottom-left]) .panel{inset:0}}
"#;
