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
  std::uint64_t io_size = default_io_size;   ///< --io-size, in bytes (a multiple of 512)
  bool buffered = false;                     ///< --buffered: no O_DIRECT
  bool no_flush = false;                     ///< --no-flush
  bool ignore_errors = false;                ///< --ignore-errors (DM_KCOPYD_IGNORE_ERROR)
  bool force = false;                        ///< -f/--force: no O_EXCL on block devices
  IoEngine io_engine = IoEngine::automatic;  ///< --io-engine
  int verbosity = 0;                         ///< -v count minus -q count
};

/// Parses argv. Returns the options, or an exit status when the run ends here:
/// 0 after printing --help or --version, 128 after printing one line
/// "kcopy: <what is wrong>" on stderr. Never throws.
struct ParsedCommandLine {
  std::optional<Options> options;
  int exit_status = 0;
};
ParsedCommandLine parse_command_line(int argc, char** argv);

}  // namespace kcopy
