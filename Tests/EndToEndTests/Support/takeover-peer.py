#!/usr/bin/env python3
"""A stand-in for a new balancerd in the takeover tests: speaks the protocol's framing
(4-byte length, 2-byte descriptor count, big-endian, then the body) on the takeover socket.

  takeover-peer.py SOCKET version N   hello with protocol version N; prints the answer's type
                                      and text ("refused: ...") and exits
  takeover-peer.py SOCKET vanish      hello, then receives until the state message (closing
                                      every descriptor it gets) and exits without a word,
                                      as a new process that dies mid-handover
  takeover-peer.py SOCKET hang        the same, then never says "ready" (sleeps 30 s at
                                      most), as a new process that hangs mid-handover
Prints "listeners N" and "connections N" as they arrive.
"""
import array
import os
import socket
import struct
import sys
import time


def frame(body):
    return struct.pack(">IH", len(body), 0) + body


def hello(version):
    return frame(bytes([1]) + struct.pack(">QQ", version, os.getpid()))


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def next(self):
        while True:
            if len(self.buffer) >= 6:
                length, _ = struct.unpack(">IH", self.buffer[:6])
                if len(self.buffer) >= 6 + length:
                    body = self.buffer[6:6 + length]
                    self.buffer = self.buffer[6 + length:]
                    return body
            data, ancillary, _, _ = self.sock.recvmsg(1 << 18, socket.CMSG_SPACE(4 * 1000))
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[:len(payload) - len(payload) % 4])
                    for fd in fds:
                        os.close(fd)
            if not data:
                raise EOFError("closed")
            self.buffer += data


def main():
    path, mode = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    reader = Reader(sock)
    if mode == "version":
        sock.sendall(hello(int(sys.argv[3])))
        body = reader.next()
        if body[0] == 3:
            (length,) = struct.unpack(">Q", body[1:9])
            print("refused: " + body[9:9 + length].decode(), flush=True)
        else:
            print("type %d" % body[0], flush=True)
        return
    sock.sendall(hello(1))
    while True:
        body = reader.next()
        if body[0] in (4, 5):
            (count,) = struct.unpack(">Q", body[1:9])
            print(("listeners %d" if body[0] == 4 else "connections %d") % count, flush=True)
        if body[0] == 6:
            print("state", flush=True)
            if mode == "hang":
                time.sleep(30)
            os._exit(0)


main()
