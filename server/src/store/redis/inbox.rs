//! The Redis engine's [`InboxStore`], shared by every hub on one Redis.
//!
//! # Keys (under the namespace)
//! - `inbox:operators` — hash name → operator JSON.
//! - `inbox:session:<sha256>` — an operator session's JSON, expiring with it;
//!   `inbox:sessions:<name>` — the set of that operator's session hashes (to end them all).
//! - `inbox:records` — hash public id → conversation record JSON; `inbox:keys` — hash public
//!   id → session conversation id; `inbox:recent` — sorted set of public ids by last activity.
//! - `inbox:notes:<public id>` — list of note JSON, oldest first.
//! - `inbox:canned` — hash shortcut → text.
//! - `inbox:online` — hash hub id → `<count>:<expiry ms by Redis's clock>`.
//!
//! A record changes in one script ([`CHANGE_LUA`], the Lua twin of
//! [`apply`](crate::store::inbox::apply)), so hubs changing one conversation at once never lose
//! each other's change.

use natter_protocol::inbox::{CannedReply, ConversationSummary, Note};
use redis::AsyncCommands;

use super::{backend, RedisStore};
use crate::store::inbox::{
    ConversationFilter, ConversationPage, InboxStore, ListPosition, OperatorRecord, OperatorSession,
    RecordChange,
};
use crate::store::{BoxFuture, StoreError};

/// KEYS: records, keys, recent. ARGV: id, conversation, visitor, now_ms, changes JSON, create
/// (1/0). Returns the record JSON, or false when it does not exist and `create` is 0.
pub(super) const CHANGE_LUA: &str = r#"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local r
if raw then
  r = cjson.decode(raw)
else
  if ARGV[6] ~= '1' then return false end
  local now = tonumber(ARGV[4])
  r = {id = ARGV[1], visitor = ARGV[3], status = 'open', unread = 0, lastSeq = 0,
       lastActivityMs = now, createdMs = now, handoff = false, wantsHuman = false, context = {}}
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
if type(r.context) ~= 'table' then r.context = {} end
for _, c in ipairs(cjson.decode(ARGV[5])) do
  if c.op == 'activity' then
    if c.seq > r.lastSeq then
      r.lastSeq = c.seq
      r.lastActivityMs = c.at_ms
      r.lastRole = c.role
      r.preview = c.preview
      if c.role == 'user' then
        r.unread = r.unread + 1
        if r.status == 'closed' then r.status = 'open' end
      end
      if c.role == 'agent' then r.followUpSeq = nil end
    end
  elseif c.op == 'context' then
    for _, f in ipairs({'page', 'title', 'browser', 'user'}) do
      if c[f] ~= nil and c[f] ~= cjson.null then r.context[f] = c[f] end
    end
  elseif c.op == 'status' then
    r.status = c.status
    if c.status == 'closed' then
      r.handoff = false
      r.wantsHuman = false
      r.followUpSeq = nil
      r.unread = 0
    end
  elseif c.op == 'assignee' then
    if c.assignee == nil or c.assignee == cjson.null then r.assignee = nil else r.assignee = c.assignee end
  elseif c.op == 'handoff' then
    r.handoff = c.on
  elseif c.op == 'wants_human' then
    r.wantsHuman = true
  elseif c.op == 'follow_up' then
    if r.handoff and (r.followUpSeq == nil or r.followUpSeq == 0) then r.followUpSeq = c.seq end
  elseif c.op == 'read' then
    r.unread = 0
  end
end
local out = cjson.encode(r)
redis.call('HSET', KEYS[1], ARGV[1], out)
redis.call('ZADD', KEYS[3], r.lastActivityMs, ARGV[1])
return out
"#;

/// KEYS: online hash. ARGV: hub, count, lease_ms.
pub(super) const SET_ONLINE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. (now + tonumber(ARGV[3])))
end
return 1
"#;

/// KEYS: online hash. ARGV: this hub. Sums live counts of other hubs, removing expired ones.
pub(super) const ONLINE_ELSEWHERE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #all, 2 do
  local count, exp = string.match(all[i + 1], '^(%d+):(%d+)$')
  if not exp or tonumber(exp) < now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] ~= ARGV[1] then
    sum = sum + tonumber(count)
  end
end
return sum
"#;

/// How many ids a list reads per round while it looks for `limit` matching records.
const LIST_CHUNK: isize = 200;

/// The most records one page looks at before it answers with what it found, and where it
/// stopped as the next page's start: a filter that matches few records costs several short
/// pages, never one unbounded read, and every record stays reachable.
const LIST_SCAN: isize = 5000;

impl RedisStore {
    fn key(&self, rest: &str) -> String {
        format!("{}:inbox:{rest}", self.shared.keys.ns)
    }

    async fn change(
        &self,
        id: &str,
        conversation: &str,
        visitor: &str,
        now_ms: u64,
        changes: &[RecordChange],
        create: bool,
    ) -> Result<Option<ConversationSummary>, StoreError> {
        let changes = serde_json::to_string(changes).map_err(backend)?;
        let out: Option<String> = self.shared.note(
            self.shared
                .scripts
                .inbox_change
                .key(self.key("records"))
                .key(self.key("keys"))
                .key(self.key("recent"))
                .arg(id)
                .arg(conversation)
                .arg(visitor)
                .arg(now_ms)
                .arg(changes)
                .arg(if create { "1" } else { "0" })
                .invoke_async(&mut self.shared.conn())
                .await,
        )?;
        out.map(|json| serde_json::from_str(&json).map_err(backend)).transpose()
    }

    async fn end_sessions(&self, name: &str) -> Result<(), StoreError> {
        let set = self.key(&format!("sessions:{name}"));
        let hashes: Vec<String> = self.shared.note(self.shared.conn().smembers(&set).await)?;
        let mut pipe = redis::pipe();
        for h in &hashes {
            pipe.del(self.key(&format!("session:{h}")));
        }
        pipe.del(&set);
        self.shared.note(pipe.query_async::<()>(&mut self.shared.conn()).await)
    }
}

impl InboxStore for RedisStore {
    fn add_operator(&self, operator: OperatorRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(&operator).map_err(backend)?;
            self.shared.note(self.shared.conn().hset_nx(self.key("operators"), &operator.name, json).await)
        })
    }

    fn set_password(&self, name: &str, password_hash: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let Some(mut operator) = self.operator(&name).await? else { return Ok(false) };
            operator.password_hash = password_hash;
            let json = serde_json::to_string(&operator).map_err(backend)?;
            self.shared
                .note(self.shared.conn().hset::<_, _, _, ()>(self.key("operators"), &name, json).await)?;
            self.end_sessions(&name).await?;
            Ok(true)
        })
    }

    fn operator(&self, name: &str) -> BoxFuture<'_, Result<Option<OperatorRecord>, StoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let json: Option<String> =
                self.shared.note(self.shared.conn().hget(self.key("operators"), &name).await)?;
            json.map(|j| serde_json::from_str(&j).map_err(backend)).transpose()
        })
    }

    fn operators(&self) -> BoxFuture<'_, Result<Vec<OperatorRecord>, StoreError>> {
        Box::pin(async move {
            let all: Vec<(String, String)> =
                self.shared.note(self.shared.conn().hgetall(self.key("operators")).await)?;
            let mut ops = all
                .iter()
                .map(|(_, j)| serde_json::from_str(j).map_err(backend))
                .collect::<Result<Vec<OperatorRecord>, _>>()?;
            ops.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(ops)
        })
    }

    fn has_operators(&self) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let n: u64 = self.shared.note(self.shared.conn().hlen(self.key("operators")).await)?;
            Ok(n > 0)
        })
    }

    fn remove_operator(&self, name: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let n: u32 = self.shared.note(self.shared.conn().hdel(self.key("operators"), &name).await)?;
            self.end_sessions(&name).await?;
            Ok(n == 1)
        })
    }

    fn put_session(
        &self,
        token_hash: &str,
        session: OperatorSession,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            let json = serde_json::to_string(&session).map_err(backend)?;
            let now = crate::clock::unix_ms(std::time::SystemTime::now()).try_into().unwrap_or(0u64);
            let ttl = session.expires_ms.saturating_sub(now).max(1);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .pset_ex(self.key(&format!("session:{token_hash}")), json, ttl)
                .sadd(self.key(&format!("sessions:{}", session.operator)), &token_hash);
            self.shared.note(pipe.query_async::<()>(&mut self.shared.conn()).await)
        })
    }

    fn session(
        &self,
        token_hash: &str,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Option<OperatorSession>, StoreError>> {
        let key = self.key(&format!("session:{token_hash}"));
        Box::pin(async move {
            let json: Option<String> = self.shared.note(self.shared.conn().get(&key).await)?;
            let session: Option<OperatorSession> =
                json.map(|j| serde_json::from_str(&j).map_err(backend)).transpose()?;
            Ok(session.filter(|s| s.expires_ms > now_ms))
        })
    }

    fn remove_session(&self, token_hash: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = self.key(&format!("session:{token_hash}"));
        Box::pin(async move { self.shared.note(self.shared.conn().del::<_, ()>(&key).await) })
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
        Box::pin(async move {
            self.change(&id, &conversation, &visitor, now_ms, &changes, true)
                .await?
                .ok_or_else(|| backend("the record script made no record"))
        })
    }

    fn update_conversation(
        &self,
        id: &str,
        changes: Vec<RecordChange>,
    ) -> BoxFuture<'_, Result<Option<ConversationSummary>, StoreError>> {
        let id = id.to_owned();
        Box::pin(async move { self.change(&id, "", "", 0, &changes, false).await })
    }

    fn conversation(
        &self,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<(ConversationSummary, String)>, StoreError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.hget(self.key("records"), &id).hget(self.key("keys"), &id);
            let (json, conversation): (Option<String>, Option<String>) =
                self.shared.note(pipe.query_async(&mut self.shared.conn()).await)?;
            match (json, conversation) {
                (Some(json), Some(conversation)) => {
                    Ok(Some((serde_json::from_str(&json).map_err(backend)?, conversation)))
                }
                _ => Ok(None),
            }
        })
    }

    fn conversations(
        &self,
        filter: ConversationFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ConversationPage, StoreError>> {
        Box::pin(async move {
            let mut page = ConversationPage::default();
            // `inbox:recent` scores each id by its last activity; ids of one score come highest
            // first, the list's order. From the cursor's score down, skipping what does not
            // sort after the cursor (its own score's higher ids, itself).
            let max = after.as_ref().map_or_else(|| "+inf".to_owned(), |p| p.last_activity_ms.to_string());
            let mut offset: isize = 0;
            let (mut last, mut taken) = (None, None);
            while offset < LIST_SCAN {
                let scored: Vec<(String, f64)> = self.shared.note(
                    redis::cmd("ZREVRANGEBYSCORE")
                        .arg(self.key("recent"))
                        .arg(&max)
                        .arg("-inf")
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(offset)
                        .arg(LIST_CHUNK)
                        .query_async(&mut self.shared.conn())
                        .await,
                )?;
                if scored.is_empty() {
                    return Ok(page);
                }
                let scanned = isize::try_from(scored.len()).unwrap_or(LIST_CHUNK);
                offset += scanned;
                let ids: Vec<String> = scored.iter().map(|(id, _)| id.clone()).collect();
                let records: Vec<Option<String>> = self.shared.note(
                    redis::cmd("HMGET")
                        .arg(self.key("records"))
                        .arg(&ids)
                        .query_async(&mut self.shared.conn())
                        .await,
                )?;
                for ((id, score), json) in scored.into_iter().zip(records) {
                    // Scores are whole milliseconds, exact in a double.
                    let ms = score as u64;
                    if after.as_ref().is_some_and(|p| !p.is_before(ms, &id)) {
                        continue;
                    }
                    let Some(json) = json else { continue };
                    // Read after the index: a record changed in between shows its newer state
                    // here (the live feed moves it up), while the page keeps the index's order.
                    let record: ConversationSummary = serde_json::from_str(&json).map_err(backend)?;
                    if filter.matches(&record) {
                        if page.conversations.len() == limit {
                            // One more matches: there is a next page, after the last one taken
                            // (where the index had it: its record may have moved on since).
                            page.next = taken;
                            return Ok(page);
                        }
                        page.conversations.push(record);
                        taken = Some(ListPosition { last_activity_ms: ms, id: id.clone() });
                    }
                    last = Some(ListPosition { last_activity_ms: ms, id });
                }
                if scanned < LIST_CHUNK {
                    return Ok(page);
                }
                if offset >= LIST_SCAN {
                    // Scanned enough for one page: the next starts after the last record looked
                    // at, matching or not.
                    page.next = last.take();
                }
            }
            Ok(page)
        })
    }

    fn add_note(&self, id: &str, note: Note) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = self.key(&format!("notes:{id}"));
        Box::pin(async move {
            let json = serde_json::to_string(&note).map_err(backend)?;
            self.shared.note(self.shared.conn().rpush::<_, _, ()>(&key, json).await)
        })
    }

    fn notes(&self, id: &str) -> BoxFuture<'_, Result<Vec<Note>, StoreError>> {
        let key = self.key(&format!("notes:{id}"));
        Box::pin(async move {
            let all: Vec<String> = self.shared.note(self.shared.conn().lrange(&key, 0, -1).await)?;
            all.iter().map(|j| serde_json::from_str(j).map_err(backend)).collect()
        })
    }

    fn put_canned(&self, canned: CannedReply) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.shared.note(
                self.shared
                    .conn()
                    .hset::<_, _, _, ()>(self.key("canned"), &canned.shortcut, &canned.text)
                    .await,
            )
        })
    }

    fn canned(&self) -> BoxFuture<'_, Result<Vec<CannedReply>, StoreError>> {
        Box::pin(async move {
            let all: Vec<(String, String)> =
                self.shared.note(self.shared.conn().hgetall(self.key("canned")).await)?;
            let mut all: Vec<CannedReply> =
                all.into_iter().map(|(shortcut, text)| CannedReply { shortcut, text }).collect();
            all.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
            Ok(all)
        })
    }

    fn remove_canned(&self, shortcut: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let shortcut = shortcut.to_owned();
        Box::pin(async move {
            let n: u32 = self.shared.note(self.shared.conn().hdel(self.key("canned"), &shortcut).await)?;
            Ok(n == 1)
        })
    }

    fn set_online(&self, count: u32, lease_ms: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.shared.note(
                self.shared
                    .scripts
                    .set_online
                    .key(self.key("online"))
                    .arg(&self.shared.hub_id)
                    .arg(count)
                    .arg(lease_ms)
                    .invoke_async::<()>(&mut self.shared.conn())
                    .await,
            )
        })
    }

    fn online_elsewhere(&self) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(async move {
            self.shared.note(
                self.shared
                    .scripts
                    .online_elsewhere
                    .key(self.key("online"))
                    .arg(&self.shared.hub_id)
                    .invoke_async(&mut self.shared.conn())
                    .await,
            )
        })
    }
}
