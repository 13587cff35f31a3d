// Type definitions for the rooms of @natter/widget (`natter.joinRoom`, `natter.rooms`).

/** Any JSON value: what `cursor` and `update` carry. */
export type NatterJson = null | boolean | number | string | NatterJson[] | { [key: string]: NatterJson };

/** A person in a room. */
export interface NatterMember {
  /** Stable public member id (`u_` + 16 hex digits); never a session id. */
  id: string;
  /** Display name: a signed-in user's verified name, else the name given on join. */
  name: string | null;
  /** The hub verified this member's identity token. */
  verified: boolean;
}

/** Where a room is. */
export type NatterRoomStatus =
  /** Join sent (or waiting for the connection); calls wait. */
  | 'joining'
  /** The hub confirmed the join; calls go out at once. */
  | 'joined'
  /** The HTTP fallback carries the room: messages both ways; members, typing, cursors and updates wait for the WebSocket. */
  | 'http'
  /** The connection dropped; the room is joined again, resuming after its last message, when it is back. */
  | 'rejoining'
  /** The hub refused the join for good (an `error` event says why: the `rooms` claim, the hub's room access, a bad id or name, the connection's room cap `--max-rooms-per-connection`). Being asked to wait (`rate_limited`) is never a refusal: the join is retried. */
  | 'refused'
  /** Left: by the page, or because the site deleted the room (an `error` event with code `room_deleted` comes first; the room is not joined again by itself, and messages still waiting in it fail). */
  | 'left';

/** A message of a room. */
export interface NatterRoomMessage {
  id: string;
  /** Position in the room once stored; null while pending. */
  seq: number | null;
  /** Plain text (never HTML). */
  text: string;
  /** RFC 3339 time. */
  time: string;
  /** The author. */
  from: NatterMember;
  /** Written by this visitor (in this tab or another of theirs). */
  mine: boolean;
  /** `pending` until the hub stored it, `failed` if refused (`room.retry(id)`). */
  state: 'pending' | 'sent' | 'failed';
}

/** Room events and what their listeners receive. */
export interface NatterRoomEvents {
  /** A message was added: live, replayed after a reconnect, or the visitor's own (pending). Not the history loaded with the join. */
  message: NatterRoomMessage;
  /** The delivery state of one of the visitor's messages changed. */
  delivery: { id: string; state: 'pending' | 'sent' | 'failed'; seq: number | null };
  /** Someone joined or left (a closed tab leaves too). */
  presence: { member: NatterMember; joined: boolean };
  /** The member list was replaced (every join and rejoin). */
  members: Record<string, never>;
  /** A history was read: the room so far after a join, or what was missed after a reconnect. */
  history: Record<string, never>;
  /** Someone started or stopped typing. */
  typing: { member: NatterMember; active: boolean };
  /** Another member's `cursor(data)`. */
  cursor: { from: NatterMember; data: NatterJson };
  /** Another member's `update(data)` (a `chain_update`), in the order they sent them. */
  update: { from: NatterMember; data: NatterJson };
  /** The room's status changed. */
  status: NatterRoomStatus;
  /** The unread count changed. */
  unread: number;
  /** The hub refused something here, or some messages could not be replayed. */
  error: { code: string; message: string };
  /** Anything the room's getters return changed (not fired for cursors). */
  change: NatterRoom;
}

/** A joined room; every getter returns what the room holds now. */
export interface NatterRoom {
  readonly id: string;
  readonly status: NatterRoomStatus;
  /** The room's display name from the hub, or null. */
  readonly title: string | null;
  /** Messages so far (history, then live), oldest first; the visitor's pending ones last. Frozen, like `members` and `typingMembers` (copy to sort: `[...room.members].sort(…)`). */
  readonly messages: readonly NatterRoomMessage[];
  /** Members present (at most the hub's first 100). */
  readonly members: readonly NatterMember[];
  /** How many members are present (also beyond the listed 100). */
  readonly memberCount: number;
  /** Members typing now. */
  readonly typingMembers: readonly NatterMember[];
  /** Messages of others that arrived while the room was not watched. */
  readonly unread: number;
  /** The room was left (`leave()`, or the widget destroyed): calls on it do nothing but say so once on the console. Join again with `natter.joinRoom`, which gives a new `Room`. */
  readonly left: boolean;
  /** Sends `text`; returns the message id at once (undefined for blank text, or a room left or refused). It waits in the outbox until stored. Throws a `TypeError` when `text` is not a string and a `RangeError` past 55,296 bytes of JSON (UTF-8: a larger frame than every hub takes). The hub's own text limit is smaller (`--max-text`, 4,000 characters by default): a longer text is sent, refused by the hub, and ends `failed` (a `delivery` event), with an `error` event `{ code: 'too_large', message: '`message` is 4001 characters long; the limit is 4000' }`; the room stays joined. */
  send(text: string): string | undefined;
  /** Tries a failed message again. */
  retry(messageId: string): void;
  /** The visitor is typing (`true`, repeat every few seconds while they type; others clear it 6 s after the last) or stopped. */
  typing(active?: boolean): void;
  /** Shares the visitor's cursor; at most one per animation frame goes out (the latest), fewer when large cursors would pass the hub's frame budget (the latest still wins). Throws a `TypeError` for data JSON cannot hold (a cycle, a BigInt, a function) and a `RangeError` past 55,296 bytes of JSON or 126 nested arrays and objects (deeper than a hub reads). */
  cursor(data: NatterJson): void;
  /** Sends an update of shared state to the other members (a `chain_update`), every one in order, as fast as the hub's frame budget allows. At most 500 of a room wait (for the join, or for the budget); past that the oldest is dropped and the room emits an `error` (`too_large`) for each one dropped. Throws a `TypeError` for data JSON cannot hold and a `RangeError` past 55,296 bytes of JSON or 126 nested arrays and objects. */
  update(data: NatterJson): void;
  /** Unread to 0. */
  markRead(): void;
  /** Leaves the room. */
  leave(): void;
  on<E extends keyof NatterRoomEvents>(event: E, fn: (detail: NatterRoomEvents[E]) => void): NatterRoom;
  off<E extends keyof NatterRoomEvents>(event: E, fn: (detail: NatterRoomEvents[E]) => void): NatterRoom;
}

/** Options of `joinRoom`. */
export interface NatterJoinOptions {
  /**
   * The name others see. Anything but a string, or a blank one, throws a `TypeError` (leave it
   * out to join without a name). The hub takes 1–64 characters, none of them a control character
   * (tab, newline, NUL…), a bidirectional control (U+200E/U+200F, U+202A–U+202E, U+2066–U+2069,
   * U+061C) or U+2028/U+2029/U+FEFF: a name it refuses leaves the room `refused`, with an `error`
   * event (`invalid_message`) saying why. Ignored for a signed-in user: their verified name is used.
   */
  name?: string;
}

/**
 * The collaboration panel's texts, by key (English shown), in the widget's nine languages and
 * right to left for Arabic and Hebrew. Override any of them with the `strings` option; `{n}` is
 * replaced by a number, `{a}` by a name.
 */
export interface NatterRoomStrings {
  /** "Rooms" — the panel's button and name. */
  roomPanel: string;
  /** "Close rooms" — the button while the panel is open, and its ✕. */
  roomClosePanel: string;
  /** "Your rooms" — the list of the rooms joined. */
  roomJoined: string;
  /** "Join or create a room" — the room name box. */
  roomJoinLabel: string;
  /** "Your name" — the name box (without the `name` option). */
  roomNameLabel: string;
  /** "Join" — the join button. */
  roomJoin: string;
  /** "room name" — the room name box's placeholder. */
  roomJoinPlaceholder: string;
  /** "A room name needs letters A–Z or digits 0–9 (at most 64)." */
  roomBadName: string;
  /** "Other rooms" — the hub's rooms not joined yet. */
  roomBrowse: string;
  /** "Members" — the member list. */
  roomMembers: string;
  /** "{n} here" — how many members are present. */
  roomHere: string;
  /** "You" — the author of the visitor's own messages. */
  roomYou: string;
  /** "Someone" — a member without a name. */
  roomSomeone: string;
  /** "{a} is typing…" */
  roomTypingOne: string;
  /** "{a} and {b} are typing…" — exactly two. */
  roomTypingTwo: string;
  /** "{a} and {n} more are typing…" — three or more ({n} is at least 2). */
  roomTypingMany: string;
  /** "Message" — the text box. */
  roomMessage: string;
  /** "Send" */
  roomSend: string;
  /** "Leave" — leaves the room shown. */
  roomLeave: string;
  /** "Retry" — the retry button of a message not sent. */
  roomRetry: string;
  /** "sending…" — under a message not yet stored. */
  roomPending: string;
  /** "not sent" — under a refused message. */
  roomFailed: string;
  /** "{n} unread" */
  roomUnread: string;
  /** "Join a room to start." — the panel without a room. */
  roomNone: string;
  /** "Joining…" — a room's status. */
  roomJoining: string;
  /** "Reconnecting…" — a room's status while the link is down. */
  roomRejoining: string;
  /** "You cannot join this room" — the hub refused the join. */
  roomRefused: string;
  /** "Messages only (HTTP fallback)" — a room carried by the HTTP fallback. */
  roomHttp: string;
  /** "verified" — said after a signed-in member's name. */
  roomVerified: string;
  /** "Names cannot hold control or direction marks." — a "Your name" the hub would refuse. */
  roomBadMember: string;
  /** "Too long to send." — the hub refused a message or data as too large. */
  roomTooLong: string;
  /** "Too many at once: wait, then retry." — the hub refused for now (rate limited). */
  roomBusy: string;
  /** "Not allowed here." — any other refusal (its details are on the console). */
  roomNotAccepted: string;
}
