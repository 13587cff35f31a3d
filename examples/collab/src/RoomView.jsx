// One room: members, messages, the shared canvas with live cursors, the shared list.
import { useEffect, useRef, useState } from 'react';
import { useRoom } from '@natter/widget/react';
import { SharedList, useSharedList } from './SharedList.jsx';

const byName = (a, b) => (a.name ?? '').localeCompare(b.name ?? '');

/** What a room's status means to the person looking at it. */
const STATUS = {
  joining: 'Joining…',
  joined: 'Live',
  rejoining: 'Reconnecting…',
  http: 'Live, messages only (members and cursors come back with the connection)',
  refused: 'You cannot join this room',
  left: 'You left this room',
};

/** Keeps the typing indicator alive while someone types, and clears it when they stop. */
function useTypingSignal(typing) {
  const last = useRef(0);
  const stop = useRef(null);
  return (text) => {
    clearTimeout(stop.current);
    if (!text) {
      last.current = 0;
      typing(false);
      return;
    }
    const now = Date.now();
    if (now - last.current > 3000) {
      last.current = now;
      typing(true);
    }
    stop.current = setTimeout(() => {
      last.current = 0;
      typing(false);
    }, 4000);
  };
}

export function RoomView({ roomId, name, hidden }) {
  const list = useSharedList();
  const room = useRoom(roomId, { name, onUpdate: list.receive });
  const [draft, setDraft] = useState('');
  const signal = useTypingSignal(room.typing);
  const log = useRef(null);

  // Each (re)join — the first, after a dropped link, after a hub restart — syncs the shared
  // list with those present (relays are not stored: see SharedList.jsx).
  const joined = room.status === 'joined';
  useEffect(() => list.connect(joined ? room.update : null), [joined, room.update, list.connect]);

  useEffect(() => {
    if (!hidden) room.markRead();
  }, [hidden, room.messages.length, room.markRead]);

  useEffect(() => {
    log.current?.scrollTo({ top: log.current.scrollHeight });
  }, [room.messages.length]);

  const others = room.typingMembers.map((m) => m.name ?? 'Someone');
  return (
    <section className="room" hidden={hidden} aria-labelledby={`title-${roomId}`} data-room={roomId}>
      <header>
        <h2 id={`title-${roomId}`}># {room.title ?? roomId}</h2>
        <span className="status" data-status={room.status} role="status">{STATUS[room.status] ?? room.status}</span>
        {room.unread > 0 && <span className="unread">{room.unread} unread</span>}
      </header>
      <div className="columns">
        <div className="chat">
          <ol className="messages" ref={log} aria-label="Messages" role="log" aria-live="polite">
            {room.messages.map((m) => (
              <li key={m.id} className={m.mine ? 'mine' : ''} data-state={m.state}>
                <span className="author">{m.mine ? 'You' : m.from.name ?? 'Someone'}</span>
                <span className="text">{m.text}</span>
                {m.state !== 'sent' && <small className="state">{m.state}</small>}
              </li>
            ))}
          </ol>
          <p className="typing" aria-live="polite">
            {others.length ? `${others.join(', ')} ${others.length > 1 ? 'are' : 'is'} typing…` : '\u00a0'}
          </p>
          <form
            className="composer"
            onSubmit={(e) => {
              e.preventDefault();
              if (room.send(draft)) {
                setDraft('');
                signal('');
              }
            }}
          >
            <label htmlFor={`say-${roomId}`} className="sr-only">Message</label>
            <input
              id={`say-${roomId}`}
              value={draft}
              placeholder={`Message #${roomId}`}
              onChange={(e) => {
                setDraft(e.target.value);
                signal(e.target.value);
              }}
            />
            <button type="submit">Send</button>
          </form>
        </div>
        <aside className="members" aria-label="Members">
          <h3>{room.memberCount} here</h3>
          <ul>
            {[...room.members].sort(byName).map((m) => (
              <li key={m.id}>
                <span className="dot" aria-hidden="true" />
                {m.name ?? 'Someone'}
                {m.verified && <span title="Verified">✔</span>}
                {room.typingMembers.some((t) => t.id === m.id) && <em> typing…</em>}
              </li>
            ))}
          </ul>
        </aside>
      </div>
      <div className="shared">
        <Canvas cursors={room.cursors} cursor={room.cursor} />
        <SharedList list={list} />
      </div>
    </section>
  );
}

/** A shared surface: your pointer is sent (one per animation frame), the others' are drawn. */
function Canvas({ cursors, cursor }) {
  const box = useRef(null);
  const move = (e) => {
    const r = box.current.getBoundingClientRect();
    // Shared as fractions of the canvas, so different window sizes agree.
    cursor({ x: (e.clientX - r.left) / r.width, y: (e.clientY - r.top) / r.height });
  };
  return (
    <div className="canvas" ref={box} onPointerMove={move} aria-label="Shared canvas" role="img">
      {Object.entries(cursors).map(([id, { member, data }]) =>
        typeof data?.x === 'number' && typeof data?.y === 'number' ? (
          <div
            key={id}
            className="cursor"
            data-member={member.name ?? id}
            style={{ left: `${Math.min(1, Math.max(0, data.x)) * 100}%`, top: `${Math.min(1, Math.max(0, data.y)) * 100}%` }}
          >
            {member.name ?? 'Someone'}
          </div>
        ) : null,
      )}
    </div>
  );
}
