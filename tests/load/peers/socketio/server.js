// The Socket.IO 4.8 peer for `cargo xtask bench`: the same job as natter-hub's rooms, so the
// same load generator (tests/load, Socket.IO dialect) can drive both.
//
//   join  "room"                   -> socket joins the room, gets a `joined` event back
//                                     (natter answers a join with `room_info`).
//   chat  {room, id, message}      -> the server stamps a per-room seq, a time and the sender,
//                                     and emits `chat` to the whole room, sender included
//                                     (natter delivers a room chat to every member, sender
//                                     included, with seq, timestamp and from).
//
// Usage: node server.js [--port 0] [--host 127.0.0.1]
// Prints `listening <port>` on stdout once it accepts connections.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg("host", "127.0.0.1");
const port = Number(arg("port", "0"));

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
// Defaults otherwise (no per-message deflate, 1 MB max payload, 25 s ping): what a web
// developer gets from `new Server(httpServer)`, minus CORS and the polling transport the
// generator does not use.
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });

const seqs = new Map();
let nextMember = 0;

io.on("connection", (socket) => {
  const member = { id: `m${nextMember++}`, name: undefined };
  socket.on("join", (room) => {
    if (typeof room !== "string" || room.length === 0 || room.length > 64) return;
    socket.join(room);
    socket.emit("joined", { room });
  });
  socket.on("chat", (msg) => {
    if (!msg || typeof msg.room !== "string" || typeof msg.message !== "string") return;
    if (!socket.rooms.has(msg.room)) return;
    const seq = (seqs.get(msg.room) || 0) + 1;
    seqs.set(msg.room, seq);
    io.to(msg.room).emit("chat", {
      room: msg.room,
      id: msg.id,
      seq,
      message: msg.message,
      timestamp: new Date().toISOString(),
      from: member,
    });
  });
});

httpServer.listen(port, host, () => {
  console.log(`listening ${httpServer.address().port}`);
});

function stop() {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
