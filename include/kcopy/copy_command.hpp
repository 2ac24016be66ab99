#pragma once
// The whole `kcopy SOURCE DEST...` run: open, plan, copy, report.

#include "kcopy/cli.hpp"
#include "kcopy/run_record.hpp"
#include "kcopy/stderr_sink.hpp"
#include "kcopy/stop_signals.hpp"

namespace kcopy {

/// Opens the devices, checks the plan, runs the copy on a KcopydClient, waits for
/// it (SIGINT/SIGTERM stop it: the I/O in flight drains first), reports on stderr
/// and returns the exit status of the contract. Throws kcopy::Error for setup
/// errors, after removing any destination file it created; nothing was written then.
///
/// With --progress, a ProgressReporter shows the copy through `sink`. With
/// --dry-run, stops before anything is written (devices opened read-only,
/// nothing created) and prints the plan on stdout (unless --json), returning 0.
/// Fills in `record` as it goes, also when it throws, for the JSON report.
/// `signals` (installed by main) stop the copy and print status lines.
int run_copy_command(const Options& options, StopSignals& signals, StderrSink& sink, RunRecord& record);

}  // namespace kcopy
