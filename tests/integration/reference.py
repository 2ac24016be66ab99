#!/usr/bin/env python3
"""Independent references for kcopy's integration tests (stdlib only).

  reference.py copy SRC_IMAGE SRC_SECTOR COUNT BASE_IMAGE OUT DST_SECTOR [DST_SECTOR...]
      OUT := BASE_IMAGE with the COUNT sectors of SRC_IMAGE at SRC_SECTOR written
      at every DST_SECTOR.  The source range is read in full before anything is
      written, so when SRC_IMAGE and BASE_IMAGE are the same pristine image this
      is memmove: a copy through a buffer the size of the whole range.

  reference.py chunks DEV BASE_IMAGE SRC_IMAGE SRC_SECTOR COUNT DST_SECTOR CHUNK
      Check an interrupted copy of SRC_IMAGE[SRC_SECTOR, +COUNT) to DEV at
      DST_SECTOR, DEV having been BASE_IMAGE before: everything outside
      [DST_SECTOR, +COUNT) equals BASE_IMAGE, and every CHUNK-sector piece of the
      range (counted from DST_SECTOR) is either entirely the old content or
      entirely the source's.  DEV is read with O_DIRECT where it can be, so what
      is checked is what reached the device.  Prints
      "written=SECTORS old=SECTORS torn=CHUNKS outside=SECTORS"; exits 1 on a
      torn chunk, a change outside the range or a size mismatch.  Also prints
      "sha256=HEX" of all of DEV as read.

  reference.py digest DEV
      sha256 (hex) of all of DEV, read with O_DIRECT where it can be: what the
      device holds, not what its page cache holds.

Sectors are 512 bytes.  Exit status 2 on bad usage.
"""

import hashlib
import mmap
import os
import sys

SECTOR = 512
STEP = 1 << 20  # bytes read at a time (a multiple of every chunk size used)


def die(msg, status=2):
    print(f"reference.py: {msg}", file=sys.stderr)
    sys.exit(status)


def read_range(path, sector, count):
    with open(path, "rb") as f:
        f.seek(sector * SECTOR)
        data = f.read(count * SECTOR)
    if len(data) != count * SECTOR:
        die(f"{path}: short read of sectors {sector}+{count}")
    return data


def cmd_copy(args):
    if len(args) < 6:
        die("usage: copy SRC_IMAGE SRC_SECTOR COUNT BASE_IMAGE OUT DST_SECTOR...")
    src, ss, count, base, out = args[0], int(args[1], 0), int(args[2], 0), args[3], args[4]
    dsts = [int(a, 0) for a in args[5:]]
    data = read_range(src, ss, count)  # all of it, before any write
    with open(base, "rb") as f:
        image = bytearray(f.read())
    for d in dsts:
        if (d + count) * SECTOR > len(image):
            die(f"destination {d}+{count} is past the end of {base}")
        image[d * SECTOR:(d + count) * SECTOR] = data
    with open(out, "wb") as f:
        f.write(image)


class DirectReader:
    """Reads a device or file with O_DIRECT into an aligned buffer, falling
    back to buffered reads where O_DIRECT is refused."""

    def __init__(self, path):
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            self.direct = True
        except OSError:
            self.fd = os.open(path, os.O_RDONLY)
            self.direct = False
        self.size = os.lseek(self.fd, 0, os.SEEK_END)
        self.buf = mmap.mmap(-1, STEP)

    def read(self, offset, length):
        """length <= STEP; offset and length multiples of 4096 unless at the end."""
        view = memoryview(self.buf)[:length]
        got = 0
        while got < length:
            try:
                n = os.preadv(self.fd, [view[got:]], offset + got)
            except OSError as e:
                if not self.direct:
                    raise
                os.close(self.fd)  # unaligned tail on a 4Kn device: go buffered
                self.fd = os.open(self.path, os.O_RDONLY)
                self.direct = False
                continue
            if n == 0:
                die(f"{self.path}: unexpected end at byte {offset + got}", 1)
            got += n
        return bytes(view)


def cmd_chunks(args):
    if len(args) != 7:
        die("usage: chunks DEV BASE_IMAGE SRC_IMAGE SRC_SECTOR COUNT DST_SECTOR CHUNK")
    dev, base, src = args[0], args[1], args[2]
    ss, count, ds, chunk = (int(a, 0) for a in args[3:7])
    if chunk <= 0 or (chunk * SECTOR) > STEP or STEP % (chunk * SECTOR):
        die(f"chunk of {chunk} sectors must divide {STEP // SECTOR}")
    reader = DirectReader(dev)
    bsize = os.path.getsize(base)
    if reader.size != bsize:
        print(f"{dev} is {reader.size} bytes, {base} is {bsize}", file=sys.stderr)
        sys.exit(1)
    lo, hi = ds * SECTOR, (ds + count) * SECTOR
    cbytes = chunk * SECTOR
    written = old = torn = outside = 0
    first_torn = []
    first_outside = None
    digest = hashlib.sha256()
    with open(base, "rb") as fb, open(src, "rb") as fs:
        pos = 0
        while pos < bsize:
            # Steps end at range boundaries and at chunk boundaries inside it.
            if pos < lo:
                n = min(STEP, lo - pos)
            elif pos < hi:
                n = min(STEP, hi - pos)
            else:
                n = min(STEP, bsize - pos)
            got = reader.read(pos, n)
            digest.update(got)
            fb.seek(pos)
            want_old = fb.read(n)
            if pos < lo or pos >= hi:
                if got != want_old:
                    for i in range(0, n, SECTOR):
                        if got[i:i + SECTOR] != want_old[i:i + SECTOR]:
                            outside += 1
                            if first_outside is None:
                                first_outside = (pos + i) // SECTOR
            else:
                fs.seek(ss * SECTOR + (pos - lo))
                want_new = fs.read(n)
                for i in range(0, n, cbytes):
                    g = got[i:i + cbytes]
                    k = len(g) // SECTOR
                    if g == want_new[i:i + cbytes]:
                        written += k
                    elif g == want_old[i:i + cbytes]:
                        old += k
                    else:
                        torn += 1
                        if len(first_torn) < 5:
                            first_torn.append((pos + i) // SECTOR)
            pos += n
    print(f"written={written} old={old} torn={torn} outside={outside}")
    print(f"sha256={digest.hexdigest()}")
    bad = False
    if torn:
        print(f"torn chunks (neither old nor source) start at device sectors {first_torn}", file=sys.stderr)
        bad = True
    if outside:
        print(f"{outside} sector(s) outside the range changed, the first at device sector {first_outside}",
              file=sys.stderr)
        bad = True
    sys.exit(1 if bad else 0)


def cmd_digest(args):
    if len(args) != 1:
        die("usage: digest DEV")
    reader = DirectReader(args[0])
    digest = hashlib.sha256()
    pos = 0
    while pos < reader.size:
        n = min(STEP, reader.size - pos)
        digest.update(reader.read(pos, n))
        pos += n
    print(digest.hexdigest())


def main():
    if len(sys.argv) < 2:
        die("usage: reference.py copy|chunks|digest ARGS...")
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "copy":
        cmd_copy(args)
    elif cmd == "chunks":
        cmd_chunks(args)
    elif cmd == "digest":
        cmd_digest(args)
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
