//! `cargo xtask build` and `cargo xtask bench size`: the widget's build into `npm/dist/` and
//! its size / load-time benchmark.
//!
//! Build: natter-widget → wasm32 (`wasm-release` profile) → `wasm-bindgen --target web` →
//! `wasm-opt -Oz` → functions reordered smallest first (it compresses better) → `npm/dist/`,
//! twice ([`BUILDS`]), both without `std` (`--no-default-features`): the support chat alone and
//! with rooms (the `rooms` feature), each wasm with the wasm-bindgen glue made for it (`natter_widget.js`,
//! `natter_widget_rooms.js`; minified by esbuild). A page downloads one of them: the
//! hand-written ESM entry (`npm/src/index.js`, bundled and minified into `dist/index.js`)
//! imports the rooms build only when the page asks for rooms. The
//! script-tag loader is minified into `dist/natter.js`; the types are copied; the texts of each
//! built-in language but English (`widget/src/i18n/<lang>.json`) are minified into
//! `dist/locales/<lang>.json`, of which a page downloads at most one; each downloaded file also
//! gets a gzip -9 copy (`.gz`) for servers that serve precompressed files.
//!
//! Everything is built in `target/natter-widget-dist` first and copied into `npm/dist` only
//! where it changed: the hub embeds `npm/dist` (`server/build.rs`), so a rewrite of the same
//! bytes would make cargo recompile the hub after every build.
//!
//! Build tools that are not Rust come from npm, pinned in `npm/scripts/package.json`
//! (installed on first use): esbuild, and binaryen's wasm-opt when the system one is too old
//! to read what rustc and wasm-bindgen emit today (Debian 12's binaryen 108 rejects
//! reference-types instructions such as `table.fill`).

use crate::tools::{ensure_npm, ensure_wasm_toolchain, root, run};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

/// One build of the widget: the cargo feature flags, and the name wasm-bindgen gives its files
/// (`<name>.js`, the glue; `<name>_bg.wasm`).
struct Build {
    name: &'static str,
    features: &'static [&'static str],
}

/// The support chat alone. Neither build links `std` (the crate's `std` feature is off).
const SUPPORT: Build = Build { name: "natter_widget", features: &["--no-default-features"] };
/// With rooms (`natter.joinRoom`, the collaboration panel).
const ROOMS: Build =
    Build { name: "natter_widget_rooms", features: &["--no-default-features", "--features=rooms"] };
/// Both builds; the names must match the `import()`s of `npm/src/index.js` and
/// `npm/src/natter.js`.
const BUILDS: [Build; 2] = [SUPPORT, ROOMS];

/// What a page with the support chat alone downloads for the widget, in load order.
const DOWNLOADED: &[&str] = &["natter.js", "index.js", "natter_widget.js", "natter_widget_bg.wasm"];
/// What a page with rooms (`rooms: 'api'`) downloads instead.
const ROOMS_API_DOWNLOADED: &[&str] =
    &["natter.js", "index.js", "natter_widget_rooms.js", "natter_widget_rooms_bg.wasm"];
/// What a page with the collaboration panel (`rooms: true`, `data-rooms`) downloads instead: the
/// build with rooms, its glue bundled with the panel ([`PANEL_GLUE`]).
const PANEL_DOWNLOADED: &[&str] = &["natter.js", "index.js", PANEL_GLUE, "natter_widget_rooms_bg.wasm"];
/// The rooms build's glue and the collaboration panel in one module, for pages that show the
/// panel from the start: one file compresses better than the two (the panel's DOM code and the
/// glue's are written in the same words). The names must match `npm/src/index.js` and
/// `npm/src/natter.js`.
const PANEL_GLUE: &str = "natter_widget_rooms_panel.js";
/// The panel alone, which a page with rooms but not the panel fetches when it opens a room in
/// it (`natter.openRoom`).
const PANEL: &str = "rooms-panel.js";
/// The size budget: everything a page with the support chat alone downloads for the widget,
/// gzip (with the largest language file, for a page in a language other than English).
const BUDGET_BYTES: u64 = 60 * 1024;
/// The size budget of a page with rooms, with or without the collaboration panel, gzip (with
/// the largest language's files).
const ROOMS_BUDGET_BYTES: u64 = 75 * 1024;

/// Writes `bytes` to `path` and its precompressed copy ([`precompress`]) beside it; returns the
/// copy's size.
fn write_with_gzip(path: &Path, bytes: &[u8]) -> Result<usize> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    let gz = precompress(bytes)?;
    let mut gz_path = path.as_os_str().to_owned();
    gz_path.push(".gz");
    std::fs::write(&gz_path, &gz)?;
    Ok(gz.len())
}

/// The start of every key of the collaboration panel's texts (`ROOM_PREFIX` in
/// widget/src/i18n.rs).
const ROOM_PREFIX: &str = "room";
/// The name of a language's file of the collaboration panel's texts: `rooms-de.json`.
const ROOMS_LOCALE: &str = "rooms-";

/// Minifies `widget/src/i18n/*.json` into `<dir>/locales/`, each language in two files: the
/// widget's texts (`de.json`, which a page in that language without the collaboration panel
/// downloads) and all of them, the panel's too (`rooms-de.json`, which a page with the panel
/// downloads instead: one file of both compresses 0.2 KiB smaller than the two); returns
/// `(file, raw, gzip)` sizes.
fn build_locales(dist: &Path) -> Result<Vec<(String, usize, usize)>> {
    let src = root().join("widget").join("src").join("i18n");
    let out = dist.join("locales");
    std::fs::create_dir_all(&out)?;
    let mut made = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&src)
        .with_context(|| format!("reading {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        let texts: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON object", path.display()))?;
        let lang = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let widget: serde_json::Map<_, _> = texts
            .iter()
            .filter(|(key, _)| !key.starts_with(ROOM_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let has_rooms = widget.len() < texts.len();
        for (name, part) in [(format!("{lang}.json"), widget), (format!("{ROOMS_LOCALE}{lang}.json"), texts)]
        {
            if part.is_empty() || (name.starts_with(ROOMS_LOCALE) && !has_rooms) {
                continue;
            }
            let min = serde_json::to_vec(&part)?;
            let gz = write_with_gzip(&out.join(&name), &min)?;
            made.push((name, min.len(), gz));
        }
    }
    Ok(made)
}

/// The language whose texts weigh most (as served) on a page, and its file (none without locale
/// files): with `rooms` false, the widget's texts (`de.json`); with `rooms`, the widget's and
/// the collaboration panel's (`rooms-de.json`), which a page with the panel downloads instead.
fn largest_language(dist: &Path, rooms: bool) -> Result<Vec<(String, Size)>> {
    let mut best: Vec<(String, Size)> = Vec::new();
    let total = |files: &[(String, Size)]| files.iter().map(|f| f.1.served).sum::<u64>();
    let Ok(dir) = std::fs::read_dir(dist.join("locales")) else { return Ok(best) };
    let mut langs: Vec<String> = dir
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with(ROOMS_LOCALE))
        .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
        .collect();
    langs.sort();
    for lang in langs {
        let names = [if rooms { format!("{ROOMS_LOCALE}{lang}.json") } else { format!("{lang}.json") }];
        let mut files = Vec::new();
        for name in names {
            let path = dist.join("locales").join(&name);
            if path.exists() {
                files.push((format!("locales/{name}"), Size::of(&path)?));
            }
        }
        if total(&files) > total(&best) {
            best = files;
        }
    }
    Ok(best)
}

/// `npm/dist/`.
pub fn dist_dir() -> PathBuf {
    root().join("npm").join("dist")
}

/// The features rustc enables by default for wasm32-unknown-unknown; wasm-opt must accept them.
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// `wasm-opt` passes: size first, repeated while they still shrink the module; the producers
/// and target-features sections are metadata no browser reads. The module's memory is its own
/// (zero-filled when instantiated) and Rust keeps the stack above the low kilobyte, which lets
/// binaryen fold more constants.
///
/// A function with one caller is inlined only when small (20 instructions; binaryen's default is
/// any size). Merging every single-caller function into its caller made a few giant functions
/// (the `mount` export held all of mounting, the event loop all of the state machine) that
/// gzip compresses worse: 1.9 KiB more to download for a module 2 % smaller unpacked. LLVM has
/// inlined what pays by then.
///
/// Each round also rebuilds the control flow once (`--flatten --rereloop`, then `-Oz` again):
/// the relooper lays out branches that gzip finds more alike, 0.3 KiB less to download for a
/// module 0.7 % smaller. (`--converge` repeats the whole list while the module still shrinks.)
const WASM_OPT: &[&str] = &[
    "-Oz",
    "--one-caller-inline-max-function-size",
    "20",
    "--converge",
    "--flatten",
    "--rereloop",
    "-Oz",
    "--strip-producers",
    "--strip-target-features",
    "--low-memory-unused",
    "--zero-filled-memory",
];

/// The browsers the widget runs in, as esbuild targets: the first versions with every wasm
/// feature the module uses (reference types: Chrome 96, Safari 15) and with private class fields
/// and methods (Firefox 90; Firefox 79 would have been enough for the wasm). The ES modules are
/// written for these as they are: with `es2020`, esbuild rewrote every `#field` of `index.js` into
/// WeakMap helper calls, 0.5 KiB more to download.
const BROWSERS: &str = "--target=chrome96,edge96,firefox90,safari15";

fn scripts_dir() -> PathBuf {
    root().join("npm").join("scripts")
}

/// Installs the pinned build/bench tools of `npm/scripts` if they are not there yet.
fn ensure_npm_tools() -> Result<()> {
    let dir = scripts_dir();
    if dir.join("node_modules").join(".bin").join("esbuild").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing the widget's JS build tools (npm install in npm/scripts)");
    ensure_npm(&dir).context("npm install in npm/scripts failed; the widget build needs Node.js and npm")
}

fn npm_bin(name: &str) -> PathBuf {
    scripts_dir().join("node_modules").join(".bin").join(name)
}

/// Then the functions go in the order [`name_functions_by_size`] named them (smallest first),
/// and the names are dropped again. Nothing else is optimised, but the module is written as
/// `-Oz` writes it (stack IR optimised for size): a plain rewrite is 0.2 KiB larger.
const WASM_REORDER: &[&str] = &[
    "--reorder-functions-by-name",
    "--strip-debug",
    "--optimize-level",
    "2",
    "--shrink-level",
    "2",
    "--generate-stack-ir",
    "--optimize-stack-ir",
];

/// Runs wasm-opt's `passes` on `file`, in place.
fn wasm_opt(file: &Path, passes: &[&str]) -> Result<()> {
    let out = file.with_extension("opt.wasm");
    let attempt = |bin: &Path, quiet: bool| {
        let mut cmd = Command::new(bin);
        cmd.args(passes).args(WASM_FEATURES).arg(file).arg("-o").arg(&out);
        if quiet {
            // The system binary is only a first try; its parse error is not the user's problem.
            cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        }
        cmd.status()
    };
    match attempt(Path::new("wasm-opt"), true) {
        Ok(s) if s.success() => {}
        system => {
            if system.is_err() {
                eprintln!(
                    "xtask: wasm-opt not found in PATH (Debian/Ubuntu: `apt-get install binaryen`); \
                     using binaryen from npm/scripts"
                );
            } else {
                eprintln!("xtask: the system wasm-opt cannot read this module (too old); using binaryen from npm/scripts");
            }
            ensure_npm_tools()?;
            let status = attempt(&npm_bin("wasm-opt"), false).context("running npm/scripts' wasm-opt")?;
            if !status.success() {
                bail!("wasm-opt {} failed ({status})", passes.join(" "));
            }
        }
    }
    std::fs::rename(&out, file).with_context(|| format!("replacing {}", file.display()))?;
    Ok(())
}

fn leb_read(b: &[u8], i: &mut usize) -> Result<u32> {
    let (mut value, mut shift) = (0u32, 0);
    loop {
        let byte = *b.get(*i).context("truncated wasm")?;
        *i += 1;
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            bail!("bad LEB128 in wasm");
        }
    }
}

/// Reads past one import's kind and type (at `j` in the import section); returns the kind
/// (0: a function).
fn skip_import_desc(body: &[u8], j: &mut usize) -> Result<u8> {
    let kind = *body.get(*j).context("import kind")?;
    *j += 1;
    match kind {
        0 => {
            leb_read(body, j)?;
        }
        1 | 2 => {
            // A table (its element type first) or a memory: limits.
            if kind == 1 {
                *j += 1;
            }
            let flags = leb_read(body, j)?;
            leb_read(body, j)?;
            if flags & 1 == 1 {
                leb_read(body, j)?;
            }
        }
        3 => *j += 2,
        other => bail!("unknown import kind {other}"),
    }
    Ok(kind)
}

/// Gives every function of the wasm module at `path` a name that sorts by the size of its body
/// (smallest first; ties in their present order) in a `name` section, for
/// `--reorder-functions-by-name` ([`WASM_REORDER`]).
///
/// Why: gzip finds its repeats within 32 KiB, and small functions (wasm-bindgen's shims, drop
/// glue, accessors) look alike. Side by side they compress better than spread between large
/// ones in link order: 0.3 KiB less to download, measured with gzip -9 (binaryen's own
/// orders, by call count or by symbol name, compressed worse than link order).
fn name_functions_by_size(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.get(..8) != Some(&b"\0asm\x01\0\0\0"[..]) {
        bail!("{} is not a wasm module", path.display());
    }
    let mut out = bytes[..8].to_vec();
    let (mut imported, mut sizes) = (0u32, Vec::new());
    let mut i = 8;
    while i < bytes.len() {
        let start = i;
        let id = bytes[i];
        i += 1;
        let size = leb_read(&bytes, &mut i)? as usize;
        let body = bytes.get(i..i + size).context("truncated wasm section")?;
        i += size;
        let mut j = 0;
        match id {
            // An old name section would be a second one.
            0 if body.get(..5) == Some(&b"\x04name"[..]) => continue,
            2 => {
                for _ in 0..leb_read(body, &mut j)? {
                    for _ in 0..2 {
                        let len = leb_read(body, &mut j)? as usize;
                        j += len;
                    }
                    imported += u32::from(skip_import_desc(body, &mut j)? == 0);
                }
            }
            10 => {
                for _ in 0..leb_read(body, &mut j)? {
                    let len = leb_read(body, &mut j)? as usize;
                    sizes.push(len);
                    j += len;
                }
            }
            _ => {}
        }
        out.extend_from_slice(&bytes[start..i]);
    }
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&f| (sizes[f], f));
    let mut rank = vec![0; sizes.len()];
    for (r, &f) in order.iter().enumerate() {
        rank[f] = r;
    }
    // The function-names subsection (id 1): `index, name` pairs in index order.
    let mut map = Vec::new();
    leb_write(&mut map, u32::try_from(rank.len())?);
    for (f, r) in rank.iter().enumerate() {
        leb_write(&mut map, imported + u32::try_from(f)?);
        let name = format!("{r:06}");
        leb_write(&mut map, u32::try_from(name.len())?);
        map.extend_from_slice(name.as_bytes());
    }
    let mut section = b"\x04name\x01".to_vec();
    leb_write(&mut section, u32::try_from(map.len())?);
    section.extend_from_slice(&map);
    out.push(0);
    leb_write(&mut out, u32::try_from(section.len())?);
    out.extend_from_slice(&section);
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn leb_write(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `a`, `b`, … `Z`, `aa`, `ab`, …: short, valid JS property names.
fn short_name(mut i: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut name = Vec::new();
    loop {
        name.push(ALPHABET[i % ALPHABET.len()]);
        i /= ALPHABET.len();
        if i == 0 {
            break;
        }
        i -= 1;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// Renames every import of the wasm module from the wasm-bindgen glue to a one- or two-letter
/// name in module `a`, and the same keys in the glue (the crate's own JavaScript snippets keep
/// their names).
///
/// wasm-bindgen names each import `__wbg_<method>_<16 hex digits>` in module
/// `./<name>_bg.js`; with ~150 imports those names were ~3 KiB of the gzipped download,
/// stored twice (wasm import section and JS import object) and barely compressible. Every
/// replacement in the glue must match exactly once, so a change in wasm-bindgen's output
/// format fails the build instead of producing a broken widget.
fn shorten_imports(wasm: &Path, glue: &Path, name: &str) -> Result<()> {
    let module = format!("./{name}_bg.js");
    let module = module.as_str();
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    if bytes.get(..8) != Some(&b"\0asm\x01\0\0\0"[..]) {
        bail!("{} is not a wasm module", wasm.display());
    }
    let mut out = bytes[..8].to_vec();
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut i = 8;
    while i < bytes.len() {
        let id = bytes[i];
        i += 1;
        let size = leb_read(&bytes, &mut i)? as usize;
        let body = bytes.get(i..i + size).context("truncated wasm section")?;
        i += size;
        if id != 2 {
            out.push(id);
            leb_write(&mut out, size as u32);
            out.extend_from_slice(body);
            continue;
        }
        let mut j = 0;
        let count = leb_read(body, &mut j)?;
        let mut section = Vec::new();
        leb_write(&mut section, count);
        for n in 0..count as usize {
            let len = leb_read(body, &mut j)? as usize;
            let module_name =
                std::str::from_utf8(body.get(j..j + len).context("import module")?)?.to_string();
            j += len;
            let len = leb_read(body, &mut j)? as usize;
            let name = std::str::from_utf8(body.get(j..j + len).context("import name")?)?.to_string();
            j += len;
            // The import's kind and type: copied as they are.
            let start = j;
            skip_import_desc(body, &mut j)?;
            if module_name != module {
                // The crate's own JavaScript (`#[wasm_bindgen(module = …)]`, a snippet the glue
                // imports and esbuild bundles): a few short names, kept as they are.
                if !module_name.starts_with("./snippets/") {
                    bail!("unexpected import module {module_name:?}; shorten_imports needs updating");
                }
                for part in [&module_name, &name] {
                    leb_write(&mut section, part.len() as u32);
                    section.extend_from_slice(part.as_bytes());
                }
                section.extend_from_slice(body.get(start..j).context("import type")?);
                continue;
            }
            let short = short_name(n);
            for part in ["a", short.as_str()] {
                leb_write(&mut section, part.len() as u32);
                section.extend_from_slice(part.as_bytes());
            }
            section.extend_from_slice(body.get(start..j).context("import type")?);
            renames.push((name, short));
        }
        out.push(2);
        leb_write(&mut out, section.len() as u32);
        out.extend_from_slice(&section);
    }
    let mut js = std::fs::read_to_string(glue).with_context(|| format!("reading {}", glue.display()))?;
    let mut replace_once = |from: &str, to: &str| -> Result<()> {
        match js.matches(from).count() {
            1 => {
                js = js.replacen(from, to, 1);
                Ok(())
            }
            n => bail!("expected {from:?} once in the wasm-bindgen glue, found it {n} times"),
        }
    };
    replace_once(&format!("\"{module}\": import0"), "\"a\": import0")?;
    for (old, new) in &renames {
        replace_once(&format!(" {old}: function"), &format!(" {new}: function"))?;
    }
    std::fs::write(wasm, out)?;
    std::fs::write(glue, js)?;
    Ok(())
}

/// The warning wasm-bindgen's glue prints when the server gives the `.wasm` another MIME type
/// than `application/wasm`: 180 characters that every page downloads, about 0.1 KiB gzip, said
/// shorter with the same advice. It must be found exactly once, so a change in wasm-bindgen's
/// wording fails the build rather than being missed.
fn shorten_glue_warning(glue: &Path) -> Result<()> {
    const LONG: &str = "\"`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm with \
                        `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which is slower. \
                        Original error:\\n\"";
    const SHORT: &str = "\"natter: serve .wasm as application/wasm (slower without):\"";
    let js = std::fs::read_to_string(glue).with_context(|| format!("reading {}", glue.display()))?;
    match js.matches(LONG).count() {
        1 => std::fs::write(glue, js.replacen(LONG, SHORT, 1))
            .with_context(|| format!("writing {}", glue.display())),
        n => {
            bail!("expected wasm-bindgen's MIME type warning once in {}, found it {n} times", glue.display())
        }
    }
}

fn esbuild(args: &[&str], input: &Path, output: &Path) -> Result<()> {
    run(Command::new(npm_bin("esbuild")).arg(input).args(args).arg(format!("--outfile={}", output.display())))
}

/// `--config` for the widget's build: rustc writes the paths of dependencies' sources as
/// `crates/<crate>-<version>/…` rather than where this machine's cargo keeps them. A panic
/// location keeps its file's path in the module; a build machine's home directory has no
/// business in a file every visitor downloads, and the shorter paths are smaller.
fn remap_dependency_paths() -> Option<String> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".cargo")))?;
    let registries = std::fs::read_dir(cargo_home.join("registry").join("src")).ok()?;
    let flags: Vec<String> = registries
        .flatten()
        .filter_map(|e| e.path().to_str().map(|p| format!("'--remap-path-prefix={p}=crates'")))
        .collect();
    (!flags.is_empty()).then(|| format!("target.{TARGET}.rustflags=[{}]", flags.join(",")))
}

/// Builds one build of the widget ([`BUILDS`]) into `out`: cargo with its features, wasm-bindgen
/// into `stage`, the shortened imports, and in `release` the wasm-opt pipeline; the glue is
/// minified into `out/<name>.js`, the module is `out/<name>_bg.wasm`.
///
/// Each build has its own glue: the imports are named by their place in the module
/// ([`shorten_imports`]) and the exports and closure shims differ, so one build's glue would
/// hand the other's module the wrong functions.
fn build_wasm(build: &Build, release: bool, stage: &Path, out: &Path) -> Result<()> {
    let root = root();
    let profile = if release { "wasm-release" } else { "dev" };
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(&root).args(["build", "--target", TARGET, "--profile", profile, "-p", "natter-widget"]);
    cargo.args(build.features);
    if let Some(remap) = remap_dependency_paths() {
        cargo.arg("--config").arg(remap);
    }
    run(&mut cargo)?;
    let profile_dir = if release { "wasm-release" } else { "debug" };
    // Both builds leave their module here; the next cargo build replaces it, so it is read now.
    let wasm = root.join("target").join(TARGET).join(profile_dir).join("natter_widget.wasm");
    run(Command::new("wasm-bindgen")
        .arg(&wasm)
        .args(["--target", "web", "--no-typescript", "--out-name", build.name, "--out-dir"])
        .arg(stage))?;
    let (glue, module) = (format!("{}.js", build.name), format!("{}_bg.wasm", build.name));
    shorten_imports(&stage.join(&module), &stage.join(&glue), build.name)?;
    shorten_glue_warning(&stage.join(&glue))?;
    let wasm_out = out.join(&module);
    std::fs::copy(stage.join(&module), &wasm_out).context("copying the wasm")?;
    if release {
        wasm_opt(&wasm_out, WASM_OPT)?;
        name_functions_by_size(&wasm_out)?;
        wasm_opt(&wasm_out, WASM_REORDER)?;
    }
    ensure_npm_tools()?;
    let minify: &[&str] = if release { &["--minify"] } else { &[] };
    // Its `new URL('<name>_bg.wasm', import.meta.url)` stays as it is, so bundlers (Vite) pick
    // the wasm up as an asset of the glue's chunk. Bundled from an entry that exports only what
    // npm/src/index.js uses (the init function and `mount`), so esbuild drops the rest of the
    // glue (`initSync`): 0.1 KiB less to download.
    let entry = stage.join(format!("{}.entry.js", build.name));
    std::fs::write(&entry, format!("export {{ default, mount }} from './{glue}';\n"))
        .with_context(|| format!("writing {}", entry.display()))?;
    esbuild(
        &[&["--bundle", "--format=esm", BROWSERS, "--log-level=warning"], minify].concat(),
        &entry,
        &out.join(&glue),
    )
}

/// Builds the widget into `npm/dist/`. `release`: the size-optimised profile plus `wasm-opt`;
/// otherwise a quick debug build.
pub fn build(release: bool) -> Result<()> {
    ensure_wasm_toolchain()?;
    let root = root();
    let dist = dist_dir();
    let stage = root.join("target").join("natter-widget-js");
    // The finished files, before they are copied into npm/dist (see `sync_dir`).
    let out = root.join("target").join("natter-widget-dist");
    let _ = std::fs::remove_dir_all(&out);
    for dir in [&dist, &stage, &out] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for build in &BUILDS {
        build_wasm(build, release, &stage, &out)?;
    }
    let src = root.join("npm").join("src");
    // The rooms build's glue with the panel, from the same staged glue: one more entry.
    std::fs::copy(src.join(PANEL), stage.join(PANEL)).with_context(|| format!("copying npm/src/{PANEL}"))?;
    let entry = stage.join("natter_widget_rooms_panel.entry.js");
    std::fs::write(
        &entry,
        format!(
            "export {{ default, mount }} from './{}.js';\nexport {{ createRoomsPanel }} from './{PANEL}';\n",
            ROOMS.name
        ),
    )
    .with_context(|| format!("writing {}", entry.display()))?;
    let minify: &[&str] = if release { &["--minify"] } else { &[] };
    esbuild(
        &[&["--bundle", "--format=esm", BROWSERS, "--log-level=warning"], minify].concat(),
        &entry,
        &out.join(PANEL_GLUE),
    )?;
    for file in ["index.js", "rooms.js"] {
        std::fs::copy(src.join(file), stage.join(file)).with_context(|| format!("copying npm/src/{file}"))?;
    }
    for file in ["index.d.ts", "rooms.d.ts", "react.d.ts"] {
        std::fs::copy(src.join(file), out.join(file)).with_context(|| format!("copying npm/src/{file}"))?;
    }
    // One ESM file: the facade and the `Room` objects. The two builds' glue modules stay
    // modules of their own, imported by the facade when it knows which one the page needs.
    let mut externals: Vec<String> = BUILDS.iter().map(|b| format!("--external:./{}.js", b.name)).collect();
    externals.push(format!("--external:./{PANEL_GLUE}"));
    let externals: Vec<&str> = externals.iter().map(String::as_str).collect();
    esbuild(
        &[&["--bundle", "--format=esm", BROWSERS, "--log-level=warning"], &externals[..], minify].concat(),
        &stage.join("index.js"),
        &out.join("index.js"),
    )?;
    esbuild(
        &[&["--target=es2017", "--log-level=warning"], minify].concat(),
        &src.join("natter.js"),
        &out.join("natter.js"),
    )?;
    // The React bindings import `react` and `./index.js` as they are (not bundled: the app's
    // React and the one widget module); the rooms panel is a module of its own, fetched only
    // by pages that use it.
    for file in ["react.js", "rooms-panel.js"] {
        esbuild(
            &[&["--format=esm", BROWSERS, "--log-level=warning"], minify].concat(),
            &src.join(file),
            &out.join(file),
        )?;
    }
    let mut downloaded: Vec<&str> = [DOWNLOADED, ROOMS_API_DOWNLOADED, PANEL_DOWNLOADED, &[PANEL]].concat();
    downloaded.sort_unstable();
    downloaded.dedup();
    for file in downloaded {
        let path = out.join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        // Precompressed copies, for a static server (the hub, nginx's `gzip_static`) that serves
        // `.gz` files to browsers that accept gzip without compressing on every request.
        let gz = precompress(&bytes)?;
        std::fs::write(out.join(format!("{file}.gz")), &gz)?;
        println!("  {:<28} {:>8} bytes  {:>7} gzip", file, bytes.len(), gz.len());
    }
    for (name, raw, gz) in build_locales(&out)? {
        println!("  {:<28} {:>8} bytes  {:>7} gzip", format!("locales/{name}"), raw, gz);
    }
    let mut sources = vec![
        ("index.js", src.join("index.js")),
        ("index.d.ts", src.join("index.d.ts")),
        ("rooms.d.ts", src.join("rooms.d.ts")),
        ("react.js", src.join("react.js")),
        ("react.d.ts", src.join("react.d.ts")),
        ("rooms-panel.js", src.join("rooms-panel.js")),
        ("natter.js", src.join("natter.js")),
    ];
    // Each wasm and its glue are built from the Rust crates: their "source" is their newest
    // file.
    let from_rust = built_from_rust();
    if let Some(newest) = newest_file(&[root.join("widget"), root.join("protocol")]) {
        sources.extend(from_rust.iter().map(|file| (file.as_str(), newest.clone())));
        // The rooms glue with the panel: the newer of the two.
        let panel = src.join(PANEL);
        let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        sources.push((PANEL_GLUE, if time(&panel) > time(&newest) { panel } else { newest }));
    }
    sync_dir(&out, &dist, &sources)?;
    let locales = dist.join("locales");
    std::fs::create_dir_all(&locales).with_context(|| format!("creating {}", locales.display()))?;
    sync_dir(&out.join("locales"), &locales, &[])?;
    // A language removed from the source leaves nothing behind.
    for entry in std::fs::read_dir(&locales)?.flatten() {
        if !out.join("locales").join(entry.file_name()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    println!("widget built into {}", dist.display());
    Ok(())
}

/// The files of `npm/dist` made from the Rust crates: each build's glue and wasm.
fn built_from_rust() -> Vec<String> {
    BUILDS.iter().flat_map(|b| [format!("{}.js", b.name), format!("{}_bg.wasm", b.name)]).collect()
}

/// Copies each file of `from` into `to` where its bytes differ (or it is missing), and leaves
/// the others untouched, timestamps included. The hub embeds `npm/dist` and cargo rebuilds it
/// when any file there is newer than its last build: rewriting identical files made every
/// `cargo xtask demo` recompile the release hub for minutes.
///
/// `sources` names what a file is built from (`("natter.js", npm/src/natter.js)`): an unchanged
/// file older than its source (an edit the minifier drops, such as a comment) gets the current
/// time, so the package's `prepack` check, which refuses a build older than its sources, does
/// not call a fresh build stale.
fn sync_dir(from: &Path, to: &Path, sources: &[(&str, PathBuf)]) -> Result<()> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let target = to.join(&name);
        let bytes =
            std::fs::read(entry.path()).with_context(|| format!("reading {}", entry.path().display()))?;
        if std::fs::read(&target).is_ok_and(|old| old == bytes) {
            let source = sources.iter().find(|(n, _)| std::ffi::OsStr::new(n) == name);
            if let Some((_, source)) = source {
                if let (Some(built), Some(edited)) = (modified(&target), modified(source)) {
                    if built < edited {
                        std::fs::File::options()
                            .write(true)
                            .open(&target)
                            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                            .with_context(|| format!("updating the time of {}", target.display()))?;
                    }
                }
            }
            continue;
        }
        std::fs::write(&target, &bytes).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// The most recently modified `.rs` or `Cargo.toml` file under `dirs` (skipping `target/`
/// and `tests/`), or `None` when there is none.
fn newest_file(dirs: &[PathBuf]) -> Option<PathBuf> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && name != "tests" {
                    stack.push(path);
                }
                continue;
            }
            let rust = path.extension().is_some_and(|x| x == "rs" || x == "json") || name == "Cargo.toml";
            let Some(time) = rust.then(|| entry.metadata().and_then(|m| m.modified()).ok()).flatten() else {
                continue;
            };
            if best.as_ref().is_none_or(|(t, _)| time > *t) {
                best = Some((time, path));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// The `.gz` copy of a file that the hub (and nginx's `gzip_static`) serves to browsers: a gzip
/// stream made by zopfli, which searches harder than zlib's best level for the same format —
/// 3,300 bytes less on a page with the collaboration panel than gzip -9 (the module 5 % less)
/// for 2 s more per build. Every browser reads it as any gzip.
fn precompress(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 2);
    zopfli::compress(zopfli::Options::default(), zopfli::Format::Gzip, bytes, &mut out)
        .context("compressing with zopfli")?;
    Ok(out)
}

/// The size at gzip -9: what a server that compresses each response itself sends at best.
fn gzip9_len(bytes: &[u8]) -> Result<u64> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len() as u64)
}

/// The size of the precompressed copy beside `path` (`path.gz`) — what the hub serves — or of
/// one made now when there is none.
fn served_len(path: &Path, bytes: &[u8]) -> Result<u64> {
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    match std::fs::metadata(&gz) {
        Ok(m) => Ok(m.len()),
        Err(_) => Ok(precompress(bytes)?.len() as u64),
    }
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

/// One file's or one page's size: raw, at gzip -9, and as served (the precompressed `.gz`).
#[derive(Clone, Copy, Default)]
struct Size {
    raw: u64,
    gzip9: u64,
    served: u64,
}

impl std::ops::Add for Size {
    type Output = Size;
    fn add(self, o: Size) -> Size {
        Size { raw: self.raw + o.raw, gzip9: self.gzip9 + o.gzip9, served: self.served + o.served }
    }
}

impl Size {
    /// The sizes of the file at `path`.
    fn of(path: &Path) -> Result<Size> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Size { raw: bytes.len() as u64, gzip9: gzip9_len(&bytes)?, served: served_len(path, &bytes)? })
    }

    fn print(&self, label: &str) {
        println!("  {:<40} {:>10} {:>10} {:>10}", label, kib(self.raw), kib(self.gzip9), kib(self.served));
    }

    /// A total line, with the compressed bytes exactly (a budget is counted in bytes).
    fn print_total(&self, label: &str) {
        println!(
            "  {:<40} {:>10} {:>10} {:>10}  ({} / {} bytes)",
            label,
            kib(self.raw),
            kib(self.gzip9),
            kib(self.served),
            self.gzip9,
            self.served
        );
    }

    /// How much of `budget` (bytes) the page uses as served, and at gzip -9.
    fn verdict(&self, budget: u64) {
        let pct = |n: u64| n as f64 * 100.0 / budget as f64;
        let verdict = if self.served <= budget { "within" } else { "OVER" };
        println!(
            "  budget {} as served: {verdict} ({:.0}% used); at gzip -9, from a server that compresses each response: {}",
            kib(budget),
            pct(self.served),
            if self.gzip9 <= budget { format!("within ({:.0}%)", pct(self.gzip9)) } else { format!("over by {} bytes", self.gzip9 - budget) }
        );
    }
}

/// Prints each of `files` (in `dist`) with its sizes; returns their total.
fn print_files(dist: &Path, files: &[&str]) -> Result<Size> {
    let mut total = Size::default();
    for file in files {
        let size = Size::of(&dist.join(file))?;
        size.print(file);
        total = total + size;
    }
    Ok(total)
}

/// Prints the size of everything a page downloads for the widget against the budgets — the
/// support chat alone, a page with rooms, a page with rooms and the collaboration panel; each in
/// English and with the largest language's texts — and the time from script load to launcher
/// visible in headless Chromium. Sizes are raw, at gzip -9, and as served: the precompressed
/// `.gz` copies ([`precompress`]) the hub sends to every browser that accepts gzip, which is
/// what the budgets count.
pub fn bench_size() -> Result<()> {
    let dist = dist_dir();
    if BUILDS.iter().any(|b| !dist.join(format!("{}_bg.wasm", b.name)).exists()) {
        build(true)?;
    }
    // A page in another language also downloads that language's texts: one file, which with the
    // panel holds the panel's texts too.
    let language = largest_language(&dist, false)?;
    let room_language = largest_language(&dist, true)?;
    let with = |page: Size, extra: &[(String, Size)]| {
        for (name, size) in extra {
            size.print(name);
        }
        extra.iter().fold(page, |total, (_, size)| total + *size)
    };
    println!("what a page downloads for the widget (npm/dist; CSS is inside the wasm):");
    println!("  {:<40} {:>10} {:>10} {:>10}", "file", "raw", "gzip -9", "served .gz");

    println!("the support chat alone (no rooms option):");
    let support = print_files(&dist, DOWNLOADED)?;
    support.print_total("total (English page)");
    let support_lang = with(support, &language);
    support_lang.print_total("total (largest language)");
    support_lang.verdict(BUDGET_BYTES);

    println!("with rooms (rooms: 'api', data-rooms=\"api\"; the React provider):");
    let api = print_files(&dist, ROOMS_API_DOWNLOADED)?;
    api.print_total("total with rooms (English)");
    let api_lang = with(api, &language);
    api_lang.print_total("total with rooms (largest language)");
    api_lang.verdict(ROOMS_BUDGET_BYTES);

    println!("with rooms and the collaboration panel (rooms: true, data-rooms; the glue and the panel in one file):");
    let panel = print_files(&dist, PANEL_DOWNLOADED)?;
    panel.print_total("total with the panel (English)");
    let panel_lang = with(panel, &room_language);
    panel_lang.print_total("total with the panel (largest language)");
    panel_lang.verdict(ROOMS_BUDGET_BYTES);
    launcher_timing()
}

/// Browser-to-browser cursor relay latency over loopback: builds the widget (if needed) and the
/// hub in release mode, starts the hub on a free port with the widget from `npm/dist`, and runs
/// `npm/scripts/cursor-latency.mjs` (two headless Chromium profiles in one room). Prints figures;
/// asserts nothing.
pub fn bench_cursor() -> Result<()> {
    if !dist_dir().join("natter_widget_rooms_bg.wasm").exists() {
        build(true)?;
    }
    let root = root();
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "natter-hub",
    ]))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = root.join("target").join("bench-cursor");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("hub.log"))?;
    let mut hub = Command::new(root.join("target/release/natter-hub"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(dir.join("natter.db"))
        .arg("--assets")
        .arg(dist_dir())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting target/release/natter-hub")?;
    let url = format!("http://127.0.0.1:{port}");
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let result = if ready {
        ensure_npm_tools().and_then(|()| {
            run(Command::new("node").current_dir(scripts_dir()).arg("cursor-latency.mjs").arg(&url))
        })
    } else {
        Err(anyhow::anyhow!("the hub did not start; see {}", dir.join("hub.log").display()))
    };
    let _ = hub.kill();
    let _ = hub.wait();
    result
}

fn launcher_timing() -> Result<()> {
    ensure_npm_tools()?;
    run(Command::new("node").current_dir(scripts_dir()).arg("launcher-timing.mjs").arg(dist_dir()))
}

#[cfg(test)]
mod tests {
    use super::{largest_language, name_functions_by_size, newest_file, precompress, sync_dir, Size};
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    fn set_time(path: &Path, time: SystemTime) {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(time).unwrap();
    }

    fn time(path: &Path) -> SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    /// `n` bytes of letters that gzip barely shrinks (a fixed pseudo-random sequence).
    fn noise(n: usize, seed: u32) -> String {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b'a' + ((x >> 16) % 26) as u8)
            })
            .collect()
    }

    #[test]
    fn a_page_counts_its_languages_one_texts_file_as_served() {
        let tmp = tempfile::tempdir().unwrap();
        let locales = tmp.path().join("locales");
        std::fs::create_dir(&locales).unwrap();
        // "aa" has the largest widget texts, "bb" the largest file of all texts (a page with the
        // panel fetches that one alone).
        for (name, len, seed) in
            [("aa.json", 600, 1), ("rooms-aa.json", 900, 2), ("bb.json", 400, 3), ("rooms-bb.json", 1000, 4)]
        {
            std::fs::write(locales.join(name), noise(len, seed)).unwrap();
        }
        let names = |files: Vec<(String, Size)>| files.into_iter().map(|f| f.0).collect::<Vec<_>>();
        assert_eq!(names(largest_language(tmp.path(), false).unwrap()), ["locales/aa.json"]);
        assert_eq!(names(largest_language(tmp.path(), true).unwrap()), ["locales/rooms-bb.json"]);
        // Served is the `.gz` beside a file when there is one (what the hub sends), else a copy
        // made now; gzip -9 is counted either way.
        let file = locales.join("aa.json");
        let made = Size::of(&file).unwrap();
        assert_eq!(made.served, precompress(&std::fs::read(&file).unwrap()).unwrap().len() as u64);
        assert!(
            made.served <= made.gzip9 && made.gzip9 < made.raw,
            "{} {} {}",
            made.raw,
            made.gzip9,
            made.served
        );
        std::fs::write(locales.join("aa.json.gz"), [0u8; 7]).unwrap();
        assert_eq!(Size::of(&file).unwrap().served, 7);
        // Without locale files: nothing to add.
        assert!(largest_language(&tmp.path().join("none"), true).unwrap().is_empty());
    }

    #[test]
    fn a_rebuild_leaves_unchanged_files_and_their_times_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to, src) = (tmp.path().join("from"), tmp.path().join("to"), tmp.path().join("src"));
        for dir in [&from, &to, &src] {
            std::fs::create_dir(dir).unwrap();
        }
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        // natter.js: the same bytes as last time. index.js: new bytes. index.d.ts: not there yet.
        for (name, old, new) in [("natter.js", "same", "same"), ("index.js", "old", "new")] {
            std::fs::write(from.join(name), new).unwrap();
            std::fs::write(to.join(name), old).unwrap();
            set_time(&to.join(name), long_ago);
        }
        std::fs::write(from.join("index.d.ts"), "types").unwrap();
        std::fs::write(src.join("natter.js"), "// source").unwrap();
        set_time(&src.join("natter.js"), long_ago - Duration::from_secs(60));

        sync_dir(&from, &to, &[("natter.js", src.join("natter.js"))]).unwrap();

        // Untouched: cargo sees nothing new in npm/dist, so the hub that embeds it is not rebuilt.
        assert_eq!(time(&to.join("natter.js")), long_ago);
        assert_eq!(std::fs::read_to_string(to.join("index.js")).unwrap(), "new");
        assert!(time(&to.join("index.js")) > long_ago);
        assert_eq!(std::fs::read_to_string(to.join("index.d.ts")).unwrap(), "types");
    }

    #[test]
    fn an_unchanged_file_older_than_its_edited_source_is_made_current() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to, src) = (tmp.path().join("from"), tmp.path().join("to"), tmp.path().join("src"));
        for dir in [&from, &to, &src] {
            std::fs::create_dir(dir).unwrap();
        }
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        std::fs::write(from.join("natter.js"), "minified").unwrap();
        std::fs::write(to.join("natter.js"), "minified").unwrap();
        set_time(&to.join("natter.js"), long_ago);
        // A comment was edited: the minified output is the same, the source is newer.
        std::fs::write(src.join("natter.js"), "// edited").unwrap();

        sync_dir(&from, &to, &[("natter.js", src.join("natter.js"))]).unwrap();

        // npm/scripts/prepack.mjs refuses a dist file older than its source.
        assert!(time(&to.join("natter.js")) >= time(&src.join("natter.js")));
    }

    #[test]
    fn functions_are_named_smallest_body_first_after_the_imports() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.wasm");
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        // One type, () -> (); one imported function; three functions with bodies of 4, 2 and 3
        // bytes; and an old name section, which must not stay beside the new one.
        module.extend([1, 4, 1, 0x60, 0, 0]);
        module.extend([2, 7, 1, 1, b'a', 1, b'b', 0, 0]);
        module.extend([3, 4, 3, 0, 0, 0]);
        module.extend([10, 13, 3, 4, 0, 1, 1, 0x0b, 2, 0, 0x0b, 3, 0, 1, 0x0b]);
        module.extend([0, 7, 4, b'n', b'a', b'm', b'e', 1, 0]);
        std::fs::write(&path, &module).unwrap();

        name_functions_by_size(&path).unwrap();

        let out = std::fs::read(&path).unwrap();
        let (sections, names) = out.split_at(out.len() - 34);
        assert_eq!(sections, &module[..module.len() - 9], "every other section as it was");
        let mut expected = vec![0, 32, 4, b'n', b'a', b'm', b'e', 1, 25, 3];
        for (index, name) in [(1, "000002"), (2, "000000"), (3, "000001")] {
            expected.extend([index, 6]);
            expected.extend(name.as_bytes());
        }
        assert_eq!(names, expected);
    }

    #[test]
    fn the_wasm_counts_as_stale_when_a_rust_source_is_newer() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        // A package beside the crate it is built from, as in the repository.
        let npm = root.join("npm");
        for dir in [npm.join("scripts"), npm.join("dist/locales"), npm.join("src"), root.join("widget/src")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let repo = super::root();
        std::fs::copy(repo.join("npm/scripts/prepack.mjs"), npm.join("scripts/prepack.mjs")).unwrap();
        std::fs::write(
            npm.join("package.json"),
            r#"{"name":"t","version":"1.0.0","files":["dist/natter_widget_bg.wasm"]}"#,
        )
        .unwrap();
        // Every file made from the Rust crates: both builds' wasm and glue.
        let from_rust = super::built_from_rust();
        assert_eq!(from_rust.len(), 4, "{from_rust:?}");
        for file in &from_rust {
            std::fs::write(npm.join("dist").join(file), b"\0asm\x01\0\0\0").unwrap();
            set_time(&npm.join("dist").join(file), long_ago + Duration::from_secs(60));
        }
        std::fs::write(root.join("widget/Cargo.toml"), "[package]").unwrap();
        std::fs::write(root.join("widget/src/lib.rs"), "// old").unwrap();
        set_time(&root.join("widget/Cargo.toml"), long_ago);
        set_time(&root.join("widget/src/lib.rs"), long_ago);
        let prepack = || {
            std::process::Command::new("node").arg("scripts/prepack.mjs").current_dir(&npm).output().unwrap()
        };
        let fresh = prepack();
        assert!(fresh.status.success(), "{}", String::from_utf8_lossy(&fresh.stderr));

        // The Rust source is edited after the last build.
        std::fs::write(root.join("widget/src/lib.rs"), "// edited").unwrap();
        let stale = prepack();
        assert!(!stale.status.success());
        let said = String::from_utf8_lossy(&stale.stderr);
        // Both builds, each wasm and its glue, are named.
        for file in &from_rust {
            assert!(said.contains(&format!("dist/{file} is older than widget/src/lib.rs")), "{file}: {said}");
        }
        assert_eq!(newest_file(&[root.join("widget")]), Some(root.join("widget/src/lib.rs")));

        // A rebuild with the same bytes (a comment edit) makes them current again.
        let built = root.join("built");
        std::fs::create_dir(&built).unwrap();
        let newest = newest_file(&[root.join("widget")]).unwrap();
        let mut sources = Vec::new();
        for file in &from_rust {
            std::fs::copy(npm.join("dist").join(file), built.join(file)).unwrap();
            sources.push((file.as_str(), newest.clone()));
        }
        sync_dir(&built, &npm.join("dist"), &sources).unwrap();
        assert!(prepack().status.success());
    }
}
