// A React hook around @natter/widget: mounts once per component lifetime, mirrors the widget's
// state into React, and destroys it on unmount (StrictMode mounts twice in development, which
// is exactly what `destroy()` has to survive).
import { useEffect, useRef, useState } from 'react';
import { mount } from '@natter/widget';

export function useNatter(options) {
  const handle = useRef(null);
  const [state, setState] = useState(null);
  const [messages, setMessages] = useState([]);

  useEffect(() => {
    const chat = mount(options);
    handle.current = chat;
    const onStatus = (s) => setState({ ...s });
    const onUnread = () => setState({ ...chat.state });
    // `message` adds a message; `delivery` follows one of the visitor's own through pending,
    // sent (with its seq), failed and retried — so the list never shows a stale "pending".
    const onMessage = (m) => setMessages((all) => [...all.filter((x) => x.id !== m.id), m].slice(-5));
    const onDelivery = (d) => setMessages((all) => all.map((x) => (x.id === d.id ? { ...x, state: d.state, seq: d.seq } : x)));
    chat
      .on('ready', onStatus)
      .on('status', onStatus)
      .on('unread', onUnread)
      .on('message', onMessage)
      .on('delivery', onDelivery);
    return () => {
      chat
        .off('ready', onStatus)
        .off('status', onStatus)
        .off('unread', onUnread)
        .off('message', onMessage)
        .off('delivery', onDelivery);
      chat.destroy();
      handle.current = null;
    };
    // Options are read once, like any mount-time configuration.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return { chat: handle, state, messages };
}
