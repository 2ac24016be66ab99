#!/usr/bin/python3
"""faulty_disk.py — a FUSE file system with one file whose I/O fails where told.

Exposes IMAGE (a regular file) as MOUNTPOINT/NAME (default "disk").  A read that
touches any --read-error range fails with EIO, a write that touches any
--write-error range fails with EIO (and writes nothing); a write that touches
any --lose-writes range succeeds but stores nothing inside those ranges (its
parts outside them are stored): a disk that silently loses writes, for
--verify.  Every other read and write goes to IMAGE unchanged.  Loop that file (losetup WITHOUT --direct-io) and
the loop device fails exactly those 512-byte sectors:

    faulty_disk.py --read-error 1000:1 --write-error 5000:8 IMAGE MNT &
    dev=$(losetup -f --show MNT/disk)
    echo 64 > /sys/block/${dev#/dev/}/queue/max_sectors_kb

Limit the loop device's requests to 64 KiB as above: the loop driver splits a
larger request into several FUSE requests, and when a later one fails it gets
a short write, which it completes as a success (the refused part is silently
lost).  A request of at most 64 KiB is one FUSE request, which fails whole.
A loop device keeps that limit after it is detached: the guard (below) resets
it to the kernel's default on the loop devices it saw on the file or that
--loops-file names, once they are free.

The file system is mounted with direct_io, so the kernel hands every read and
write through with its real offset and size: no page cache, no widening to
4 KiB pages, no readahead.  Runs in the foreground until unmounted
(`umount MNT` / `fusermount3 -u MNT`) or told to stop (SIGTERM, SIGINT: libfuse
then unmounts).  A guard process forked at start cleans up after a daemon that
died (SIGKILL, a crash): it detaches the loop devices on the file and unmounts
the dead mount; and once the process --watch-pid names has gone without
cleaning up, it detaches those loop devices and unmounts, ending the daemon.

Ranges are START:COUNT in 512-byte SECTORS of the file (decimal or 0x hex),
repeatable; --read-errors-from / --write-errors-from / --lose-writes-from read
one START:COUNT (or "START COUNT") per line from a file, for thousands of
ranges ('#' comments and blank lines ignored).  A write touching both a
--write-error and a --lose-writes range fails.  --log FILE records every
failed request ("read|write OFFSET SIZE", in bytes), every write that lost
bytes ("lost OFFSET SIZE": the whole write, in bytes) and, at exit, the counts
of requests.

Exit status: 0 after a clean unmount, 2 bad arguments, 77 when FUSE or fusepy
is not available (the test's "skipped").
"""

import argparse
import bisect
import errno
import glob
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time

SECTOR = 512

try:
    import fusepy as fuse  # Debian's python3-fusepy names the module fusepy
except ImportError:
    try:
        import fuse  # pip's fusepy
    except (ImportError, EnvironmentError, OSError) as e:
        print(f"faulty_disk: fusepy is not available: {e}", file=sys.stderr)
        sys.exit(77)
except (EnvironmentError, OSError) as e:  # fusepy without libfuse
    print(f"faulty_disk: fusepy cannot load libfuse: {e}", file=sys.stderr)
    sys.exit(77)


class Ranges:
    """A set of byte ranges, merged, with a fast "does [off, off+len) touch it"."""

    def __init__(self, sector_ranges):
        spans = sorted((s * SECTOR, (s + n) * SECTOR) for s, n in sector_ranges if n > 0)
        merged = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.starts = [a for a, _ in merged]
        self.ends = [b for _, b in merged]

    def touches(self, off, size):
        if size <= 0 or not self.starts:
            return False
        # The last range that starts before the end of the request.
        i = bisect.bisect_left(self.starts, off + size) - 1
        return i >= 0 and self.ends[i] > off

    def outside(self, off, size):
        """The pieces of [off, off+size) that no range covers, as (start, end)
        byte offsets in order."""
        pieces, at, end = [], off, off + size
        i = max(bisect.bisect_right(self.starts, off) - 1, 0)
        while at < end and i < len(self.starts):
            a, b = self.starts[i], self.ends[i]
            if b <= at:
                i += 1
                continue
            if a >= end:
                break
            if a > at:
                pieces.append((at, a))
            at = max(at, b)
            i += 1
        if at < end:
            pieces.append((at, end))
        return pieces

    def __len__(self):
        return len(self.starts)


def parse_range(text):
    text = text.strip()
    for sep in (":", " ", "\t", "+"):
        if sep in text:
            a, b = text.split(sep, 1)
            break
    else:
        raise argparse.ArgumentTypeError(f"'{text}': want START:COUNT (512-byte sectors)")
    try:
        start, count = int(a.strip(), 0), int(b.strip(), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': START and COUNT must be numbers of sectors")
    if start < 0 or count <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': START must be >= 0 and COUNT > 0")
    return (start, count)


def read_ranges_file(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(parse_range(line))
    return out


class FaultyDisk(fuse.Operations):
    def __init__(self, image, name, read_bad, write_bad, lose, log):
        self.fd = os.open(image, os.O_RDWR)
        self.image = image
        self.name = "/" + name
        self.read_bad = read_bad
        self.write_bad = write_bad
        self.lose = lose
        self.log = log
        self.mutex = threading.Lock()
        self.counts = {"read": 0, "write": 0, "read_eio": 0, "write_eio": 0, "lost": 0}
        self.mounted_at = time.time()

    def _note(self, what, off, size, failed, lost=False):
        with self.mutex:
            self.counts[what] += 1
            if failed or lost:
                self.counts[what + "_eio" if failed else "lost"] += 1
                if self.log:
                    self.log.write(f"{what if failed else 'lost'} {off} {size}\n")
                    self.log.flush()

    # --- the tree: "/" and "/NAME" ---------------------------------------------

    def getattr(self, path, fh=None):
        now = self.mounted_at
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_size=0,
                        st_atime=now, st_mtime=now, st_ctime=now)
        if path == self.name:
            st = os.fstat(self.fd)
            return dict(st_mode=stat.S_IFREG | 0o600, st_nlink=1, st_size=st.st_size,
                        st_blocks=(st.st_size + 511) // 512, st_blksize=SECTOR,
                        st_atime=st.st_atime, st_mtime=st.st_mtime, st_ctime=st.st_ctime)
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        if path != "/":
            raise fuse.FuseOSError(errno.ENOTDIR)
        return [".", "..", self.name[1:]]

    def open(self, path, flags):
        if path != self.name:
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def truncate(self, path, length, fh=None):
        raise fuse.FuseOSError(errno.EPERM)  # the disk has a fixed size

    def statfs(self, path):
        return dict(f_bsize=SECTOR, f_frsize=SECTOR, f_namemax=255)

    # --- the data ----------------------------------------------------------------

    def read(self, path, size, offset, fh):
        if self.read_bad.touches(offset, size):
            self._note("read", offset, size, True)
            raise fuse.FuseOSError(errno.EIO)
        self._note("read", offset, size, False)
        return os.pread(self.fd, size, offset)

    def write(self, path, data, offset, fh):
        size = len(data)
        if self.write_bad.touches(offset, size):
            self._note("write", offset, size, True)
            raise fuse.FuseOSError(errno.EIO)
        end = os.fstat(self.fd).st_size
        if offset + size > end:  # a disk does not grow
            raise fuse.FuseOSError(errno.ENOSPC)
        if self.lose.touches(offset, size):
            # Success, but only the parts outside the lost ranges are stored.
            self._note("write", offset, size, False, lost=True)
            view = memoryview(data)
            for a, b in self.lose.outside(offset, size):
                os.pwrite(self.fd, view[a - offset:b - offset], a)
            return size
        self._note("write", offset, size, False)
        return os.pwrite(self.fd, data, offset)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fdatasync(self.fd)
        return 0

    def release(self, path, fh):
        return 0

    def destroy(self, path):
        try:
            os.fdatasync(self.fd)
        except OSError:
            pass
        if self.log:
            c = self.counts
            self.log.write(f"# requests: read {c['read']} (EIO {c['read_eio']}), "
                           f"write {c['write']} (EIO {c['write_eio']}, lost {c['lost']})\n")
            self.log.flush()


def _mounted(mountpoint):
    """Is MOUNTPOINT a mount point now (stat fails on a dead FUSE mount, so read mountinfo)?"""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            field = line.split()[4]
            field = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
            if field == mountpoint:
                return True
    return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _run(*cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def _detach_loops(loops, disk):
    """losetup -d each loop device of LOOPS (names seen on DISK) that is still
    on DISK: its backing file reads DISK, or "/NAME" once the file system has
    been unmounted lazily (the device and inode are then unknown)."""
    paths = (disk, disk + " (deleted)", "/" + os.path.basename(disk))
    for name in loops:
        try:
            with open(f"/sys/block/{name}/loop/backing_file") as f:
                back = f.read().strip()
        except OSError:
            continue  # not bound
        if back in paths:
            _run("losetup", "-d", "/dev/" + name)


def _loops_on(disk):
    """Names (loopN) of the loop devices whose backing file is the path DISK."""
    names = set()
    for back in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(back) as f:
                if f.read().strip() in (disk, disk + " (deleted)"):
                    names.add(back.split("/")[3])
        except OSError:
            pass
    return names


def _loops_named(path):
    """Names (loopN) of the loop devices listed in file PATH (/dev/loopN a line)."""
    if not path:
        return set()
    try:
        with open(path) as f:
            return {os.path.basename(w) for w in f.read().split() if re.fullmatch(r"/dev/loop[0-9]+", w)}
    except OSError:
        return set()


def _restore_queue(name):
    """Give loop device NAME back the kernel's default request size, once it is
    free: the test's fixture limits its requests to 64 KiB (see the top), and
    a loop device keeps its queue settings when detached and attached again,
    so the next user (another test, a benchmark) would inherit the limit."""
    q = f"/sys/block/{name}/queue"
    for _ in range(30):
        if os.path.exists(f"/sys/block/{name}/loop/backing_file"):
            time.sleep(0.1)  # still bound: being detached, or taken by someone else
            continue
        try:
            with open(f"{q}/max_hw_sectors_kb") as f:
                default = min(int(f.read()), 1280)  # BLK_DEF_MAX_SECTORS_CAP
            with open(f"{q}/max_sectors_kb") as f:
                if int(f.read()) != default:
                    with open(f"{q}/max_sectors_kb", "w") as w:
                        w.write(str(default))
        except (OSError, ValueError):
            pass
        return


def guard(daemon, watch_pid, mountpoint, disk, loops_file):
    """A child process that makes sure nothing outlives its owner:

    - the daemon has gone (SIGKILL, a crash, or SIGTERM, after which libfuse
      unmounts lazily): detach the loop devices on our file (useless now) and
      unmount the mount if it is still there (lazily, in case one is held);
    - the process --watch-pid names (the test) has gone without cleaning up:
      detach the loop devices on our file and unmount, which ends the daemon;
    - either way, give the loop devices that were on our file (seen, or named
      in --loops-file) their default request size back once they are free
      (_restore_queue).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loops = set()  # loop devices seen on our file
    while True:
        time.sleep(0.2)
        if _mounted(mountpoint):
            loops |= _loops_on(disk)
        loops |= _loops_named(loops_file)  # read as we go: its owner may delete it
        if os.getppid() != daemon:
            _detach_loops(loops | _loops_named(loops_file), disk)
            if _mounted(mountpoint):
                _run("umount", "-l", mountpoint)
            break
        if watch_pid and not _alive(watch_pid):
            _detach_loops(loops | _loops_named(loops_file), disk)
            for _ in range(50):
                if not _mounted(mountpoint) or _run("umount", mountpoint):
                    break
                time.sleep(0.1)
            else:
                _run("umount", "-l", mountpoint)
            break
    loops |= _loops_named(loops_file)
    for name in sorted(loops):
        _restore_queue(name)
    os._exit(0)


def main():
    p = argparse.ArgumentParser(
        description="FUSE file system exposing IMAGE as MOUNTPOINT/NAME, failing I/O "
                    "that touches chosen 512-byte sector ranges with EIO, or losing writes there.")
    p.add_argument("image", metavar="IMAGE", help="the backing image (a regular file)")
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty directory")
    p.add_argument("--name", default="disk", help="the file's name in MOUNTPOINT (default: disk)")
    p.add_argument("--read-error", type=parse_range, action="append", default=[],
                   metavar="START:COUNT", help="reads touching these sectors fail with EIO (repeatable)")
    p.add_argument("--write-error", type=parse_range, action="append", default=[],
                   metavar="START:COUNT", help="writes touching these sectors fail with EIO (repeatable)")
    p.add_argument("--read-errors-from", metavar="FILE", action="append", default=[],
                   help="more read-error ranges, one START:COUNT per line")
    p.add_argument("--write-errors-from", metavar="FILE", action="append", default=[],
                   help="more write-error ranges, one START:COUNT per line")
    p.add_argument("--lose-writes", type=parse_range, action="append", default=[],
                   metavar="START:COUNT",
                   help="writes touching these sectors succeed but store nothing there (repeatable)")
    p.add_argument("--lose-writes-from", metavar="FILE", action="append", default=[],
                   help="more lost-write ranges, one START:COUNT per line")
    p.add_argument("--log", metavar="FILE", help="append every failed request and the request counts")
    p.add_argument("--watch-pid", type=int, metavar="PID",
                   help="unmount and exit once process PID has gone")
    p.add_argument("--loops-file", metavar="FILE",
                   help="loop devices (/dev/loopN, one a line) whose request size to reset "
                        "to the kernel's default at exit, once free")
    args = p.parse_args()

    if not os.path.exists("/dev/fuse"):
        print("faulty_disk: /dev/fuse does not exist", file=sys.stderr)
        sys.exit(77)
    if not os.path.isfile(args.image):
        p.error(f"{args.image}: not a regular file")
    if "/" in args.name or args.name in ("", ".", ".."):
        p.error(f"bad --name '{args.name}'")
    try:
        rd = list(args.read_error)
        for f in args.read_errors_from:
            rd += read_ranges_file(f)
        wr = list(args.write_error)
        for f in args.write_errors_from:
            wr += read_ranges_file(f)
        lose = list(args.lose_writes)
        for f in args.lose_writes_from:
            lose += read_ranges_file(f)
    except (OSError, argparse.ArgumentTypeError) as e:
        p.error(str(e))

    log = open(args.log, "a") if args.log else None
    ops = FaultyDisk(os.path.abspath(args.image), args.name, Ranges(rd), Ranges(wr), Ranges(lose), log)
    mountpoint = os.path.realpath(args.mountpoint)
    daemon = os.getpid()
    if os.fork() == 0:
        try:
            guard(daemon, args.watch_pid, mountpoint, os.path.join(mountpoint, args.name),
                  args.loops_file and os.path.abspath(args.loops_file))
        finally:
            os._exit(0)
    # direct_io: every read/write reaches us with its own offset and size.
    # big_writes/max_*: requests up to 128 KiB instead of 4 KiB pieces.
    # allow_other is not needed: the loop device is set up by the same user (root).
    fuse.FUSE(ops, mountpoint, foreground=True, nothreads=False, direct_io=True,
              big_writes=True, max_read=131072, max_write=131072,
              fsname="faulty_disk", subtype="faulty_disk", default_permissions=True)


if __name__ == "__main__":
    main()
