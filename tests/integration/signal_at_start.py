#!/usr/bin/env python3
"""signal_at_start.py SIG RUNS STDERR_FILE [--same DEV IMAGE REF] CMD...: RUNS
times, start CMD and send it SIG (a name: USR1, TERM...) the moment kcopy's
own code runs, with no sleep; wait for CMD (its stderr in STDERR_FILE, the
last run's kept) and print one line per run: "exit N" or "killed by SIGNAME".
With --same, IMAGE (the file that loop device DEV loops) is punched whole
before each run, and after a run that exits 0 DEV is read with O_DIRECT and
compared with the file REF: " differs" is added to the line unless it holds REF.

"The moment kcopy's own code runs" is the first sign of it in
/proc/PID/status or /proc/PID/exe, polled without pause:
  - SigBlk has SIG: kcopy blocked the signals it handles (the first thing
    its main() does);
  - SigIgn has SIGPIPE: kcopy's process set-up ran (a kcopy that does not
    block them installs its handlers only later);
  - exe is kcopy-nbd: kcopy executed kcopy-nbd for an NBD copy (which must
    not lose the signals while its shared libraries load).
Not earlier: a signal that comes while the kernel is still executing the
program, before its first instruction, kills any program (dd as well), and on
a busy machine that moment lasts long after exec returns in the parent."""
import mmap
import os
import signal
import subprocess
import sys


def mask(status, field):
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return 0


def kcopy_runs(pid, sig):
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return True  # gone: nothing to wait for
    if "\nState:\tZ" in status or exe == "kcopy-nbd":
        return True
    if not exe.startswith("kcopy"):
        return False  # still the wrapper script (KCOPY_TEST_IO_ENGINE), or timeout(1)
    return bool(mask(status, "SigBlk") & (1 << (sig - 1)) or mask(status, "SigIgn") & (1 << (signal.SIGPIPE - 1)))


def read_direct(path, size):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
        done = 0
        while done < size:
            n = os.preadv(fd, [memoryview(buf)[done:]], done)
            if n <= 0:
                break
            done += n
        return bytes(buf[:done])
    finally:
        os.close(fd)


def punch(path):
    size = os.path.getsize(path)
    subprocess.run(["fallocate", "--punch-hole", "--offset", "0", "--length", str(size), path], check=True)


def main():
    sig = getattr(signal, "SIG" + sys.argv[1])
    runs = int(sys.argv[2])
    stderr_file = sys.argv[3]
    cmd = sys.argv[4:]
    same = None
    if cmd[0] == "--same":
        same = (cmd[1], cmd[2])
        with open(cmd[3], "rb") as f:
            ref = f.read()
        cmd = cmd[4:]
    for _ in range(runs):
        if same:
            punch(same[1])
        with open(stderr_file, "wb") as err:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            while not kcopy_runs(child.pid, sig):
                pass
            try:
                os.kill(child.pid, sig)
            except ProcessLookupError:
                pass
            rc = child.wait()
        line = f"exit {rc}" if rc >= 0 else f"killed by {signal.Signals(-rc).name}"
        if same and rc == 0 and read_direct(same[0], len(ref)) != ref:
            line += " differs"
        print(line, flush=True)


main()
