//! The floor of free space on the database's disk (`--min-free-disk`): below it the hub refuses
//! new messages from clients (`unavailable`, with how long to wait) rather than let the disk
//! fill, which would fail writes half-way, and could leave SQLite unable to write even the
//! journal it needs to delete anything.
//!
//! The free space is read with `statvfs` at most once every [`CHECK_EVERY`], not on every write;
//! between readings the last one stands. Only writes clients start are refused: operators'
//! replies and the bot's answers to messages already stored still go through (the floor is
//! their headroom), so conversations in progress can be answered while the operator frees
//! space. A hub on Redis, on `:memory:`, or on a system without `statvfs` checks nothing.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use natter_protocol::ErrorCode;
use tokio::time::Instant;

use super::{Hub, Refusal};
use crate::config::Config;
use crate::metrics::Limit;

/// How often the free space is read at most.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long a client refused for the disk is asked to wait.
const RETRY: Duration = Duration::from_secs(30);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct DiskFloor {
    /// The directory of the database file, whose disk is checked; `None`: nothing to check.
    path: Option<PathBuf>,
    /// `--min-free-disk`, bytes; 0: nothing to check.
    floor: u64,
    /// When the free space was last read, and the bytes free then.
    last: Mutex<Option<(Instant, u64)>>,
}

impl DiskFloor {
    /// The floor the configuration asks for.
    pub(crate) fn new(config: &Config) -> DiskFloor {
        let on_disk = config.redis_url.is_none() && config.db.as_os_str() != ":memory:";
        DiskFloor {
            path: (on_disk && config.min_free_disk > 0).then(|| match config.db.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            }),
            floor: config.min_free_disk,
            last: Mutex::new(None),
        }
    }

    /// The bytes free on the database's disk, read again if the last reading is older than
    /// [`CHECK_EVERY`]; `None` when there is nothing to check or it cannot be read.
    fn free(&self) -> Option<u64> {
        let path = self.path.as_ref()?;
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, free)) = *last {
            if now.saturating_duration_since(at) < CHECK_EVERY {
                return Some(free);
            }
        }
        let free = free_bytes(path)?;
        *last = Some((now, free));
        Some(free)
    }
}

/// The bytes of the file system holding `path` that an unprivileged process may still write.
#[cfg(unix)]
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    match rustix::fs::statvfs(path) {
        Ok(s) => Some(s.f_bavail.saturating_mul(s.f_frsize)),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "free disk space not read");
            None
        }
    }
}

#[cfg(not(unix))]
fn free_bytes(_: &std::path::Path) -> Option<u64> {
    None
}

impl Hub {
    /// Refuses a client's new message when the database's disk has less than `--min-free-disk`
    /// free: `unavailable` (HTTP 503) with how long to wait, counted as
    /// `natter_limited_total{limit="min_free_disk"}`.
    pub(crate) fn check_disk(&self) -> Result<(), Refusal> {
        let floor = &self.shared.disk;
        let Some(free) = floor.free() else { return Ok(()) };
        if free >= floor.floor {
            return Ok(());
        }
        self.shared.metrics.limited(Limit::MinFreeDisk);
        let mut r = Refusal::new(
            ErrorCode::Unavailable,
            format!(
                "the hub's disk is almost full ({free} bytes free, less than --min-free-disk, {} bytes); \
                 new messages are refused until space is freed, try again later",
                floor.floor
            ),
        );
        r.retry_after_ms = Some(u64::try_from(RETRY.as_millis()).unwrap_or(u64::MAX));
        Err(r)
    }
}
