// Benchmark-only preload (NODE_OPTIONS=--import): sets TCP_NODELAY on every socket, to measure what Nagle's algorithm costs ssh2.
import net from 'node:net';

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  // Before the handshake: ssh2 writes small packets and waits for answers, which Nagle + delayed ACK hold back.
  this.setNoDelay(true);
  return connect.apply(this, args);
};
