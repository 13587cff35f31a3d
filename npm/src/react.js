// @natter/widget/react — the widget's connection and rooms as a React provider and hooks.
//
// <NatterProvider options={...}> owns one widget for the app: it mounts once, survives
// StrictMode's mount → unmount → mount of effects (the second mount finds the first widget
// still there: its destroy waits one task and is called off), and destroys it on a real unmount.
// useRoom() joins a room for as long as a component uses it (shared and counted when several
// components use the same room) and re-renders on what changes.
import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import { mount } from './index.js';

// `undefined` (the default) outside every NatterProvider; null inside one until it has mounted.
const NatterContext = createContext(undefined);

/** Runs `fn` in the next task; returns a cancel function. */
function later(fn) {
  const id = setTimeout(fn, 0);
  return () => clearTimeout(id);
}

/**
 * Owns one widget for everything below it: `<NatterProvider options={{ server }}>`. With rooms
 * unless the options say otherwise (`rooms: 'api'` by default; `rooms: true` adds the
 * collaboration panel; `rooms: false` is the support chat alone, whose page downloads no room
 * code, and whose room hooks throw).
 */
export function NatterProvider({ options, children }) {
  const owner = useRef(null);
  const [natter, setNatter] = useState(null);
  useEffect(() => {
    let entry = owner.current;
    if (entry?.cancelDestroy) {
      // StrictMode's simulated unmount: keep the widget it was about to destroy.
      entry.cancelDestroy();
      entry.cancelDestroy = null;
    } else {
      // With rooms unless asked otherwise (most hooks are rooms'). A value the widget does not
      // take is named in a console error by mount(), and the room hooks' errors name it too.
      const o = options ?? {};
      entry = owner.current = { handle: mount({ ...o, rooms: o.rooms ?? 'api' }), cancelDestroy: null, rooms: new Map() };
    }
    setNatter(entry);
    return () => {
      entry.cancelDestroy = later(() => {
        entry.handle.destroy();
        if (owner.current === entry) owner.current = null;
      });
    };
    // Options are mount-time configuration, read once.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return createElement(NatterContext.Provider, { value: natter }, children);
}

/** The widget handle of the nearest `NatterProvider` (null until it has mounted). */
export function useNatter() {
  return useContext(NatterContext)?.handle ?? null;
}

/** The widget's state (`connected`, `transport`, `status`, …), kept current. */
export function useNatterState() {
  const natter = useNatter();
  const [state, setState] = useState(() => natter?.state ?? null);
  useEffect(() => {
    if (!natter) return undefined;
    const refresh = () => setState({ ...natter.state });
    refresh();
    natter.on('ready', refresh).on('status', refresh).on('unread', refresh);
    return () => {
      natter.off('ready', refresh).off('status', refresh).off('unread', refresh);
    };
  }, [natter]);
  return state;
}

/**
 * Joins `roomId` while the calling component is mounted; components using the same room share
 * it (the last one to unmount leaves).
 */
function useJoinedRoom(roomId, name, hook) {
  const entry = useContext(NatterContext);
  // Said at the call, as `joinRoom(42)` does: `String(42)` would join the room "42", and a
  // hook outside any provider would stay `joining` for ever in silence.
  if (roomId != null && typeof roomId !== 'string') {
    throw new TypeError(`natter: ${hook}(roomId) needs a string, not ${typeof roomId}`);
  }
  if (entry === undefined) {
    throw new Error(`natter: ${hook}() must be used inside a <NatterProvider>, which owns the widget's connection`);
  }
  const [room, setRoom] = useState(null);
  useEffect(() => {
    if (!entry || roomId == null || roomId === '') return undefined;
    const key = roomId;
    let use = entry.rooms.get(key);
    if (use && !use.room.left) {
      use.cancelLeave?.();
      use.cancelLeave = null;
      use.count += 1;
    } else {
      use = { room: entry.handle.joinRoom(key, { name }), count: 1, cancelLeave: null };
      entry.rooms.set(key, use);
    }
    setRoom(use.room);
    return () => {
      use.count -= 1;
      if (use.count > 0) return;
      // Left in the next task, so StrictMode's remount (or a sibling mounting) keeps it.
      use.cancelLeave = later(() => {
        if (use.count === 0) {
          use.room.leave();
          if (entry.rooms.get(key) === use) entry.rooms.delete(key);
        }
      });
    };
  }, [entry, roomId, name]);
  return room;
}

/** A render of what a room holds now. */
function snapshot(room) {
  return {
    status: room?.status ?? 'joining',
    title: room?.title ?? null,
    messages: room?.messages ?? [],
    members: room?.members ?? [],
    memberCount: room?.memberCount ?? 0,
    typingMembers: room?.typingMembers ?? [],
    unread: room?.unread ?? 0,
  };
}

/**
 * A room for a component: `{ room, status, title, messages, members, memberCount,
 * typingMembers, unread, cursors, send, typing, cursor, update, markRead }`.
 * `cursors` holds each other member's latest `cursor` data by member id
 * (`{ [id]: { member, data } }`); a member who leaves is removed from it, also one who left
 * while this page's link was down (the member list its rejoin brings no longer has them).
 * `options.onUpdate(data, from)` hears every `update` (a `chain_update`) of the others.
 */
export function useRoom(roomId, options = {}) {
  return useRoomAs('useRoom', roomId, options);
}

function useRoomAs(hook, roomId, options) {
  const room = useJoinedRoom(roomId, options.name, hook);
  const [view, setView] = useState(() => snapshot(room));
  const [cursors, setCursors] = useState({});
  const onUpdate = useRef(options.onUpdate);
  onUpdate.current = options.onUpdate;
  useEffect(() => {
    if (!room) return undefined;
    setView(snapshot(room));
    setCursors({});
    const change = () => setView(snapshot(room));
    const cursor = ({ from, data }) => setCursors((all) => ({ ...all, [from.id]: { member: from, data } }));
    const presence = ({ member, joined }) => {
      if (!joined) {
        setCursors((all) => {
          if (!(member.id in all)) return all;
          const { [member.id]: _gone, ...rest } = all;
          return rest;
        });
      }
    };
    // A rejoin (after a dropped link or a hub restart) replaces the member list, and those who
    // left meanwhile get no `presence` event: their cursors go with the list (when it is whole:
    // the hub lists its first 100 members only).
    const members = () => {
      if (room.members.length < room.memberCount) return;
      const here = new Set(room.members.map((m) => m.id));
      setCursors((all) => {
        const gone = Object.keys(all).filter((id) => !here.has(id));
        if (gone.length === 0) return all;
        const rest = { ...all };
        for (const id of gone) delete rest[id];
        return rest;
      });
    };
    const update = ({ from, data }) => onUpdate.current?.(data, from);
    room.on('change', change).on('cursor', cursor).on('presence', presence).on('members', members).on('update', update);
    return () => {
      room.off('change', change).off('cursor', cursor).off('presence', presence).off('members', members).off('update', update);
    };
  }, [room]);
  const send = useCallback((text) => room?.send(text), [room]);
  const typing = useCallback((active) => room?.typing(active), [room]);
  const cursor = useCallback((data) => room?.cursor(data), [room]);
  const update = useCallback((data) => room?.update(data), [room]);
  const markRead = useCallback(() => room?.markRead(), [room]);
  return useMemo(
    () => ({ room, ...view, cursors, send, typing, cursor, update, markRead }),
    [room, view, cursors, send, typing, cursor, update, markRead],
  );
}

/** Who is in `roomId` (joining it while used): `{ status, members, memberCount, typingMembers }`. */
export function usePresence(roomId, options = {}) {
  const { status, members, memberCount, typingMembers } = useRoomAs('usePresence', roomId, options);
  return useMemo(() => ({ status, members, memberCount, typingMembers }), [status, members, memberCount, typingMembers]);
}
