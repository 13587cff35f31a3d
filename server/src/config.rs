//! The hub's configuration: every flag, its `NATTER_*` environment variable and its default.
//!
//! `natter-hub --help` prints the doc comment of each [`Config`] field with its variable and default;
//! tests build a [`Config`] with [`Config::for_tests`] and change the fields they care about.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ipnet::IpNet;

use crate::address::parse_trusted_proxy;

/// `--max-connections-per-address` when not given, unless a quarter of `--max-connections` is
/// smaller.
pub const CONNECTIONS_PER_ADDRESS: usize = 1024;

/// The shortest `--api-key` the hub accepts, in bytes: the key grants every room, so it must
/// not be guessable by trying.
pub const MIN_API_KEY_BYTES: usize = 16;

/// Natter hub: WebSocket + HTTP chat server with rooms, presence and a reply engine.
///
/// Every flag can also be set with the environment variable shown next to it.
#[derive(Debug, Clone, Parser)]
#[command(name = "natter-hub", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "NATTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// An origin allowed to connect (`https://example.com`); repeat the flag for several, or
    /// separate them with commas in the variable. Default: every origin is allowed (a warning is
    /// logged at start). Requests without an `Origin` header (non-browser clients) are allowed.
    #[arg(long = "allowed-origin", env = "NATTER_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// A reverse proxy (an address or a network, `10.0.0.0/8`) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client; repeat the flag for several, or separate
    /// them with commas in the variable. Budgets per client address use the address a trusted
    /// proxy names; any other peer is taken as the client itself. Default: none.
    #[arg(long = "trusted-proxy", env = "NATTER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_trusted_proxy)]
    pub trusted_proxies: Vec<IpNet>,

    /// Which header the `--trusted-proxy` proxies write the client's address into:
    /// `x-forwarded-for` (nginx, Caddy, HAProxy's `option forwardfor`, cloud load balancers) or
    /// `forwarded` (RFC 7239). Only that one is read: a proxy passes on whatever other header
    /// the client sent, so reading both would let a client pick its own address.
    #[arg(long, env = "NATTER_FORWARDED_HEADER", value_enum, default_value_t = ForwardedHeader::XForwardedFor)]
    pub forwarded_header: ForwardedHeader,

    /// Shared secret for verifying HS256 identity tokens (JWTs) signed by the site's backend; at
    /// least 32 bytes (`openssl rand -hex 32`). Repeat the flag (or separate with commas in the
    /// variable; a secret cannot contain one) to accept several while rotating. See
    /// docs/identity.md.
    #[arg(
        long = "identity-secret",
        env = "NATTER_IDENTITY_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub identity_secrets: Vec<String>,

    /// A PEM file with an RSA (RS256) or P-256 (ES256) public key for verifying identity tokens,
    /// for sites that keep the signing key to themselves. Repeat the flag to accept several.
    #[arg(long = "identity-public-key", env = "NATTER_IDENTITY_PUBLIC_KEY", value_delimiter = ',')]
    pub identity_public_keys: Vec<PathBuf>,

    /// When set, identity tokens must carry this `aud` (audience); tokens for another audience,
    /// or without one, are refused.
    #[arg(long, env = "NATTER_IDENTITY_AUDIENCE")]
    pub identity_audience: Option<String>,

    /// Longest identity token lifetime accepted: `exp - iat` (or `exp - now` without `iat`, or
    /// when `iat` is in the future). A token that lives longer is refused, so a leaked one is
    /// not good for long.
    #[arg(long, env = "NATTER_IDENTITY_MAX_LIFETIME", default_value = "24h", value_parser = parse_duration)]
    pub identity_max_lifetime: Duration,

    /// Who may join rooms: `open` (anyone with a session) or `identified` (only users with a
    /// verified identity token, within its `rooms` claim). Default: `identified` when an
    /// identity secret or public key is configured, `open` otherwise.
    #[arg(long, env = "NATTER_ROOM_ACCESS", value_enum)]
    pub room_access: Option<RoomAccess>,

    /// Secret keying the session ids this hub issues and the public member ids (at least 32
    /// bytes, no commas). Every hub behind one load balancer must share it. Repeat to rotate: the
    /// first issues, all verify. Default: one made at first start and kept in the database (SQLite) or
    /// in Redis, shared by every hub on that Redis.
    #[arg(
        long = "session-secret",
        env = "NATTER_SESSION_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub session_secrets: Vec<String>,

    /// Accept session ids chosen by clients (the original widget's `?session=session-xxx`), as
    /// before sessions were issued by the hub. Anyone who guesses or learns such an id can read
    /// and write that conversation: for development and old clients only (a warning is logged).
    #[arg(long, env = "NATTER_OPEN_SESSIONS")]
    pub open_sessions: bool,

    /// Messages per conversation kept in memory for fast resume.
    #[arg(long, env = "NATTER_RING_SIZE", default_value_t = 100)]
    pub ring_size: usize,

    /// Bytes of messages per conversation kept in memory (the oldest go first; the newest
    /// always stays).
    #[arg(long, env = "NATTER_RING_BYTES", default_value_t = 65_536)]
    pub ring_bytes: usize,

    /// Most conversations held in memory. When a new one is needed at the cap, the least
    /// recently used conversation nobody is connected to is forgotten (it is read back from
    /// the store when needed); when every one is in use, the request is answered `unavailable`.
    #[arg(long, env = "NATTER_MAX_CONVERSATIONS", default_value_t = 50_000)]
    pub max_conversations: usize,

    /// Most uses of conversations one client address (and each wider IPv6 network) keeps in
    /// memory at once: each of its WebSockets' own conversation and every room it joined, and
    /// every conversation one of its long-polls waits on. A conversation in use is never
    /// forgotten, so without this one address in rooms could hold every `--max-conversations`
    /// place and have every new visitor refused. Past it a `join`, a connection or a poll is
    /// refused `rate_limited` (429) until the address leaves something. 0 for no limit.
    /// Default: a quarter of --max-conversations.
    #[arg(long, env = "NATTER_MAX_CONVERSATIONS_PER_ADDRESS")]
    pub max_conversations_per_address: Option<usize>,

    /// Messages of history sent to a connection that gives no `after` (a new tab).
    #[arg(long, env = "NATTER_RECENT", default_value_t = 50)]
    pub recent: usize,

    /// Most messages one resume replays; older missed ones are reported as a gap.
    #[arg(long, env = "NATTER_MAX_REPLAY", default_value_t = 1000)]
    pub max_replay: usize,

    /// Most bytes of messages in one `history` answer; older missed ones are reported as a gap.
    #[arg(long, env = "NATTER_MAX_REPLAY_BYTES", default_value_t = 1_048_576)]
    pub max_replay_bytes: usize,

    /// Most bytes of `history` answers the hub holds at once while they are read from the store
    /// and written to clients (a WebSocket that does not read keeps its answer's share until
    /// the answer is in the kernel's send buffer, `--socket-send-buffer`); one client address
    /// may hold a quarter of it. Past it a resume is answered `unavailable` (or `rate_limited` for
    /// the address's share) with a short `Retry-After`. 0 turns the cap off.
    #[arg(long, env = "NATTER_MAX_REPLAY_IN_FLIGHT", default_value_t = 64 * 1_048_576)]
    pub max_replay_in_flight: usize,

    /// Largest WebSocket frame / message accepted, in bytes; a bigger one closes the connection
    /// with 1009 without being read. Also the largest HTTP body. At least 65536, the frame size
    /// every client may count on (`natter_protocol::MAX_FRAME_BYTES`): the widget keeps its
    /// frames within it, and a smaller limit would close its connection on a message it had
    /// every right to send, again on each reconnect.
    #[arg(long, env = "NATTER_MAX_FRAME", default_value_t = natter_protocol::MAX_FRAME_BYTES,
          value_parser = parse_max_frame)]
    pub max_frame: usize,

    /// Longest message text accepted, in characters.
    #[arg(long, env = "NATTER_MAX_TEXT", default_value_t = 4000)]
    pub max_text: usize,

    /// Largest `context` of a visitor's message, in bytes of JSON; a message with a larger one
    /// is refused (`too_large`).
    #[arg(long, env = "NATTER_MAX_CONTEXT", default_value_t = 8192)]
    pub max_context: usize,

    /// Rooms with more members than this do not announce each join and leave to every member
    /// (that traffic grows with the square of the room size); `room_info` still counts them.
    #[arg(long, env = "NATTER_PRESENCE_ANNOUNCE_LIMIT", default_value_t = 200)]
    pub presence_announce_limit: usize,

    /// Frames queued per connection before it counts as a slow consumer and is closed with 4001.
    #[arg(long, env = "NATTER_SEND_QUEUE", default_value_t = 256)]
    pub send_queue: usize,

    /// Bytes of frames queued per connection before it counts as a slow consumer and is
    /// closed with 4001, besides `--send-queue`'s count: 256 frames of up to `--max-frame`
    /// each would be 16 MiB. The connection's own answers (ack, pong, error) are counted too,
    /// though never refused; a `history` answer is bounded by `--max-replay-in-flight` instead
    /// (it counts towards `--address-send-queue-bytes`). A frame always fits an empty queue.
    /// 0: no byte bound.
    #[arg(long, env = "NATTER_SEND_QUEUE_BYTES", default_value_t = 1_048_576)]
    pub send_queue_bytes: usize,

    /// Bytes queued to all the WebSockets of one client address together (and to all those of
    /// one IPv6 /56 or /48 together: a network gets one address's share, however many /64s
    /// it spreads over). A frame that would pass it closes the connection it was for as a slow
    /// consumer (4001), so peers that never read cannot pin more than this however many rooms
    /// and connections they use. 0: no bound per address.
    #[arg(long, env = "NATTER_ADDRESS_SEND_QUEUE_BYTES", default_value_t = 8_388_608)]
    pub address_send_queue_bytes: usize,

    /// The kernel's send buffer for each connection, in bytes (`SO_SNDBUF`; Linux allocates
    /// twice this, up to `net.core.wmem_max`). What a peer has not read waits there, then in
    /// the hub's own queue, where it is counted: a bounded buffer keeps a peer that never
    /// reads from holding megabytes of kernel memory per connection (the kernel's autotuning
    /// grows it to `net.ipv4.tcp_wmem`'s maximum, 4 MB by default). 0 leaves it to the kernel.
    #[arg(long, env = "NATTER_SOCKET_SEND_BUFFER", default_value_t = 65_536)]
    pub socket_send_buffer: usize,

    /// How often the hub pings each WebSocket (`30s`, `500ms`, or a number of milliseconds).
    #[arg(long, env = "NATTER_PING_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// A WebSocket that answers none of the hub's pings for this long is closed with 4002 (a
    /// peer that sends but never reads included); a write to any connection, WebSocket or
    /// HTTP, that makes no progress for this long ends it.
    #[arg(long, env = "NATTER_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// How long a connection may take to send a request's head, from when it opens or its
    /// previous answer went out (so also how long an idle HTTP keep-alive connection stays
    /// open), and then the request's body.
    #[arg(long, env = "NATTER_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Most open connections (sockets, WebSocket or HTTP). Past it a new connection gets one
    /// short answer (`/healthz` still works; everything else `503` with `Retry-After`) and is
    /// closed. Default: the open-file limit less a reserve for the store and backends.
    #[arg(long, env = "NATTER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most open connections from one client address (an IPv6 /64 counts as one); 0 for no
    /// limit. Default: 1,024 — an office of a few hundred people behind one address, each with
    /// a few tabs open (every tab holds a WebSocket, or a long-poll on the HTTP fallback) — or a
    /// quarter of --max-connections when that is smaller, so that a few addresses never hold
    /// every connection the hub has.
    #[arg(long, env = "NATTER_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,

    /// How long `GET /api/chat/poll` waits for a message before answering an empty history.
    #[arg(long, env = "NATTER_POLL_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub poll_timeout: Duration,

    /// Most long-polls held at once; past it a poll is answered `unavailable` (503).
    #[arg(long, env = "NATTER_MAX_POLLS", default_value_t = 10_000)]
    pub max_polls: usize,

    /// Most long-polls held at once for one client address; past it `rate_limited` (429). A
    /// tab on the HTTP fallback (an office proxy that blocks WebSockets, say) holds one for its
    /// chat and one per room it joined.
    #[arg(long, env = "NATTER_MAX_POLLS_PER_ADDRESS", default_value_t = 512)]
    pub max_polls_per_address: usize,

    /// Most rooms one WebSocket is joined to at once; a `join` past it is refused
    /// (`invalid_message`, naming the flag) until the connection leaves one. Each joined room
    /// costs the hub a member entry, a place in the room's fan-out and a presence record, and
    /// joins are only rate-limited, so without a cap one connection could collect thousands
    /// over an afternoon. The collaboration panel and the rooms API use a handful.
    #[arg(long, env = "NATTER_MAX_ROOMS_PER_CONNECTION", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms_per_connection: u32,

    /// Reply rules file (TOML). Default: the rules shipped inside the hub (`server/rules.toml`).
    #[arg(long, env = "NATTER_RULES")]
    pub rules: Option<PathBuf>,

    /// Directory holding the built widget (`natter.js`, its `.wasm`, `.mjs`, `.d.ts`), read on
    /// each request so a rebuild is served at once (`npm/dist` in the repository). Default: the
    /// widget embedded in this binary when it was compiled (built with `cargo xtask build`
    /// first); the start-up log says which.
    #[arg(long, env = "NATTER_ASSETS")]
    pub assets: Option<PathBuf>,

    /// Messages per second a session may send (user, chat, join), sustained.
    #[arg(long, env = "NATTER_RATE_PER_SEC", default_value_t = 5.0, value_parser = parse_rate)]
    pub rate_per_sec: f64,

    /// Messages a session may send in a burst before the rate applies (0 turns limiting off).
    #[arg(long, env = "NATTER_RATE_BURST", default_value_t = 20)]
    pub rate_burst: u32,

    /// Requests per second one client address may make, sustained: WebSocket connects and the
    /// messages, joins and token renewals sent on them, and every `/api` request. Sized for an
    /// office of a hundred people with a few tabs each on the HTTP fallback (every tab re-polls
    /// at least every `--poll-timeout` and probes the WebSocket in the background).
    #[arg(long, env = "NATTER_ADDRESS_RATE_PER_SEC", default_value_t = 50.0, value_parser = parse_rate)]
    pub address_rate_per_sec: f64,

    /// Requests one client address may make in a burst before its rate applies (0 turns
    /// limiting per address off).
    #[arg(long, env = "NATTER_ADDRESS_RATE_BURST", default_value_t = 500)]
    pub address_rate_burst: u32,

    /// New connections per second one client address may open, sustained, checked as each
    /// connection is accepted, before anything is read from it: a connection past the budget
    /// gets a fixed `429` with `Retry-After` at once and is closed, for a fraction of what an
    /// answer to a parsed request costs. Counts only peers that connect directly; behind a
    /// `--trusted-proxy` the proxy's connections are not counted (its clients' requests still
    /// are, by `--address-rate-*`). The default is `--address-rate-per-sec`'s: every connection
    /// carries at least one request, so this turns away only connections whose request would be
    /// refused anyway (and those that never send one), just cheaper. 0 turns it off.
    #[arg(long, env = "NATTER_ADDRESS_CONNECT_RATE_PER_SEC", default_value_t = 50.0, value_parser = parse_rate)]
    pub address_connect_rate_per_sec: f64,

    /// New connections one client address may open in a burst before its connect rate
    /// applies; `--address-rate-burst`'s by default (see `--address-connect-rate-per-sec`).
    /// 0 turns the connect budget off.
    #[arg(long, env = "NATTER_ADDRESS_CONNECT_BURST", default_value_t = 500)]
    pub address_connect_burst: u32,

    /// Bytes per second each WebSocket may make the hub send, sustained: every frame it sends
    /// costs its size (plus 256 bytes) times the connections it reaches. Past a 4-second burst
    /// frames are refused (`rate_limited`); a connection that keeps going until it owes another
    /// burst is closed with 4029. 0 turns this budget off.
    #[arg(long, env = "NATTER_FRAME_BUDGET", default_value_t = 1_048_576)]
    pub frame_budget: u64,

    /// Bytes per second all the WebSockets of one client address together may make the hub
    /// send, counted like `--frame-budget` (connections are free to open, so a budget per
    /// connection alone is multiplied by every connection an address opens). Past a 4-second
    /// burst their frames are refused (`rate_limited`). 0 turns this budget off.
    #[arg(long, env = "NATTER_ADDRESS_FRAME_BUDGET", default_value_t = 8 * 1_048_576)]
    pub address_frame_budget: u64,

    /// Rooms one client address may create per hour (a `join` of a room that does not exist,
    /// or a message posted to one over the HTTP fallback, creates it; so does a signed-in
    /// user's `POST /api/rooms`); 0 for no limit. An office whose people open a few new
    /// documents (rooms) an hour each stays well within it.
    #[arg(long, env = "NATTER_ROOM_CREATIONS_PER_HOUR", default_value_t = 600)]
    pub room_creations_per_hour: u32,

    /// Support conversations one client address may open per hour (a visitor's first message
    /// opens one; every later message, and every resend, is free); 0 for no limit. Sessions are
    /// free to make, so without it one address could open thousands of conversations and bury
    /// every honest visitor's in the operators' inbox. A visitor keeps their conversation across
    /// visits, so an office or campus behind one address would need 300 different people
    /// starting a chat on this site within one hour to meet it.
    #[arg(long, env = "NATTER_ADDRESS_CONVERSATIONS_PER_HOUR", default_value_t = 300)]
    pub address_conversations_per_hour: u32,

    /// New support conversations per second whose follow-up work the hub does, all addresses
    /// together, sustained. What follows a conversation's first message (its inbox record, the
    /// bot's answer stored and recorded, a reply-engine call) costs the hub several times what a
    /// later message does, and per-address budgets do not bound how many arrive at once from
    /// many addresses: 1,500 of them within a second, from 50 addresses, held up every other
    /// visitor's and room member's messages on a one-CPU hub. Past the rate a first message waits
    /// for a turn for at most 2 s, the next turn going to the client address served least
    /// recently (so busy addresses cannot hold up a new visitor); then it is stored and
    /// acknowledged anyway and its follow-up waits for the turn instead: nobody is refused for
    /// it. Later messages are never paced by it. The default, 100 a second (360,000 an hour), costs a one-CPU hub some 3–5 %
    /// of its time; 0 turns the pace off.
    #[arg(long, env = "NATTER_NEW_CONVERSATIONS_PER_SEC", default_value_t = 100.0, value_parser = parse_rate)]
    pub new_conversations_per_sec: f64,

    /// New support conversations whose follow-ups the hub does at once before
    /// `--new-conversations-per-sec` applies (0 turns the pace off).
    #[arg(long, env = "NATTER_NEW_CONVERSATIONS_BURST", default_value_t = 20)]
    pub new_conversations_burst: u32,
    /// Bytes of messages one client address may have stored per day (an IPv6 /56 four times
    /// and a /48 sixteen times as much): each visitor or room message it sends is charged its
    /// size as stored (text, context, ids, author, timestamp and the row's bookkeeping), a
    /// visitor message also the bot's answer it brings (`--reply-max-chars` bytes and a row).
    /// Past it messages are refused (`rate_limited`, with how long to wait) until the day's
    /// budget refills, so one address cannot fill the disk from fresh sessions. The default,
    /// 64 MiB, is some 2,500 visitor messages of the largest kind a day (4,000 four-byte
    /// characters and 8 KiB of context), or over 20,000 ordinary ones. 0 for no limit.
    #[arg(long, env = "NATTER_ADDRESS_STORE_BYTES_PER_DAY", default_value_t = 64 * 1_048_576)]
    pub address_store_bytes_per_day: u64,

    /// Bytes that must stay free on the disk of the database (`--db`): below it the hub
    /// refuses new messages from clients (`unavailable`, HTTP 503 with `Retry-After`) instead
    /// of letting the disk fill, which would fail writes half-way. Read at most every five
    /// seconds. Operators' replies and the bot's answers still go through. Not checked with
    /// `--redis-url` or `:memory:`. 0 turns it off.
    #[arg(long, env = "NATTER_MIN_FREE_DISK", default_value_t = 1 << 30)]
    pub min_free_disk: u64,

    /// A room with no message and nobody in it is deleted once it is this old (`0` keeps
    /// empty rooms).
    #[arg(long, env = "NATTER_EMPTY_ROOM_TTL", default_value = "24h", value_parser = parse_duration)]
    pub empty_room_ttl: Duration,

    /// Who makes rooms: `join` (a `join` of a room that does not exist makes it, within
    /// `--room-creations-per-hour`; so does a signed-in user's `POST /api/rooms`) or `api`
    /// (only the operator's servers, with `--api-key`: `POST` or `PUT /api/rooms`; a `join` of
    /// an unknown room is refused with `unknown_room`, so no id can be taken before the site
    /// makes it). `api` needs `--api-key`.
    #[arg(long, env = "NATTER_ROOM_CREATION", value_enum, default_value_t = RoomCreation::Join)]
    pub room_creation: RoomCreation,

    /// The operator's key for the room API (`POST /api/rooms`, `PUT` and `DELETE
    /// /api/rooms/{room}`, and reading every room), sent as `Authorization: Bearer <key>`; at
    /// least 16 bytes (`openssl rand -hex 32`), or the hub refuses to start. Default: none, and
    /// room creation over HTTP is refused (rooms are still made by `join`).
    #[arg(long, env = "NATTER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// How long the bot "types" at least before its reply is stored, so the typing indicator is
    /// visible (`0` for none).
    #[arg(long, env = "NATTER_REPLY_DELAY", default_value = "400ms", value_parser = parse_duration)]
    pub reply_delay: Duration,

    /// What answers visitors: `rules` (the rules file), `webhook` (POST to --webhook-url) or
    /// `llm` (an OpenAI-compatible chat server at --llm-url).
    #[arg(long, env = "NATTER_REPLY_BACKEND", value_enum, default_value_t = ReplyBackend::Rules)]
    pub reply_backend: ReplyBackend,

    /// What the `webhook` and `llm` backends answer when they fail or time out: `rules` (the
    /// rules engine's answer, so the visitor always gets one) or `silent` (no reply; an operator
    /// is expected to step in). Failures are logged and counted in natter_reply_failures_total.
    #[arg(long, env = "NATTER_REPLY_FALLBACK", value_enum, default_value_t = ReplyFallback::Rules)]
    pub reply_fallback: ReplyFallback,

    /// The whole reply's deadline, from the visitor's message to a complete answer: waiting in
    /// the reply queue, connecting, the webhook's whole answer or the LLM's whole stream
    /// (keep-alive comments do not extend it). Past it the call is dropped and the fallback
    /// answers.
    #[arg(long, env = "NATTER_REPLY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub reply_timeout: Duration,

    /// How long the `webhook` or `llm` backend may stay silent — connecting, before the first
    /// bytes of the answer, between streamed chunks — before the reply counts as failed, so a
    /// dead backend is noticed before --reply-timeout.
    #[arg(long, env = "NATTER_REPLY_IDLE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub reply_idle_timeout: Duration,

    /// Longest reply stored from the `webhook` or `llm` backend, in characters; a longer one is
    /// cut at a word boundary and ends with "…" (an LLM stream is stopped there). Every reply,
    /// the rules' included, is also cut to --max-text.
    #[arg(long, env = "NATTER_REPLY_MAX_CHARS", default_value_t = 2000)]
    pub reply_max_chars: usize,

    /// Most reply-engine calls in flight at once on this hub (webhook requests, LLM streams).
    /// One client address calls in at most a quarter of them (at least one) at once; its other
    /// messages wait their turn.
    #[arg(long, env = "NATTER_REPLY_CONCURRENCY", default_value_t = 32)]
    pub reply_concurrency: usize,

    /// Replies that may wait for a free call when --reply-concurrency are in flight; past that
    /// the fallback answers at once, counted in natter_reply_shed_total. `0`: none wait.
    #[arg(long, env = "NATTER_REPLY_QUEUE", default_value_t = 256)]
    pub reply_queue: usize,

    /// The URL the `webhook` backend POSTs each visitor message to (http or https).
    #[arg(long, env = "NATTER_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Secret for signing webhook requests: each carries `X-Natter-Signature: sha256=<hex
    /// HMAC-SHA256 of the body>`. Default: unsigned.
    #[arg(long, env = "NATTER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Base URL of the OpenAI-compatible API for the `llm` backend; the hub POSTs to
    /// `{base}/chat/completions` (OpenAI `https://api.openai.com/v1`, Ollama
    /// `http://127.0.0.1:11434/v1`, vLLM `http://127.0.0.1:8000/v1`).
    #[arg(long, env = "NATTER_LLM_URL")]
    pub llm_url: Option<String>,

    /// The model name the `llm` backend asks for (`gpt-4o-mini`, `llama3.2`, …).
    #[arg(long, env = "NATTER_LLM_MODEL")]
    pub llm_model: Option<String>,

    /// API key for the `llm` backend, sent as `Authorization: Bearer <key>`. Default: none
    /// (local servers such as Ollama need none).
    #[arg(long, env = "NATTER_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,

    /// The system prompt for the `llm` backend. Visitor data never enters it: `{page}` becomes
    /// a pointer to the page in the visitor context, which travels (bounded, delimited) in the
    /// visitor's own message. Default: a concise support-assistant prompt.
    #[arg(long, env = "NATTER_LLM_SYSTEM_PROMPT")]
    pub llm_system_prompt: Option<String>,

    /// Earlier messages of the conversation sent to the LLM with each new one.
    #[arg(long, env = "NATTER_LLM_HISTORY", default_value_t = 20)]
    pub llm_history: usize,

    /// `max_tokens` asked of the LLM per reply (0: not sent, the server's default applies).
    #[arg(long, env = "NATTER_LLM_MAX_TOKENS", default_value_t = 512)]
    pub llm_max_tokens: u32,

    /// SQLite database file, created when missing (`:memory:`: nothing kept after exit). Not
    /// used with `--redis-url`. See docs/operations.md. Also accepted after `operator …`.
    #[arg(long, env = "NATTER_DB", default_value = "natter.db", global = true)]
    pub db: PathBuf,

    /// SQLite commit durability: `normal` survives a crash or kill of the hub; `full` also a
    /// power cut, at one fsync per batch of writes.
    #[arg(long, env = "NATTER_DB_SYNC", value_enum, default_value_t = DbSync::Normal)]
    pub db_sync: DbSync,

    /// Delete messages older than this many days (with Redis: conversations idle that long
    /// expire). Default: keep everything.
    #[arg(long, env = "NATTER_RETENTION_DAYS")]
    pub retention_days: Option<u32>,

    /// Redis URL (`redis://[user:password@]host:port[/db]`): store in Redis and run as one of
    /// several hubs behind a load balancer. Default: SQLite (`--db`). Also accepted after
    /// `operator …`.
    #[arg(long, env = "NATTER_REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// About how many messages each conversation keeps in Redis (history and de-duplication).
    #[arg(long, env = "NATTER_REDIS_STREAM_LEN", default_value_t = 10_000)]
    pub redis_stream_len: usize,

    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    #[arg(long, env = "NATTER_REDIS_NAMESPACE", default_value = "natter", global = true)]
    pub redis_namespace: String,

    /// With Redis: how long this hub's room members stay listed without a refresh; the members
    /// of a hub that died leave after about one and a half leases.
    #[arg(long, env = "NATTER_PRESENCE_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub presence_lease: Duration,

    /// How long an operator stays signed in to the inbox (`/inbox`) without signing in again.
    #[arg(long, env = "NATTER_OPERATOR_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub operator_session_ttl: Duration,

    /// Mark the inbox's session cookie `Secure` (sent over HTTPS only). Set it when the hub is
    /// behind a TLS proxy; the cookie is also `Secure` whenever the request came with
    /// `X-Forwarded-Proto: https`.
    #[arg(long, env = "NATTER_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// A one-off command instead of serving (`natter-hub operator add NAME`).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Log format.
    #[arg(long, env = "NATTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The header a trusted proxy names the client in (`--forwarded-header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`, each proxy appending the peer it saw.
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, …` (RFC 7239).
    Forwarded,
}

/// Who may join rooms (`--room-access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoomAccess {
    /// Any connection.
    Open,
    /// Only signed-in users (a verified identity token), within the token's `rooms` claim.
    Identified,
}

/// Who makes rooms (`--room-creation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoomCreation {
    /// A `join` (or an HTTP-fallback message) of a room that does not exist makes it, within
    /// the address's `--room-creations-per-hour`, as do signed-in users' `POST /api/rooms`.
    Join,
    /// Only the operator's servers (`--api-key`) make rooms.
    Api,
}

/// Which reply engine answers visitors (`--reply-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplyBackend {
    /// Keyword rules from the rules file.
    Rules,
    /// The customer's HTTP endpoint (`--webhook-url`).
    Webhook,
    /// An OpenAI-compatible chat server (`--llm-url`, `--llm-model`).
    Llm,
}

/// What a failed `webhook` / `llm` reply turns into (`--reply-fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplyFallback {
    /// The rules engine's answer.
    Rules,
    /// No reply.
    Silent,
}

/// SQLite commit durability (`--db-sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DbSync {
    /// `synchronous=NORMAL` in WAL mode: committed data survives the hub crashing or being killed.
    Normal,
    /// `synchronous=FULL`: committed data also survives a power cut or kernel crash.
    Full,
}

/// How log lines are written (the filter comes from `RUST_LOG`, default `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A one-off command run against the configured database (`--db` or `--redis-url`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage the people who answer visitors in the inbox at `/inbox`.
    Operator {
        /// What to do.
        #[command(subcommand)]
        action: OperatorAction,
    },
}

/// `natter-hub operator …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OperatorAction {
    /// Add an operator; the password is read from standard input (one line).
    Add {
        /// Sign-in name: 1–64 of a-z, 0-9, `.`, `-`, `_`.
        name: String,
        /// The name visitors see on replies (default: the sign-in name).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List operators.
    List,
    /// Remove an operator and end their sessions.
    Remove {
        /// Sign-in name.
        name: String,
    },
    /// Set a new password (read from standard input) and end the operator's sessions.
    Passwd {
        /// Sign-in name.
        name: String,
    },
}

/// Parses `250ms`, `25s`, `2m` (humantime) or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map(Duration::from_millis).map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 250ms, 25s or 2m: {e}"))
}

/// Parses a rate per second: a finite number, 0 or more.
fn parse_rate(s: &str) -> Result<f64, String> {
    let n: f64 = s.trim().parse().map_err(|e| format!("{s:?} is not a number per second: {e}"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{s:?} is not a rate: give a number per second, 0 or more"));
    }
    Ok(n)
}

/// Parses `--max-frame`: a number of bytes, at least [`natter_protocol::MAX_FRAME_BYTES`].
fn parse_max_frame(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("{s:?} is not a number of bytes: {e}"))?;
    let min = natter_protocol::MAX_FRAME_BYTES;
    if n < min {
        return Err(format!("{n} bytes is less than {min}, the frame size every client may send"));
    }
    Ok(n)
}

impl Config {
    /// The budgets a connection is held to, as `welcome` tells the client (so it can pace
    /// itself within them rather than be refused or cut).
    pub(crate) fn budgets(&self) -> natter_protocol::Budgets {
        let per_minute = if self.rate_burst == 0 { 0.0 } else { (self.rate_per_sec * 60.0).floor() };
        natter_protocol::Budgets {
            // (`as` saturates: a rate past u32::MAX a minute is as good as none.)
            messages_per_minute: per_minute as u32,
            message_burst: self.rate_burst,
            frame_budget: self.frame_budget,
            max_rooms: self.max_rooms_per_connection,
        }
    }

    /// The `--max-connections-per-address` in force on a hub that holds at most `global`
    /// connections (`--max-connections` as resolved): the flag, or [`CONNECTIONS_PER_ADDRESS`]
    /// capped at a quarter of `global`. `0` is no limit.
    pub fn connections_per_address(&self, global: usize) -> usize {
        self.max_connections_per_address.unwrap_or_else(|| CONNECTIONS_PER_ADDRESS.min(global / 4).max(1))
    }

    /// The `--max-conversations-per-address` in force: the flag, or a quarter of
    /// `--max-conversations` (at least 1). `0` is no limit.
    pub fn conversations_per_address(&self) -> usize {
        self.max_conversations_per_address.unwrap_or((self.max_conversations / 4).max(1))
    }

    /// Who may join rooms: `--room-access`, or its default (`identified` when identity tokens
    /// can be verified, `open` otherwise).
    pub fn room_access(&self) -> RoomAccess {
        self.room_access.unwrap_or(
            if self.identity_secrets.is_empty() && self.identity_public_keys.is_empty() {
                RoomAccess::Open
            } else {
                RoomAccess::Identified
            },
        )
    }

    /// The defaults, listening on `127.0.0.1:0`, with the shipped rules and no reply delay —
    /// what integration tests start from.
    ///
    /// Sessions are open (client-chosen ids are accepted), because most tests are about
    /// something else and name their sessions; the tests of identity and sessions set
    /// `open_sessions = false`, the production default.
    pub fn for_tests() -> Self {
        let mut c = Config::parse_from(["natter-hub", "--listen", "127.0.0.1:0"]);
        c.open_sessions = true;
        c.reply_delay = Duration::ZERO;
        // Tests must not leave a natter.db in the working directory.
        c.db = PathBuf::from(":memory:");
        c.redis_url = None;
        // Every test client connects from 127.0.0.1, so budgets per client address would add
        // up across unrelated tests' tabs; the tests of those budgets turn them back on.
        c.address_rate_burst = 0;
        c.address_connect_burst = 0;
        c.address_frame_budget = 0;
        c.max_connections_per_address = Some(0);
        c.max_conversations_per_address = Some(0);
        c.max_polls_per_address = 0;
        c.room_creations_per_hour = 0;
        c.address_conversations_per_hour = 0;
        c.address_store_bytes_per_day = 0;
        c.address_send_queue_bytes = 0;
        // Hub-wide, so it would pace unrelated tests' visitors together; its test sets it.
        c.new_conversations_burst = 0;
        // A test's database in a temporary directory must not depend on the machine's free
        // space; the test of the floor sets it.
        c.min_free_disk = 0;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_queues_are_bounded_in_bytes_by_default() {
        let c = Config::parse_from(["natter-hub"]);
        // An honest member of a busy room on a slow link may have a few hundred KB queued.
        assert_eq!(
            (c.send_queue, c.send_queue_bytes, c.address_send_queue_bytes),
            (256, 1_048_576, 8_388_608)
        );
        let t = Config::for_tests();
        assert_eq!(
            (t.send_queue_bytes, t.address_send_queue_bytes),
            (1_048_576, 0),
            "every test tab shares 127.0.0.1"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("25s"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn storage_flags() {
        let c = Config::parse_from(["natter-hub"]);
        assert_eq!((c.db.to_str(), c.db_sync, c.retention_days), (Some("natter.db"), DbSync::Normal, None));
        assert_eq!((c.redis_url.as_deref(), c.redis_stream_len), (None, 10_000));
        assert_eq!((c.redis_namespace.as_str(), c.presence_lease), ("natter", Duration::from_secs(30)));
        let c = Config::parse_from([
            "natter-hub",
            "--db",
            ":memory:",
            "--db-sync",
            "full",
            "--retention-days",
            "30",
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--redis-stream-len",
            "500",
            "--presence-lease",
            "5s",
        ]);
        assert_eq!((c.db.to_str(), c.db_sync, c.retention_days), (Some(":memory:"), DbSync::Full, Some(30)));
        assert_eq!((c.redis_url.as_deref(), c.redis_stream_len), (Some("redis://127.0.0.1:6379"), 500));
        assert_eq!(c.presence_lease, Duration::from_secs(5));
        assert!(Config::try_parse_from(["natter-hub", "--db-sync", "sometimes"]).is_err());
    }

    #[test]
    fn defaults_and_repeatable_origins() {
        let c = Config::parse_from([
            "natter-hub",
            "--allowed-origin",
            "https://a.example",
            "--allowed-origin",
            "https://b.example",
        ]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.allowed_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(c.ring_size, 100);
        assert_eq!(c.max_frame, 65_536);
        assert_eq!(c.poll_timeout, Duration::from_secs(25));
    }

    #[test]
    fn public_internet_flags() {
        let c = Config::parse_from(["natter-hub"]);
        assert!(c.trusted_proxies.is_empty() && c.api_key.is_none() && c.max_connections.is_none());
        assert_eq!(c.forwarded_header, ForwardedHeader::XForwardedFor);
        let rfc = Config::parse_from(["natter-hub", "--forwarded-header", "forwarded"]);
        assert_eq!(rfc.forwarded_header, ForwardedHeader::Forwarded);
        assert_eq!((c.max_context, c.ring_bytes, c.max_replay_bytes), (8192, 65_536, 1_048_576));
        assert_eq!((c.address_rate_per_sec, c.address_rate_burst, c.frame_budget), (50.0, 500, 1_048_576));
        assert_eq!(c.address_frame_budget, 8 * 1_048_576);
        assert_eq!((c.address_connect_rate_per_sec, c.address_connect_burst), (50.0, 500));
        assert_eq!(c.max_replay_in_flight, 64 * 1_048_576);
        assert_eq!(c.socket_send_buffer, 65_536);
        assert_eq!(
            (c.max_polls, c.max_polls_per_address, c.max_connections_per_address),
            (10_000, 512, None)
        );
        assert_eq!(c.connections_per_address(1_000_000), 1024);
        assert_eq!(c.connections_per_address(960), 240, "a quarter of a small hub");
        let no_limit = Config::parse_from(["natter-hub", "--max-connections-per-address", "0"]);
        assert_eq!(no_limit.connections_per_address(960), 0);
        assert_eq!((c.max_conversations, c.conversations_per_address()), (50_000, 12_500));
        let small = Config::parse_from(["natter-hub", "--max-conversations", "2"]);
        assert_eq!(small.conversations_per_address(), 1, "never 0, which would be no limit");
        let set = Config::parse_from(["natter-hub", "--max-conversations-per-address", "0"]);
        assert_eq!(set.conversations_per_address(), 0);
        assert_eq!((c.room_creations_per_hour, c.max_rooms_per_connection), (600, 100));
        assert_eq!(c.room_creation, RoomCreation::Join, "a join makes a room, as before the flag");
        let api = Config::parse_from(["natter-hub", "--room-creation", "api"]);
        assert_eq!(api.room_creation, RoomCreation::Api);
        assert_eq!(c.address_conversations_per_hour, 300);
        assert_eq!((c.new_conversations_per_sec, c.new_conversations_burst), (100.0, 20));
        for (flag, bad) in [
            ("--new-conversations-per-sec", "-1"),
            ("--rate-per-sec", "NaN"),
            ("--address-rate-per-sec", "inf"),
            ("--address-connect-rate-per-sec", "fast"),
        ] {
            let e = Config::try_parse_from(["natter-hub", &format!("{flag}={bad}")]).unwrap_err().to_string();
            assert!(e.contains(flag) && e.contains(bad), "{flag}={bad}: {e}");
        }
        assert_eq!(c.address_store_bytes_per_day, 64 * 1_048_576);
        assert_eq!(c.min_free_disk, 1 << 30);
        // What `welcome` tells clients, and what they assume of a hub that does not say.
        assert_eq!(c.budgets(), natter_protocol::Budgets::default());
        let tight = Config::parse_from(["natter-hub", "--rate-per-sec", "0.5", "--rate-burst", "3"]);
        assert_eq!((tight.budgets().messages_per_minute, tight.budgets().message_burst), (30, 3));
        let off = Config::parse_from(["natter-hub", "--rate-burst", "0"]);
        assert_eq!(off.budgets().messages_per_minute, 0, "0: no limit");
        let zero = Config::try_parse_from(["natter-hub", "--max-rooms-per-connection", "0"]);
        assert!(zero.unwrap_err().to_string().contains("--max-rooms-per-connection"));
        assert_eq!(
            (c.header_timeout, c.empty_room_ttl),
            (Duration::from_secs(10), Duration::from_secs(86_400))
        );
        let c = Config::parse_from([
            "natter-hub",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "192.0.2.7",
            "--max-connections",
            "900",
        ]);
        let proxies: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.7/32"]);
        assert_eq!(c.max_connections, Some(900));
        let e = Config::try_parse_from(["natter-hub", "--trusted-proxy", "nginx"]).unwrap_err().to_string();
        assert!(e.contains("--trusted-proxy") && e.contains("nginx"), "{e}");
        // A hub may take larger frames than every client may send, never smaller ones.
        let big = Config::parse_from(["natter-hub", "--max-frame", "1048576"]);
        assert_eq!(big.max_frame, 1_048_576);
        for bad in ["1024", "65535", "64k", "0"] {
            let e = Config::try_parse_from(["natter-hub", "--max-frame", bad]).unwrap_err().to_string();
            assert!(e.contains("--max-frame") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn identity_flags_and_the_room_access_default() {
        let c = Config::parse_from(["natter-hub"]);
        assert!(!c.open_sessions, "sessions are issued by the hub unless asked otherwise");
        assert_eq!(c.room_access(), RoomAccess::Open);
        assert_eq!(c.identity_max_lifetime, Duration::from_secs(86_400));
        let c = Config::parse_from(["natter-hub", "--identity-secret", "a,b", "--identity-audience", "chat"]);
        assert_eq!(c.identity_secrets, ["a", "b"]);
        assert_eq!(c.room_access(), RoomAccess::Identified);
        let c = Config::parse_from(["natter-hub", "--identity-public-key", "k.pem", "--room-access", "open"]);
        assert_eq!(c.room_access(), RoomAccess::Open);
        assert!(Config::try_parse_from(["natter-hub", "--room-access", "maybe"]).is_err());
    }

    #[test]
    fn reply_limits() {
        let c = Config::parse_from(["natter-hub"]);
        assert_eq!(
            (c.reply_timeout, c.reply_idle_timeout),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
        assert_eq!((c.reply_concurrency, c.reply_queue), (32, 256));
        let c = Config::parse_from(["natter-hub", "--reply-concurrency", "4", "--reply-queue", "0"]);
        assert_eq!((c.reply_concurrency, c.reply_queue), (4, 0));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Config::command().debug_assert();
    }
}
