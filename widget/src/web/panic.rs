//! What a panic does (a bug: the widget then stops): it says on the console where it happened
//! and what it said, then the wasm traps.
//!
//! With the `std` feature (tests, `wasm-pack`) that is a panic hook; without it (the shipped
//! build, `no_std`) it is the crate's `#[panic_handler]`. `std`'s panic machinery formats the
//! message through `core::fmt` before any hook runs: 2.7 KiB of gzipped wasm (the formatter, the
//! integer printing, the payload boxing and their messages) that every visitor would download to
//! report a bug that should not happen. The handler reports a message only when it is a
//! constant (`panic!("literal")`); the place (file and line) always.
//! Hand-made rather than `console_error_panic_hook`, which formats the whole message and a JS
//! stack.

#[cfg(feature = "std")]
use crate::prelude::*;
use core::panic::Location;

/// `natter: internal error at <file> <line> <message>` on the console.
#[cfg_attr(all(test, not(feature = "std")), allow(dead_code))]
fn report(place: Option<&Location<'_>>, what: &str) {
    let (file, line) = place.map_or(("?", 0), |l| (l.file(), l.line()));
    web_sys::console::error_4(&"natter: internal error at".into(), &file.into(), &line.into(), &what.into());
}

/// Installs the report (with `std`, as the panic hook; without, the handler below is always
/// there).
pub(super) fn install() {
    #[cfg(feature = "std")]
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let what =
            p.downcast_ref::<&str>().copied().or_else(|| p.downcast_ref::<String>().map(String::as_str));
        report(info.location(), what.unwrap_or(""));
    }));
}

/// The panic handler of the `no_std` build: report, then trap (`panic = "abort"` everywhere).
#[cfg(all(not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    report(info.location(), info.message().as_str().unwrap_or(""));
    core::arch::wasm32::unreachable()
}
