//! # natter-hub — the Natter chat hub
//!
//! An axum + tokio server for the Natter widget: every browser session has its own support
//! conversation shared by all its tabs, answered by a reply engine; named rooms add multi-user
//! chat with presence. Clients speak [`natter_protocol`] over a WebSocket (`/ws/chat`) or the
//! HTTP fallback (`/api/chat/*`).
//!
//! # Layout
//! Three layers, each only talking to the one below (centrifuge / mini-redis style):
//!
//! - **Transport** — `accept` (the accept loop: header-read timeout, connection caps, the
//!   polite refusal past them), `socket` (an accepted stream: a deadline on every write, its
//!   place in the caps), `address` (the client address budgets are kept by, trusting only
//!   `--trusted-proxy` headers), `ws` (the `/ws/chat` upgrade; one task per connection,
//!   generic over `Sink`/`Stream`), `http` (fallback chat API, health, metrics; `http/rooms`,
//!   the room API and who may call it: the operator's `--api-key` or a user's identity token),
//!   `assets` (demo page, widget files), and `edge`, what both share (origin check, reading
//!   credentials and `after`, the client address and its budget, bodies read in bounded time,
//!   error answers, counting each refusal once). `client` is one connection's protocol state
//!   (who it is, joined rooms, client address, frame budget) and what each client message
//!   does; `budget` is the frame budget. They turn sockets and requests into calls on the hub.
//! - **Hub** — `hub`: conversations (each with its in-memory ring of recent messages),
//!   connections and their bounded send queues, rooms and presence, and the fan-out, which
//!   delivers *only* what comes out of [`store::Store::subscribe`] so one hub and many behind
//!   Redis behave alike. One job per file; `hub/mod.rs` lists them.
//! - **Domain** — [`store`] (sequencing, de-duplication, history, ordered delivery: the
//!   [`store::Store`] trait and its engines) and [`reply`] (the [`reply::ReplyEngine`] trait,
//!   the TOML [`reply::RulesEngine`], the [`reply::WebhookEngine`] and the streamed
//!   [`reply::LlmEngine`]). They never see a socket.
//!
//! Plus `inbox`, the operator inbox's transport (the `/inbox` web app, its API and socket, the
//! `operator` commands; what it does with conversations is in `hub`, what it keeps in
//! [`store::inbox`]), [`identity`] (who a connection is: verified identity tokens, the sessions the hub
//! issues, keyed member ids, room access), [`config`] (flags and `NATTER_*` variables),
//! `metrics` (Prometheus text by hand), `clock` (RFC 3339 timestamps), `ids` (message ids the
//! hub makes) and [`HubError`].
//!
//! Entry point: [`run`] serves a listener until a shutdown future completes; tests call it on
//! `127.0.0.1:0`, the binary calls it with Ctrl+C / SIGTERM.

pub mod config;
pub mod identity;
pub mod reply;
pub mod store;

mod accept;
mod address;
mod assets;
mod budget;
mod client;
mod clock;
mod edge;
mod error;
mod http;
mod hub;
mod ids;
mod inbox;
mod metrics;
mod origin_log;
mod socket;
#[cfg(test)]
mod test_log;
mod wire;
mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::Config;
pub use error::HubError;
pub use wire::{CONTROL_FRAMES_PER_SECOND, FRAGMENTS_PER_SECOND};

/// Runs `natter-hub operator …` against the configured store; the text to print on success.
pub async fn operator_command(config: &Config, action: &config::OperatorAction) -> Result<String, HubError> {
    inbox::cli::run(config, action).await
}

use hub::Hub;

use config::{ReplyBackend, ReplyFallback};
use reply::llm::LlmSettings;
use reply::{Fallback, LlmEngine, ReplyEngine, RulesEngine, WebhookEngine};
use store::redis::{RedisOptions, RedisStore};
use store::sqlite::{SqliteOptions, SqliteStore, SyncMode};
use store::{Store, StoreError};

/// How long shutdown waits for WebSockets to close after telling them to.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Opens the storage engine the configuration asks for. The one place that chooses an engine:
/// Redis with `--redis-url`, otherwise SQLite at `--db` (`:memory:` for a throwaway one).
pub async fn build_store(config: &Config) -> Result<Arc<dyn Store>, HubError> {
    let retention = config.retention_days.map(|d| Duration::from_secs(u64::from(d) * 86_400));
    if let Some(url) = &config.redis_url {
        let mut options = RedisOptions::new(url.clone());
        options.stream_len = config.redis_stream_len;
        options.retention = retention;
        options.presence_lease = config.presence_lease;
        options.namespace = config.redis_namespace.clone();
        return Ok(Arc::new(RedisStore::connect(options).await?));
    }
    let mut options = SqliteOptions::new(config.db.clone());
    options.retention = retention;
    options.sync = match config.db_sync {
        config::DbSync::Normal => SyncMode::Normal,
        config::DbSync::Full => SyncMode::Full,
    };
    // Opening migrates the schema: file I/O, kept off the async workers.
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(options))
        .await
        .map_err(|e| StoreError::Backend(format!("opening the database failed: {e}")))??;
    Ok(Arc::new(store))
}

/// Builds the reply engine the configuration asks for (`--reply-backend`). The rules file is
/// loaded whatever the backend: it is the fallback of the network backends and names the bot.
/// A missing or unusable flag is a [`HubError::Config`] naming it.
pub fn build_reply(config: &Config) -> Result<Arc<dyn ReplyEngine>, HubError> {
    let rules = Arc::new(RulesEngine::load(config.rules.as_deref())?);
    let fallback = match config.reply_fallback {
        ReplyFallback::Rules => Fallback::Rules(rules.clone()),
        ReplyFallback::Silent => Fallback::Silent,
    };
    let needs = |flag: &str, backend: &str| {
        HubError::Config(format!("--reply-backend {backend} needs {flag} (or its NATTER_ variable)"))
    };
    if config.reply_concurrency == 0 {
        return Err(HubError::Config("--reply-concurrency must be at least 1".into()));
    }
    if config.reply_backend != ReplyBackend::Rules {
        if config.reply_timeout.is_zero() {
            return Err(HubError::Config("--reply-timeout must be more than 0".into()));
        }
        if config.reply_idle_timeout.is_zero() {
            return Err(HubError::Config("--reply-idle-timeout must be more than 0".into()));
        }
        if config.reply_max_chars == 0 {
            return Err(HubError::Config("--reply-max-chars must be more than 0".into()));
        }
    }
    let fallback_name = match config.reply_fallback {
        ReplyFallback::Rules => "rules",
        ReplyFallback::Silent => "silent",
    };
    Ok(match config.reply_backend {
        ReplyBackend::Rules => rules,
        ReplyBackend::Webhook => {
            let url = config.webhook_url.as_deref().ok_or_else(|| needs("--webhook-url", "webhook"))?;
            let engine = Arc::new(
                WebhookEngine::new(
                    url,
                    config.webhook_secret.as_deref(),
                    config.reply_idle_timeout,
                    config.reply_max_chars,
                    fallback,
                )
                .map_err(HubError::Config)?,
            );
            tracing::info!(
                url = %engine.endpoint(),
                signed = config.webhook_secret.as_deref().is_some_and(|s| !s.is_empty()),
                fallback = fallback_name,
                "replies come from a webhook"
            );
            engine
        }
        ReplyBackend::Llm => {
            let base_url = config.llm_url.clone().ok_or_else(|| needs("--llm-url", "llm"))?;
            let model = config.llm_model.clone().ok_or_else(|| needs("--llm-model", "llm"))?;
            let settings = LlmSettings {
                base_url,
                model,
                api_key: config.llm_api_key.clone(),
                system_prompt: config.llm_system_prompt.clone(),
                history: config.llm_history,
                max_tokens: config.llm_max_tokens,
                idle_timeout: config.reply_idle_timeout,
                max_chars: config.reply_max_chars,
            };
            let engine = Arc::new(LlmEngine::new(settings, fallback).map_err(HubError::Config)?);
            tracing::info!(
                url = %engine.endpoint(),
                model = config.llm_model.as_deref().unwrap_or_default(),
                fallback = fallback_name,
                "replies come from an LLM"
            );
            engine
        }
    })
}

/// Serves the hub on `listener` with the configured store and reply engine until `shutdown`
/// completes; then closes every WebSocket with 1001 and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    // The rules and origins first: a configuration mistake should stop the hub before it
    // touches storage (and creates a database file).
    check_origins(&config.allowed_origins)?;
    check_api_key(&config)?;
    let reply = build_reply(&config)?;
    let store = build_store(&config).await?;
    serve(listener, config, store, reply, shutdown).await
}

/// [`run`] with a given store and reply engine (tests use a store with a retention cap).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    store: Arc<dyn Store>,
    reply: Arc<dyn ReplyEngine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    check_origins(&config.allowed_origins)?;
    check_api_key(&config)?;
    if config.allowed_origins.is_empty() {
        tracing::warn!("no --allowed-origin given: pages of ANY origin may connect; set it in production");
    }
    let identity = identity::Identity::load(&config, &*store).await?;
    if config.open_sessions {
        tracing::warn!(
            "--open-sessions: session ids chosen by clients are accepted, so anyone who guesses or learns one reads and writes that conversation; for development and old clients only"
        );
    }
    if config.room_access() == config::RoomAccess::Identified && !identity.verifies_tokens() {
        return Err(HubError::Config(
            "--room-access identified needs --identity-secret or --identity-public-key to verify users"
                .into(),
        ));
    }
    let widget = assets::WidgetSource::from_config(&config);
    let (widget_from, widget_warning) = widget.describe();
    if let Some(warning) = widget_warning {
        tracing::warn!("{warning}");
    }
    let (database, rules) = (describe_database(&config), describe_rules(&config));
    let hub = Hub::start(config, store, reply, identity);
    hub.learn_availability().await;
    let app = router(hub.clone(), Arc::new(widget));
    let signal_hub = hub.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: closing connections with 1001");
        signal_hub.begin_shutdown();
    };
    // One line an operator can read at a glance: where the hub is, what it stores into, what
    // answers and what it serves.
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, %database, %rules, widget = %widget_from, "natter hub listening on http://{addr}/");
    }
    accept::serve(listener, hub.clone(), app, graceful).await?;
    if !hub.drained(DRAIN_LIMIT).await {
        tracing::warn!("some connections did not close in time");
    }
    Ok(())
}

/// The storage, as the start-up log names it: the SQLite file (absolute), memory, or the Redis
/// server (without its password).
fn describe_database(config: &Config) -> String {
    if let Some(url) = &config.redis_url {
        let shown = match (url.split_once("://"), url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
            _ => url.clone(),
        };
        return format!("redis {shown}");
    }
    if config.db.as_os_str() == ":memory:" {
        return "sqlite in memory (nothing is kept after a restart)".to_string();
    }
    let path = std::path::absolute(&config.db).unwrap_or_else(|_| config.db.clone());
    format!("sqlite {}", path.display())
}

/// The reply rules, as the start-up log names them.
fn describe_rules(config: &Config) -> String {
    match &config.rules {
        Some(path) => std::path::absolute(path).unwrap_or_else(|_| path.clone()).display().to_string(),
        None => "built-in".to_string(),
    }
}

/// Refuses an `--api-key` shorter than [`config::MIN_API_KEY_BYTES`], naming the flag but not
/// the key. An empty one is no key (room creation over HTTP stays off), as when unset; none
/// with `--room-creation api` is refused too (nobody could make a room).
fn check_api_key(config: &Config) -> Result<(), HubError> {
    if config.room_creation == config::RoomCreation::Api
        && config.api_key.as_deref().is_none_or(str::is_empty)
    {
        return Err(HubError::Config(
            "--room-creation api lets only the holder of --api-key (NATTER_API_KEY) make rooms, and no key is set"
                .into(),
        ));
    }
    match config.api_key.as_deref() {
        Some(key) if !key.is_empty() && key.len() < config::MIN_API_KEY_BYTES => Err(HubError::Config(format!(
            "--api-key (NATTER_API_KEY) is {} bytes long; it must have at least {} (it opens every room): make one with `openssl rand -hex 32`",
            key.len(),
            config::MIN_API_KEY_BYTES
        ))),
        _ => Ok(()),
    }
}

/// Refuses allow-list entries that are not origins (`https://example.com[:port]`): a bare
/// host name would silently match nothing and lock every page out.
fn check_origins(origins: &[String]) -> Result<(), HubError> {
    for o in origins {
        let ok = o.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                && !rest.trim_end_matches('/').is_empty()
                && !rest.trim_end_matches('/').contains('/')
        });
        if !ok {
            return Err(HubError::Config(format!(
                "--allowed-origin {o:?} is not an origin; write it as the browser sends it, like https://example.com or http://localhost:3000"
            )));
        }
    }
    Ok(())
}

/// The routes.
fn router(hub: Hub, widget: Arc<assets::WidgetSource>) -> Router {
    let config = hub.config();
    let session_header = HeaderName::from_static(natter_protocol::SESSION_HEADER);
    let cors = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        // Credentials travel in headers, never in URLs: the identity token as a bearer token,
        // an anonymous session in `X-Natter-Session` (also how a newly issued one comes back).
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, session_header.clone()])
        .expose_headers([session_header, header::RETRY_AFTER])
        .max_age(edge::PREFLIGHT_MAX_AGE)
        .allow_origin(if config.allowed_origins.is_empty() {
            AllowOrigin::any()
        } else {
            // Every page's preflight is let through; what an origin may read is decided on the
            // request itself. A widget that sends credentials in headers (a signed-in user, a
            // returning visitor) needs a preflight, and a refused preflight is a network error
            // the page cannot tell from an outage: let through, the request reaches the
            // handler, whose origin check answers the readable 403 `forbidden_origin` (see
            // `edge`) and nothing else. Answers to allowed origins alone carry this header.
            let allowed: Vec<HeaderValue> =
                config.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
            AllowOrigin::predicate(move |origin, request| {
                request.method == Method::OPTIONS || allowed.contains(origin)
            })
        });
    let api = Router::new()
        .route("/api/chat/messages", axum::routing::post(http::post_message))
        .route("/api/chat/poll", get(http::poll))
        .route("/api/rooms", get(http::list_rooms).post(http::create_room))
        .route("/api/rooms/{room}", get(http::room_info).put(http::put_room).delete(http::delete_room))
        .layer(DefaultBodyLimit::max(config.max_frame))
        .layer(axum::middleware::from_fn_with_state(hub.clone(), edge::admit))
        // Outside `admit`, so that refusals by `admit` (429) carry CORS headers too: a page's
        // script can then read the status and `Retry-After` instead of seeing a network error.
        .layer(cors)
        // Outermost: the CORS layer answers preflights without passing them on, so they are
        // charged here, before it (a refused preflight is a network error to the page whatever
        // headers it carries, so it needs none).
        .layer(axum::middleware::from_fn_with_state(hub.clone(), edge::admit_preflight));
    // Everything else a client can ask for — health, metrics, the demo page, the widget's files
    // (its wasm module fetched in a loop on one keep-alive connection was 16 GB in half a
    // minute) — is one request of its address's budget too.
    let site = Router::new()
        .route("/healthz", get(http::healthz))
        .route("/metrics", get(http::metrics))
        .route("/", get(assets::demo))
        .route("/demo.css", get(assets::demo_css))
        .route("/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
        .fallback(get(move |request| assets::widget_file(widget.clone(), request)))
        .layer(axum::middleware::from_fn_with_state(hub.clone(), edge::admit));
    Router::new()
        .route(
            "/ws/chat",
            get(ws::upgrade).layer(axum::middleware::from_fn_with_state(hub.clone(), edge::admit)),
        )
        .merge(api)
        // The inbox admits its own requests: those of signed-in operators (staff) are free,
        // everyone else's draw on their address's budget (see `inbox::auth::admit`).
        .merge(inbox::routes(hub.clone(), config.max_frame))
        .merge(site)
        .layer(axum::middleware::from_fn_with_state(hub.clone(), edge::count_refusals))
        .with_state(hub)
}
