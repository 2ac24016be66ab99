#!/usr/bin/env bash
# The progress line, as a user sees it on a terminal (a pseudo-terminal, played
# back by screen.py) and in a log:
#   - on a terminal, by default: several frames with bytes, a percentage, a
#     rate, the elapsed time and an ETA, each narrower than the terminal, then
#     the final line (100.0%) ended with a newline; the copy exact;
#   - a terminal made narrower (SIGWINCH): the frames after it fit the new width;
#   - SIGUSR1 twice: two status lines, each on a line of its own (never mixed
#     with the progress line), the copy goes on to exit 0;
#   - a destination that fails (2 of 3, full tmpfs) is marked FAILED in the
#     frames while the copy goes on, and in the final line; the error message
#     stays whole on its own line;
#   - -q or --no-progress on a terminal: no progress;
#   - stderr a pipe or file with --progress: no carriage return at all, and for
#     a short copy (under 10 s) only the final line; without --progress: nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python

src_img=$(make_image src.img 256M) # 524288 sectors: over a second through a small pool
src=$(attach "$src_img")
dst_img=$SCRATCH/dst.img
truncate -s 256M "$dst_img"
dst=$(attach "$dst_img")
SLOW=(--io-size 16K --pages 8) # small requests, few in flight: the copy takes a while
PTY_OUT=$SCRATCH/pty.out

# on_pty [on_pty.py OPTIONS...] -- WANT ARGS...: kcopy ARGS with stderr on a
# pseudo-terminal (default 100 columns); it must exit WANT. The bytes written
# are in $PTY_OUT, what the terminal shows in $SCRATCH/screen.json.
on_pty() {
    local opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    local want=$1
    shift
    expect_status "$want" "$PYTHON" "$TESTS_DIR/on_pty.py" "${opts[@]}" --out "$PTY_OUT" -- "$KCOPY" "$@"
    "$PYTHON" "$TESTS_DIR/screen.py" "$PTY_OUT" >"$SCRATCH/screen.json" || fail "screen.py failed"
    "$PYTHON" -c 'import json, sys
s = json.load(open(sys.argv[1]))
for f in s["frames"]: print("    frame:", f)
for l in s["lines"]: print("    line: ", l)' "$SCRATCH/screen.json"
}

# expect_screen PYTHON...: Python statements (asserts) about the last on_pty:
# `frames`, `lines`, `s` (screen.py's object), `raw` (the bytes), `re`, and
# FRAME / FINAL / STATUS, regular expressions of a progress frame, the final
# line and a SIGUSR1 status line of this test's copy of 524288 sectors.
expect_screen() {
    "$PYTHON" - "$SCRATCH/screen.json" "$PTY_OUT" "$1" <<'PY' || fail "what the terminal shows is wrong (see above)"
import json, re, sys
s = json.load(open(sys.argv[1]))
raw = open(sys.argv[2], "rb").read()
frames, lines = s["frames"], s["lines"]
AMOUNT = r"(\d+ B|\d+\.\d [KMG]iB) of 256\.0 MiB \(\d+\.\d%\)"
FRAME = r"^kcopy: " + AMOUNT + r", (\d+\.\d|--\.-) MiB/s, \d+:\d\d elapsed, ETA (\d+:\d\d|--:--), dest [^,]+$"
FINAL = r"^kcopy: 256\.0 MiB of 256\.0 MiB \(100\.0%\), \d+\.\d MiB/s, \d+:\d\d elapsed, dest [^,]+$"
STATUS = r"^kcopy: \d+ of 524288 sectors copied \(\d+%\), [0-9.]+ s, [0-9.]+ MiB/s$"
try:
    exec(sys.argv[3])
except AssertionError as e:
    print(f"FAIL: {e}", file=sys.stderr)
    sys.exit(1)
PY
}

reset_dst() {
    fallocate --punch-hole --offset 0 --length $((256 << 20)) "$dst_img"
    blockdev --flushbufs "$dst"
}

frames_on_a_terminal() {
    reset_dst
    check "stderr a terminal, no option: frames with percent and rate, then the final line and a newline"
    on_pty -- 0 "${SLOW[@]}" "$src" "$dst"
    expect_screen '
moving = [f for f in frames if re.match(FRAME, f)]
assert len(moving) >= 3, f"{len(moving)} progress frames, want at least 3"
assert all(re.match(FRAME, f) or re.match(FINAL, f) for f in frames), "a frame that is not a progress line"
assert all(len(f) <= 99 for f in frames), "a frame as wide as the 100-column terminal"
assert all(f.endswith("dest 1:ok") for f in frames), "destination 1 not shown as ok"
percents = [float(re.search(r"\((\d+\.\d)%\)", f).group(1)) for f in moving]
assert percents == sorted(percents), f"the percentage goes back: {percents}"
assert len(lines) == 1 and re.match(FINAL, lines[0]), f"the screen keeps {lines}, want the final line only"
assert s["ends_with_newline"], "the final line is not ended with a newline"
assert b"\x1b" not in raw, "an escape sequence was written"
'
    expect_same_sectors "destination" "$dst" 0 "$src_img" 0 524288
}

narrower_terminal() {
    reset_dst
    check "the terminal made 40 columns wide mid-copy (SIGWINCH): the later frames fit in 39"
    on_pty --columns 100 --at 0.4 columns:40 -- 0 "${SLOW[@]}" "$src" "$dst"
    expect_screen '
# What kcopy drew each time (the screen.py rows keep what a wider line left
# past column 40: a real terminal cuts it off when it is made narrower).
drawn = [d.rstrip(" ") for d in raw.decode().replace("\n", "\r").split("\r") if d.strip()]
widths = [len(d) for d in drawn]
narrow = next((i for i, w in enumerate(widths) if w <= 39), None)
assert narrow is not None and narrow > 0, f"frame widths {widths}: no wide frames, then narrow ones"
assert all(w <= 39 for w in widths[narrow:]), f"frame widths {widths}: a frame wider than 39 after the resize"
assert any("%" in d and "MiB/s" in d for d in drawn[narrow:-1]), "narrow frames lost the percentage or the rate"
assert "(100.0%)" in drawn[-1] and s["ends_with_newline"], f"final line {drawn[-1]}"
'
}

sigusr1_on_a_terminal() {
    reset_dst
    check "SIGUSR1 twice: two status lines of their own between the frames; exit 0, exact"
    on_pty --at 0.3 signal:USR1 --at 0.6 signal:USR1 -- 0 "${SLOW[@]}" "$src" "$dst"
    expect_screen '
status = [l for l in lines if re.match(STATUS, l)]
assert len(status) == 2, f"{len(status)} status lines, want 2"
assert len(lines) == 3 and re.match(FINAL, lines[2]), f"the screen keeps {lines}"
assert len([f for f in frames if re.match(FRAME, f)]) >= 2, "no frames around the status lines"
'
    expect_same_sectors "destination" "$dst" 0 "$src_img" 0 524288
}

failing_destination() {
    reset_dst
    local full d3
    full=$(tmpfs_full_device 8M 256M)
    truncate -s 256M "$SCRATCH/d3.img"
    d3=$(attach "$SCRATCH/d3.img")
    check "destination 2 of 3 fails: FAILED in the frames while the copy goes on, and in the final line"
    on_pty -- 2 "${SLOW[@]}" "$src" "$dst" "$full" "$d3"
    expect_screen '
failed = [f for f in frames[:-1] if f.endswith("dest 1:ok 2:FAILED 3:ok") and "ETA" in f]
assert failed, "no frame marks destination 2 FAILED before the end"
assert re.match(r"^kcopy: 256\.0 MiB of 256\.0 MiB \(100\.0%\), .*, dest 1:ok 2:FAILED 3:ok$", lines[0]), lines[0]
errors = [l for l in lines if "write error" in l]
assert errors and all(re.match(r"^kcopy: destination 2 \x27[^\x27]+\x27: write error at sectors \d+-\d+ \(\d+ sectors?\): ", l) for l in errors), f"mixed error lines: {errors}"
assert len(lines) == 1 + len(errors), f"other lines on the screen: {lines}"
'
    expect_same_sectors "destination 1" "$dst" 0 "$src_img" 0 524288
    expect_same_sectors "destination 3" "$d3" 0 "$src_img" 0 524288
}

quiet_terminal() {
    check "-q on a terminal: no progress; --no-progress: none either"
    on_pty -- 0 -q "$src:0:65536" "$dst"
    [[ ! -s $PTY_OUT ]] || fail "-q wrote to the terminal: $(cat -A "$PTY_OUT")"
    on_pty -- 0 --no-progress "$src:0:65536" "$dst"
    [[ ! -s $PTY_OUT ]] || fail "--no-progress wrote to the terminal: $(cat -A "$PTY_OUT")"
}

progress_into_a_pipe() {
    check "--progress with stderr a pipe, a short copy: no carriage return, only the final line"
    printf '  $ %s 2>&1 | cat\n' "$(show_cmd "$KCOPY" --progress "$src:0:65536" "$dst")"
    "$KCOPY" --progress "$src:0:65536" "$dst" 2>&1 </dev/null | cat >"$STDERR_FILE" || fail "kcopy failed"
    sed 's/^/    stderr: /' "$STDERR_FILE"
    ! grep -q $'\r' "$STDERR_FILE" || fail "a carriage return in a pipe: $(cat -A "$STDERR_FILE")"
    (($(wc -l <"$STDERR_FILE") == 1)) || fail "$(wc -l <"$STDERR_FILE") lines, want the final line only"
    stderr_line_with "^kcopy: 32\.0 MiB of 32\.0 MiB \(100\.0%\), [0-9]+\.[0-9] MiB/s, [0-9]+:[0-9][0-9] elapsed, dest 1:ok$" ||
        fail "not the final progress line"
    check "no --progress with stderr a file: nothing"
    expect_status 0 "$KCOPY" "$src:0:65536" "$dst"
    [[ ! -s $STDERR_FILE ]] || fail "progress without --progress into a file"
}

run_case "frames on a terminal" frames_on_a_terminal
run_case "a narrower terminal" narrower_terminal
run_case "SIGUSR1 on a terminal" sigusr1_on_a_terminal
run_case "a failing destination" failing_destination
run_case "-q and --no-progress on a terminal" quiet_terminal
run_case "--progress into a pipe" progress_into_a_pipe

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
