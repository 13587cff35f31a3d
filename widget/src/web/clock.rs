//! Message times in the visitor's language, by the browser's `Intl`: `14:05` (or `2:05 PM`)
//! today, "yesterday 14:05" (`Intl.RelativeTimeFormat`), a short date before that, and the
//! full date and time as the tooltip.
//!
//! The formatters are made once per widget. They are built through `Reflect.construct`, which
//! reports a locale tag `Intl` rejects as an error instead of throwing through the widget; the
//! browser's default locale is used then.

use js_sys::{Array, Date, Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// The `Intl` formatters of one widget.
pub(crate) struct Clock {
    /// Time of day.
    time: Option<Function>,
    /// Day and time, for older messages.
    day: Option<Function>,
    /// Full date and time, for the tooltip.
    full: Option<Function>,
    /// "yesterday" in the locale.
    yesterday: String,
}

/// `new Intl[kind](locale, options)` (`options`: JSON text), or with the browser's locale if
/// `locale` is rejected.
fn intl(kind: &str, locale: &str, options: &str) -> Option<JsValue> {
    let ctor: Function = Reflect::get(&js_sys::global(), &"Intl".into())
        .and_then(|i| Reflect::get(&i, &kind.into()))
        .ok()?
        .dyn_into()
        .ok()?;
    let o = js_sys::JSON::parse(options).ok()?;
    Reflect::construct(&ctor, &Array::of2(&locale.into(), &o))
        .or_else(|_| Reflect::construct(&ctor, &Array::of2(&JsValue::UNDEFINED, &o)))
        .ok()
}

/// The bound `format` of a `DateTimeFormat`.
fn date_format(locale: &str, options: &str) -> Option<Function> {
    Reflect::get(&intl("DateTimeFormat", locale, options)?, &"format".into()).ok()?.dyn_into().ok()
}

fn same_day(a: &Date, b: &Date) -> bool {
    a.get_date() == b.get_date() && a.get_month() == b.get_month() && a.get_full_year() == b.get_full_year()
}

fn call(f: &Option<Function>, d: &Date) -> String {
    f.as_ref()
        .and_then(|f| f.call1(&JsValue::UNDEFINED, d).ok())
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

impl Clock {
    /// Formatters for `locale` (a BCP 47 tag).
    pub(crate) fn new(locale: &str) -> Clock {
        let yesterday = intl("RelativeTimeFormat", locale, r#"{"numeric":"auto"}"#)
            .and_then(|rtf| {
                let format: Function = Reflect::get(&rtf, &"format".into()).ok()?.dyn_into().ok()?;
                format.call2(&rtf, &(-1).into(), &"day".into()).ok()?.as_string()
            })
            .unwrap_or_default();
        Clock {
            time: date_format(locale, r#"{"hour":"numeric","minute":"2-digit"}"#),
            day: date_format(
                locale,
                r#"{"month":"short","day":"numeric","hour":"numeric","minute":"2-digit"}"#,
            ),
            full: date_format(locale, r#"{"dateStyle":"full","timeStyle":"short"}"#),
            yesterday,
        }
    }

    /// What a message's `<time>` shows for `iso`, and its tooltip; empty for an unparsable time.
    pub(crate) fn label(&self, iso: &str) -> (String, String) {
        let d = Date::new(&JsValue::from_str(iso));
        if iso.is_empty() || d.get_time().is_nan() {
            return (String::new(), String::new());
        }
        let now = Date::new_0();
        let before = Date::new(&JsValue::from_f64(now.get_time() - 86_400_000.0));
        let shown = if same_day(&d, &now) {
            call(&self.time, &d)
        } else if same_day(&d, &before) && !self.yesterday.is_empty() {
            format!("{} {}", self.yesterday, call(&self.time, &d))
        } else {
            call(&self.day, &d)
        };
        (shown, call(&self.full, &d))
    }
}
