//! One mounted widget at run time: turns DOM, socket, fetch and timer callbacks into
//! [`Event`]s, runs them through [`update`], renders, and performs the [`Effect`]s.
//!
//! Ownership rule: every listener, socket, timer and fetch belongs to the runtime and is
//! released by `destroy()`. A callback may cause the release of the very closure that is
//! running it (a socket's `onclose` replacing the socket, a listener calling `destroy()`), so
//! released values go to a graveyard that is emptied in a microtask, after the callback returns.

use crate::prelude::*;

use super::api;
use super::dom::Dom;
use super::keys;
use super::link::{self, Credentials, Endpoint, Socket, SocketEvent};
use super::listen::Callback;
use super::page;
use super::promise;
use super::random;
#[cfg(feature = "rooms")]
use super::rooms;
use super::sound::{Chime, Sound};
use super::storage::{self, Store};
use super::timeout::Timeout;
use crate::i18n::Key;
use crate::keys::Composition;
use crate::options::Options;
#[cfg(feature = "rooms")]
use crate::state::rooms::RoomHttp;
use crate::state::{update, Effect, Event, Init, Model, Notice, Outgoing, ReadMark, Timer};
use alloc::rc::{Rc, Weak};
use core::any::Any;
use core::cell::{Cell, Ref, RefCell, RefMut};
use wasm_bindgen::__rt::LazyCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AbortController, AbortSignal};

/// Mounted widgets stay alive until `destroy()`, even if the page drops the handle.
///
/// A `static` rather than `thread_local!`, which needs `std`: wasm-bindgen's cell for statics of
/// the single-threaded wasm32 target (the widget is built without the `atomics` feature; with
/// it, this would not compile, as it should not). `__rt` is wasm-bindgen's module for the code
/// its macros write, not its documented API: the exact version pin in Cargo.toml is what keeps
/// it there.
static MOUNTED: LazyCell<RefCell<Vec<Rc<Runtime>>>> = LazyCell::new(|| RefCell::new(Vec::new()));

/// A mounted widget: the model, and every browser resource that serves it.
pub(super) struct Runtime {
    /// Itself, for the callbacks it hands out; they hold it weakly, so a callback that fires
    /// after `destroy()` finds nothing.
    me: Weak<Runtime>,
    options: Options,
    endpoint: Endpoint,
    store: Store,
    model: RefCell<Model>,
    /// Events raised while one is being handled (a JS listener calling `send()`).
    queue: RefCell<Vec<Event>>,
    /// An event is being handled: new ones wait in `queue`.
    busy: Cell<bool>,
    destroyed: Cell<bool>,
    /// `None` once destroyed.
    dom: RefCell<Option<Dom>>,
    socket: RefCell<Option<Socket>>,
    poll_abort: RefCell<Option<AbortController>>,
    post_abort: RefCell<Option<AbortController>>,
    /// The rooms' long-polls on the HTTP fallback, by room.
    #[cfg(feature = "rooms")]
    room_poll: RefCell<Option<AbortController>>,
    /// At most one running timer of each kind.
    timers: RefCell<Vec<(Timer, Timeout)>>,
    /// What hears the page's and the widget's events (see [`Runtime::wire`]).
    listener: RefCell<Option<Callback>>,
    /// The page's `on(event, fn)` listeners.
    handlers: RefCell<Vec<(String, js_sys::Function)>>,
    sound: RefCell<Sound>,
    /// Makes the page context of a message written now (the JSON text of an object): the npm
    /// facade's, which knows the page and the app's `setContext` fields. Without one, messages
    /// carry no context and the hub uses the connection's page.
    context_of: Option<js_sys::Function>,
    /// The chat box's IME composition, so that the Enter confirming one does not send.
    composition: RefCell<Composition>,
    /// Released values waiting for the current callback to return (see the module docs).
    graveyard: RefCell<Vec<Box<dyn Any>>>,
    /// When the visitor's last `typing` went out (ms since the epoch; 0: not typing), so an
    /// operator sees them typing without a frame per key.
    typing_sent: Cell<f64>,
}

/// `cell.borrow()`, out of line. A borrow takes its caller's location for the panic message
/// (`#[track_caller]`), so each of the runtime's seventy borrows had a panic location of its own
/// in the wasm; here there is one per cell type: 0.7 KiB less to download.
#[inline(never)]
fn read<T>(cell: &RefCell<T>) -> Ref<'_, T> {
    cell.borrow()
}

/// `cell.borrow_mut()`, out of line (see [`read`]).
#[inline(never)]
fn write<T>(cell: &RefCell<T>) -> RefMut<'_, T> {
    cell.borrow_mut()
}

/// A visitor's `typing` is repeated at most this often while they type (the inbox hides it
/// after 8 s without news).
const TYPING_EVERY_MS: f64 = 3000.0;

fn now_iso() -> String {
    String::from(js_sys::Date::new_0().to_iso_string())
}

impl Runtime {
    /// Builds the widget into the page, wires its listeners and starts connecting; `context_of`
    /// makes each message's page context (see the field), `trusted_html` (see `Dom::build`)
    /// passes the widget's markup through the page's Trusted Types.
    pub(super) fn mount(
        options: Options,
        context_of: Option<js_sys::Function>,
        trusted_html: Option<js_sys::Function>,
    ) -> Result<Rc<Runtime>, JsValue> {
        let store = Store::open();
        let endpoint = Endpoint::new(&options.server);
        let page = page::now();
        let model = Model::new(Init {
            seed: random::seed(),
            muted: store.muted(),
            online: page.online,
            hidden: page.hidden,
            open: options.open,
            outbox: store.outbox(),
            read: store.read_mark(),
            gap_notice: options.strings.get(Key::Gap).to_string(),
            session: store.session(),
            token: options.identity_token.clone(),
        });
        let dom = Dom::build(&options, trusted_html.as_ref())?;
        let rt = Rc::new_cyclic(|me| Runtime {
            me: me.clone(),
            options,
            endpoint,
            store,
            model: RefCell::new(model),
            queue: RefCell::new(Vec::new()),
            busy: Cell::new(false),
            destroyed: Cell::new(false),
            dom: RefCell::new(Some(dom)),
            socket: RefCell::new(None),
            poll_abort: RefCell::new(None),
            post_abort: RefCell::new(None),
            #[cfg(feature = "rooms")]
            room_poll: RefCell::new(None),
            timers: RefCell::new(Vec::new()),
            listener: RefCell::new(None),
            handlers: RefCell::new(Vec::new()),
            sound: RefCell::new(Sound::default()),
            context_of,
            composition: RefCell::new(Composition::default()),
            graveyard: RefCell::new(Vec::new()),
            typing_sent: Cell::new(0.0),
        });
        rt.wire();
        rt.render();
        rt.dispatch(Event::Start);
        write(&MOUNTED).push(rt.clone());
        // `ready` fires after the caller has had a chance to attach listeners.
        let weak = Rc::downgrade(&rt);
        promise::soon(Box::new(move || {
            if let Some(rt) = weak.upgrade() {
                if !rt.destroyed.get() {
                    rt.emit("ready", &rt.state());
                }
            }
        }));
        Ok(rt)
    }

    /// The widget mounted on this page, if any (one per page: one socket, one shortcut).
    pub(super) fn current() -> Option<Rc<Runtime>> {
        read(&MOUNTED).first().cloned()
    }

    /// `{connected, transport, open, unread, status, muted}`.
    pub(super) fn state(&self) -> JsValue {
        api::state_js(&read(&self.model))
    }

    /// The anonymous session the hub issued, once it has.
    pub(super) fn session(&self) -> Option<String> {
        read(&self.model).identity.session.clone()
    }

    /// Who the widget is, for an HTTP request.
    fn credentials(&self) -> Credentials {
        let model = read(&self.model);
        Credentials { token: model.identity.token.clone(), session: model.identity.session.clone() }
    }

    /// The hub refused the identity token: tells the page with the `tokenExpired` event. (The
    /// npm module answers it with the `tokenExpired` option's fresh token, through `identify`;
    /// the console has the reason already: `Effect::Warn` came first.)
    fn renew_token(&self, reason: &str) {
        if !read(&self.handlers).iter().any(|(n, _)| n == "tokenExpired") {
            web_sys::console::warn_1(
                &"natter: give a fresh identity token with natter.identify(token)".into(),
            );
        }
        self.emit("tokenExpired", &reason.into());
    }

    /// Adds a page listener for `event`.
    pub(super) fn on(&self, event: &str, f: js_sys::Function) {
        if !self.destroyed.get() {
            write(&self.handlers).push((event.to_string(), f));
        }
    }

    /// Removes a page listener added with [`Runtime::on`].
    pub(super) fn off(&self, event: &str, f: &js_sys::Function) {
        write(&self.handlers).retain(|(n, g)| !(n == event && g == f));
    }

    fn weak(&self) -> Weak<Runtime> {
        self.me.clone()
    }

    /// Releases `thing` after the current callback has returned.
    fn bury(&self, thing: Box<dyn Any>) {
        let first = {
            let mut g = write(&self.graveyard);
            g.push(thing);
            g.len() == 1
        };
        if first {
            let weak = self.weak();
            promise::soon(Box::new(move || {
                if let Some(rt) = weak.upgrade() {
                    let dead = core::mem::take(&mut *write(&rt.graveyard));
                    drop(dead);
                }
            }));
        }
    }

    fn take_timer(&self, kind: Timer) -> Option<Timeout> {
        let mut timers = write(&self.timers);
        let at = timers.iter().position(|(k, _)| *k == kind)?;
        Some(timers.swap_remove(at).1)
    }

    /// Runs `event` (and whatever it causes) through the model.
    pub(super) fn dispatch(&self, event: Event) {
        if self.destroyed.get() {
            return;
        }
        write(&self.queue).push(event);
        // Re-entrant dispatches (a JS listener calling `send()`) are queued and run in order.
        if self.busy.replace(true) {
            return;
        }
        while !self.destroyed.get() {
            let next = {
                let mut q = write(&self.queue);
                (!q.is_empty()).then(|| q.remove(0))
            };
            let Some(event) = next else { break };
            let effects = update(&mut write(&self.model), event);
            self.render();
            for fx in effects {
                if self.destroyed.get() {
                    break;
                }
                self.perform(fx);
            }
        }
        self.busy.set(false);
    }

    fn render(&self) {
        if let Some(dom) = read(&self.dom).as_ref() {
            dom.render(&read(&self.model));
        }
    }

    fn perform(&self, fx: Effect) {
        match fx {
            // `after` goes in the `auth` frame once the socket is open.
            Effect::OpenSocket { socket, .. } => self.open_socket(socket),
            Effect::CloseSocket => {
                if let Some(s) = write(&self.socket).take() {
                    self.bury(Box::new(s));
                }
            }
            Effect::SendSocket(out) => {
                if let Some(s) = read(&self.socket).as_ref() {
                    s.send(&crate::wire::user_message(&out));
                }
            }
            Effect::Ping { nonce } => {
                if let Some(s) = read(&self.socket).as_ref() {
                    s.send(&crate::wire::ping(nonce));
                }
            }
            Effect::Poll { poll, after } => self.poll(poll, after),
            Effect::AbortPoll => {
                if let Some(c) = write(&self.poll_abort).take() {
                    c.abort();
                }
            }
            Effect::Post(out) => self.post(out),
            Effect::AbortPost => {
                // The next send makes a new controller.
                if let Some(c) = write(&self.post_abort).take() {
                    c.abort();
                }
            }
            Effect::StartTimer { timer: kind, ms } => {
                let weak = self.weak();
                let t = Timeout::new(ms, move || {
                    if let Some(rt) = weak.upgrade() {
                        if let Some(done) = rt.take_timer(kind) {
                            rt.bury(Box::new(done));
                        }
                        rt.dispatch(Event::TimerFired(kind));
                    }
                });
                if let Some(old) = self.take_timer(kind) {
                    self.bury(Box::new(old));
                }
                write(&self.timers).push((kind, t));
            }
            Effect::StopTimer(kind) => {
                if let Some(old) = self.take_timer(kind) {
                    self.bury(Box::new(old));
                }
            }
            // `sound` is told only when the chime really plays.
            Effect::Chime => match write(&self.sound).chime() {
                Chime::Played => self.emit("sound", &JsValue::UNDEFINED),
                Chime::Later(resumed) => {
                    let weak = self.weak();
                    promise::settle(
                        &resumed,
                        Box::new(move |resumed| {
                            if let Some(rt) = weak.upgrade() {
                                if resumed.is_ok() && !rt.destroyed.get() && read(&rt.sound).play_if_running()
                                {
                                    rt.emit("sound", &JsValue::UNDEFINED);
                                }
                            }
                        }),
                    );
                }
                Chime::Silent => {}
            },
            Effect::SaveOutbox => {
                let model = read(&self.model);
                self.store.save_outbox(model.log.outbox.entries(), &model.log.acked);
            }
            Effect::ForgetConversation => self.store.forget_conversation(),
            Effect::SaveSession => {
                // Another tab may have stored a session while this one was issued its own: the
                // model keeps the smaller (Event::SessionElsewhere), and that one is stored.
                if let Some(stored) = self.store.session() {
                    if read(&self.model).identity.session.as_ref() != Some(&stored) {
                        self.dispatch(Event::SessionElsewhere { session: stored });
                    }
                }
                let mine = read(&self.model).identity.session.clone();
                self.store.set_session(mine.as_deref());
            }
            Effect::Authenticate { after } => {
                let frame = {
                    let model = read(&self.model);
                    let id = &model.identity;
                    crate::wire::auth(id.token.as_deref(), id.session.as_deref(), after, &link::page_now())
                };
                if let Some(s) = read(&self.socket).as_ref() {
                    s.send(&frame);
                }
            }
            Effect::RenewToken { reason } => self.renew_token(&reason),
            Effect::Warn(message) => web_sys::console::warn_2(&"natter:".into(), &message.into()),
            Effect::SaveMuted => self.store.set_muted(read(&self.model).muted),
            Effect::SaveRead(seq) => {
                // Recorded once the conversation is known (a signed-in user's, after the welcome).
                if let Some(conversation) = read(&self.model).read_conversation() {
                    self.store.save_read(conversation, seq);
                }
            }
            // On a touch screen the dialog rather than the text box, whose keyboard would cover
            // half the conversation (see view.js).
            Effect::FocusInput => {
                if let Some(dom) = read(&self.dom).as_ref() {
                    dom.view.focus_in();
                }
            }
            // Only if focus is still ours: never pulled back from where the visitor has moved on.
            Effect::RestoreFocus => {
                if let Some(dom) = read(&self.dom).as_ref() {
                    dom.view.focus_out();
                }
            }
            Effect::Notify(n) => self.notify(n),
            #[cfg(feature = "rooms")]
            Effect::SendRoom(frame) => {
                if let Some(s) = read(&self.socket).as_ref() {
                    s.send(&crate::wire::room_frame(&frame));
                }
            }
            #[cfg(feature = "rooms")]
            Effect::RoomHttp(RoomHttp::Poll { rooms, poll }) => self.poll_rooms(&rooms, poll),
            #[cfg(feature = "rooms")]
            Effect::RoomHttp(RoomHttp::StopPoll) => self.stop_room_poll(),
            #[cfg(feature = "rooms")]
            Effect::RoomHttp(RoomHttp::Post { room, out, name }) => self.post_room(room, out, name),
            #[cfg(feature = "rooms")]
            Effect::SaveRoomOutbox { room } => {
                let model = read(&self.model);
                let outbox = model.rooms.get(&room).map(|r| (r.outbox_entries(), r.done.as_slice()));
                self.store.save_room_outbox(&room, outbox);
            }
        }
    }

    fn open_socket(&self, id: u32) {
        let url = self.endpoint.socket_url();
        let weak = self.weak();
        let report = move |e: SocketEvent| {
            if let Some(rt) = weak.upgrade() {
                rt.dispatch(match e {
                    SocketEvent::Open => Event::SocketOpened { socket: id },
                    SocketEvent::Frame(message) => Event::Frame { socket: Some(id), message },
                    #[cfg(feature = "rooms")]
                    SocketEvent::Relay(relay) => Event::Relayed { socket: Some(id), relay },
                    SocketEvent::Closed(code) => Event::SocketClosed { socket: id, code },
                });
            }
        };
        let old = match Socket::open(&url, report) {
            Ok(s) => write(&self.socket).replace(s),
            Err(_) => {
                // Queued: we are inside a dispatch.
                self.dispatch(Event::SocketUnavailable { socket: id });
                write(&self.socket).take()
            }
        };
        if let Some(old) = old {
            self.bury(Box::new(old));
        }
    }

    fn poll(&self, poll: u32, after: Option<u64>) {
        let Ok(ctl) = AbortController::new() else {
            return self.dispatch(Event::PollDone { poll, history: None });
        };
        let signal = ctl.signal();
        if let Some(old) = write(&self.poll_abort).replace(ctl) {
            old.abort();
        }
        let weak = self.weak();
        let answered = Box::new(move |answer: link::Answer| {
            if let Some(rt) = weak.upgrade() {
                if let Some(session) = answer.session {
                    rt.dispatch(Event::SessionIssued { session });
                }
                rt.dispatch(match answer.frame {
                    // The state machine tells a refused site from a refused identity from a
                    // passing refusal.
                    Some(natter_protocol::ServerMessage::Error(error)) => Event::PollRefused { poll, error },
                    frame => Event::PollDone { poll, history: link::history_of(frame) },
                });
            }
        });
        link::poll(&self.endpoint, &self.credentials(), after, &signal, answered);
    }

    /// Aborts the rooms' running long-poll, if any.
    #[cfg(feature = "rooms")]
    fn stop_room_poll(&self) {
        if let Some(ctl) = write(&self.room_poll).take() {
            ctl.abort();
        }
    }

    /// Starts the rooms' long-poll `poll` (one request for all of them; the last one stopped).
    #[cfg(feature = "rooms")]
    fn poll_rooms(&self, rooms: &[(String, Option<u64>)], poll: u32) {
        let Ok(ctl) = AbortController::new() else {
            return self.dispatch(Event::RoomPollDone { poll, history: None });
        };
        let signal = ctl.signal();
        self.stop_room_poll();
        *write(&self.room_poll) = Some(ctl);
        let weak = self.weak();
        let answered = Box::new(move |answer: link::Answer| {
            let Some(rt) = weak.upgrade() else { return };
            let history = match answer.frame {
                // A refusal (the room's access, a bad id) reads like the same refusal on a socket.
                Some(e @ natter_protocol::ServerMessage::Error(_)) => {
                    rt.dispatch(Event::Frame { socket: None, message: e });
                    None
                }
                frame => link::history_of(frame),
            };
            rt.dispatch(Event::RoomPollDone { poll, history });
        });
        link::poll_rooms(&self.endpoint, &self.credentials(), rooms, &signal, answered);
    }

    #[cfg(feature = "rooms")]
    fn post_room(&self, room: String, out: Outgoing, name: Option<String>) {
        let body = crate::wire::room_chat_http(&room, &out, name.as_deref());
        let Some(signal) = self.post_signal() else {
            return self.dispatch(Event::RoomPosted { room, id: out.id, reply: None });
        };
        let weak = self.weak();
        let id = out.id;
        let answered = Box::new(move |answer: link::Answer| {
            if let Some(rt) = weak.upgrade() {
                if let Some(session) = answer.session {
                    rt.dispatch(Event::SessionIssued { session });
                }
                rt.dispatch(Event::RoomPosted { room, id, reply: answer.frame });
            }
        });
        link::post_room(&self.endpoint, &self.credentials(), &body, &signal, answered);
    }

    /// The signal that aborts this widget's HTTP posts (on destroy), its controller made on
    /// first use; `None` where the browser cannot make one.
    fn post_signal(&self) -> Option<AbortSignal> {
        if let Some(c) = read(&self.post_abort).as_ref() {
            return Some(c.signal());
        }
        let c = AbortController::new().ok()?;
        let signal = c.signal();
        *write(&self.post_abort) = Some(c);
        Some(signal)
    }

    fn post(&self, out: Outgoing) {
        let Some(signal) = self.post_signal() else {
            return self.dispatch(Event::Posted { id: out.id, reply: None });
        };
        let weak = self.weak();
        let id = out.id.clone();
        let answered = Box::new(move |answer: link::Answer| {
            if let Some(rt) = weak.upgrade() {
                if let Some(session) = answer.session {
                    rt.dispatch(Event::SessionIssued { session });
                }
                rt.dispatch(Event::Posted { id, reply: answer.frame });
            }
        });
        link::post(&self.endpoint, &self.credentials(), &out, &signal, answered);
    }

    fn emit(&self, name: &str, detail: &JsValue) {
        // Copy first: a listener may call on()/off() or destroy(). (Pushed one by one: a
        // filter/map/collect chain is more iterator code in the wasm.)
        let mut fns: Vec<js_sys::Function> = Vec::new();
        for (n, f) in read(&self.handlers).iter() {
            if n == name {
                fns.push(f.clone());
            }
        }
        for f in fns {
            if let Err(e) = f.call1(&JsValue::UNDEFINED, detail) {
                let what = crate::compose::join(&["natter: a '", name, "' listener threw"]);
                web_sys::console::error_2(&what.into(), &e);
            }
        }
    }

    fn notify(&self, n: Notice) {
        match n {
            Notice::Open => self.emit("open", &JsValue::UNDEFINED),
            Notice::Close => self.emit("close", &JsValue::UNDEFINED),
            Notice::Unread(count) => self.emit("unread", &count.into()),
            Notice::Status(_) => self.emit("status", &self.state()),
            Notice::Message(m) => self.emit("message", &api::message_js(&m, None)),
            #[cfg(feature = "rooms")]
            Notice::Room { room, notice } => self.emit("room", &rooms::event_js(&room, &notice)),
            Notice::Delivery { message, retried } => {
                self.emit("delivery", &api::message_js(&message, Some(retried)))
            }
            Notice::Refused(error) => {
                let advice = crate::state::refusal_advice(&page::origin(), &self.endpoint.http);
                web_sys::console::error_2(&advice.into(), &error.message.as_str().into());
            }
        }
    }

    /// What an earlier page left in the outbox of `room` (storage).
    #[cfg(feature = "rooms")]
    pub(super) fn saved_room_outbox(&self, room: &str) -> Vec<crate::outbox::OutboxEntry> {
        self.store.room_outbox(room)
    }

    /// Message-time formatters in the widget's locale (a `Clock` of view.js), for the
    /// collaboration panel: its room messages show times as the support chat's do.
    #[cfg(feature = "rooms")]
    pub(super) fn clock(&self) -> JsValue {
        super::clock::Clock::new(&self.options.locale).into()
    }

    /// A room's snapshot (`null` for a room not joined).
    #[cfg(feature = "rooms")]
    pub(super) fn room_snapshot(&self, room: &str) -> JsValue {
        read(&self.model).rooms.get(room).map_or(JsValue::NULL, rooms::snapshot_js)
    }

    /// The call that writes `text` in `room` as message `id` (made by the npm module, so it is
    /// known before the wasm has loaded), written now.
    #[cfg(feature = "rooms")]
    pub(super) fn room_send(room: String, text: String, id: String) -> crate::state::RoomCall {
        crate::state::RoomCall::Send {
            room,
            out: Outgoing { id, text, time: now_iso(), context: String::new() },
        }
    }

    /// Sends `text` as the visitor; returns the new message's id, or `None` for blank text.
    pub(super) fn send_text(&self, text: &str) -> Option<String> {
        let text = text.trim();
        if text.is_empty() || self.destroyed.get() {
            return None;
        }
        let id = random::hex_id();
        // Read now, when the visitor writes it: the page may have changed since the mount.
        let context = self
            .context_of
            .as_ref()
            .and_then(|f| f.call0(&JsValue::UNDEFINED).ok())
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        self.dispatch(Event::Send(Outgoing {
            id: id.clone(),
            text: text.to_string(),
            time: now_iso(),
            context,
        }));
        Some(id)
    }

    fn send_from_input(&self) {
        let text = {
            let dom = read(&self.dom);
            let Some(text) = dom.as_ref().and_then(Dom::take_input) else { return };
            text
        };
        self.typing(false);
        write(&self.sound).unlock();
        self.send_text(&text);
    }

    /// Tells operators the visitor is typing (`active`, at most every [`TYPING_EVERY_MS`]) or
    /// stopped. Only on a live socket: over HTTP it is not worth a request.
    fn typing(&self, active: bool) {
        let now = js_sys::Date::now();
        let last = self.typing_sent.get();
        if active == (last > 0.0) && (!active || now - last < TYPING_EVERY_MS) {
            return;
        }
        // Only once the hub has accepted who the widget is: a frame before that is refused.
        if !read(&self.model).link.is_live() {
            return;
        }
        if let Some(s) = read(&self.socket).as_ref() {
            s.send(crate::wire::typing(active));
            self.typing_sent.set(if active { now } else { 0.0 });
        }
    }

    fn on_key(&self, e: &web_sys::Event) {
        let Some(sc) = &self.options.shortcut else { return };
        let k = keys::press(e);
        let editable = sc.needs_target(&k) && keys::in_editable(e);
        if !sc.fires(&k, editable) {
            return;
        }
        e.prevent_default();
        write(&self.sound).unlock();
        self.dispatch(Event::Toggle);
    }

    /// Hears the page and the widget's elements through one callback (see `View.listen` in
    /// view.js), kept until `destroy()`.
    fn wire(&self) {
        let weak = self.weak();
        let callback = Callback::new(move |v: JsValue| {
            let Some(rt) = weak.upgrade() else { return };
            // `[n, data]`.
            let v: js_sys::Array = v.unchecked_into();
            if let Some(n) = v.get(0).as_f64() {
                rt.heard(n as u32, v.get(1));
            }
        });
        if let Some(dom) = read(&self.dom).as_ref() {
            dom.view.listen(&callback);
        }
        *write(&self.listener) = Some(callback);
    }

    /// Event `n` of `View.listen` (view.js), with its `data`.
    fn heard(&self, n: u32, data: JsValue) {
        // A `keydown`'s data is the event, a `KeyboardEvent` (view.js).
        let key = data.unchecked_ref::<web_sys::Event>();
        match n {
            0 => self.on_key(key),
            1 => self.dispatch(Event::Online),
            2 => self.dispatch(Event::Offline),
            // The page is shown again (`pageshow`), or a frozen page (Page Lifecycle) resumed:
            // its socket may have died meanwhile.
            3 => self.dispatch(Event::Wake),
            // Another tab of the session read up to a seq (or this one did, on another page), or
            // forgot the conversation (a logout there).
            5 => {
                let Some(e) = data.dyn_ref::<web_sys::StorageEvent>() else { return };
                let key = e.key();
                if key.as_deref() == Some(storage::READ_KEY) {
                    if let Some(m) = e.new_value().as_deref().and_then(ReadMark::parse) {
                        self.dispatch(Event::ReadElsewhere { conversation: m.conversation, seq: m.seq });
                    }
                } else if key.as_deref() == Some(storage::FORGOTTEN_KEY) && e.new_value().is_some() {
                    self.dispatch(Event::ForgottenElsewhere);
                } else if key.as_deref() == Some(storage::SESSION_KEY) {
                    // Another tab stored the session it was issued: the model keeps the smaller.
                    if let Some(new) = e.new_value() {
                        if natter_protocol::validate_session_id(&new).is_ok() {
                            self.dispatch(Event::SessionElsewhere { session: new });
                        }
                    }
                }
            }
            6 => self.dispatch(Event::PageHidden { hidden: data.as_bool() == Some(true) }),
            // The launcher.
            7 => {
                write(&self.sound).unlock();
                self.dispatch(Event::Toggle);
            }
            // The close button.
            8 => self.dispatch(Event::Close),
            // The mute button.
            9 => {
                write(&self.sound).unlock();
                self.dispatch(Event::ToggleMute);
            }
            // The send button.
            10 => self.send_from_input(),
            // The chat box: typed into, composing with an IME, a key.
            11 => {
                let Some(typed) = read(&self.dom).as_ref().map(Dom::sync_send_button) else { return };
                self.typing(typed);
            }
            12 => write(&self.composition).start(),
            13 => write(&self.composition).end(),
            14 if read(&self.composition).enter_sends(&keys::press(key)) => {
                key.prevent_default();
                self.send_from_input();
            }
            // A key anywhere in the widget: Escape closes, but not the Escape that cancels an
            // IME conversion in the chat box.
            15 => {
                let closes = read(&self.composition).escape_closes(&keys::press(key));
                if closes && read(&self.model).open {
                    key.stop_propagation();
                    self.dispatch(Event::Close);
                }
            }
            // A Retry button in the log: the message's id.
            16 => {
                if let Some(id) = data.as_string() {
                    self.dispatch(Event::Retry { id });
                }
            }
            _ => {}
        }
    }

    /// Releases every node, listener, timer, socket and request of this widget.
    pub(super) fn destroy(&self) {
        if self.destroyed.replace(true) {
            return;
        }
        let listener = write(&self.listener).take();
        let socket = write(&self.socket).take();
        let timers = core::mem::take(&mut *write(&self.timers));
        for ctl in [write(&self.poll_abort).take(), write(&self.post_abort).take()].into_iter().flatten() {
            ctl.abort();
        }
        #[cfg(feature = "rooms")]
        self.stop_room_poll();
        let dom = write(&self.dom).take();
        if let Some(dom) = &dom {
            dom.view.unlisten();
            dom.view.remove();
        }
        // One grave for all of them.
        self.bury(Box::new((listener, socket, timers, dom)));
        write(&self.sound).close();
        write(&self.handlers).clear();
        write(&self.queue).clear();
        let me = self.weak();
        write(&MOUNTED).retain(|rt| !Weak::ptr_eq(&Rc::downgrade(rt), &me));
    }
}
