// kcopy: copy a sector range to up to six destinations; see kcopy(1).
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <iostream>

#include "kcopy/cli.hpp"
#include "kcopy/copy_command.hpp"
#include "kcopy/error.hpp"
#include "kcopy/process_setup.hpp"

int main(int argc, char** argv) {
  if (!kcopy::prepare_process()) return 128;
  const kcopy::ParsedCommandLine cli = kcopy::parse_command_line(argc, argv);
  if (!cli.options) return cli.exit_status;

  auto log = spdlog::stderr_logger_st("kcopy");
  log->set_pattern("kcopy: %v");
  const int v = cli.options->verbosity;
  log->set_level(v < 0    ? spdlog::level::err
                 : v == 0 ? spdlog::level::info
                 : v == 1 ? spdlog::level::debug
                          : spdlog::level::trace);
  spdlog::set_default_logger(log);

  try {
    return kcopy::run_copy_command(*cli.options);
  } catch (const kcopy::Error& e) {
    spdlog::error("{}", e.what());
    return 128;
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return 128;
  }
}
