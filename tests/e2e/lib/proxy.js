// A TCP proxy (Node `net`) between the widget and the hub, which can go silent the way a sleeping
// laptop's network, a NAT that dropped its mapping or a stuck middlebox does: `blackhole()` stops
// forwarding every connection open now, in both directions, and closes nothing — neither end
// hears a FIN or an RST. Connections made afterwards are forwarded normally.
import net from 'node:net';

export class TcpProxy {
  constructor(server, port) {
    this.server = server;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    /** Every connection accepted so far: `{ client, upstream, dead }`. */
    this.connections = [];
  }

  /** Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:targetPort`. */
  static async start(targetPort) {
    const proxy = new TcpProxy(null, 0);
    const server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      const c = { client, upstream, dead: false };
      proxy.connections.push(c);
      client.on('data', (d) => c.dead || upstream.write(d));
      upstream.on('data', (d) => c.dead || client.write(d));
      // A dead connection swallows everything, its ends included.
      client.on('end', () => c.dead || upstream.end());
      upstream.on('end', () => c.dead || client.end());
      client.on('error', () => c.dead || upstream.destroy());
      upstream.on('error', () => c.dead || client.destroy());
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    proxy.server = server;
    proxy.port = server.address().port;
    proxy.url = `http://127.0.0.1:${proxy.port}`;
    return proxy;
  }

  /** Stops forwarding on every connection open now, without closing any of them. */
  blackhole() {
    for (const c of this.connections) c.dead = true;
  }

  async close() {
    for (const c of this.connections) {
      c.client.destroy();
      c.upstream.destroy();
    }
    await new Promise((r) => this.server.close(r));
  }
}
