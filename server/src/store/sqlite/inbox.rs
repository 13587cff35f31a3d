//! The SQLite engine's [`InboxStore`]: the tables of migration 3 (operators, their sessions,
//! conversation records, notes, canned replies).
//!
//! Writes run on the writer thread's connection (one at a time, so a record's
//! read-change-write cannot interleave with another), inside the transaction of the batch they
//! arrive in, each in a savepoint of its own (see `on_writer`): a burst of record changes costs
//! one `COMMIT`, not one each; reads use the read pool like history does. A conversation record is kept as JSON beside the
//! columns the list filters and sorts on.

use natter_protocol::inbox::{CannedReply, ConversationState, ConversationSummary, Note};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::{backend, to_i64, to_u64, writer_gone, Op, SqliteStore, Written};
use crate::store::inbox::{
    apply, ConversationFilter, ConversationPage, InboxStore, ListPosition, OperatorRecord, OperatorSession,
    RecordChange,
};
use crate::store::{BoxFuture, StoreError};

impl SqliteStore {
    /// Runs `f` on the writer's connection (the only one that writes), off the async runtime,
    /// inside the transaction of the batch it arrives in (one `COMMIT` for a batch's appends and
    /// inbox writes together), in a savepoint of its own: what `f` does is kept whole when it
    /// returns `Ok` and undone when it returns `Err`. Answered once the batch is committed.
    async fn on_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Write(Box::new(move |conn| {
            let result = conn.and_then(f);
            Written {
                kept: result.is_ok(),
                answer: Box::new(move |failed| {
                    let _ = reply.send(match failed {
                        Some(e) => Err(e),
                        None => result,
                    });
                }),
            }
        })))?;
        rx.await.map_err(|_| writer_gone())?
    }
}

fn operator_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OperatorRecord> {
    Ok(OperatorRecord {
        name: row.get(0)?,
        display_name: row.get(1)?,
        password_hash: row.get(2)?,
        created_ms: to_u64(row.get(3)?),
    })
}

fn record_of(json: &str) -> Result<ConversationSummary, StoreError> {
    serde_json::from_str(json).map_err(backend)
}

/// Writes `record` back with its filter and sort columns.
fn save(conn: &Connection, record: &ConversationSummary) -> Result<(), StoreError> {
    let json = serde_json::to_string(record).map_err(backend)?;
    conn.prepare_cached(
        "UPDATE inbox_conversations SET status = ?2, assignee = ?3, last_activity_ms = ?4, record = ?5 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            record.id,
            record.status.as_str(),
            record.assignee,
            to_i64(record.last_activity_ms),
            json
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn load(conn: &Connection, id: &str) -> Result<Option<(ConversationSummary, String)>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT record, conversation FROM inbox_conversations WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(backend)?;
    row.map(|(json, conversation)| Ok((record_of(&json)?, conversation))).transpose()
}

impl InboxStore for SqliteStore {
    fn add_operator(&self, operator: OperatorRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.on_writer(move |conn| {
            let n = conn
                .execute(
                    "INSERT OR IGNORE INTO operators (name, display_name, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![operator.name, operator.display_name, operator.password_hash, to_i64(operator.created_ms)],
                )
                .map_err(backend)?;
            Ok(n == 1)
        }))
    }

    fn set_password(&self, name: &str, password_hash: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        let name = name.to_owned();
        Box::pin(self.on_writer(move |conn| {
            let n = conn
                .execute(
                    "UPDATE operators SET password_hash = ?2 WHERE name = ?1",
                    params![name, password_hash],
                )
                .map_err(backend)?;
            conn.execute("DELETE FROM operator_sessions WHERE operator = ?1", [&name]).map_err(backend)?;
            Ok(n == 1)
        }))
    }

    fn operator(&self, name: &str) -> BoxFuture<'_, Result<Option<OperatorRecord>, StoreError>> {
        let name = name.to_owned();
        Box::pin(self.read(move |conn| {
            conn.prepare_cached(
                "SELECT name, display_name, password_hash, created_ms FROM operators WHERE name = ?1",
            )
            .and_then(|mut s| s.query_row([&name], operator_row).optional())
            .map_err(backend)
        }))
    }

    fn operators(&self) -> BoxFuture<'_, Result<Vec<OperatorRecord>, StoreError>> {
        Box::pin(self.read(|conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT name, display_name, password_hash, created_ms FROM operators ORDER BY name",
                )
                .map_err(backend)?;
            let rows = s.query_map([], operator_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        }))
    }

    fn has_operators(&self) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.read(|conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM operators)")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, bool>(0)))
                .map_err(backend)
        }))
    }

    fn remove_operator(&self, name: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let name = name.to_owned();
        Box::pin(self.on_writer(move |conn| {
            conn.execute("DELETE FROM operator_sessions WHERE operator = ?1", [&name]).map_err(backend)?;
            let n = conn.execute("DELETE FROM operators WHERE name = ?1", [&name]).map_err(backend)?;
            Ok(n == 1)
        }))
    }

    fn put_session(
        &self,
        token_hash: &str,
        session: OperatorSession,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let token_hash = token_hash.to_owned();
        Box::pin(self.on_writer(move |conn| {
            // Expired sessions go when new ones come: the table stays as small as the number of
            // live sign-ins.
            conn.execute(
                "DELETE FROM operator_sessions WHERE expires_ms < ?1",
                [crate::clock::unix_ms(std::time::SystemTime::now())],
            )
            .map_err(backend)?;
            conn.execute(
                "INSERT OR REPLACE INTO operator_sessions (token_hash, operator, expires_ms) VALUES (?1, ?2, ?3)",
                params![token_hash, session.operator, to_i64(session.expires_ms)],
            )
            .map_err(backend)?;
            Ok(())
        }))
    }

    fn session(
        &self,
        token_hash: &str,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Option<OperatorSession>, StoreError>> {
        let token_hash = token_hash.to_owned();
        Box::pin(self.read(move |conn| {
            conn.prepare_cached(
                "SELECT operator, expires_ms FROM operator_sessions WHERE token_hash = ?1 AND expires_ms > ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![token_hash, to_i64(now_ms)], |r| {
                    Ok(OperatorSession { operator: r.get(0)?, expires_ms: to_u64(r.get(1)?) })
                })
                .optional()
            })
            .map_err(backend)
        }))
    }

    fn remove_session(&self, token_hash: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let token_hash = token_hash.to_owned();
        Box::pin(self.on_writer(move |conn| {
            conn.execute("DELETE FROM operator_sessions WHERE token_hash = ?1", [&token_hash])
                .map_err(backend)?;
            Ok(())
        }))
    }

    fn change_conversation(
        &self,
        id: &str,
        conversation: &str,
        visitor: &str,
        now_ms: u64,
        changes: Vec<RecordChange>,
    ) -> BoxFuture<'_, Result<ConversationSummary, StoreError>> {
        let (id, conversation, visitor) = (id.to_owned(), conversation.to_owned(), visitor.to_owned());
        Box::pin(self.on_writer(move |conn| {
            let mut record = match load(conn, &id)? {
                Some((record, _)) => record,
                None => {
                    let record = ConversationSummary {
                        id: id.clone(),
                        visitor,
                        created_ms: now_ms,
                        last_activity_ms: now_ms,
                        ..Default::default()
                    };
                    conn.execute(
                        "INSERT INTO inbox_conversations (id, conversation, status, assignee, last_activity_ms, record) VALUES (?1, ?2, 'open', NULL, ?3, '{}')",
                        params![id, conversation, to_i64(now_ms)],
                    )
                    .map_err(backend)?;
                    record
                }
            };
            apply(&mut record, &changes);
            save(conn, &record)?;
            Ok(record)
        }))
    }

    fn update_conversation(
        &self,
        id: &str,
        changes: Vec<RecordChange>,
    ) -> BoxFuture<'_, Result<Option<ConversationSummary>, StoreError>> {
        let id = id.to_owned();
        Box::pin(self.on_writer(move |conn| {
            let Some((mut record, _)) = load(conn, &id)? else { return Ok(None) };
            apply(&mut record, &changes);
            save(conn, &record)?;
            Ok(Some(record))
        }))
    }

    fn conversation(
        &self,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<(ConversationSummary, String)>, StoreError>> {
        let id = id.to_owned();
        Box::pin(self.read(move |conn| load(conn, &id)))
    }

    fn conversations(
        &self,
        filter: ConversationFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ConversationPage, StoreError>> {
        Box::pin(self.read(move |conn| {
            let status = match filter {
                ConversationFilter::Closed => ConversationState::Closed,
                _ => ConversationState::Open,
            };
            // One statement per filter, each walking the (status, last activity) index from
            // the cursor on; no cursor starts past every real time.
            const PAGE: &str = " AND (last_activity_ms < ?3 OR (last_activity_ms = ?3 AND id < ?4)) \
                ORDER BY last_activity_ms DESC, id DESC LIMIT ?5";
            let (sql, assignee) = match &filter {
                ConversationFilter::Mine(me) => {
                    (format!("SELECT record FROM inbox_conversations WHERE status = ?1 AND assignee = ?2{PAGE}"), Some(me.clone()))
                }
                ConversationFilter::Unassigned => (
                    format!(
                        "SELECT record FROM inbox_conversations WHERE status = ?1 AND assignee IS NULL AND ?2 IS NULL{PAGE}"
                    ),
                    None,
                ),
                _ => (format!("SELECT record FROM inbox_conversations WHERE status = ?1 AND ?2 IS NULL{PAGE}"), None),
            };
            let (before_ms, before_id) =
                after.map_or((i64::MAX, String::new()), |p| (to_i64(p.last_activity_ms), p.id));
            let mut s = conn.prepare_cached(&sql).map_err(backend)?;
            // One more than asked for tells whether there is a next page.
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let rows = s
                .query_map(params![status.as_str(), assignee, before_ms, before_id, fetch], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?;
            let mut conversations = rows.map(|r| record_of(&r.map_err(backend)?)).collect::<Result<Vec<_>, _>>()?;
            let next = if conversations.len() > limit {
                conversations.truncate(limit);
                conversations.last().map(ListPosition::of)
            } else {
                None
            };
            Ok(ConversationPage { conversations, next })
        }))
    }

    fn add_note(&self, id: &str, note: Note) -> BoxFuture<'_, Result<(), StoreError>> {
        let id = id.to_owned();
        Box::pin(self.on_writer(move |conn| {
            conn.execute(
                "INSERT INTO inbox_notes (id, conversation, author, text, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![note.id, id, note.author, note.text, to_i64(note.created_ms)],
            )
            .map_err(backend)?;
            Ok(())
        }))
    }

    fn notes(&self, id: &str) -> BoxFuture<'_, Result<Vec<Note>, StoreError>> {
        let id = id.to_owned();
        Box::pin(self.read(move |conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT id, author, text, created_ms FROM inbox_notes WHERE conversation = ?1 ORDER BY created_ms, rowid",
                )
                .map_err(backend)?;
            let rows = s
                .query_map([&id], |r| {
                    Ok(Note { id: r.get(0)?, author: r.get(1)?, text: r.get(2)?, created_ms: to_u64(r.get(3)?) })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        }))
    }

    fn put_canned(&self, canned: CannedReply) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.on_writer(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO canned_replies (shortcut, text) VALUES (?1, ?2)",
                params![canned.shortcut, canned.text],
            )
            .map_err(backend)?;
            Ok(())
        }))
    }

    fn canned(&self) -> BoxFuture<'_, Result<Vec<CannedReply>, StoreError>> {
        Box::pin(self.read(|conn| {
            let mut s = conn
                .prepare_cached("SELECT shortcut, text FROM canned_replies ORDER BY shortcut")
                .map_err(backend)?;
            let rows = s
                .query_map([], |r| Ok(CannedReply { shortcut: r.get(0)?, text: r.get(1)? }))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        }))
    }

    fn remove_canned(&self, shortcut: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let shortcut = shortcut.to_owned();
        Box::pin(self.on_writer(move |conn| {
            let n = conn
                .execute("DELETE FROM canned_replies WHERE shortcut = ?1", [&shortcut])
                .map_err(backend)?;
            Ok(n == 1)
        }))
    }
}
