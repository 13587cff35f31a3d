//! The operator inbox's transport: the web app at `/inbox`, its JSON API under
//! `/inbox/api/`, its live socket at `/inbox/ws`, and the `natter-hub operator …` commands.
//!
//! # Layout
//! - [`auth`]: the session cookie, the same-origin and CSRF checks, the `Operator` extractors.
//! - [`password`]: argon2id hashing, and the rules for names and passwords.
//! - [`limit`]: the sign-in rate limit.
//! - [`checks`]: the threads that check passwords, and their bounded queue.
//! - [`api`]: the HTTP handlers.
//! - [`socket`]: the operator WebSocket.
//! - [`app`]: the web app's files.
//! - [`cli`]: `natter-hub operator add|list|remove|passwd`.
//!
//! What the inbox does with conversations (records, replies, notes, handoff, availability) is
//! the hub's job, in `hub/inbox.rs`; what it keeps is the store's, in
//! [`store::inbox`](crate::store::inbox).

mod api;
mod app;
mod auth;
pub(crate) mod checks;
pub(crate) mod cli;
pub(crate) mod limit;
mod password;
mod socket;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;

use crate::hub::Hub;

/// The inbox's routes, every one behind [`auth::admit`] (the address's request budget for all
/// but signed-in operators). No CORS layer: only the hub's own pages may call them.
pub(crate) fn routes(hub: Hub, max_body: usize) -> Router<Hub> {
    Router::new()
        .route("/inbox", get(app::index))
        .route("/inbox/", get(app::index))
        .route("/inbox/app.js", get(app::script))
        .route("/inbox/app.css", get(app::style))
        .route("/inbox/ws", get(socket::upgrade))
        .route("/inbox/api/signin", post(api::sign_in))
        .route("/inbox/api/signout", post(api::sign_out))
        .route("/inbox/api/me", get(api::me))
        .route("/inbox/api/operators", get(api::operators))
        .route("/inbox/api/conversations", get(api::list))
        .route("/inbox/api/conversations/{id}", get(api::detail))
        .route("/inbox/api/conversations/{id}/messages", get(api::messages))
        .route("/inbox/api/conversations/{id}/reply", post(api::reply))
        .route("/inbox/api/conversations/{id}/notes", post(api::note))
        .route("/inbox/api/conversations/{id}/assign", post(api::assign))
        .route("/inbox/api/conversations/{id}/close", post(api::close))
        .route("/inbox/api/conversations/{id}/reopen", post(api::reopen))
        .route("/inbox/api/conversations/{id}/read", post(api::read))
        .route("/inbox/api/canned", get(api::canned).post(api::put_canned))
        .route("/inbox/api/canned/{shortcut}", delete(api::remove_canned))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(hub, auth::admit))
}
