#pragma once
// The command line (CLI11): options and regions, reconciled into one Options.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kcopy/io_engine.hpp"
#include "kcopy/kcopyd.hpp"

namespace kcopy {

/// Everything the command line says, checked for form (not against devices).
struct Options {
  std::vector<std::string> regions;          ///< SOURCE then DESTs, as typed
  std::uint64_t pages = default_pages;       ///< --pages: 4 KiB pages in the page pool
  bool pages_given = false;                  ///< --pages was on the command line (else NBD copies take more)
  std::uint64_t io_size = default_io_size;   ///< --io-size, in bytes (a multiple of 512)
  bool buffered = false;                     ///< --buffered: no O_DIRECT
  bool no_flush = false;                     ///< --no-flush
  bool ignore_errors = false;                ///< --ignore-errors (DM_KCOPYD_IGNORE_ERROR)
  bool force = false;                        ///< -f/--force: no O_EXCL on block devices
  IoEngine io_engine = IoEngine::automatic;  ///< --io-engine
  int verbosity = 0;                         ///< -v count minus -q count
  /// --progress / --no-progress (the last one given); by default on when
  /// stderr is a terminal and -q is not given.
  bool progress = false;
  bool json = false;             ///< --json: the report on stdout
  bool dry_run = false;          ///< -n, --dry-run: check and print the plan, write nothing
  bool zero = false;             ///< --zero: no SOURCE, every region is a DEST to zero
  bool write_seq = false;        ///< --write-seq (DM_KCOPYD_WRITE_SEQ)
  bool verify = false;           ///< --verify: read every destination back and compare
  bool sparse = false;           ///< --sparse: zero runs become punches
  unsigned throttle = 100;       ///< --throttle PERCENT (1-100; 100 = off)
  std::uint64_t max_rate = 0;    ///< --max-rate, bytes per second (0 = off)
  std::string mapfile;           ///< --mapfile FILE ("" = none)
  double mapfile_interval = 30;  ///< --mapfile-interval, seconds (> 0)
  double nbd_timeout = 30;       ///< --nbd-timeout, seconds (> 0): an NBD request making no progress that long fails
};

/// Parses argv. Returns the options, or an exit status when the run ends here:
/// 0 with the text of --help or --version to print (`output`), 128 after printing one line
/// "kcopy: <what is wrong>" on stderr. Never throws.
struct ParsedCommandLine {
  std::optional<Options> options;
  int exit_status = 0;
  std::string error;        ///< with exit status 128: what is wrong (the line, without "kcopy: ")
  bool json = false;        ///< with exit status 128: --json was given (parsed, or among the arguments before "--")
  bool dry_run = false;     ///< with exit status 128: -n/--dry-run was given (the same way)
  std::string output;       ///< --help, --version: the text for standard output (write_standard_output)
  std::string output_name;  ///< what it is, for a message: "the help", "the version"
};
ParsedCommandLine parse_command_line(int argc, char** argv);

}  // namespace kcopy
