// kcopy: copy a sector range to up to six destinations; see kcopy(1).
#include <spdlog/spdlog.h>

#include <exception>

#include "kcopy/cli.hpp"
#include "kcopy/copy_command.hpp"
#include "kcopy/error.hpp"
#include "kcopy/json_report.hpp"
#include "kcopy/nbd_program.hpp"
#include "kcopy/process_setup.hpp"
#include "kcopy/run_record.hpp"
#include "kcopy/standard_output.hpp"
#include "kcopy/stderr_sink.hpp"
#include "kcopy/stop_signals.hpp"

namespace {

// --json: the report on stdout. One that cannot be written is said on stderr; the exit
// status stays that of the run.
void print_json(const kcopy::RunRecord& record) {
  kcopy::write_standard_output(kcopy::json_report(record), "the report");
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
    // --help, --version: their text is all they do, so a lost one fails (1, as coreutils).
    if (!cli.output.empty() && !kcopy::write_standard_output(cli.output, cli.output_name)) return 1;
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
