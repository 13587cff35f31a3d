//! The inbox's HTTP API under `/inbox/api/`: sign-in and sign-out, the conversation list,
//! one conversation with its notes and its history paged from the store, replies, notes,
//! assignment, close / reopen / read, canned replies and the operator list.
//!
//! Every handler but sign-in takes an [`Operator`] (401 without a session); every one that
//! changes something takes an [`OperatorWrite`] (same origin and CSRF token, else 403). Bodies
//! are JSON; errors are the hub's usual `error` frame with a 4xx/5xx.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use natter_protocol::inbox::{
    Assign, CannedReply, ConversationDetail, ConversationList, ConversationState, ConversationSummary,
    MessagePage, OperatorProfile, OperatorText, SignIn, SignedIn, CONVERSATION_PAGE_DEFAULT,
    CONVERSATION_PAGE_MAX,
};
use natter_protocol::{ErrorCode, ServerMessage};
use serde::Deserialize;

use super::auth::{self, check_same_origin, Operator, OperatorWrite};
use super::password;
use crate::edge::{client_of_request, read_body, ApiError, Query};
use crate::hub::{Hub, Refusal};
use crate::metrics::Limit;
use crate::store::inbox::{ConversationFilter, ListPosition, OperatorSession, RecordChange};
use crate::store::ConversationKey;

/// Most messages one history page holds.
const MAX_PAGE: usize = 100;

/// How long a sign-in refused because the password-check queue was full is asked to wait.
const CHECKS_BUSY_RETRY_MS: u64 = 1000;

fn bad(message: impl Into<String>) -> ApiError {
    Refusal::new(ErrorCode::InvalidMessage, message).into()
}

/// Reads and parses a JSON body, naming what is wrong. It is read like every other body the
/// hub takes (`edge::read_body`): at most `--max-frame` bytes (413 with the hub's JSON `error`,
/// not axum's plain-text rejection, which the inbox app reads as JSON) within
/// `--header-timeout` (408), so a client that trickles a sign-in body holds no connection for
/// longer than one that sends it at once.
async fn body<T: serde::de::DeserializeOwned>(hub: &Hub, body: Body) -> Result<T, ApiError> {
    let bytes = read_body(hub, body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::new(ErrorCode::BadJson, format!("bad JSON body: {e}")).into())
}

/// `POST /inbox/api/signin` — `{name, password}` → the session cookie and [`SignedIn`].
pub(crate) async fn sign_in(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: Extensions,
    raw: Body,
) -> Result<Response, ApiError> {
    // A sign-in from another site's page would sign the browser in as the attacker's account.
    check_same_origin(&headers)?;
    let store = hub.inbox_store()?;
    let SignIn { name, password } = body(&hub, raw).await?;
    let name = name.trim().to_ascii_lowercase();
    // A name no operator can have is refused before the rate limiter keys a bucket on it:
    // its table would otherwise keep whatever a client sends (up to the body limit) for each
    // attempt. The naming rules are public, so this tells nobody which names exist.
    password::check_name(&name).map_err(bad)?;
    let addr = client_of_request(&hub, &extensions, &headers).key();
    let lane = match hub.signin_limiter().admit(&name, addr) {
        Ok(lane) => lane,
        Err(wait_ms) => {
            crate::metrics::Metrics::add(&hub.metrics().signin_refused, 1);
            // The seconds are the `Retry-After` header's, rounded the same way, so the page and
            // the header agree.
            let secs = wait_ms.div_ceil(1000).max(1);
            let unit = if secs == 1 { "second" } else { "seconds" };
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!("too many sign-in attempts; wait {secs} {unit} and try again"),
            );
            r.retry_after_ms = Some(wait_ms);
            return Err(r.into());
        }
    };
    let operator = store.operator(&name).await.map_err(Refusal::from)?;
    // Checked on the hub's password-checking threads (`inbox::checks`): at most two at once,
    // in memory they keep, whatever arrives.
    let stored = operator.as_ref().map(|r| r.password_hash.clone());
    let Ok(matched) = hub.password_checks().verify(lane, password, stored).await else {
        hub.signin_limiter().gave_up(addr, lane);
        hub.metrics().limited(Limit::PasswordChecks);
        let mut r = Refusal::new(
            ErrorCode::Unavailable,
            "the hub is busy checking other sign-ins; wait a second and try again",
        );
        r.retry_after_ms = Some(CHECKS_BUSY_RETRY_MS);
        return Err(r.into());
    };
    let Some(operator) = operator.filter(|_| matched) else {
        hub.signin_limiter().failed(&name);
        crate::metrics::Metrics::add(&hub.metrics().signin_refused, 1);
        tracing::info!(operator = %name, "operator sign-in refused");
        return Err(Refusal::new(ErrorCode::Unauthorized, "wrong name or password").into());
    };
    hub.signin_limiter().succeeded(&name, addr, lane);
    let token = auth::new_token()
        .ok_or_else(|| Refusal::new(ErrorCode::Internal, "the OS gave no random bytes for a session"))?;
    let ttl = hub.config().operator_session_ttl;
    let now = u64::try_from(crate::clock::unix_ms(std::time::SystemTime::now())).unwrap_or(0);
    let expires_ms = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    store
        .put_session(
            &auth::token_hash(&token),
            OperatorSession { operator: operator.name.clone(), expires_ms },
        )
        .await
        .map_err(Refusal::from)?;
    tracing::info!(operator = %operator.name, "operator signed in");
    let answer = SignedIn {
        operator: OperatorProfile { name: operator.name, display_name: operator.display_name },
        csrf: auth::csrf_of(&token),
    };
    let cookie = auth::set_cookie(&hub, &headers, &token, ttl.as_secs());
    Ok((
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".parse().unwrap_or_else(|_| unreachable!())),
        ],
        Json(answer),
    )
        .into_response())
}

/// `POST /inbox/api/signout` — ends the session and clears the cookie.
pub(crate) async fn sign_out(
    State(hub): State<Hub>,
    headers: HeaderMap,
    OperatorWrite(op): OperatorWrite,
) -> Result<Response, ApiError> {
    hub.inbox_store()?.remove_session(&op.token_hash).await.map_err(Refusal::from)?;
    let cookie = auth::set_cookie(&hub, &headers, "", 0);
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

/// `GET /inbox/api/me` — who is signed in, and the session's CSRF token.
pub(crate) async fn me(op: Operator) -> Json<SignedIn> {
    Json(SignedIn { operator: op.profile(), csrf: op.csrf.clone() })
}

/// `GET /inbox/api/operators` — every operator (for assignment).
pub(crate) async fn operators(
    State(hub): State<Hub>,
    _op: Operator,
) -> Result<Json<Vec<OperatorProfile>>, ApiError> {
    let all = hub.inbox_store()?.operators().await.map_err(Refusal::from)?;
    Ok(Json(
        all.into_iter().map(|o| OperatorProfile { name: o.name, display_name: o.display_name }).collect(),
    ))
}

/// The list's query; strings so that bad values get our own clear message.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    filter: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /inbox/api/conversations?filter=open|mine|unassigned|closed&limit=N&cursor=C` — one
/// page of the list, newest activity first (ties by id), as a [`ConversationList`]: `limit`
/// 1–[`CONVERSATION_PAGE_MAX`] (default [`CONVERSATION_PAGE_DEFAULT`]), and `next`, the
/// `cursor` of the page after, while there is one. A page may hold fewer than `limit` and
/// still have a `next`: follow it until it is absent to have every conversation. A bad
/// `filter`, `limit` or `cursor` is a 400.
pub(crate) async fn list(
    State(hub): State<Hub>,
    op: Operator,
    Query(q): Query<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let filter = match q.filter.as_deref().unwrap_or("open") {
        "open" => ConversationFilter::Open,
        "mine" => ConversationFilter::Mine(op.record.name.clone()),
        "unassigned" => ConversationFilter::Unassigned,
        "closed" => ConversationFilter::Closed,
        other => {
            let shown: String = other.chars().take(40).collect();
            return Err(bad(format!("filter {shown:?} is not one of open, mine, unassigned, closed")));
        }
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => CONVERSATION_PAGE_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=CONVERSATION_PAGE_MAX).contains(&n) => n,
            _ => {
                let shown: String = l.chars().take(40).collect();
                return Err(bad(format!(
                    "`limit` must be a whole number from 1 to {CONVERSATION_PAGE_MAX}, got {shown:?}"
                )));
            }
        },
    };
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            let shown: String = c.chars().take(40).collect();
            bad(format!("`cursor` {shown:?} is not one this hub gave out; start again without it"))
        })?),
    };
    let page = hub.inbox_store()?.conversations(filter, after, limit).await.map_err(Refusal::from)?;
    Ok(Json(ConversationList {
        conversations: page.conversations,
        next: page.next.as_ref().map(encode_cursor),
    }))
}

/// The longest public id a cursor may name (they are `c_` and 16 hex digits).
const MAX_CURSOR_ID: usize = 64;

/// The cursor of the page after `p`: opaque to clients (hex of `<ms>.<id>`, so a later change
/// of what it holds breaks nobody who treats it as opaque).
fn encode_cursor(p: &ListPosition) -> String {
    format!("{}.{}", p.last_activity_ms, p.id).bytes().map(|b| format!("{b:02x}")).collect()
}

/// The list position a cursor stands for, if it is one this hub made.
fn decode_cursor(cursor: &str) -> Option<ListPosition> {
    if cursor.len() % 2 != 0 || cursor.len() > 2 * (20 + 1 + MAX_CURSOR_ID) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..cursor.len()).step_by(2).map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok()).collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (ms, id) = text.split_once('.')?;
    let ok_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok_id.then_some(())?;
    Some(ListPosition { last_activity_ms: ms.parse().ok()?, id: id.to_owned() })
}

/// `GET /inbox/api/conversations/{id}` — the record and its notes.
pub(crate) async fn detail(
    State(hub): State<Hub>,
    _op: Operator,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let (conversation, _) = hub.inbox_conversation(&id).await.map_err(not_found)?;
    let notes = hub.inbox_store()?.notes(&id).await.map_err(Refusal::from)?;
    Ok(Json(ConversationDetail { conversation, notes }))
}

/// An unknown conversation is a 404; any other refusal (an empty or oversized text) keeps its
/// own status.
fn not_found(r: Refusal) -> ApiError {
    if r.missing {
        ApiError::with_status(StatusCode::NOT_FOUND, r)
    } else {
        r.into()
    }
}

/// The history page query.
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /inbox/api/conversations/{id}/messages?before=SEQ&limit=N` — up to `limit` stored
/// messages before `before` (the newest without it), oldest first, with `before` for the next
/// page back.
pub(crate) async fn messages(
    State(hub): State<Hub>,
    _op: Operator,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let (_, conversation) = hub.inbox_conversation(&id).await.map_err(not_found)?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let key = ConversationKey::Session(conversation);
    let page = hub.history_page(&key, q.before, limit).await?;
    let first = page.messages.first().map(|m| m.seq);
    let before = first.filter(|&f| f > page.first_available);
    let mut messages = page.parsed().map_err(Refusal::from)?;
    for m in &mut messages {
        if let ServerMessage::User(c) | ServerMessage::Bot(c) | ServerMessage::Agent(c) = m {
            c.session_id.clone_from(&id);
        }
    }
    Ok(Json(MessagePage { messages, before }))
}

/// `POST /inbox/api/conversations/{id}/reply` — `{text, id?}` → the `ack`.
pub(crate) async fn reply(
    State(hub): State<Hub>,
    OperatorWrite(op): OperatorWrite,
    Path(id): Path<String>,
    raw: Body,
) -> Result<Response, ApiError> {
    let OperatorText { text, id: msg_id } = body(&hub, raw).await?;
    let ack = hub.post_agent(&op.record, &id, msg_id, text).await.map_err(not_found)?;
    Ok(Json(ServerMessage::Ack(ack)).into_response())
}

/// `POST /inbox/api/conversations/{id}/notes` — `{text}` → the note.
pub(crate) async fn note(
    State(hub): State<Hub>,
    OperatorWrite(op): OperatorWrite,
    Path(id): Path<String>,
    raw: Body,
) -> Result<Response, ApiError> {
    let OperatorText { text, .. } = body(&hub, raw).await?;
    let note = hub.add_note(&op.record, &id, text).await.map_err(not_found)?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

/// `POST /inbox/api/conversations/{id}/assign` — `{assignee: NAME | null}` → the record.
pub(crate) async fn assign(
    State(hub): State<Hub>,
    OperatorWrite(_op): OperatorWrite,
    Path(id): Path<String>,
    raw: Body,
) -> Result<Json<ConversationSummary>, ApiError> {
    let Assign { assignee } = body(&hub, raw).await?;
    if let Some(name) = &assignee {
        if hub.inbox_store()?.operator(name).await.map_err(Refusal::from)?.is_none() {
            return Err(bad(format!("there is no operator {name:?} to assign to")));
        }
    }
    let record =
        hub.change_record(&id, vec![RecordChange::Assignee { assignee }]).await.map_err(not_found)?;
    Ok(Json(record))
}

/// `POST /inbox/api/conversations/{id}/close` — closes it (the bot answers again).
pub(crate) async fn close(
    State(hub): State<Hub>,
    OperatorWrite(_op): OperatorWrite,
    Path(id): Path<String>,
) -> Result<Json<ConversationSummary>, ApiError> {
    let change = RecordChange::Status { status: ConversationState::Closed };
    Ok(Json(hub.change_record(&id, vec![change]).await.map_err(not_found)?))
}

/// `POST /inbox/api/conversations/{id}/reopen`.
pub(crate) async fn reopen(
    State(hub): State<Hub>,
    OperatorWrite(_op): OperatorWrite,
    Path(id): Path<String>,
) -> Result<Json<ConversationSummary>, ApiError> {
    let change = RecordChange::Status { status: ConversationState::Open };
    Ok(Json(hub.change_record(&id, vec![change]).await.map_err(not_found)?))
}

/// `POST /inbox/api/conversations/{id}/read` — no unread messages any more.
pub(crate) async fn read(
    State(hub): State<Hub>,
    OperatorWrite(_op): OperatorWrite,
    Path(id): Path<String>,
) -> Result<Json<ConversationSummary>, ApiError> {
    Ok(Json(hub.change_record(&id, vec![RecordChange::Read]).await.map_err(not_found)?))
}

/// `GET /inbox/api/canned` — every canned reply.
pub(crate) async fn canned(
    State(hub): State<Hub>,
    _op: Operator,
) -> Result<Json<Vec<CannedReply>>, ApiError> {
    Ok(Json(hub.inbox_store()?.canned().await.map_err(Refusal::from)?))
}

/// `POST /inbox/api/canned` — `{shortcut, text}` adds or replaces one.
pub(crate) async fn put_canned(
    State(hub): State<Hub>,
    OperatorWrite(_op): OperatorWrite,
    raw: Body,
) -> Result<Response, ApiError> {
    let canned: CannedReply = body(&hub, raw).await?;
    check_shortcut(&canned.shortcut)?;
    hub.check_text(&canned.text, "the canned reply (`text`)")?;
    hub.inbox_store()?.put_canned(canned.clone()).await.map_err(Refusal::from)?;
    Ok((StatusCode::CREATED, Json(canned)).into_response())
}

/// `DELETE /inbox/api/canned/{shortcut}`.
pub(crate) async fn remove_canned(
    State(hub): State<Hub>,
    OperatorWrite(_op): OperatorWrite,
    Path(shortcut): Path<String>,
) -> Result<StatusCode, ApiError> {
    if hub.inbox_store()?.remove_canned(&shortcut).await.map_err(Refusal::from)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::with_status(
            StatusCode::NOT_FOUND,
            Refusal::new(ErrorCode::InvalidMessage, format!("no canned reply {shortcut:?}")),
        ))
    }
}

fn check_shortcut(s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(bad(format!("shortcut {s:?} must be 1–32 of a-z, 0-9, '-', '_'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_the_hub_did_not_make() {
        let p = ListPosition { last_activity_ms: 1_764_000_000_123, id: "c_0123456789abcdef".into() };
        assert_eq!(decode_cursor(&encode_cursor(&p)), Some(p));
        let made = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for bad in [
            String::new(),
            "7".into(),
            "zz".into(),
            made("12"),
            made("x.c_1"),
            made("12.c 1"),
            made("12."),
            "61".repeat(200),
        ] {
            assert_eq!(decode_cursor(&bad), None, "{bad:?}");
        }
    }
}
