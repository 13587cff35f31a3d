// Type definitions for @natter/widget.
import type { NatterJoinOptions, NatterRoom, NatterRoomStrings } from './rooms.js';
export type * from './rooms.js';

/** Which corner the launcher sits in. */
export type NatterPosition = 'bottom-right' | 'bottom-left';

/** Colour scheme: `auto` follows `prefers-color-scheme`. */
export type NatterTheme = 'auto' | 'light' | 'dark';

/** The connection status, by its English name in every language (the visible label follows the locale). */
export type NatterStatus =
  | 'Connected'
  | 'Connecting…'
  | 'Reconnecting…'
  | 'HTTP fallback'
  | 'Offline'
  /** The hub refuses this page's origin (not on its `--allowed-origin` list); the widget has stopped trying. */
  | 'Chat is not available on this site'
  /** The hub refused the identity token and no fresh one has come yet. */
  | 'Sign-in expired';

/**
 * Every text of the widget, by key (English shown). Override any of them with the `strings`
 * option; `{n}` is replaced by a number.
 */
export interface NatterStrings {
  /** "Chat with us" — the panel title (the `title` option wins). */
  title: string;
  /** "Hi there 👋 How can we help?" — the first bubble (the `greeting` option wins). */
  greeting: string;
  /** "Open chat" — the launcher while the panel is closed. */
  openChat: string;
  /** "Close chat" — the launcher while the panel is open, and the ✕ in the header. */
  closeChat: string;
  /** "Open chat ({n} unread)" — the launcher while messages are unread. */
  openChatUnread: string;
  /** "Mute notification sound" — the mute button, and its tooltip while the sound is on. */
  mute: string;
  /** "Unmute notification sound" — the mute button's tooltip while muted. */
  unmute: string;
  /** "Conversation" — the message log's name. */
  conversation: string;
  /** "Typing…" — the typing indicator's name. */
  typing: string;
  /** "Message" — the text box's name. */
  message: string;
  /** "Write a message…" — the text box's placeholder. */
  placeholder: string;
  /** "Send" — the send button. */
  send: string;
  /** "Sending…" — under a message not yet acknowledged. */
  sending: string;
  /** "Not delivered" — under a refused message. */
  notDelivered: string;
  /** "Retry" — the retry button of a refused message. */
  retry: string;
  /** "Powered by Natter" — the footer. */
  poweredBy: string;
  /** "Connecting…" */
  statusConnecting: string;
  /** "Connected" */
  statusConnected: string;
  /** "Reconnecting…" */
  statusReconnecting: string;
  /** "HTTP fallback" */
  statusHttp: string;
  /** "Offline" */
  statusOffline: string;
  /** "Chat is not available on this site" — the hub refuses this page's origin. */
  statusUnavailable: string;
  /** "Sign-in expired" — the hub refused the identity token; waiting for a fresh one. */
  statusSignIn: string;
  /** "Some earlier messages could not be loaded." */
  gap: string;
  /** "We usually reply in a few minutes" — under the status while an operator is online. */
  availableOnline: string;
  /** "Away — leave a message and we'll get back to you" — while no operator is online. */
  availableAway: string;
  /** "This conversation was closed. Write to start it again." */
  conversationClosed: string;
}

/** Options for {@link mount}. With the script tag, each is a `data-*` attribute (`data-z-index`). */
export interface NatterOptions {
  /** Hub base URL, e.g. `https://chat.example.com` (or written `wss://chat.example.com`), or a path on the page's origin (`/chat`). Default: the page's origin (script tag: the hub the script came from). */
  server?: string;
  /** Default `bottom-right`. */
  position?: NatterPosition;
  /** CSS z-index of the widget. Default 2147483000. */
  zIndex?: number | string;
  /** Panel title. Default "Chat with us". */
  title?: string;
  /** First bubble of the conversation; `""` for none. */
  greeting?: string;
  /** Toggle shortcut, e.g. `"Ctrl+Shift+C"` (default); `false` or `"none"` disables it. */
  shortcut?: string | false;
  /** Default `auto`. */
  theme?: NatterTheme;
  /** Open the panel at mount (focus is not moved). Default false. */
  open?: boolean | string;
  /** Accent colour, shorthand for `colors.accent`. */
  accent?: string;
  /**
   * CSS custom properties, by name without the `--natter-` prefix: `accent`, `accentText`,
   * `bg`, `surface`, `text`, `textMuted`, `border`, `botBubble`, `botText`, `userBubble`,
   * `userText`, `radius`, `font`. The host page can also set `--natter-*` on `[data-natter]`.
   */
  colors?: Record<string, string>;
  /**
   * BCP 47 language tag (`de`, `pt-BR`, `he-IL`). Default: the browser's languages. Built-in
   * texts: en, de, fr, es, pt, ja, zh (simplified; traditional for zh-Hant, zh-TW, zh-HK, zh-MO), ar, he (matched by language subtag; others get
   * English); times use `Intl` in this locale; ar and he mirror the panel.
   */
  locale?: string;
  /**
   * Texts by key over the locale's (`data-strings`: the same object as JSON): the widget's and
   * the collaboration panel's (`room…` keys).
   */
  strings?: Partial<NatterStrings & NatterRoomStrings> | string;
  /**
   * The signed-in user's identity token: a JWT your backend signs (claims `sub`, `exp`, and
   * optionally `name`, `email`, `avatar`, `rooms`; see docs/identity.md). The user's
   * conversation then follows them on every device. Kept in memory only. Script tag:
   * `data-identity-token`.
   */
  identityToken?: string;
  /**
   * Called when the hub refuses the identity token (it expired, or never verified), with the
   * reason; return a fresh token (or a promise of one) from your backend. The widget then
   * reconnects with it; nothing typed meanwhile is lost. Without it, listen to the
   * `tokenExpired` event and call `identify(token)`.
   */
  tokenExpired?: (reason: string) => string | Promise<string>;
  /**
   * Rooms. Default: none — the page downloads the support chat alone (the smaller build), and
   * `joinRoom` / `openRoom` throw an Error naming this option.
   * - `'api'`: rooms for the page's own code (`joinRoom`, `Room`), without the panel. Script
   *   tag: `data-rooms="api"`. `NatterProvider` (React) always mounts with it.
   * - `true`: the same, and the collaboration panel: the rooms joined, join or create by name,
   *   members with presence and typing, unread per room. Script tag: `data-rooms`.
   *
   * Either way the page downloads the build with rooms instead of the support-only one. Any
   * other value (`'yes'`, `'API'`) is a console error naming it, and the support chat alone.
   */
  rooms?: boolean | 'api';
  /** The name the visitor joins rooms with from the panel (a signed-in user's verified name wins). */
  name?: string;
}

/** App fields for {@link NatterHandle.setContext}: JSON values; `null` removes a field. */
export type NatterContext = { [field: string]: unknown };

/** A snapshot of the widget's state. */
export interface NatterState {
  /** A transport is carrying the conversation. */
  connected: boolean;
  /** Which one. */
  transport: 'websocket' | 'http' | 'none';
  /** The panel is open. */
  open: boolean;
  /** The bot's and operators' messages after the last one seen in an open panel of any tab of the session. */
  unread: number;
  /** The status label. */
  status: NatterStatus;
  /** The chime is muted (remembered across visits). */
  muted: boolean;
  /** The signed-in user the hub verified, or null for an anonymous visitor. */
  user: { id: string; name: string | null } | null;
}

/** Where a visitor's message is: typed and on its way, stored by the hub, or refused (retry from the UI) or dropped by `logout()`. */
export type NatterDelivery = 'pending' | 'sent' | 'failed';

/** A message in the log. */
export interface NatterMessage {
  id: string;
  role: 'user' | 'bot' | 'agent' | 'system';
  /** Plain text (never HTML). */
  text: string;
  /** RFC 3339 time. */
  time: string;
  /** `pending` until the hub acknowledged it, `failed` if refused (retry from the UI). */
  state: NatterDelivery;
  /** Position in the conversation once stored. */
  seq: number | null;
  /** An operator's display name, on their replies (`role: 'agent'`); `null` otherwise. */
  author: string | null;
}

/**
 * A change of delivery state of one of the visitor's messages in this tab: `pending` when typed
 * (and again, with `retried: true`, when the visitor retries it), `sent` once the hub stored it
 * (`seq` set), `failed` when refused, or when `logout()` drops it unstored. Each change is told
 * once, in order; a token renewal is not a change (the message waits, then goes out).
 */
export interface NatterDeliveryChange extends NatterMessage {
  role: 'user';
  /** Pending again because the visitor retried a failed message. */
  retried: boolean;
}

/** Events and what their listeners receive. */
export interface NatterEvents {
  /** The widget is on the page. */
  ready: NatterState;
  open: undefined;
  close: undefined;
  /** A message was added to the log (sent by the visitor, or received), not the history replayed at load. */
  message: NatterMessage;
  /** One of the visitor's messages changed state: pending, sent (with its seq), failed, retried. */
  delivery: NatterDeliveryChange;
  /** The unread count changed. */
  unread: number;
  /** The connection status changed. */
  status: NatterState;
  /**
   * The notification chime played: a message arrived while the panel was closed or the tab
   * hidden, the sound is not muted, and the browser let the page play audio (after the visitor
   * has interacted with it). Not fired when no sound could play.
   */
  sound: undefined;
  /** The hub refused the identity token; the reason. Give a fresh one with `identify(token)`. */
  tokenExpired: string;
}

/** The mounted widget. */
export interface NatterHandle {
  open(): void;
  close(): void;
  toggle(): void;
  /**
   * Sends `text` as the visitor. Returns its id, or undefined while loading or for blank text.
   * @throws TypeError when `text` is not a string.
   * @throws RangeError past 55,296 bytes of JSON (UTF-8): a larger frame than every hub takes.
   */
  send(text: string): string | undefined;
  /**
   * Merges app fields into the context every message carries from now on (besides `page` and
   * `title`, read when the message is written); a field set to `null` is removed, `null`
   * clears them all. At most 2048 bytes of JSON. Throws a `TypeError` for anything but a plain
   * object of JSON values (or one naming `page` or `title`) and a `RangeError` when too large;
   * a refused call changes nothing.
   */
  setContext(fields: NatterContext | null): NatterHandle;
  /**
   * Signs the visitor in with an identity token (after a login, or a fresh one at any time: for
   * the user already signed in it renews the connection in place). Throws a `TypeError` for
   * anything but a non-empty string.
   */
  identify(token: string): void;
  /**
   * Forgets the conversation on this device (messages, outbox, session, what was read); starts
   * a new anonymous one. Messages not yet stored are dropped, each told `failed` on `delivery`.
   * Every room is left (each `Room` ends `left`), the rooms' outboxes and the collaboration
   * panel's remembered name are forgotten: in every tab of the site.
   */
  logout(): void;
  /** Throws a `TypeError` for an event not in `NatterEvents` (room events are `room.on`'s) or a `fn` that is not a function. */
  on<E extends keyof NatterEvents>(event: E, fn: (detail: NatterEvents[E]) => void): NatterHandle;
  off<E extends keyof NatterEvents>(event: E, fn: (detail: NatterEvents[E]) => void): NatterHandle;
  /** Current state (a fresh snapshot on each read). */
  readonly state: NatterState;
  /** The anonymous session the hub issued (kept in localStorage); undefined until it has. */
  readonly session: string | undefined;
  /** Resolves once the WebAssembly has loaded and the widget is on the page. */
  readonly loaded: Promise<NatterHandle>;
  /**
   * Joins room `id` on the widget's connection and returns its `Room` at once (calls on it wait
   * until the hub confirms the join). Joining a room already joined returns the same object.
   * Throws an Error naming the `rooms` option when the widget was mounted without rooms (or
   * destroyed), and a TypeError naming the call when `id` is not a string, `options` is not an
   * object (`joinRoom(id, 'Ada')`), or its `name` is not a string or blank. A room id or name
   * the hub refuses gives a `refused` room with an `error` event (see `NatterJoinOptions.name`).
   */
  joinRoom(id: string, options?: NatterJoinOptions): NatterRoom;
  /**
   * Every room this page joined and has not left (nor lost with `destroy()`), in join order,
   * whatever its status: `joining`, `joined`, `http`, `rejoining`, and `refused` too (listed,
   * with its reason heard on `error`, until the page calls `leave()`). A fresh array each read.
   */
  readonly rooms: readonly NatterRoom[];
  /**
   * Joins room `id` if needed and shows it in the collaboration panel (without `options.name`,
   * as the `name` option says). Throws like `joinRoom` without the `rooms` option; the panel
   * then loads on first use.
   */
  openRoom(id: string, options?: NatterJoinOptions): NatterRoom;
  /** Removes every node, listener, timer, socket and request of the widget; an open panel first gives focus back to where it was, as closing does. Later calls on the handle and its rooms do nothing but say so once on the console (`joinRoom` and `openRoom` throw). */
  destroy(): void;
}

/**
 * Mounts the widget and returns its handle at once (it loads in the background). One widget per
 * page: while one is mounted, returns its handle (with a console warning) and ignores `options`.
 */
export function mount(options?: NatterOptions): NatterHandle;
export default mount;

declare global {
  interface Window {
    /** Set by the script-tag loader. */
    natter?: NatterHandle;
  }
}
