// Type definitions for @natter/widget.

/** Which corner the launcher sits in. */
export type NatterPosition = 'bottom-right' | 'bottom-left';

/** Colour scheme: `auto` follows `prefers-color-scheme`. */
export type NatterTheme = 'auto' | 'light' | 'dark';

/** The status label shown next to the status dot. */
export type NatterStatus =
  | 'Connected'
  | 'Connecting…'
  | 'Reconnecting…'
  | 'HTTP fallback'
  | 'Offline'
  /** The hub refused the identity token and no fresh one has come yet. */
  | 'Sign-in expired';

/** Options for {@link mount}. With the script tag, each is a `data-*` attribute (`data-z-index`). */
export interface NatterOptions {
  /** Hub base URL, e.g. `https://chat.example.com`. Default: the page's origin (script tag: the hub the script came from). */
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
}

/** A snapshot of the widget's state. */
export interface NatterState {
  /** A transport is carrying the conversation. */
  connected: boolean;
  /** Which one. */
  transport: 'websocket' | 'http' | 'none';
  /** The panel is open. */
  open: boolean;
  /** Messages that arrived while the panel was closed or the tab hidden. */
  unread: number;
  /** The status label. */
  status: NatterStatus;
  /** The chime is muted (remembered across visits). */
  muted: boolean;
  /** The signed-in user the hub verified, or null for an anonymous visitor. */
  user: { id: string; name: string | null } | null;
}

/** A message in the log. */
export interface NatterMessage {
  id: string;
  role: 'user' | 'bot' | 'agent' | 'system';
  /** Plain text (never HTML). */
  text: string;
  /** RFC 3339 time. */
  time: string;
  /** `pending` until the hub acknowledged it, `failed` if refused (retry from the UI). */
  state: 'pending' | 'sent' | 'failed';
  /** Position in the conversation once stored. */
  seq: number | null;
}

/** Events and what their listeners receive. */
export interface NatterEvents {
  /** The widget is on the page. */
  ready: NatterState;
  open: undefined;
  close: undefined;
  /** A message was added to the log (sent by the visitor, or received), not the history replayed at load. */
  message: NatterMessage;
  /** The unread count changed. */
  unread: number;
  /** The connection status changed. */
  status: NatterState;
  /** The notification chime was played (it is not when muted). */
  sound: undefined;
  /** The hub refused the identity token; the reason. Give a fresh one with `identify(token)`. */
  tokenExpired: string;
}

/** The mounted widget. */
export interface NatterHandle {
  open(): void;
  close(): void;
  toggle(): void;
  /** Sends `text` as the visitor. Returns its id, or undefined while loading or for blank text. */
  send(text: string): string | undefined;
  /** Signs the visitor in with an identity token (after a login, or a fresh one at any time). */
  identify(token: string): void;
  /** Forgets the conversation on this device (messages, outbox, session); starts a new anonymous one. */
  logout(): void;
  on<E extends keyof NatterEvents>(event: E, fn: (detail: NatterEvents[E]) => void): NatterHandle;
  off<E extends keyof NatterEvents>(event: E, fn: (detail: NatterEvents[E]) => void): NatterHandle;
  /** Current state (a fresh snapshot on each read). */
  readonly state: NatterState;
  /** The anonymous session the hub issued (kept in localStorage); undefined until it has. */
  readonly session: string | undefined;
  /** Resolves once the WebAssembly has loaded and the widget is on the page. */
  readonly loaded: Promise<NatterHandle>;
  /** Removes every node, listener, timer, socket and request of the widget. */
  destroy(): void;
}

/** Mounts the widget and returns its handle at once (it loads in the background). */
export function mount(options?: NatterOptions): NatterHandle;
export default mount;

declare global {
  interface Window {
    /** Set by the script-tag loader. */
    natter?: NatterHandle;
  }
}
