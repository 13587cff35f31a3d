//! The accept loop: every TCP connection the hub takes, how long it may take to say what it
//! wants, and what happens past the connection caps.
//!
//! Our own loop rather than `axum::serve`, which installs no timer in hyper, so that hyper's
//! header-read timeout never runs: a client that sends one header byte every few seconds, or
//! nothing at all, was served for ever. Here each connection is HTTP/1.1 (browsers speak
//! HTTP/2 only over TLS, which a reverse proxy ends; proxies speak HTTP/1.1 to the hub) with:
//! - `--header-timeout`: the request head must arrive within it, counted from when the
//!   connection opens and again from each answer, so it also closes idle keep-alive
//!   connections; request bodies get the same time (`edge::read_body`).
//! - `--idle-timeout` on every write ([`Socket`]).
//! - `--max-connections`: at the cap a new connection is still accepted, but only to get one
//!   short answer — `/healthz` as usual, anything else `503` with `Retry-After` — and closed,
//!   so monitoring keeps working and clients hear why. The default is the open-file limit
//!   less a reserve, so the hub refuses before `accept` starts failing with "too many open
//!   files". Past the cap plus [`MAX_REFUSING`] sockets being refused, new ones are closed at
//!   once.
//! - For a peer that is not a `--trusted-proxy`, its address's budgets, checked before
//!   anything is read: `--address-connect-*` (new connections per second) and
//!   `--max-connections-per-address` (open at once). A connection past either is *turned
//!   away*: whatever it has sent already is read and dropped, a fixed `429` with `Retry-After`
//!   is written at once and its side is closed (the rest of the request is read and dropped
//!   for at most half a second, so the peer reads the answer rather than a reset), with no HTTP
//!   parse, so a flood from one address costs the hub little more than an accept, a read and a
//!   write per connection. It is
//!   counted in `natter_limited_total` and `natter_errors_total{code="rate_limited"}`. Behind a
//!   proxy the peer is the proxy, trusted, so neither applies at accept: the forwarded address
//!   is budgeted by `--address-rate-*` on each request and the WebSocket upgrade counts its
//!   connections; limiting new connections there is the proxy's job (nginx `limit_conn`).
//!
//! Shutdown: stop accepting, ask every connection to finish its exchange and close (hyper's
//! graceful shutdown), and wait for them, at most [`DRAIN_LIMIT`]. WebSockets, once upgraded,
//! are the hub's to close (1001).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use natter_protocol::ErrorCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::address::{is_trusted, AddrKey, Peer};
use crate::edge::ApiError;
use crate::hub::{Hub, Refusal, Slot};
use crate::metrics::{Limit, Metrics};
use crate::socket::Socket;

/// How long shutdown waits for HTTP exchanges to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Most sockets being refused at once past the cap; beyond it they are closed unanswered, so
/// refusing cannot itself use up the open-file reserve.
const MAX_REFUSING: usize = 64;

/// Most turned-away connections kept for [`linger`] at once (counted in `natter_sockets` and
/// against `--max-connections` meanwhile, as they hold a file each); past it they are closed as
/// soon as they are answered.
const MAX_LINGERING: usize = 64;

/// How long a turned-away connection is kept to read the rest of its request (see [`linger`]).
const LINGER: Duration = Duration::from_millis(500);

/// How long a refused connection may take to send its request head, and to read the answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest request head (and read buffer) of a connection; hyper's default is 400 KiB.
const MAX_HEAD: usize = 64 * 1024;

/// How long the loop pauses after `accept` fails (out of file descriptors, usually): long
/// enough for connections to close, short enough that nobody notices.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The `--max-connections` in force: the flag (0 for none), or the open-file limit less a
/// reserve for the store, its readers, reply backends and the refusals themselves.
pub(crate) fn connection_limit(configured: Option<usize>) -> usize {
    match configured {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => match rlimit::getrlimit(rlimit::Resource::NOFILE) {
            Ok((soft, _)) => {
                let soft = usize::try_from(soft).unwrap_or(usize::MAX);
                soft.saturating_sub((soft / 16).clamp(64, 512)).max(1)
            }
            Err(_) => 10_000,
        },
    }
}

/// A socket's place in the caps: counted in `natter_sockets` (and against `--max-connections`)
/// while it lives, and against its address when it came straight from a client.
#[derive(Debug)]
pub(crate) struct Place {
    hub: Option<Hub>,
    _address: Option<Slot>,
}

impl Place {
    fn new(hub: &Hub, address: Option<Slot>) -> Place {
        Metrics::add(&hub.metrics().sockets, 1);
        Place { hub: Some(hub.clone()), _address: address }
    }

    /// A place counted nowhere (unit tests of [`Socket`]).
    #[cfg(test)]
    pub(crate) fn detached() -> Place {
        Place { hub: None, _address: None }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(hub) = &self.hub {
            hub.metrics().sockets.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What the loop does with a new connection.
enum Admission {
    /// Serve it (counted against its address when it came straight from a client).
    Admit(Option<Slot>),
    /// Answer it once with this refusal and close it.
    Refuse(Refusal),
    /// Write this refusal at once, without reading a request, and close it ([`turn_away`]).
    TurnAway(Refusal),
}

/// Serves `app` on `listener` until `shutdown` completes (see the module docs).
pub(crate) async fn serve(
    listener: TcpListener,
    hub: Hub,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limit = connection_limit(hub.config().max_connections);
    hub.metrics().max_sockets.store(u64::try_from(limit).unwrap_or(u64::MAX), Ordering::Relaxed);
    if limit < usize::MAX {
        tracing::info!(
            max_connections = limit,
            max_connections_per_address = hub.limits().connections_per_address(),
            "connections past this are refused (see --max-connections, --max-connections-per-address)"
        );
    }
    // Every connection task holds a receiver; `closed` completes when the last one ends.
    let (done_tx, done_rx) = watch::channel(());
    let (stop_tx, stop_rx) = watch::channel(false);
    let refusing = Arc::new(AtomicUsize::new(0));
    let lingering = Arc::new(AtomicUsize::new(0));
    let mut last_error_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "accept failed; pausing briefly (see --max-connections)");
                        last_error_log = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Chat frames are small and answered in bursts (ack, echo, typing, reply): without
        // TCP_NODELAY, Nagle + delayed ACKs add ~40 ms to each reply.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let config = hub.config();
        if config.socket_send_buffer > 0 {
            if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(&tcp, config.socket_send_buffer)
            {
                tracing::debug!(error = %e, "cannot set SO_SNDBUF (--socket-send-buffer)");
            }
        }
        let open = usize::try_from(hub.metrics().sockets.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        let admission = if open >= limit {
            hub.metrics().limited(Limit::Connections);
            let mut r = Refusal::new(
                ErrorCode::Unavailable,
                format!("the hub has its most connections open ({limit}); try again shortly"),
            );
            r.retry_after_ms = Some(5000);
            Admission::Refuse(r)
        } else if is_trusted(&config.trusted_proxies, peer.ip()) {
            Admission::Admit(None)
        } else {
            let addr = AddrKey::of(peer.ip());
            match hub.charge_connect(addr) {
                Err(r) => Admission::TurnAway(r),
                Ok(()) if hub.limits().connections_per_address() == 0 => Admission::Admit(None),
                Ok(()) => match hub.hold_connection(addr) {
                    Ok(slot) => Admission::Admit(Some(slot)),
                    Err(r) => Admission::TurnAway(r),
                },
            }
        };
        match admission {
            Admission::Admit(slot) => {
                let place = Place::new(&hub, slot);
                spawn_connection(tcp, peer, place, &hub, &app, &stop_rx, &done_rx);
            }
            Admission::TurnAway(refusal) => {
                turn_away(&tcp, &hub, refusal);
                if lingering.load(Ordering::Relaxed) < MAX_LINGERING {
                    // Counted as open while it lingers: it holds a file descriptor.
                    let place = Place::new(&hub, None);
                    let lingering = lingering.clone();
                    lingering.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        linger(tcp).await;
                        lingering.fetch_sub(1, Ordering::Relaxed);
                        drop(place);
                    });
                }
            }
            Admission::Refuse(refusal) => {
                if refusing.load(Ordering::Relaxed) >= MAX_REFUSING {
                    drop(tcp);
                    continue;
                }
                let place = Place::new(&hub, None);
                let (hub, refusing, done) = (hub.clone(), refusing.clone(), done_rx.clone());
                refusing.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    refuse(tcp, place, hub, refusal).await;
                    refusing.fetch_sub(1, Ordering::Relaxed);
                    drop(done);
                });
            }
        }
        // One connection, then a turn for everything else that is ready: a burst of a thousand
        // connects (a slowloris opening its sockets, a POST flood) would otherwise be taken in
        // runs of a hundred (tokio's budget) while honest frames wait behind them.
        tokio::task::yield_now().await;
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(done_rx);
    if tokio::time::timeout(DRAIN_LIMIT, done_tx.closed()).await.is_err() {
        tracing::warn!("some HTTP exchanges did not finish in time");
    }
    Ok(())
}

/// Serves one admitted connection in its own task.
fn spawn_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    place: Place,
    hub: &Hub,
    app: &Router,
    stop: &watch::Receiver<bool>,
    done: &watch::Receiver<()>,
) {
    let config = hub.config();
    let socket = Socket::new(tcp, config.idle_timeout, place);
    let app = app.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(Peer(peer));
        app.clone().oneshot(request)
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(config.header_timeout).max_buf_size(MAX_HEAD);
    let (mut stop, done) = (stop.clone(), done.clone());
    tokio::spawn(async move {
        let connection = builder.serve_connection(TokioIo::new(socket), service).with_upgrades();
        tokio::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "connection ended");
                    }
                    break;
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        drop(done);
    });
}

/// Answers a connection its address may not open at once, before reading a request, and
/// counts the refusal; the caller then closes it ([`linger`]). What the peer has sent already is
/// read and dropped first, since closing a socket with unread data resets the connection
/// instead of ending it. Nothing here waits: a peer that has not sent its request yet gets the
/// answer first (HTTP/1.1 lets a server answer and close early), and one whose socket cannot
/// take the few hundred bytes now gets only the close.
fn turn_away(tcp: &TcpStream, hub: &Hub, refusal: Refusal) {
    hub.metrics().refusal(refusal.code);
    let mut sent = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(tcp.try_read(&mut sent), Ok(n) if n == sent.len()) {
            break;
        }
    }
    let answer = ApiError::from(refusal).to_http1();
    if let Err(e) = tcp.try_write(&answer) {
        tracing::trace!(error = %e, "a turned-away connection took no answer");
    }
}

/// Ends a turned-away connection gently: says it is done (FIN) and reads and drops what the peer
/// still sends until it closes too, at most [`LINGER`]. Closed at once, a request arriving
/// after the answer would be met with a reset, and a client that is still sending may then
/// report the reset instead of the answer it was given.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if tcp.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ =
        tokio::time::timeout(LINGER, async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} })
            .await;
}

/// Answers one request on a connection past a cap, then closes it: `/healthz` as usual,
/// anything else the refusal (with `Retry-After` and `Connection: close`).
async fn refuse(tcp: TcpStream, place: Place, hub: Hub, refusal: Refusal) {
    let socket = Socket::new(tcp, REFUSAL_TIMEOUT, place);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let hub = hub.clone();
        let refusal = refusal.clone();
        async move {
            let response: Response = if request.uri().path() == "/healthz" {
                crate::http::healthz(axum::extract::State(hub)).await
            } else {
                hub.metrics().refusal(refusal.code);
                ApiError::from(refusal).into_response()
            };
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD);
    let served = builder.serve_connection(TokioIo::new(socket), service);
    if tokio::time::timeout(2 * REFUSAL_TIMEOUT, served).await.is_err() {
        tracing::trace!("a refused connection took too long; closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_a_reserve_of_open_files() {
        assert_eq!(connection_limit(Some(0)), usize::MAX);
        assert_eq!(connection_limit(Some(900)), 900);
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
        let auto = connection_limit(None);
        assert!(auto < usize::try_from(soft).unwrap_or(usize::MAX), "{auto} < {soft}");
        assert!(auto >= usize::try_from(soft).unwrap_or(0) - 512, "{auto} vs {soft}");
    }
}
