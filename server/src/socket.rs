//! `Socket`: an accepted TCP stream as the hub serves it.
//!
//! Two things every connection needs whatever it turns out to be (an HTTP exchange, a
//! long-poll, a WebSocket after its upgrade):
//! - **A deadline on every write.** A write or flush that makes no progress for
//!   `--idle-timeout` fails with `TimedOut`, which ends the connection. A peer that stops
//!   reading fills its kernel buffers and then holds nothing more of the hub's: not an HTTP
//!   answer, not a WebSocket, whatever frames it still sends. The timer exists only while a
//!   write waits, so an idle connection pays nothing for it.
//! - **Its place in the caps.** The accept loop's [`Place`] (counting it against
//!   `--max-connections` and, for a direct peer, `--max-connections-per-address`) lives inside
//!   the socket, so it is given back when the socket closes — also after a WebSocket upgrade,
//!   when hyper hands the socket over and its own connection task has long ended.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::accept::Place;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Socket {
    tcp: TcpStream,
    /// How long a write may wait.
    write_limit: Duration,
    /// The running deadline of a write that waits; `None` while writes go through.
    stall: Option<Pin<Box<Sleep>>>,
    /// Counted while the socket lives.
    _place: Place,
}

impl Socket {
    /// `tcp`, whose writes give up after `write_limit` without progress, holding `place`.
    pub(crate) fn new(tcp: TcpStream, write_limit: Duration, place: Place) -> Socket {
        Socket { tcp, write_limit, stall: None, _place: place }
    }

    /// A write went through (or failed on its own): no deadline runs.
    fn progressed<T>(&mut self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.stall = None;
        result
    }

    /// A write is waiting: start its deadline if it is not running, and fail when it passes.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.write_limit;
        let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.tcp).poll_write(cx, buf) {
            Poll::Pending => self.waiting(cx),
            done => self.progressed(done),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.waiting(cx),
            done => self.progressed(done),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.tcp).poll_flush(cx) {
            Poll::Pending => self.waiting(cx),
            done => self.progressed(done),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.tcp).poll_shutdown(cx) {
            Poll::Pending => self.waiting(cx),
            done => self.progressed(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A peer that never reads: writes fill the kernel buffers, then the next one waits, and
    /// after the limit it fails instead of waiting for ever.
    #[tokio::test]
    async fn a_write_nobody_reads_gives_up_after_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _peer = TcpStream::connect(addr).await.expect("connect");
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut socket = Socket::new(tcp, Duration::from_millis(300), Place::detached());
        let chunk = vec![0u8; 64 * 1024];
        let started = tokio::time::Instant::now();
        let error = loop {
            if let Err(e) = socket.write_all(&chunk).await {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the write never gave up");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
