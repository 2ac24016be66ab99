#!/usr/bin/env python3
"""Run a command with its standard error on a pseudo-terminal, as at a terminal.

    on_pty.py [--columns N] [--at SECONDS ACTION]... --out FILE -- COMMAND...

Standard error of COMMAND is the slave side of a new pty of N columns (default
100) and 24 rows, with output post-processing off, so that FILE receives
exactly the bytes COMMAND wrote (a "\\n" stays "\\n"). Standard input is
/dev/null; standard output is inherited. ACTIONs, at SECONDS after the start:

    columns:N   set the pty to N columns and send SIGWINCH (as a terminal
                resized by its user would)
    signal:NAME send signal NAME (USR1, INT, ...) to COMMAND

Exits with COMMAND's exit status (128+N when a signal ended it). The pty is
not COMMAND's controlling terminal: no job control, no signals from it.
Standard library only.
"""
import argparse
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time


def set_columns(fd, columns):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--columns", type=int, default=100)
    ap.add_argument("--at", nargs=2, action="append", default=[], metavar=("SECONDS", "ACTION"))
    ap.add_argument("--out", required=True)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    actions = sorted((float(t), act) for t, act in a.at)

    master, slave = pty.openpty()
    set_columns(slave, a.columns)
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # no "\n" -> "\r\n": the bytes as written
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    start = time.monotonic()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=slave)
    os.close(slave)

    out = bytearray()
    while True:
        now = time.monotonic() - start
        while actions and actions[0][0] <= now:
            _, act = actions.pop(0)
            kind, _, arg = act.partition(":")
            if kind == "columns":
                set_columns(master, int(arg))
                child.send_signal(signal.SIGWINCH)
            elif kind == "signal":
                child.send_signal(getattr(signal, "SIG" + arg))
            else:
                sys.exit(f"on_pty.py: unknown action {act}")
        timeout = max(0.0, actions[0][0] - now) if actions else 0.5
        ready, _, _ = select.select([master], [], [], timeout)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave descriptor is closed
                data = b""
            if not data:
                break
            out += data
    status = child.wait()
    with open(a.out, "wb") as f:
        f.write(out)
    sys.exit(128 - status if status < 0 else status)


if __name__ == "__main__":
    main()
