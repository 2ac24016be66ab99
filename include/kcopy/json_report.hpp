#pragma once
// --json: the machine-readable report of a run (the schema is in kcopy(1)).

#include <cstddef>
#include <string>

#include "kcopy/run_record.hpp"

namespace kcopy {

/// A destination's status in the report (`d` 0-based):
/// - "write_error": it had write errors (its exit-status bit is set);
/// - "flush_error": its writes worked but the final fdatasync failed (bit set);
/// - "verify_error": reserved for --verify (bit set), not given by this version;
/// - "not_written": it does not hold the whole copy, through no error of its
///   own: nothing ran (a refusal, a dry run), or the copy stopped (a signal, or
///   a source read error without --ignore-errors) before every sector reached
///   it (bit clear; sectors_written says how many did);
/// - "ok": every sector was written (and flushed, unless --no-flush) (bit clear).
const char* destination_status(const RunRecord& run, std::size_t d);

/// The report as one JSON object, indented, ending with a newline. Never
/// throws on odd paths: bytes that are not UTF-8 become U+FFFD.
std::string json_report(const RunRecord& run);

/// "EIO", "ENOSPC", ... (strerrorname_np), or the number when it has no name.
std::string errno_name(int error);

/// "SIGINT", "SIGTERM", "SIGHUP", ... (sigabbrev_np), or the number.
std::string signal_name(int sig);

}  // namespace kcopy
