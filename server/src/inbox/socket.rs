//! `GET /inbox/ws`: an operator's live feed (see `hub/inbox.rs`): `hello`, then every
//! conversation change, stored message, typing notice and note, as [`InboxEvent`] frames. The
//! operator sends `typing` and `ping`.
//!
//! The upgrade needs the session cookie (401 before any upgrade without one) and the hub's own
//! `Origin` (403): a cookie-authenticated socket opened from another site's page — cross-site
//! WebSocket hijacking — is refused. The session is checked again on every beat of the hub
//! (`--ping-interval`): signing out, `operator passwd` or `operator remove` closes the socket
//! with 4401 within one interval.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::Extensions;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use natter_protocol::close;
use natter_protocol::inbox::{InboxCommand, InboxEvent};
use natter_protocol::ErrorCode;
use tokio::time::Instant;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use super::auth::{check_same_origin, Operator};
use crate::edge::ApiError;
use crate::hub::{Hub, Outgoing, Refusal};

/// `GET /inbox/ws`.
pub(crate) async fn upgrade(
    State(hub): State<Hub>,
    headers: HeaderMap,
    extensions: Extensions,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let operator = Operator::of_request(&hub, &headers, &extensions).await?;
    check_same_origin(&headers)?;
    let ws = ws.map_err(|e| {
        ApiError::with_status(
            StatusCode::UPGRADE_REQUIRED,
            Refusal::new(
                ErrorCode::InvalidMessage,
                format!("/inbox/ws is a WebSocket endpoint: {}", e.body_text()),
            ),
        )
    })?;
    // Checked by axum; the socket is built over the meter on the wire (`crate::wire`), like
    // `/ws/chat`'s.
    drop(ws);
    let max = hub.config().max_frame;
    let config = WebSocketConfig::default().max_frame_size(Some(max)).max_message_size(Some(max));
    let h = hub.clone();
    let upgrade_headers = headers.clone();
    // Operators' sockets are not counted against their address (`--address-frame-budget`).
    Ok(crate::wire::accept(&hub, &upgrade_headers, &extensions, None, config, move |socket| {
        serve(socket, h, operator, headers)
    })?)
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: code.into(), reason: reason.into() }))
}

/// Runs one operator connection until it ends.
async fn serve<S>(mut socket: S, hub: Hub, operator: Operator, headers: HeaderMap)
where
    S: Sink<Message> + Stream<Item = Result<Message, tungstenite::Error>> + Unpin + Send,
{
    let (outbox, mut rx, _control, _live) = hub.open_connection(None, None);
    let profile = operator.profile();
    let online = hub.attach_operator(&outbox, &profile).await;
    let hello = crate::hub::encode_any(&InboxEvent::Hello { operator: profile.clone(), online });
    let mut beat = hub.beat();
    let idle_timeout = hub.config().idle_timeout;
    let mut heard = Instant::now();
    let mut end: Option<(u16, &'static str)> = None;
    if socket.send(Message::Text(hello)).await.is_err() {
        hub.detach_operator(outbox.id).await;
        return;
    }
    loop {
        tokio::select! {
            changed = beat.changed() => {
                if changed.is_err() || beat.borrow_and_update().stopping {
                    end = Some((close::GOING_AWAY, "hub shutting down"));
                    break;
                }
                if heard.elapsed() > idle_timeout {
                    end = Some((close::STALE, "no answer to pings"));
                    break;
                }
                if Operator::from_headers(&hub, &headers, None).await.is_err() {
                    end = Some((close::UNAUTHORIZED, "signed out"));
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            item = rx.recv() => match item {
                // Operators are sent no history answers, so nothing is held.
                Some(Outgoing::Text(frame, _)) => {
                    if socket.send(Message::Text(frame)).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    end = Some((code, reason));
                    break;
                }
                Some(Outgoing::Stop(code)) => {
                    end = Some((code, "send queue full: reconnect"));
                    break;
                }
                None => break,
            },
            frame = socket.next() => {
                heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Err(r) = command(&hub, &profile, text.as_str()).await {
                            hub.metrics().refusal(r.code);
                            let _ = socket.send(Message::Text(crate::hub::encode(&r.frame()))).await;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let r = Refusal::new(ErrorCode::BadJson, "send JSON text frames");
                        hub.metrics().refusal(r.code);
                        let _ = socket.send(Message::Text(crate::hub::encode(&r.frame()))).await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Err(e)) if crate::wire::is_cut(&e) => {
                        end = Some((close::RATE_LIMITED, crate::client::CUT_REASON));
                        break;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                }
            }
        }
    }
    hub.detach_operator(outbox.id).await;
    if let Some((code, reason)) = end {
        let _ = socket.send(close_frame(code, reason)).await;
    }
}

/// Handles one operator frame.
async fn command(
    hub: &Hub,
    operator: &natter_protocol::inbox::OperatorProfile,
    text: &str,
) -> Result<(), Refusal> {
    let command: InboxCommand = serde_json::from_str(text).map_err(|e| {
        Refusal::new(
            ErrorCode::InvalidMessage,
            format!("not an inbox command ({{\"type\":\"typing\",…}}): {e}"),
        )
    })?;
    match command {
        InboxCommand::Typing { conversation, active } => {
            hub.operator_typing(operator, &conversation, active).await
        }
        InboxCommand::Ping => Ok(()),
    }
}
