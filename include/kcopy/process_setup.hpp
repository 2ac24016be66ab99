#pragma once
// What the process must be like before kcopy opens any device.

namespace kcopy {

/// Call early in main() (after block_stop_signals), before anything is opened:
/// - file descriptors 0, 1 and 2 are made valid (on /dev/null where closed), so
///   that no device or file kcopy opens can become stdin, stdout or stderr and
///   receive its messages (`kcopy ... 2>&-`);
/// - SIGPIPE is ignored, so that a dead stderr pipe (`kcopy ... 2>&1 | tee log`,
///   then Ctrl-C) only loses messages (write fails with EPIPE) instead of
///   killing kcopy while it owns data in flight;
/// - SIGXFSZ is ignored, so that a file-size limit (`ulimit -f`) makes the write
///   or ftruncate fail with EFBIG, reported as an error, not a death by signal.
/// Returns false if a standard descriptor could not be opened (then kcopy must
/// not go on: exit 128 without a message, there is nowhere to write it).
bool prepare_process();

}  // namespace kcopy
