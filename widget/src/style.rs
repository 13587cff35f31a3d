//! The widget's CSS, adopted into its shadow root as constructable stylesheets.
//!
//! No `<style>` element and no `style` attribute is ever created, so a page with a strict CSP
//! (no `'unsafe-inline'`) shows the widget as designed. Critical host properties are
//! `!important`: in the cascade, an `!important` declaration from inside a shadow tree beats
//! one from the page, so hostile page CSS (`div { display: none !important }`) cannot hide or
//! move the widget. The inherited text properties are `!important` too, and come after
//! `all: initial !important` in the same rule (a later important declaration wins there). Colours are CSS custom properties (`--natter-accent`, …) that the page can
//! set on `[data-natter]` or through the `colors` option.
//!
//! Sides are logical (`padding-inline-start`, `border-end-start-radius`), so a panel with
//! `dir="rtl"` (an Arabic or Hebrew page) mirrors as a whole. On touch and narrow screens the
//! text box is 16 px (smaller text makes iOS zoom on focus) and every control at least 44 px.
//! On a page that draws under a phone's notch and home indicator (`viewport-fit=cover`), the
//! launcher stays above the home indicator and the full-screen panel's header below the notch
//! (`env(safe-area-inset-*)`).

use crate::prelude::*;

use crate::options::Options;

/// Dark palette, applied by `data-theme="dark"` and, for `auto`, by `prefers-color-scheme`.
const DARK: &str = "--_bg:var(--natter-bg,#17181d);--_surface:var(--natter-surface,#1f2027);\
--_text:var(--natter-text,#eceef4);--_muted:var(--natter-text-muted,#9a9fb0);\
--_border:var(--natter-border,rgba(255,255,255,.09));--_bot-bubble:var(--natter-bot-bubble,#2a2c35);\
--_bot-text:var(--natter-bot-text,#eceef4);--_shadow:0 16px 48px rgba(0,0,0,.5),0 2px 8px rgba(0,0,0,.3);";

/// The main stylesheet, identical for every mount.
pub(crate) fn base_css() -> String {
    let mut css = String::with_capacity(BASE.len() + 2 * DARK.len() + 80);
    css.push_str(BASE);
    css.push_str(":host([data-theme=dark]){");
    css.push_str(DARK);
    css.push_str("}@media (prefers-color-scheme:dark){:host([data-theme=auto]){");
    css.push_str(DARK);
    css.push_str("}}");
    css
}

/// The per-mount stylesheet: z-index and colours from the options (already validated).
pub(crate) fn options_css(o: &Options) -> String {
    let mut css = String::from(":host{--natter-z:");
    // Clamped to 0..=2147483647 by the options.
    crate::compose::push_decimal(&mut css, o.z_index.max(0).unsigned_abs());
    css.push(';');
    for (name, value) in &o.colors {
        css.push_str(name);
        css.push(':');
        css.push_str(value);
        css.push(';');
    }
    css.push('}');
    css
}

const BASE: &str = r#"
:host{all:initial!important;display:block!important;position:fixed!important;z-index:var(--natter-z,2147483000)!important;
bottom:calc(20px + env(safe-area-inset-bottom,0px))!important;right:calc(20px + env(safe-area-inset-right,0px))!important;left:auto!important;top:auto!important;width:auto!important;height:auto!important;
margin:0!important;padding:0!important;border:0!important;transform:none!important;visibility:visible!important;opacity:1!important;
--_accent:var(--natter-accent,#4f46e5);--_accent-text:var(--natter-accent-text,#fff);
--_bg:var(--natter-bg,#fff);--_surface:var(--natter-surface,#f6f7fb);--_text:var(--natter-text,#1c1e27);
--_muted:var(--natter-text-muted,#6b7083);--_border:var(--natter-border,rgba(17,20,45,.08));
--_bot-bubble:var(--natter-bot-bubble,#fff);--_bot-text:var(--natter-bot-text,#1c1e27);
--_user-bubble:var(--natter-user-bubble,var(--_accent));--_user-text:var(--natter-user-text,var(--_accent-text));
--_radius:var(--natter-radius,18px);--_shadow:0 16px 48px rgba(17,20,45,.18),0 2px 8px rgba(17,20,45,.08);
--_font:var(--natter-font,ui-sans-serif,system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif);
font-family:var(--_font)!important;font-size:14px!important;line-height:1.45!important;color:var(--_text)!important;
-webkit-font-smoothing:antialiased;text-align:start!important;direction:ltr!important;font-weight:400!important;
font-style:normal!important;letter-spacing:normal!important;text-transform:none!important}
:host([data-position=bottom-left]){left:calc(20px + env(safe-area-inset-left,0px))!important;right:auto!important}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
button{font:inherit;color:inherit;background:none;border:0;margin:0;padding:0;cursor:pointer;-webkit-tap-highlight-color:transparent}
button:focus-visible,textarea:focus-visible,a:focus-visible{outline:2px solid var(--_accent);outline-offset:2px}
svg{display:block;width:20px;height:20px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round;pointer-events:none}
.launcher{position:relative;display:grid;place-items:center;width:58px;height:58px;border-radius:50%;
background:var(--_accent);color:var(--_accent-text);box-shadow:0 6px 20px rgba(17,20,45,.22),0 2px 4px rgba(17,20,45,.12);
transition:transform .18s cubic-bezier(.2,.8,.2,1),box-shadow .18s}
.launcher:hover{transform:translateY(-2px) scale(1.04);box-shadow:0 10px 28px rgba(17,20,45,.28),0 3px 6px rgba(17,20,45,.14)}
.launcher:active{transform:scale(.96)}
.launcher svg{width:26px;height:26px;transition:transform .2s,opacity .2s;grid-area:1/1}
.launcher .icon-close{opacity:0;transform:rotate(-90deg) scale(.6)}
.launcher[aria-expanded=true] .icon-chat{opacity:0;transform:rotate(90deg) scale(.6)}
.launcher[aria-expanded=true] .icon-close{opacity:1;transform:none}
.badge{position:absolute;top:-3px;right:-3px;min-width:21px;height:21px;padding:0 6px;border-radius:11px;
background:#ef4444;color:#fff;font-size:11.5px;font-weight:700;line-height:21px;text-align:center;
box-shadow:0 0 0 2px var(--_bg);animation:natter-pop .25s cubic-bezier(.2,.8,.2,1.4)}
.panel{position:absolute;bottom:74px;right:0;width:380px;height:min(620px,calc(100vh - 112px));
display:flex;flex-direction:column;overflow:hidden;border-radius:20px;background:var(--_bg);color:var(--_text);
box-shadow:var(--_shadow);border:1px solid var(--_border);transform-origin:bottom right;
animation:natter-in .22s cubic-bezier(.2,.8,.2,1)}
:host([data-position=bottom-left]) .panel{right:auto;left:0;transform-origin:bottom left}
.header{display:flex;align-items:center;gap:12px;padding:16px 14px;padding-inline-start:18px;
background:linear-gradient(135deg,var(--_accent),color-mix(in srgb,var(--_accent) 70%,#000));color:var(--_accent-text)}
.avatar{flex:none;display:grid;place-items:center;width:38px;height:38px;border-radius:50%;
background:color-mix(in srgb,var(--_accent-text) 18%,transparent)}
.avatar svg{width:20px;height:20px}
.heading{flex:1;min-width:0}
.title{margin:0;font-size:15.5px;font-weight:650;letter-spacing:-.01em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.status{display:flex;align-items:center;gap:6px;margin-top:2px;font-size:12px;opacity:.88}
.dot{width:8px;height:8px;border-radius:50%;background:#f59e0b;box-shadow:0 0 0 2px color-mix(in srgb,var(--_accent-text) 25%,transparent)}
.status[data-status=connected] .dot{background:#22c55e}
.status[data-status=http] .dot{background:#38bdf8}
.status[data-status=offline] .dot{background:#9ca3af}
.status[data-status=unavailable] .dot{background:#ef4444}
.status[data-status=connecting] .dot,.status[data-status=reconnecting] .dot{animation:natter-pulse 1.2s ease-in-out infinite}
.icon-button{flex:none;display:grid;place-items:center;width:34px;height:34px;border-radius:10px;color:inherit;opacity:.9;transition:background .15s,opacity .15s}
.icon-button:hover{background:color-mix(in srgb,var(--_accent-text) 16%,transparent);opacity:1}
.mute .icon-off,.mute[aria-pressed=true] .icon-on{display:none}
.mute[aria-pressed=true] .icon-off{display:block}
.body{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:18px 16px 8px;background:var(--_surface);scroll-behavior:smooth}
.log{display:flex;flex-direction:column;gap:6px}
.row{display:flex;flex-direction:column;align-items:flex-start;max-width:82%;animation:natter-rise .2s ease-out}
.row[data-role=user]{align-self:flex-end;align-items:flex-end}
.row[data-role=user]+.row[data-role=bot],.row[data-role=user]+.row[data-role=agent],.row[data-role=bot]+.row[data-role=user],.row[data-role=agent]+.row[data-role=user]{margin-top:8px}
.bubble{padding:9px 13px;border-radius:var(--_radius);white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
.row[data-role=bot] .bubble,.row[data-role=agent] .bubble,.greeting .bubble{background:var(--_bot-bubble);color:var(--_bot-text);
border-end-start-radius:6px;box-shadow:0 1px 2px rgba(17,20,45,.06);border:1px solid var(--_border)}
.row[data-role=user] .bubble{background:var(--_user-bubble);color:var(--_user-text);border-end-end-radius:6px}
.row[data-role=user][data-state=pending] .bubble{opacity:.7}
.row[data-role=user][data-state=failed] .bubble{background:color-mix(in srgb,#ef4444 14%,var(--_bg));color:var(--_text);border:1px solid color-mix(in srgb,#ef4444 45%,transparent)}
.row[data-role=system]{align-self:center;max-width:90%;align-items:center}
.row[data-role=system] .bubble{padding:4px 10px;font-size:12px;color:var(--_muted);background:none;text-align:center}
.row[data-role=system] .meta{display:none}
.bubble a{color:inherit;text-decoration:underline;text-underline-offset:2px;text-decoration-thickness:1px}
.meta{display:flex;align-items:center;gap:6px;margin:3px 6px 0;font-size:11px;color:var(--_muted)}
.author{order:-1;font-weight:600}.availability{font-size:12px;opacity:.88;margin-top:1px}
.closed{margin:10px auto 0;padding:6px 10px;border-radius:999px;font-size:12px;text-align:center;color:var(--_muted);border:1px solid currentColor;width:max-content;max-width:100%}
.note{display:none}
[data-state=pending] .note.pending,[data-state=failed] .note.failed{display:inline}
[data-state=failed] .note.failed{color:#dc2626;font-weight:600}
.retry{font-size:11px;font-weight:600;color:var(--_accent);padding:1px 6px;border-radius:6px}
.retry:hover{background:color-mix(in srgb,var(--_accent) 12%,transparent)}
.greeting{margin-bottom:10px;display:flex;max-width:82%}
.typing{display:flex;gap:4px;align-items:center;width:max-content;margin-top:8px;padding:12px 14px;border-radius:var(--_radius);
border-end-start-radius:6px;background:var(--_bot-bubble);border:1px solid var(--_border)}
.typing span{width:7px;height:7px;border-radius:50%;background:var(--_muted);animation:natter-bounce 1.2s infinite ease-in-out}
.typing span:nth-child(2){animation-delay:.15s}.typing span:nth-child(3){animation-delay:.3s}
.composer{display:flex;align-items:flex-end;gap:8px;padding:10px;padding-inline-start:14px;border-top:1px solid var(--_border);background:var(--_bg)}
.input{flex:1;min-height:40px;max-height:132px;field-sizing:content;resize:none;padding:10px 4px;border:0;outline:0;background:transparent;
color:var(--_text);font:inherit;line-height:1.4}
.input::placeholder{color:var(--_muted)}
.input:focus-visible{outline:0}
.composer:focus-within{box-shadow:inset 0 2px 0 -1px color-mix(in srgb,var(--_accent) 35%,transparent)}
.send{flex:none;display:grid;place-items:center;width:40px;height:40px;border-radius:12px;background:var(--_accent);color:var(--_accent-text);transition:transform .12s,opacity .15s}
.send:disabled{opacity:.35;cursor:default}
.send:not(:disabled):hover{transform:translateY(-1px)}
.send svg{width:18px;height:18px}
[dir=rtl] .send svg{transform:scaleX(-1)}
[dir=rtl] .input:placeholder-shown{direction:rtl}
.panel:focus{outline:0}
.footer{padding:0 0 8px;text-align:center;font-size:11px;color:var(--_muted);background:var(--_bg)}
@keyframes natter-in{from{opacity:0;transform:translateY(12px) scale(.97)}to{opacity:1;transform:none}}
@keyframes natter-rise{from{opacity:0;transform:translateY(6px)}to{opacity:1;transform:none}}
@keyframes natter-pop{from{transform:scale(.4)}to{transform:scale(1)}}
@keyframes natter-bounce{0%,60%,100%{transform:translateY(0);opacity:.5}30%{transform:translateY(-4px);opacity:1}}
@keyframes natter-pulse{50%{opacity:.35}}
@media (max-width:480px),(pointer:coarse){
.input{font-size:16px}
.icon-button,.send{width:44px;height:44px}
.retry{min-height:44px;padding:0 12px}}
@media (max-width:480px){
:host([data-open]){inset:0!important;width:100%!important;height:100%!important}
:host([data-open]) .launcher{display:none}
.panel{position:fixed;inset:0;width:100%;height:100%;border-radius:0;border:0;bottom:0}
.header{padding-top:max(16px,env(safe-area-inset-top))}
.footer{padding-bottom:max(8px,env(safe-area-inset-bottom))}
.row{max-width:88%}}
@media (prefers-reduced-motion:reduce){*,*::before,*::after{animation:none!important;transition:none!important;scroll-behavior:auto!important}}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::RawOptions;

    #[test]
    fn braces_balance() {
        let css = base_css();
        assert_eq!(css.matches('{').count(), css.matches('}').count());
    }

    #[test]
    fn options_sheet_carries_z_index_and_colours() {
        let raw: RawOptions = RawOptions::default();
        let mut o = raw.resolve();
        o.z_index = 7;
        o.colors = vec![("--natter-accent".into(), "#ff0066".into())];
        assert_eq!(options_css(&o), ":host{--natter-z:7;--natter-accent:#ff0066;}");
    }
}
