// The --json report a script parses: every outcome, and statuses that agree
// with the exit status bit for bit.
#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <nlohmann/json.hpp>

#include "kcopy/json_report.hpp"
#include "kcopy/report.hpp"

using kcopy::JobResult;
using kcopy::RunRecord;
using nlohmann::json;

namespace {

// A run of SOURCE to `dests` destinations of 1000 sectors each, as a copy leaves it.
RunRecord planned_run(unsigned dests) {
  RunRecord run;
  for (unsigned i = 0; i <= dests; ++i) {
    kcopy::RegionRecord r;
    r.role = i == 0 ? "source" : "destination " + std::to_string(i);
    r.argument = "/dev/loop" + std::to_string(i);
    r.path = r.argument;
    r.sector = 0;
    r.count = 1000;
    r.opened = true;
    r.is_block = true;
    r.size_bytes = 1000 * 512;
    r.logical_block_size = 512;
    run.regions.push_back(r);
  }
  run.engine = kcopy::EngineRecord{"io_uring", "the fastest here", 524288, 1, 512, 4, false, 0};
  return run;
}

JobResult complete(unsigned dests) {
  JobResult r;
  r.sectors_total = 1000;
  for (unsigned d = 0; d < dests; ++d) r.sectors_written[d] = 1000;
  return r;
}

json finished(RunRecord run, const JobResult& result, int signal = 0) {
  run.result = result;
  run.stop_signal = signal;
  run.seconds = 0.5;
  run.exit_status = kcopy::exit_status(result, signal);
  return json::parse(kcopy::json_report(run));
}

std::vector<std::string> statuses(const json& j) {
  std::vector<std::string> out;
  for (const json& d : j["destinations"]) out.push_back(d["status"]);
  return out;
}

// The contract: below 128, bit d set <=> destination d+1 failed, bit 6 <=> source errors.
void require_bits_agree(const json& j) {
  const int status = j["exit_status"];
  REQUIRE(status < 128);
  for (std::size_t d = 0; d < j["destinations"].size(); ++d) {
    const std::string s = j["destinations"][d]["status"];
    const bool failed = s == "write_error" || s == "flush_error" || s == "verify_error";
    REQUIRE(failed == bool(status & (1 << d)));
  }
  REQUIRE(!j["source"]["errors"].empty() == bool(status & 64));
  REQUIRE(j["write_err"] == (status & 63));
  REQUIRE(j["read_err"] == bool(status & 64));
}

}  // namespace

TEST_CASE("a complete copy: every destination ok, the bytes, time and rate of the copy") {
  const json j = finished(planned_run(2), complete(2));
  REQUIRE(j["version"] == 1);
  REQUIRE(j["exit_status"] == 0);
  REQUIRE(j["interrupted_by"].is_null());
  REQUIRE(j["error"].is_null());
  REQUIRE(j["dry_run"] == false);
  REQUIRE(statuses(j) == std::vector<std::string>{"ok", "ok"});
  REQUIRE(j["destinations"][1]["sectors_written"] == 1000);
  REQUIRE(j["source"]["path"] == "/dev/loop0");
  REQUIRE(j["source"]["logical_block_size"] == 512);
  REQUIRE(j["source"]["errors"] == json::array());
  REQUIRE(j["bytes"] == 512000);
  REQUIRE(j["seconds"] == 0.5);
  REQUIRE(j["bytes_per_second"] == 1024000);
  REQUIRE(j["plan"]["io_engine"] == "io_uring");
  require_bits_agree(j);
}

TEST_CASE("destination 2 of 3 with a write error: its status and errors, and exactly bit 1") {
  JobResult r = complete(3);
  r.write_errors[1] = kcopy::ErrorRanges(4);
  r.write_errors[1].add(16384, 1024, ENOSPC);
  r.write_err = 0b010;
  r.sectors_written[1] = 16384;
  const json j = finished(planned_run(3), r);
  REQUIRE(j["exit_status"] == 2);
  REQUIRE(statuses(j) == std::vector<std::string>{"ok", "write_error", "ok"});
  const json& e = j["destinations"][1]["errors"];
  REQUIRE(e.size() == 1);
  REQUIRE(e[0]["sector"] == 16384);
  REQUIRE(e[0]["count"] == 1024);
  REQUIRE(e[0]["error"] == "ENOSPC");
  REQUIRE(e[0]["message"] == "No space left on device");
  require_bits_agree(j);
}

TEST_CASE("a failed flush is a flush_error, with its errno") {
  JobResult r = complete(2);
  r.flush_error[0] = EIO;
  r.write_err = 0b001;
  const json j = finished(planned_run(2), r);
  REQUIRE(statuses(j) == std::vector<std::string>{"flush_error", "ok"});
  REQUIRE(j["destinations"][0]["flush_error"] == "EIO");
  require_bits_agree(j);
}

TEST_CASE("a source read error that stopped the copy: bit 6, and no destination is called ok") {
  JobResult r = complete(2);
  r.read_err = true;
  r.read_errors = kcopy::ErrorRanges(4);
  r.read_errors.add(512, 8, EIO);
  r.sectors_written[0] = r.sectors_written[1] = 512;
  const json j = finished(planned_run(2), r);
  REQUIRE(j["exit_status"] == 64);
  REQUIRE(statuses(j) == std::vector<std::string>{"not_written", "not_written"});
  REQUIRE(j["source"]["errors"][0]["error"] == "EIO");
  REQUIRE(j["bytes"] == 512 * 512);
  require_bits_agree(j);
}

TEST_CASE("with --ignore-errors a read error leaves complete destinations ok (zeroes where unreadable)") {
  JobResult r = complete(1);
  r.read_err = true;
  r.read_errors = kcopy::ErrorRanges(4);
  r.read_errors.add(512, 8, EIO);
  const json j = finished(planned_run(1), r);
  REQUIRE(j["exit_status"] == 64);
  REQUIRE(statuses(j) == std::vector<std::string>{"ok"});
  require_bits_agree(j);
}

TEST_CASE("ranges past the list are counted in errors_not_listed") {
  JobResult r = complete(1);
  r.read_err = true;
  r.read_errors = kcopy::ErrorRanges(1);
  r.read_errors.add(10, 1, EIO);
  r.read_errors.add(20, 2, EIO);
  const json j = finished(planned_run(1), r);
  REQUIRE(j["source"]["errors"].size() == 1);
  REQUIRE(j["source"]["errors_not_listed"] == json{{"from_sector", 20}, {"sectors", 2}});
}

TEST_CASE("an interrupted copy names the signal; what was not completed is not_written") {
  JobResult r = complete(2);
  r.stopped = true;
  r.sectors_written[0] = 300;
  r.sectors_written[1] = 1000;
  const json j = finished(planned_run(2), r, SIGINT);
  REQUIRE(j["exit_status"] == 130);
  REQUIRE(j["interrupted_by"] == "SIGINT");
  REQUIRE(statuses(j) == std::vector<std::string>{"not_written", "ok"});
  REQUIRE(j["bytes"] == 1000 * 512);
  REQUIRE(finished(planned_run(1), r, SIGHUP)["interrupted_by"] == "SIGHUP");
  REQUIRE(finished(planned_run(1), r, SIGTERM)["interrupted_by"] == "SIGTERM");
}

TEST_CASE("a signal after the last sub-job started does not make an interrupted copy") {
  const json j = finished(planned_run(1), complete(1), SIGINT);  // not stopped
  REQUIRE(j["exit_status"] == 0);
  REQUIRE(j["interrupted_by"].is_null());
}

TEST_CASE("a refusal names the error and fills in what setup knew") {
  RunRecord run;
  kcopy::RegionRecord src;
  src.role = "source";
  src.argument = "disk.img:12x";
  run.regions.push_back(src);
  kcopy::RegionRecord dst;
  dst.role = "destination 1";
  dst.argument = "copy.img";
  run.regions.push_back(dst);
  run.error = "source 'disk.img:12x': SECTOR '12x' is not a number";
  run.exit_status = 128;
  const json j = json::parse(kcopy::json_report(run));
  REQUIRE(j["exit_status"] == 128);
  REQUIRE(j["error"] == run.error.value());
  REQUIRE(j["source"]["argument"] == "disk.img:12x");
  REQUIRE(j["source"]["path"].is_null());
  REQUIRE(j["source"]["logical_block_size"].is_null());
  REQUIRE(statuses(j) == std::vector<std::string>{"not_written"});
  REQUIRE(j["bytes"] == 0);
  REQUIRE(j["plan"].is_null());
}

TEST_CASE("a command line that did not parse still gives the fixed fields") {
  RunRecord run;
  run.error = "--pages: '0' is not a whole number";
  run.exit_status = 128;
  const json j = json::parse(kcopy::json_report(run));
  for (const char* field :
       {"version", "exit_status", "interrupted_by", "source", "destinations", "bytes", "seconds", "bytes_per_second"})
    REQUIRE(j.contains(field));
  REQUIRE(j["source"].is_null());
  REQUIRE(j["destinations"] == json::array());
}

TEST_CASE("a path that is not UTF-8 still gives valid JSON") {
  RunRecord run = planned_run(1);
  run.regions[1].argument = "img\xff\xfe.raw";
  run.regions[1].path = run.regions[1].argument;
  std::string text;
  REQUIRE_NOTHROW(text = kcopy::json_report(run));
  REQUIRE(json::parse(text)["destinations"][0]["path"] == "img\xEF\xBF\xBD\xEF\xBF\xBD.raw");
}

TEST_CASE("errno and signal names") {
  REQUIRE(kcopy::errno_name(EIO) == "EIO");
  REQUIRE(kcopy::errno_name(ENOSPC) == "ENOSPC");
  REQUIRE(kcopy::errno_name(100000) == "100000");
  REQUIRE(kcopy::signal_name(SIGINT) == "SIGINT");
  REQUIRE(kcopy::signal_name(SIGHUP) == "SIGHUP");
}
