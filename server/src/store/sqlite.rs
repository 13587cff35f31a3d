//! The default engine: one SQLite file, for one hub. Survives restarts and `kill -9`.
//!
//! # How it works
//! - **One writer thread** owns the only writing connection. `append` and `create_room` send it
//!   an operation over a channel and await a oneshot, so the async runtime never blocks on disk.
//!   The thread takes everything that has queued up (up to [`SqliteOptions::max_batch`]) and
//!   writes it in **one transaction**: one `COMMIT` (one WAL append, one sync in `full` mode)
//!   pays for the whole batch, which is how a 2-core machine acknowledges tens of thousands of
//!   messages per second. The operator inbox's writes (a conversation record changed for each
//!   visitor and bot message, operators, notes) share that transaction, each in a savepoint of
//!   its own so that one that fails is undone alone: a burst of fresh conversations used to
//!   cost a `COMMIT` per record change, and held every append queued behind them.
//! - **Acknowledged means committed**: an append's future completes only after its batch's
//!   `COMMIT` returned. With `journal_mode=WAL` and `synchronous=NORMAL` (the default) a
//!   committed transaction is in the WAL file in the OS page cache, so it survives the hub
//!   process crashing or being `kill -9`ed; surviving a power cut or kernel crash as well needs
//!   `synchronous=FULL` ([`SyncMode::Full`]), which fsyncs the WAL at every commit.
//! - **Ordered delivery**: after the `COMMIT`, and before any of the batch's appends is
//!   answered, the thread emits the batch's [`Event::Stored`]s in order on the delivery stream.
//!   Within a conversation that is `seq` order, and a caller that has its answer knows its event
//!   is already queued ahead of anything it publishes next.
//! - **seq and de-duplication**: `conversations.last_seq` is the per-conversation counter (kept
//!   in the table, not derived from `MAX(seq)`, so retention deleting every message of a
//!   conversation never makes seq start over), cached in the writer after first use.
//!   `UNIQUE(conversation, sender, msg_id)` backs the duplicate check: a re-sent id gets its
//!   original seq with `duplicate: true`, even after a restart, and only its own sender's
//!   ([`Draft::sender`](super::Draft::sender)) — another member's message with that id is stored.
//! - **Reads** (`history`, `recent`, rooms) use a small pool of separate read connections on
//!   tokio's blocking pool; WAL lets them read a consistent snapshot while the writer writes.
//!   A `:memory:` database exists only inside its one connection, so there reads go through the
//!   writer thread too.
//! - **Schema**: a `schema_version` table and an ordered list of migrations applied at open, each
//!   in its own transaction. A database written by a newer hub is refused rather than guessed at.
//! - **Retention**: with [`SqliteOptions::retention`] set, the writer deletes messages older than
//!   that every few minutes (in chunks, so appends are not held up behind one huge delete);
//!   [`HistoryPage::first_available`] then tells a resuming client where history starts.
//!
//! Frames are stored whole (the JSON the clients receive, with its seq) next to the columns
//! that are queried, so a history read is a range scan and no re-assembly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

mod inbox;

use super::engine::{self, Subscribers};
use super::{
    Appended, BoxFuture, ConversationKey, Draft, Event, HistoryPage, RoomRecord, Store, StoreError,
    StoredFrame,
};

/// How hard a `COMMIT` works to be durable. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `synchronous=NORMAL`: committed data survives a crash or `kill -9` of the hub; the last
    /// transactions before a power cut or kernel crash may be lost (never corrupted). Fast.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is fsynced at every commit, so committed data also survives
    /// a power cut. Each batch then waits for the disk.
    Full,
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file, created when missing; `:memory:` for a throwaway database.
    pub path: PathBuf,
    /// Delete messages older than this; `None` (the default) keeps everything.
    pub retention: Option<Duration>,
    /// How often the retention sweep runs (default 5 minutes).
    pub retention_interval: Duration,
    /// Durability of a commit (default [`SyncMode::Normal`]).
    pub sync: SyncMode,
    /// At most this many operations share one transaction (default 2,000).
    pub max_batch: usize,
}

impl SqliteOptions {
    /// Options for `path` with every default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            path: path.into(),
            retention: None,
            retention_interval: Duration::from_secs(300),
            sync: SyncMode::Normal,
            max_batch: 2000,
        }
    }

    fn in_memory(&self) -> bool {
        self.path.as_os_str() == ":memory:"
    }
}

/// The SQLite engine. See the module docs.
pub struct SqliteStore {
    /// To the writer thread; `None` only while dropping.
    writer: Option<std_mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    /// Read connections; `None` for `:memory:`, where reads go through the writer.
    readers: Option<Arc<ReadPool>>,
    subscribers: Arc<Subscribers>,
    healthy: Arc<AtomicBool>,
    /// Stops (when dropped) and joins the checkpoint thread; `None` for `:memory:`.
    checkpointer: Option<(std_mpsc::Sender<()>, JoinHandle<()>)>,
}

/// Where the writer answers an operation.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A read that must run on the writer's connection (`:memory:`); it answers by itself.
type ReadOp = Box<dyn FnOnce(&Connection) + Send>;

/// A write of the operator inbox (a conversation record, an operator, a note), run inside the
/// batch's transaction in a savepoint of its own (see [`Writer::process`]).
/// It is given the connection, or the error that kept it from running.
type WriteOp = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Written + Send>;

/// How a [`WriteOp`] is answered once the batch's `COMMIT` is known: `Some(error)` when the
/// commit failed.
type Answer = Box<dyn FnOnce(Option<StoreError>) + Send>;

/// What a [`WriteOp`] did: whether its changes are kept (it succeeded), and its answer.
struct Written {
    kept: bool,
    answer: Answer,
}

/// Something for the writer thread to do.
enum Op {
    Append {
        key: ConversationKey,
        draft: Draft,
        reply: Reply<Appended>,
    },
    CreateRoom {
        room: RoomRecord,
        reply: Reply<bool>,
    },
    PutRoom {
        room: RoomRecord,
        reply: Reply<bool>,
    },
    /// Deletes a room and its history: after the batch, in its own transaction.
    DeleteRoom {
        room: String,
        reply: Reply<bool>,
    },
    Purge {
        cutoff_ms: i64,
        reply: Reply<u64>,
    },
    /// `keep` is a JSON array of room ids.
    ExpireRooms {
        created_before: String,
        keep: String,
        reply: Reply<u64>,
    },
    /// An inbox write: in the batch's transaction, answered after its `COMMIT`.
    Write(WriteOp),
    Read(ReadOp),
}

/// The migrations, in order; `MIGRATIONS[i]` brings the schema to version `i + 1`. Append only:
/// a shipped migration is never edited, because databases in the field already ran it.
const MIGRATIONS: &[&str] = &[
    // 1: conversations with their seq counter, messages, rooms.
    "CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        last_seq INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE messages (
        conversation INTEGER NOT NULL REFERENCES conversations(id),
        seq INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        frame TEXT NOT NULL,
        UNIQUE (conversation, seq),
        UNIQUE (conversation, msg_id)
    );
    CREATE INDEX messages_by_age ON messages (created_at);
    CREATE TABLE rooms (
        room TEXT PRIMARY KEY,
        name TEXT,
        metadata TEXT NOT NULL,
        created_at TEXT NOT NULL
    );",
    // 2: the hub's own secret (keys issued sessions and member ids), made once, kept forever.
    "CREATE TABLE hub_secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );",
    // 3: the operator inbox (self-contained: it refers to no table of another migration).
    // Operators and their sign-in sessions (stored by the SHA-256 of the cookie), each support
    // conversation's record (JSON, with the columns the list filters and sorts on), private
    // notes and canned replies.
    "CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE operator_sessions (
        token_hash TEXT PRIMARY KEY,
        operator TEXT NOT NULL REFERENCES operators(name) ON DELETE CASCADE,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator);
    CREATE TABLE inbox_conversations (
        id TEXT PRIMARY KEY,
        conversation TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        assignee TEXT,
        last_activity_ms INTEGER NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX inbox_conversations_by_activity ON inbox_conversations (status, last_activity_ms);
    CREATE TABLE inbox_notes (
        id TEXT PRIMARY KEY,
        conversation TEXT NOT NULL,
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX inbox_notes_by_conversation ON inbox_notes (conversation, created_ms);
    CREATE TABLE canned_replies (
        shortcut TEXT PRIMARY KEY,
        text TEXT NOT NULL
    );",
    // 4: message ids are unique per sender, not per conversation (one member could otherwise
    // swallow another's message by sending its id first). SQLite cannot change a UNIQUE
    // constraint in place, so the table is rebuilt; the sender of a stored message is read
    // from its frame, as `Draft::sender` does: a `user` message is its session's (the
    // conversation key `s:<session>`), a `chat` message its member's, the rest the hub's ('').
    // An `agent` reply stored before this names only its author's display name, not the
    // operator's account, so it stays the hub's: only a re-send of it across the upgrade would
    // be stored a second time.
    "CREATE TABLE messages_v2 (
        conversation INTEGER NOT NULL REFERENCES conversations(id),
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        frame TEXT NOT NULL,
        UNIQUE (conversation, seq),
        UNIQUE (conversation, sender, msg_id)
    );
    INSERT INTO messages_v2 (conversation, seq, sender, msg_id, kind, created_at, frame)
        SELECT m.conversation, m.seq,
               CASE m.kind
                   WHEN 'user' THEN substr(c.key, 3)
                   WHEN 'chat' THEN COALESCE(json_extract(m.frame, '$.from.id'), '')
                   ELSE ''
               END,
               m.msg_id, m.kind, m.created_at, m.frame
        FROM messages m JOIN conversations c ON c.id = m.conversation;
    DROP TABLE messages;
    ALTER TABLE messages_v2 RENAME TO messages;
    CREATE INDEX messages_by_age ON messages (created_at);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Retention deletes at most this many rows per transaction.
const PURGE_CHUNK: i64 = 5000;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database, and starts the writer thread.
    /// Does blocking file I/O: call it at start, or from `spawn_blocking`.
    pub fn open(options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let memory = options.in_memory();
        let mut conn = open_connection(&options.path, options.sync, false)?;
        migrate(&mut conn)?;
        let readers = if memory { None } else { Some(Arc::new(ReadPool::new(options.path.clone()))) };
        let subscribers = Arc::new(Subscribers::new());
        let healthy = Arc::new(AtomicBool::new(true));
        let (tx, rx) = std_mpsc::channel();
        let writer = Writer {
            conn,
            rx,
            subscribers: subscribers.clone(),
            healthy: healthy.clone(),
            conversations: HashMap::new(),
            max_batch: options.max_batch.max(1),
            retention: options.retention,
            retention_interval: options.retention_interval.max(Duration::from_millis(10)),
            slow_logged: None,
        };
        let thread = std::thread::Builder::new()
            .name("natter-sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| backend(format!("cannot start the SQLite writer thread: {e}")))?;
        let checkpointer = if memory {
            None
        } else {
            let conn = open_connection(&options.path, options.sync, false)?;
            let (stop, stopped) = std_mpsc::channel();
            let thread = std::thread::Builder::new()
                .name("natter-sqlite-checkpoint".into())
                .spawn(move || run_checkpoints(&conn, &stopped))
                .map_err(|e| backend(format!("cannot start the SQLite checkpoint thread: {e}")))?;
            Some((stop, thread))
        };
        tracing::info!(path = %options.path.display(), schema = SCHEMA_VERSION, "SQLite store open");
        Ok(SqliteStore {
            writer: Some(tx),
            thread: Some(thread),
            readers,
            subscribers,
            healthy,
            checkpointer,
        })
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        self.writer.as_ref().ok_or_else(writer_gone)?.send(op).map_err(|_| writer_gone())
    }

    /// Deletes every message stored before `cutoff` now (what the retention sweep does with
    /// `now - retention`); returns how many went.
    pub async fn purge_older_than(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Purge { cutoff_ms: crate::clock::unix_ms(cutoff), reply })?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` on a read connection, off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.readers {
            Some(pool) => {
                let _turn = pool.turns.acquire().await.map_err(|_| backend("the read pool is closed"))?;
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || pool.with(f))
                    .await
                    .map_err(|e| backend(format!("read task failed: {e}")))?
            }
            None => {
                let (reply, rx) = oneshot::channel();
                self.send(Op::Read(Box::new(move |conn| {
                    let _ = reply.send(f(conn));
                })))?;
                rx.await.map_err(|_| writer_gone())?
            }
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and close the database
        // cleanly (a WAL checkpoint); waiting for it means a store reopened right after sees
        // everything.
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store for SqliteStore {
    fn append(&self, key: &ConversationKey, draft: Draft) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let key = key.clone();
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.send(Op::Append { key, draft, reply })?;
            rx.await.map_err(|_| writer_gone())?
        })
    }

    fn history(
        &self,
        key: &ConversationKey,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let key = key.storage_key();
        Box::pin(self.read(move |conn| read_page(conn, &key, Page::After(after), limit)))
    }

    fn recent(&self, key: &ConversationKey, limit: usize) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let key = key.storage_key();
        Box::pin(self.read(move |conn| read_page(conn, &key, Page::Newest, limit)))
    }

    fn read_turns(&self) -> usize {
        // A database in memory is read by its writer thread, one read at a time.
        self.readers.as_ref().map_or(1, |pool| pool.size)
    }

    fn publish_ephemeral(&self, event: Event) -> BoxFuture<'_, Result<(), StoreError>> {
        // One hub: the delivery stream is this process's; nothing to store or send anywhere.
        self.subscribers.emit(event);
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        self.subscribers.subscribe()
    }

    fn create_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.send(Op::CreateRoom { room, reply })?;
            rx.await.map_err(|_| writer_gone())?
        })
    }

    fn put_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.send(Op::PutRoom { room, reply })?;
            rx.await.map_err(|_| writer_gone())?
        })
    }

    fn delete_room(&self, room: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let room = room.to_owned();
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.send(Op::DeleteRoom { room, reply })?;
            rx.await.map_err(|_| writer_gone())?
        })
    }

    fn room(&self, room: &str) -> BoxFuture<'_, Result<Option<RoomRecord>, StoreError>> {
        let room = room.to_owned();
        Box::pin(self.read(move |conn| {
            conn.prepare_cached("SELECT room, name, metadata, created_at FROM rooms WHERE room = ?1")
                .and_then(|mut stmt| stmt.query_row([&room], room_row).optional())
                .map_err(backend)?
                .map(room_record)
                .transpose()
        }))
    }

    fn rooms(&self, after: Option<&str>, limit: usize) -> BoxFuture<'_, Result<Vec<RoomRecord>, StoreError>> {
        let after = after.unwrap_or_default().to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT room, name, metadata, created_at FROM rooms WHERE room > ?1 ORDER BY room LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt.query_map(params![after, limit], room_row).map_err(backend)?;
            rows.map(|row| room_record(row.map_err(backend)?)).collect()
        }))
    }

    fn expire_empty_rooms(
        &self,
        created_before: String,
        keep: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let keep = serde_json::to_string(&keep).map_err(backend)?;
            let (reply, rx) = oneshot::channel();
            self.send(Op::ExpireRooms { created_before, keep, reply })?;
            rx.await.map_err(|_| writer_gone())?
        })
    }

    fn hub_secret(&self, fresh: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            // On the writer's connection (the only one that writes), in autocommit: a one-row
            // insert that keeps an existing secret, then the secret that is kept.
            self.send(Op::Read(Box::new(move |conn| {
                let kept = conn
                    .execute(
                        "INSERT OR IGNORE INTO hub_secrets (name, value) VALUES ('session', ?1)",
                        [&fresh],
                    )
                    .and_then(|_| {
                        conn.query_row("SELECT value FROM hub_secrets WHERE name = 'session'", [], |r| {
                            r.get(0)
                        })
                    })
                    .map_err(backend);
                let _ = reply.send(kept);
            })))?;
            rx.await.map_err(|_| writer_gone())?
        })
    }

    fn inbox(&self) -> Option<&dyn super::inbox::InboxStore> {
        Some(self)
    }

    fn healthy(&self) -> bool {
        // Unhealthy after a failed commit (until one succeeds) or when the writer is gone.
        let writer_alive = self.thread.as_ref().is_some_and(|t| !t.is_finished());
        writer_alive && self.healthy.load(Ordering::Relaxed)
    }
}

/// A room row as stored; the metadata column is JSON text.
type RoomRow = (String, Option<String>, String, String);

fn room_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RoomRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn room_record((room, name, metadata, created_at): RoomRow) -> Result<RoomRecord, StoreError> {
    let metadata = serde_json::from_str(&metadata).map_err(backend)?;
    Ok(RoomRecord { room, name, metadata, created_at })
}

/// Which page of a conversation to read.
enum Page {
    After(u64),
    Newest,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads one page inside one read transaction, so `messages`, `last_seq` and
/// `first_available` describe the same moment.
fn read_page(conn: &Connection, key: &str, page: Page, limit: usize) -> Result<HistoryPage, StoreError> {
    let tx = conn.unchecked_transaction().map_err(backend)?;
    let conversation: Option<(i64, i64)> = tx
        .prepare_cached("SELECT id, last_seq FROM conversations WHERE key = ?1")
        .and_then(|mut stmt| stmt.query_row([key], |row| Ok((row.get(0)?, row.get(1)?))).optional())
        .map_err(backend)?;
    let Some((conversation, last_seq)) = conversation else {
        return Ok(HistoryPage { messages: Vec::new(), last_seq: 0, first_available: 1 });
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let row = |row: &rusqlite::Row<'_>| -> rusqlite::Result<StoredFrame> {
        Ok(StoredFrame { seq: to_u64(row.get(0)?), json: row.get::<_, String>(1)?.into() })
    };
    let messages: Vec<StoredFrame> = match page {
        Page::After(after) => {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, frame FROM messages WHERE conversation = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = stmt.query_map(params![conversation, to_i64(after), limit], row);
            rows.and_then(|rows| rows.collect()).map_err(backend)?
        }
        Page::Newest => {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, frame FROM messages WHERE conversation = ?1 ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt.query_map(params![conversation, limit], row);
            let mut messages: Vec<StoredFrame> = rows.and_then(|rows| rows.collect()).map_err(backend)?;
            messages.reverse();
            messages
        }
    };
    let first: Option<i64> = tx
        .prepare_cached("SELECT MIN(seq) FROM messages WHERE conversation = ?1")
        .and_then(|mut stmt| stmt.query_row([conversation], |row| row.get(0)))
        .map_err(backend)?;
    drop(tx);
    let last_seq = to_u64(last_seq);
    Ok(HistoryPage { messages, last_seq, first_available: first.map_or(last_seq + 1, to_u64) })
}

/// Opens a connection with the pragmas every connection needs.
fn open_connection(path: &Path, sync: SyncMode, read_only: bool) -> Result<Connection, StoreError> {
    let conn = if read_only {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )
    } else {
        Connection::open(path)
    }
    .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
    // Another process (a backup, sqlite3 in a shell) may hold a lock for a moment: wait rather
    // than fail the batch.
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    if !read_only {
        // WAL: readers never block the writer and one commit is one sequential append.
        // `:memory:` answers "memory" here; that is fine.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).map_err(backend)?;
        let sync = match sync {
            SyncMode::Normal => "NORMAL",
            SyncMode::Full => "FULL",
        };
        // Checkpoints (copying the WAL back into the database file, with its fsyncs) run on
        // their own thread (`run_checkpoints`), so the writer does not pay for them; the writer
        // checkpoints by itself only past ~80 MB of WAL, as a backstop. After a checkpoint the
        // WAL file is cut back to 64 MB.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 20000; PRAGMA journal_size_limit = 67108864;"
        ))
        .map_err(backend)?;
    }
    Ok(conn)
}

/// Brings the schema up to [`SCHEMA_VERSION`].
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )
    .map_err(backend)?;
    let current: u32 = conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |row| row.get(0))
        .map_err(backend)?;
    if current > SCHEMA_VERSION {
        return Err(backend(format!(
            "the database has schema version {current}, newer than this hub's {SCHEMA_VERSION}; \
             run a newer natter-hub or restore a backup"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        tx.execute_batch(sql).map_err(|e| backend(format!("migration {version} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![version, crate::clock::unix_ms(SystemTime::now())],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version, "SQLite schema migrated");
    }
    Ok(())
}

/// How often the checkpoint thread copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The checkpoint thread: a `PASSIVE` checkpoint (never blocks the writer or readers) every
/// [`CHECKPOINT_EVERY`] until `stop` hangs up.
fn run_checkpoints(conn: &Connection, stop: &std_mpsc::Receiver<()>) {
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint failed; the next one will retry");
        }
    }
}

/// Idle read connections, opened on demand, and turns to read.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One turn per CPU the hub may use: each read runs on a blocking thread, and with more of
    /// them than CPUs the async workers that deliver messages get a share of the CPU each, so
    /// 16 large history reads at once (a burst of resumes from `after=0`) made every honest
    /// delivery wait for them; past the turns, reads wait in line instead.
    turns: tokio::sync::Semaphore,
    /// How many turns there are.
    size: usize,
}

impl ReadPool {
    fn new(path: PathBuf) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        ReadPool { path, idle: Mutex::new(Vec::new()), turns: tokio::sync::Semaphore::new(cpus), size: cpus }
    }

    /// Connections kept open between reads (the blocking pool may run more reads at once; those
    /// open a connection and close it after).
    const KEEP: usize = 4;

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => open_connection(&self.path, SyncMode::Normal, true)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < Self::KEEP {
            idle.push(conn);
        }
        result
    }
}

/// A conversation's row id and newest seq, as the writer knows them.
#[derive(Debug, Clone, Copy)]
struct Conversation {
    id: i64,
    last_seq: u64,
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    rx: std_mpsc::Receiver<Op>,
    subscribers: Arc<Subscribers>,
    healthy: Arc<AtomicBool>,
    /// Cache of committed conversation counters, by storage key.
    conversations: HashMap<String, Conversation>,
    max_batch: usize,
    retention: Option<Duration>,
    retention_interval: Duration,
    /// When a slow batch was last logged (see [`SLOW_BATCH`]).
    slow_logged: Option<Instant>,
}

/// A write batch that takes this long is logged (a warning, at most one per
/// [`SLOW_BATCH_LOG_EVERY`]): every append in it, and every one queued behind it, waited as
/// long, so a visitor's message took that much longer to be acknowledged and delivered.
const SLOW_BATCH: Duration = Duration::from_millis(250);

/// The shortest time between two slow-batch warnings.
const SLOW_BATCH_LOG_EVERY: Duration = Duration::from_secs(10);

/// An append that was written inside the current transaction and waits for its `COMMIT`.
struct Pending {
    reply: Reply<Appended>,
    result: Result<Appended, StoreError>,
    event: Option<Event>,
}

impl Writer {
    fn run(mut self) {
        let mut next_purge = Instant::now();
        loop {
            let first = match self.retention {
                None => match self.rx.recv() {
                    Ok(op) => op,
                    Err(_) => break,
                },
                Some(retention) => {
                    let wait = next_purge.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(wait) {
                        Ok(op) => op,
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {
                            let cutoff = crate::clock::unix_ms(SystemTime::now() - retention);
                            next_purge = match self.purge_chunk(cutoff) {
                                // More to delete: go on after serving what has queued meanwhile.
                                Ok(n) if n >= PURGE_CHUNK as u64 => Instant::now(),
                                Ok(_) => Instant::now() + self.retention_interval,
                                Err(e) => {
                                    tracing::warn!(error = %e, "retention sweep failed");
                                    Instant::now() + self.retention_interval
                                }
                            };
                            continue;
                        }
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let (ops, started) = (batch.len(), Instant::now());
            self.process(batch);
            self.note_slow(ops, started.elapsed());
        }
        // Everyone has hung up: checkpoint so the next open starts from a compact file.
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::debug!(error = %e, "final WAL checkpoint failed");
        }
    }

    /// Logs a batch of `ops` operations that took `took` when it is slow (see [`SLOW_BATCH`]).
    fn note_slow(&mut self, ops: usize, took: Duration) {
        if took < SLOW_BATCH || self.slow_logged.is_some_and(|t| t.elapsed() < SLOW_BATCH_LOG_EVERY) {
            return;
        }
        self.slow_logged = Some(Instant::now());
        tracing::warn!(
            ops,
            took_ms = took.as_millis() as u64,
            "a SQLite write batch was slow; messages waited that long to be stored (a slow or busy disk?)"
        );
    }

    /// Writes a batch in one transaction, then emits and answers.
    fn process(&mut self, batch: Vec<Op>) {
        let mut appends: Vec<Pending> = Vec::new();
        let mut rooms: Vec<(Reply<bool>, Result<bool, StoreError>)> = Vec::new();
        let mut reads: Vec<ReadOp> = Vec::new();
        let mut writes: Vec<Answer> = Vec::new();
        let mut purges = Vec::new();
        let mut expiries = Vec::new();
        let mut deletions = Vec::new();
        let mut touched: HashMap<String, Conversation> = HashMap::new();

        let committed = match self.conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Err(e) => Err(backend(e)),
            Ok(tx) => {
                let now = crate::clock::unix_ms(SystemTime::now());
                for op in batch {
                    match op {
                        Op::Append { key, draft, reply } => {
                            let (result, event) =
                                append_one(&tx, &self.conversations, &mut touched, &key, draft, now);
                            appends.push(Pending { reply, result, event });
                        }
                        Op::CreateRoom { room, reply } => rooms.push((reply, insert_room(&tx, &room))),
                        Op::PutRoom { room, reply } => rooms.push((reply, put_room(&tx, &room))),
                        Op::DeleteRoom { room, reply } => deletions.push((room, reply)),
                        Op::Write(write) => writes.push(write_one(&tx, write)),
                        Op::Read(read) => reads.push(read),
                        Op::Purge { cutoff_ms, reply } => purges.push((cutoff_ms, reply)),
                        Op::ExpireRooms { created_before, keep, reply } => {
                            expiries.push((created_before, keep, reply))
                        }
                    }
                }
                let counters = touched.values().try_for_each(|c| {
                    tx.prepare_cached("UPDATE conversations SET last_seq = ?1 WHERE id = ?2")
                        .and_then(|mut stmt| stmt.execute(params![to_i64(c.last_seq), c.id]))
                        .map(|_| ())
                });
                counters.and_then(|()| tx.commit()).map_err(backend)
            }
        };

        match committed {
            Ok(()) => {
                self.healthy.store(true, Ordering::Relaxed);
                self.conversations.extend(touched);
                let events: Vec<Event> = appends.iter_mut().filter_map(|p| p.event.take()).collect();
                // Emitted before anyone is answered: see the module docs.
                self.subscribers.emit_all(events);
                for p in appends {
                    let _ = p.reply.send(p.result);
                }
                for (reply, result) in rooms {
                    let _ = reply.send(result);
                }
                for answer in writes {
                    answer(None);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "SQLite commit failed; the batch is refused");
                self.healthy.store(false, Ordering::Relaxed);
                // Row ids of conversations made in the rolled-back transaction are void.
                self.conversations.clear();
                for p in appends {
                    let _ = p.reply.send(Err(StoreError::Backend(e.to_string())));
                }
                for (reply, _) in rooms {
                    let _ = reply.send(Err(StoreError::Backend(e.to_string())));
                }
                for answer in writes {
                    answer(Some(StoreError::Backend(e.to_string())));
                }
            }
        }
        for read in reads {
            read(&self.conn);
        }
        for (room, reply) in deletions {
            let _ = reply.send(self.delete_room(&room));
        }
        for (created_before, keep, reply) in expiries {
            let _ = reply.send(self.expire_rooms(&created_before, &keep));
        }
        for (cutoff, reply) in purges {
            let mut total = 0;
            let result = loop {
                match self.purge_chunk(cutoff) {
                    Ok(n) => {
                        total += n;
                        if n < PURGE_CHUNK as u64 {
                            break Ok(total);
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            let _ = reply.send(result);
        }
    }

    /// Deletes the rooms created before `created_before` that hold no message and are not in
    /// `keep` (a JSON array of ids); one statement, its own transaction.
    fn expire_rooms(&mut self, created_before: &str, keep: &str) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM rooms WHERE created_at < ?1
                   AND room NOT IN (SELECT value FROM json_each(?2))
                   AND NOT EXISTS (SELECT 1 FROM conversations c JOIN messages m ON m.conversation = c.id
                                   WHERE c.key = 'r:' || rooms.room)",
                params![created_before, keep],
            )
            .map_err(backend)?;
        if n > 0 {
            tracing::info!(deleted = n, "empty rooms expired");
        }
        Ok(n as u64)
    }

    /// Deletes a room and its messages in one transaction; `true` when the room existed. Its
    /// conversation row, with the seq counter, stays: a room made again under this id numbers
    /// on from where the deleted one stopped (see `Store::delete_room`).
    fn delete_room(&mut self, room: &str) -> Result<bool, StoreError> {
        let key = ConversationKey::Room(room.into()).storage_key();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        let existed = tx.execute("DELETE FROM rooms WHERE room = ?1", [room]).map_err(backend)? == 1;
        tx.execute(
            "DELETE FROM messages WHERE conversation IN (SELECT id FROM conversations WHERE key = ?1)",
            [&key],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(existed)
    }

    /// Deletes up to [`PURGE_CHUNK`] messages older than `cutoff_ms`.
    fn purge_chunk(&mut self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM messages WHERE rowid IN
                   (SELECT rowid FROM messages WHERE created_at < ?1 LIMIT ?2)",
                params![cutoff_ms, PURGE_CHUNK],
            )
            .map_err(backend)?;
        if n > 0 {
            tracing::info!(deleted = n, "retention: old messages deleted");
        }
        Ok(n as u64)
    }
}

/// Runs one inbox write inside the batch's transaction, in a savepoint: a write that fails is
/// undone alone, and the others of the batch are kept. Its answer waits for the `COMMIT`.
fn write_one(tx: &rusqlite::Transaction<'_>, write: WriteOp) -> Answer {
    if let Err(e) = tx.execute_batch("SAVEPOINT inbox_write") {
        // It could not be undone alone, so it is not run.
        return write(Err(backend(e))).answer;
    }
    let written = write(Ok(tx));
    let end =
        if written.kept { "RELEASE inbox_write" } else { "ROLLBACK TO inbox_write; RELEASE inbox_write" };
    match tx.execute_batch(end) {
        Ok(()) => written.answer,
        Err(e) => {
            let e = backend(e);
            Box::new(move |_| (written.answer)(Some(e)))
        }
    }
}

/// Stores one draft inside the batch's transaction (or finds its duplicate).
fn append_one(
    tx: &rusqlite::Transaction<'_>,
    cache: &HashMap<String, Conversation>,
    touched: &mut HashMap<String, Conversation>,
    key: &ConversationKey,
    draft: Draft,
    now: i64,
) -> (Result<Appended, StoreError>, Option<Event>) {
    let storage_key = key.storage_key();
    let result = (|| {
        let conversation = match touched.get(&storage_key).or_else(|| cache.get(&storage_key)) {
            Some(c) => *c,
            None => load_conversation(tx, &storage_key, now)?,
        };
        // Insert first and look only when the id turns out to be taken: a re-send is rare,
        // and this saves an index lookup on every new message.
        let seq = conversation.last_seq + 1;
        let sender = draft.sender().into_owned();
        let mut message = draft.message;
        engine::set_seq(&mut message, seq)?;
        let frame = serde_json::to_string(&message).map_err(backend)?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO messages (conversation, seq, sender, msg_id, kind, created_at, frame)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (conversation, sender, msg_id) DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    conversation.id,
                    to_i64(seq),
                    sender,
                    draft.id,
                    message.kind(),
                    now,
                    frame
                ])
            })
            .map_err(backend)?;
        if inserted == 0 {
            let first: i64 = tx
                .prepare_cached(
                    "SELECT seq FROM messages WHERE conversation = ?1 AND sender = ?2 AND msg_id = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![conversation.id, sender, draft.id], |row| row.get(0))
                })
                .map_err(backend)?;
            touched.insert(storage_key.clone(), conversation);
            return Ok((Appended { seq: to_u64(first), duplicate: true }, None));
        }
        touched.insert(storage_key.clone(), Conversation { id: conversation.id, last_seq: seq });
        Ok((Appended { seq, duplicate: false }, Some(Event::Stored { key: key.clone(), message })))
    })();
    match result {
        Ok((appended, event)) => (Ok(appended), event),
        Err(e) => (Err(e), None),
    }
}

/// A conversation's row, made on first use.
fn load_conversation(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    now: i64,
) -> Result<Conversation, StoreError> {
    let found: Option<(i64, i64)> = tx
        .prepare_cached("SELECT id, last_seq FROM conversations WHERE key = ?1")
        .and_then(|mut stmt| stmt.query_row([key], |row| Ok((row.get(0)?, row.get(1)?))).optional())
        .map_err(backend)?;
    if let Some((id, last_seq)) = found {
        return Ok(Conversation { id, last_seq: to_u64(last_seq) });
    }
    tx.prepare_cached("INSERT INTO conversations (key, last_seq, created_at) VALUES (?1, 0, ?2)")
        .and_then(|mut stmt| stmt.execute(params![key, now]))
        .map_err(backend)?;
    Ok(Conversation { id: tx.last_insert_rowid(), last_seq: 0 })
}

/// `INSERT OR IGNORE`s a room; `true` when it was new.
fn insert_room(tx: &rusqlite::Transaction<'_>, room: &RoomRecord) -> Result<bool, StoreError> {
    let metadata = serde_json::to_string(&room.metadata).map_err(backend)?;
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO rooms (room, name, metadata, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut stmt| stmt.execute(params![room.room, room.name, metadata, room.created_at]))
        .map_err(backend)?;
    Ok(n == 1)
}

/// Inserts a room, or replaces the `name` and `metadata` of the one there; `true` when it was
/// new.
fn put_room(tx: &rusqlite::Transaction<'_>, room: &RoomRecord) -> Result<bool, StoreError> {
    if insert_room(tx, room)? {
        return Ok(true);
    }
    let metadata = serde_json::to_string(&room.metadata).map_err(backend)?;
    tx.prepare_cached("UPDATE rooms SET name = ?2, metadata = ?3 WHERE room = ?1")
        .and_then(|mut stmt| stmt.execute(params![room.room, room.name, metadata]))
        .map_err(backend)?;
    Ok(false)
}
