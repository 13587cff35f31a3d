// Type definitions for @natter/widget/react.
import type { ReactElement, ReactNode } from 'react';
import type { NatterHandle, NatterOptions, NatterState } from './index.js';
import type { NatterJoinOptions, NatterJson, NatterMember, NatterRoom, NatterRoomMessage, NatterRoomStatus } from './rooms.js';

export interface NatterProviderProps {
  /** Mount options, read once. With rooms unless they say otherwise: `rooms: 'api'` by default, `rooms: true` adds the collaboration panel, `rooms: false` is the support chat alone (no room code downloaded; the room hooks throw). */
  options?: NatterOptions;
  children?: ReactNode;
}

/** Owns one widget for everything below it: mounts once (also under StrictMode), destroys on unmount. */
export function NatterProvider(props: NatterProviderProps): ReactElement;

/** The widget handle of the nearest `NatterProvider`; null until it has mounted. */
export function useNatter(): NatterHandle | null;

/** The widget's state, kept current; null until mounted. */
export function useNatterState(): NatterState | null;

export interface UseRoomOptions extends NatterJoinOptions {
  /** Hears every `update` (a `chain_update`) of the other members, in order. */
  onUpdate?: (data: NatterJson, from: NatterMember) => void;
}

/** `Cursor`: the shape of the cursor data the app's members send (`cursor({ x, y })`), for `cursors`. */
export interface UseRoom<Cursor = NatterJson> {
  /** The room object (null until the provider has mounted). */
  room: NatterRoom | null;
  status: NatterRoomStatus;
  title: string | null;
  messages: readonly NatterRoomMessage[];
  members: readonly NatterMember[];
  memberCount: number;
  typingMembers: readonly NatterMember[];
  unread: number;
  /** Each other member's latest cursor data, by member id. */
  cursors: Readonly<Record<string, { member: NatterMember; data: Cursor }>>;
  send(text: string): string | undefined;
  typing(active?: boolean): void;
  cursor(data: Cursor & NatterJson): void;
  update(data: NatterJson): void;
  markRead(): void;
}

/**
 * Joins `roomId` while the component is mounted (shared by components using the same room;
 * null or '' joins none). `useRoom<{ x: number; y: number }>(id)` types `cursors`' data.
 * Throws an `Error` when used outside a `NatterProvider`, and a `TypeError` for a `roomId`
 * that is not a string (as `joinRoom` does).
 */
export function useRoom<Cursor = NatterJson>(roomId: string | null | undefined, options?: UseRoomOptions): UseRoom<Cursor>;

/** Who is in `roomId` (joined while used). Throws as `useRoom` does. */
export function usePresence(
  roomId: string | null | undefined,
  options?: NatterJoinOptions,
): { status: NatterRoomStatus; members: readonly NatterMember[]; memberCount: number; typingMembers: readonly NatterMember[] };
