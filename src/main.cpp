// kcopy: copy a sector range to up to six destinations; see kcopy(1).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>

#include "kcopy/cli.hpp"
#include "kcopy/copy_command.hpp"
#include "kcopy/error.hpp"
#include "kcopy/json_report.hpp"
#include "kcopy/nbd_program.hpp"
#include "kcopy/process_setup.hpp"
#include "kcopy/run_record.hpp"
#include "kcopy/stderr_sink.hpp"
#include "kcopy/stop_signals.hpp"

namespace {

// --json: the report on stdout (a failed write, e.g. a closed pipe, loses it).
void print_json(const kcopy::RunRecord& record) {
  const std::string text = kcopy::json_report(record);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // Until the handlers are in place, a signal waits instead of killing kcopy
  // (a script may send SIGUSR1 right after starting it); kcopy-nbd, executed
  // next for NBD copies, starts with them blocked too.
  kcopy::block_stop_signals();
  kcopy::exec_nbd_program_if_needed(argc, argv);  // NBD copies run in kcopy-nbd
  if (!kcopy::prepare_process()) return 128;
  kcopy::StopSignals signals(/*quiet=*/false);  // handles what came meanwhile
  const kcopy::ParsedCommandLine cli = kcopy::parse_command_line(argc, argv);
  if (!cli.options) {
    if (cli.json) {
      kcopy::RunRecord record;
      record.dry_run = cli.dry_run;
      record.error = cli.error;
      record.exit_status = cli.exit_status;
      print_json(record);
    }
    return cli.exit_status;
  }
  const kcopy::Options& options = *cli.options;
  signals.set_quiet(options.verbosity < 0);
  const auto sink = kcopy::install_stderr_logger(options.verbosity);

  kcopy::RunRecord record;
  try {
    record.exit_status = kcopy::run_copy_command(options, signals, *sink, record);
  } catch (const kcopy::Error& e) {
    spdlog::error("{}", e.what());
    record.error = e.what();
    record.exit_status = 128;
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    record.error = std::string("internal error: ") + e.what();
    record.exit_status = 128;
  }
  if (options.json) print_json(record);
  return record.exit_status;
}
