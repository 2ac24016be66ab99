// The progress line a user watches: what it says, and how it fits the terminal.
#include <catch2/catch.hpp>
#include <string>

#include "kcopy/progress_line.hpp"
#include "kcopy/status_line.hpp"

using kcopy::format_bytes;
using kcopy::format_duration;
using kcopy::format_progress_line;
using kcopy::ProgressFrame;
using kcopy::RateWindow;

namespace {

constexpr std::uint64_t MiB = 1 << 20;
constexpr std::uint64_t GiB = 1ull << 30;

ProgressFrame three_quarters() {
  ProgressFrame f;
  f.done_bytes = 1536 * MiB;
  f.total_bytes = 2 * GiB;
  f.elapsed_seconds = 5.4;
  f.rate = 100.0 * MiB;
  f.destinations = 3;
  f.failed = 0b010;
  return f;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("with room, the line says bytes and percent, rate, elapsed time, ETA and every destination") {
  REQUIRE(format_progress_line(three_quarters(), 0) ==
          "kcopy: 1.5 GiB of 2.0 GiB (75.0%), 100.0 MiB/s, 0:05 elapsed, ETA 0:05, dest 1:ok 2:FAILED 3:ok");
  REQUIRE(format_progress_line(three_quarters(), 200) == format_progress_line(three_quarters(), 0));
}

TEST_CASE("the line never gets wider than the terminal allows, and keeps the percentage while it can") {
  for (std::size_t width = 1; width <= 120; ++width) {
    const std::string line = format_progress_line(three_quarters(), width);
    INFO("width " << width << ": '" << line << "'");
    REQUIRE(line.size() <= width);
    REQUIRE(!line.empty());
    if (width >= 5) REQUIRE(contains(line, "75.0%"));
  }
}

TEST_CASE("a narrow terminal loses the least useful parts first; a failed destination stays to the end") {
  const ProgressFrame f = three_quarters();
  // Just too narrow for everything: the destination list shrinks to the failed one.
  const std::string full = format_progress_line(f, 0);
  const std::string a = format_progress_line(f, full.size() - 1);
  REQUIRE(a == "kcopy: 1.5 GiB of 2.0 GiB (75.0%), 100.0 MiB/s, 0:05 elapsed, ETA 0:05, dest 2:FAILED");
  const std::string b = format_progress_line(f, a.size() - 1);
  REQUIRE(b == "kcopy: 1.5 GiB of 2.0 GiB (75.0%), 100.0 MiB/s, ETA 0:05, dest 2:FAILED");
  const std::string c = format_progress_line(f, b.size() - 1);
  REQUIRE(c == "1.5 GiB of 2.0 GiB (75.0%), 100.0 MiB/s, ETA 0:05, dest 2:FAILED");
  const std::string d = format_progress_line(f, c.size() - 1);
  REQUIRE(d == "1.5 GiB (75.0%), 100.0 MiB/s, ETA 0:05, dest 2:FAILED");
  const std::string e = format_progress_line(f, d.size() - 1);
  REQUIRE(e == "75.0%, 100.0 MiB/s, ETA 0:05, dest 2:FAILED");
  REQUIRE(format_progress_line(f, e.size() - 1) == "75.0%, 100.0 MiB/s, dest 2:FAILED");
  REQUIRE(format_progress_line(f, 28) == "75.0%, dest 2:FAILED");
  REQUIRE(format_progress_line(f, 12) == "75.0%");
  REQUIRE(format_progress_line(f, 3) == "75.");
}

TEST_CASE("without failures a narrow line leaves the destinations out") {
  ProgressFrame f = three_quarters();
  f.failed = 0;
  REQUIRE(format_progress_line(f, 70) == "kcopy: 1.5 GiB of 2.0 GiB (75.0%), 100.0 MiB/s, 0:05 elapsed, ETA 0:05");
}

TEST_CASE("the ETA is what is left at the current rate, unknown while nothing moves") {
  ProgressFrame f;
  f.total_bytes = 10 * GiB;
  f.done_bytes = 0;
  f.rate = std::nullopt;
  REQUIRE(contains(format_progress_line(f, 0), "--.- MiB/s, 0:00 elapsed, ETA --:--"));
  f.rate = 0.0;
  REQUIRE(contains(format_progress_line(f, 0), "ETA --:--"));
  f.rate = 1.0 * MiB;  // 10240 s
  REQUIRE(contains(format_progress_line(f, 0), "ETA 2:50:40"));
  f.done_bytes = f.total_bytes;
  REQUIRE(contains(format_progress_line(f, 0), "ETA 0:00"));
}

TEST_CASE("the percentage is floored: 100.0% only when everything is done") {
  ProgressFrame f;
  f.total_bytes = 1000 * 512;
  f.done_bytes = 999 * 512 + 511;
  REQUIRE(contains(format_progress_line(f, 0), "(99.9%)"));
  f.done_bytes = f.total_bytes;
  REQUIRE(contains(format_progress_line(f, 0), "(100.0%)"));
  f.total_bytes = ~std::uint64_t{0} / 512 * 512;  // no overflow on the largest devices
  f.done_bytes = f.total_bytes / 2 - 1;
  REQUIRE(contains(format_progress_line(f, 0), "(49.9%)"));
  f.done_bytes = f.total_bytes / 2;
  REQUIRE(contains(format_progress_line(f, 0), "(50.0%)"));
}

TEST_CASE("the final line has the average rate and no ETA") {
  ProgressFrame f = three_quarters();
  f.final = true;
  f.done_bytes = f.total_bytes;
  f.elapsed_seconds = 20.48;
  f.rate = static_cast<double>(f.total_bytes) / f.elapsed_seconds;
  REQUIRE(format_progress_line(f, 0) ==
          "kcopy: 2.0 GiB of 2.0 GiB (100.0%), 100.0 MiB/s, 0:20 elapsed, dest 1:ok 2:FAILED 3:ok");
}

TEST_CASE("byte counts are floored in binary units with one decimal") {
  REQUIRE(format_bytes(0) == "0 B");
  REQUIRE(format_bytes(1023) == "1023 B");
  REQUIRE(format_bytes(1024) == "1.0 KiB");
  REQUIRE(format_bytes(1536) == "1.5 KiB");
  REQUIRE(format_bytes(MiB - 1) == "1023.9 KiB");
  REQUIRE(format_bytes(372 * MiB + 943719) == "372.9 MiB");
  REQUIRE(format_bytes(2048 * GiB) == "2.0 TiB");
  REQUIRE(format_bytes(~std::uint64_t{0}) == "15.9 EiB");
}

TEST_CASE("durations read as a clock") {
  REQUIRE(format_duration(0) == "0:00");
  REQUIRE(format_duration(7.9) == "0:07");
  REQUIRE(format_duration(754) == "12:34");
  REQUIRE(format_duration(3723) == "1:02:03");
  REQUIRE(format_duration(-1) == "0:00");
}

TEST_CASE("the rate is taken over the last few seconds, not since the start") {
  RateWindow w(3.0);
  REQUIRE(!w.rate());
  w.add(0, 0);
  REQUIRE(!w.rate());
  // 10 s at 100 MiB/s, then 1 MiB/s: after 4 s more the window sees only the slow part.
  for (int i = 1; i <= 50; ++i) w.add(i * 0.2, i * 20 * MiB);
  REQUIRE(*w.rate() == Approx(100.0 * MiB));
  for (int i = 1; i <= 20; ++i) w.add(10 + i * 0.2, 1000 * MiB + i * MiB / 5);
  REQUIRE(*w.rate() == Approx(1.0 * MiB));
}

TEST_CASE("the SIGUSR1 status line keeps the format scripts read") {
  const auto line = kcopy::status_line({228352, 1048576, 600});
  REQUIRE(line.view() == "kcopy: 228352 of 1048576 sectors copied (21%), 0.6 s, 185.8 MiB/s\n");
  REQUIRE(kcopy::status_line({0, 0, 0}).view() == "kcopy: 0 of 0 sectors copied (0%), 0.0 s, 0.0 MiB/s\n");
}
