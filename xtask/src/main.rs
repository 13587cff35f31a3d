//! `cargo xtask …`: the project's build, demo, test and bench commands (lead owns this file).

mod bench;
mod store_bench;
mod widget;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => widget::build(true),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("size") => widget::bench_size(),
            Some("store") => store_bench::run(&args[2..]),
            _ => bench::run(&args[1..]),
        },
        _ => anyhow::bail!("usage: cargo xtask build | demo | test | bench [size|store|...]"),
    }
}
