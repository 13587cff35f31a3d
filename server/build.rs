//! Embeds the built widget (`npm/dist`, written by `cargo xtask build`) in the hub, so a
//! `natter-hub` binary serves `/natter.js` and its files wherever it is started and wherever it
//! is copied to. `--assets DIR` still serves a folder from disk instead (live rebuilds).
//!
//! Writes `$OUT_DIR/widget_files.rs`: `EMBEDDED: &[(&str, &[u8])]`, sorted by name (a path such
//! as `locales/de.json` for the files of a folder), empty when the widget was not built before
//! the hub (the hub then says so at start). Cargo re-runs this script when anything under
//! `npm/dist` changes (or under `npm/` while `dist` does not exist, so building the widget later
//! is noticed too).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// File kinds the hub serves from the widget folder (see `content_type` in `src/assets.rs`).
fn served(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".js", ".mjs", ".wasm", ".d.ts", ".map", ".json"].iter().any(|ext| name.ends_with(ext))
}

/// The served files under `dir` into `files`, named by their path below the widget folder
/// (`prefix` + name): the top level, and one level of folders such as `locales/` (the texts of
/// each language but English, which a page downloads from beside `index.js`).
fn collect(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() && prefix.is_empty() {
            collect(&path, &format!("{name}/"), files);
        } else if served(&name) && path.is_file() {
            files.push((name, path));
        }
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=NATTER_EMBED_WIDGET");
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = match std::env::var_os("NATTER_EMBED_WIDGET") {
        Some(dir) => PathBuf::from(dir),
        None => manifest.join("..").join("npm").join("dist"),
    };
    let watch =
        if dist.is_dir() { dist.clone() } else { dist.parent().map(Path::to_path_buf).unwrap_or_default() };
    println!("cargo:rerun-if-changed={}", watch.display());

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    // Only a complete build: a folder without the loader is a failed or partial one.
    if dist.join("natter.js").is_file() {
        collect(&dist, "", &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// The built widget's files, by name (sorted), embedded at compile time.\n\
         pub(crate) const EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        let path = path.canonicalize().unwrap_or_else(|_| path.clone());
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("widget_files.rs"), out).expect("write widget_files.rs");
}
