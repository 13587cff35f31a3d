//! The `natter-hub` binary: parses flags, sets up logging, listens, and runs the hub until
//! Ctrl+C or SIGTERM.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Parser as _;
use natter_hub::config::{Config, LogFormat};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(natter_hub::config::Command::Operator { action }) = &config.command {
        // A one-off command: no logging set-up beyond errors, nothing served.
        let done = natter_hub::operator_command(&config, action).await?;
        println!("{done}");
        return Ok(());
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let quiet = no_frames(std::env::var("RUST_LOG").ok().as_deref());
    match config.log_format {
        // Colour only for a person at a terminal: in a file, journald or a pipe, escape codes
        // are noise (and NO_COLOR, https://no-color.org, turns them off anywhere).
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .finish()
            .with(quiet)
            .init(),
        LogFormat::Json => {
            tracing_subscriber::fmt().json().with_env_filter(filter).finish().with(quiet).init()
        }
    }
    raise_open_file_limit();
    let listener = listen(config.listen)
        .with_context(|| format!("cannot listen on {} (see --listen / NATTER_LISTEN)", config.listen))?;
    natter_hub::run(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Libraries that write whole WebSocket frames into the log at `trace`: `auth` frames with
/// identity tokens, `welcome` frames with session ids.
const FRAME_LOGGERS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// Drops the `trace` events of [`FRAME_LOGGERS`], so that even `RUST_LOG=trace` writes no
/// token or session id; an operator who names one of them in `rust_log` gets what they asked
/// for. Everything else is left to `RUST_LOG`.
fn no_frames(rust_log: Option<&str>) -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    let named =
        |target: &str| rust_log.is_some_and(|spec| spec.split(',').any(|d| d.trim().starts_with(target)));
    let quiet: Vec<&'static str> = FRAME_LOGGERS.into_iter().filter(|t| !named(t)).collect();
    FilterFn::new(move |meta| {
        *meta.level() != tracing::Level::TRACE
            || !quiet.iter().any(|t| {
                meta.target().strip_prefix(t).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    })
}

/// Pending connections the kernel queues before `accept`. `TcpListener::bind` asks for 128:
/// a burst of connects (a page reload across many tabs, a load test) overflowed it and each
/// dropped SYN cost its client a one-second retransmit. The kernel caps it at somaxconn.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As `TcpListener::bind` does on Unix: a restarted hub can bind while old sockets linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit on open files to the hard one: every connection is a file, and the
/// common service default of 1,024 would otherwise cap the hub at about a thousand clients.
/// `--max-connections` defaults to what this leaves, less a reserve (see `natter_hub::run`).
fn raise_open_file_limit() {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(0);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) if now > before => tracing::info!(from = before, to = now, "open-file limit raised"),
        Ok(now) => tracing::info!(open_files = now, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, open_files = before, "cannot raise the open-file limit"),
    }
}

/// Completes on Ctrl+C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl+C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
