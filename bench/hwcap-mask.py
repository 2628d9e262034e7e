#!/usr/bin/env python3
"""Clear bits of AT_HWCAP in a process that qemu-aarch64 holds stopped at its entry point.

usage: hwcap-mask.py PORT MASK

`qemu-aarch64 -g PORT prog` stops before prog's first instruction and waits for a debugger on
PORT. This speaks just enough of the GDB remote protocol to read the stack pointer, walk the
initial stack (argc, argv, NULL, envp, NULL, then the auxiliary vector's type/value pairs) to
AT_HWCAP, clear MASK's bits in its value, and detach, which lets prog run. Everything prog
reads with getauxval(AT_HWCAP) -- ring's and the standard library's CPU feature detection --
then sees a CPU without those features. (gdb-multiarch can do the same, but timed out talking
to Debian 12's qemu 7.2 stub; this needs nothing but Python.)

Prints "AT_HWCAP 0x... -> 0x...".
"""

import socket
import sys
import time

AT_NULL, AT_HWCAP = 0, 16
SP_REGISTER = 31  # aarch64 'g' packet order: x0..x30, sp, pc, cpsr


def checksum(data):
    return f"{sum(data.encode()) % 256:02x}"


class Stub:
    def __init__(self, port):
        deadline = time.monotonic() + 20
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buf = b""

    def _read_packet(self):
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                data = self.buf[start + 1:end].decode()
                self.buf = self.buf[end + 3:]
                self.sock.sendall(b"+")
                return data
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the stub closed the connection")
            self.buf += chunk

    def ask(self, data):
        self.sock.sendall(f"${data}#{checksum(data)}".encode())
        return self._read_packet()

    def read(self, addr, length):
        out = b""
        while len(out) < length:
            n = min(256, length - len(out))
            reply = self.ask(f"m{addr + len(out):x},{n:x}")
            if reply.startswith("E"):
                raise RuntimeError(f"cannot read {addr + len(out):#x}: {reply}")
            out += bytes.fromhex(reply)
        return out

    def word(self, addr):
        return int.from_bytes(self.read(addr, 8), "little")


def main(port, mask):
    stub = Stub(port)
    stub.ask("?")
    regs = stub.ask("g")
    sp = int.from_bytes(bytes.fromhex(regs[SP_REGISTER * 16:(SP_REGISTER + 1) * 16]), "little")
    p = sp
    argc = stub.word(p)
    p += 8 * (1 + argc + 1)  # argc, argv[], NULL
    while stub.word(p) != 0:  # envp[]
        p += 8
    p += 8
    while True:
        kind, value = stub.word(p), stub.word(p + 8)
        if kind == AT_NULL:
            sys.exit("hwcap-mask: no AT_HWCAP in the auxiliary vector")
        if kind == AT_HWCAP:
            new = value & ~mask
            reply = stub.ask(f"M{p + 8:x},8:{new.to_bytes(8, 'little').hex()}")
            if reply != "OK":
                sys.exit(f"hwcap-mask: writing AT_HWCAP failed: {reply}")
            print(f"AT_HWCAP {value:#x} -> {new:#x}")
            break
        p += 16
    stub.sock.sendall(f"$D#{checksum('D')}".encode())
    time.sleep(0.2)
    stub.sock.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(int(sys.argv[1]), int(sys.argv[2], 0))
