// The page: who you are, the rooms you are in, and the open room.
import { useState } from 'react';
import { useNatterState } from '@natter/widget/react';
import { RoomView } from './RoomView.jsx';

const ROOM_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** "Design review" → "design-review": a room id from a name someone typed. */
function roomId(name) {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_.:-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
}

export function App({ initialRoom, initialName }) {
  const [name, setName] = useState(initialName);
  const [draftName, setDraftName] = useState(initialName);
  const [rooms, setRooms] = useState([initialRoom]);
  const [current, setCurrent] = useState(initialRoom);
  const [draftRoom, setDraftRoom] = useState('');
  const [problem, setProblem] = useState('');
  const state = useNatterState();

  if (!name) {
    return (
      <main className="welcome">
        <h1>Collaboration rooms</h1>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (draftName.trim()) setName(draftName.trim().slice(0, 64));
          }}
        >
          <label htmlFor="name">Your name</label>
          <input id="name" value={draftName} onChange={(e) => setDraftName(e.target.value)} maxLength={64} autoFocus />
          <button type="submit">Enter</button>
        </form>
      </main>
    );
  }

  const open = (e) => {
    e.preventDefault();
    const id = roomId(draftRoom);
    if (!ROOM_ID.test(id)) {
      setProblem('A room name needs letters or digits.');
      return;
    }
    setProblem('');
    setRooms((all) => (all.includes(id) ? all : [...all, id]));
    setCurrent(id);
    setDraftRoom('');
  };

  return (
    <div className="app">
      <aside className="sidebar" aria-label="Rooms">
        <h1>Rooms</h1>
        <p className="me">
          You are <strong>{name}</strong>
          <span className="link" data-status={state?.connected ? 'up' : 'down'}>
            {state ? state.status : 'Loading…'}
          </span>
        </p>
        <nav>
          <ul>
            {rooms.map((id) => (
              <li key={id}>
                <button
                  type="button"
                  aria-current={id === current ? 'page' : undefined}
                  onClick={() => setCurrent(id)}
                >
                  # {id}
                </button>
              </li>
            ))}
          </ul>
        </nav>
        <form onSubmit={open} className="join">
          <label htmlFor="room">Join or create a room</label>
          <input id="room" value={draftRoom} onChange={(e) => setDraftRoom(e.target.value)} placeholder="room name" />
          <button type="submit">Join</button>
          {problem && <p role="alert">{problem}</p>}
        </form>
      </aside>
      {/* One RoomView per joined room keeps each joined (and its unread counting) while another is shown. */}
      {rooms.map((id) => (
        <RoomView key={id} roomId={id} name={name} hidden={id !== current} />
      ))}
    </div>
  );
}
