// --throttle and --max-rate pacing (kcopy::Pacer) on a simulated clock: the
// engine's loop is played out event by event, nothing sleeps.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <deque>

#include "kcopy/pacer.hpp"

using namespace kcopy;
using namespace std::chrono_literals;
using Clock = Pacer::Clock;
using Duration = Pacer::Duration;

namespace {

constexpr std::uint64_t MiB = 1 << 20;
constexpr std::uint64_t KiB = 1 << 10;

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

struct Workload {
  std::uint64_t total_bytes = UINT64_MAX;  ///< stop once this much was started and is done
  std::uint64_t sub_job = 512 * KiB;       ///< bytes of one sub-job
  Duration io_time = 5ms;                  ///< how long a started sub-job keeps the devices busy
  unsigned depth = 4;                      ///< sub-jobs in flight at most (the page pool)
  Duration horizon = 1s;                   ///< stop starting sub-jobs after this long
};

struct Outcome {
  Duration elapsed{0};        ///< from the start to the end of the last sub-job
  Duration busy{0};           ///< time with at least one sub-job in flight
  Duration longest_sleep{0};  ///< the longest sleep the pacer asked for
  std::uint64_t started = 0;  ///< bytes started
  unsigned sleeps = 0;
  bool refused_once = false;  ///< may_start said no at least once
};

// The engine's loop as kcopyd runs it: start sub-jobs while the pacer allows
// and the pool has room; with something in flight, wait for the next
// completion; with nothing in flight, sleep as long as the pacer says.
Outcome simulate(Pacer& pacer, Clock::time_point t0, const Workload& w) {
  Outcome out;
  Clock::time_point now = t0, busy_since = t0;
  std::deque<Clock::time_point> in_flight;  // completion times, in order (one io_time each)
  auto more = [&] { return out.started < w.total_bytes && now - t0 < w.horizon; };
  for (;;) {
    while (in_flight.size() < w.depth && more()) {
      if (!pacer.may_start(now)) {
        out.refused_once = true;
        break;
      }
      if (in_flight.empty()) {
        pacer.io_busy(now);
        busy_since = now;
      }
      pacer.started_reads(w.sub_job, now);
      out.started += w.sub_job;
      in_flight.push_back(now + w.io_time);
    }
    if (in_flight.empty()) {
      if (!more()) break;
      const Duration d = pacer.sleep_for(now);
      REQUIRE(d > 0ns);  // the next sub-job may not start: the pacer must say how long to wait
      out.longest_sleep = std::max(out.longest_sleep, d);
      ++out.sleeps;
      now += d;
      continue;
    }
    now = in_flight.front();  // reap: the next completion
    in_flight.pop_front();
    if (in_flight.empty()) {
      pacer.io_idle(now);
      out.busy += now - busy_since;
    }
  }
  out.elapsed = now - t0;
  return out;
}

}  // namespace

TEST_CASE("without --throttle or --max-rate the copy is never delayed") {
  const Clock::time_point t0{};
  Pacer pacer(100, 0, t0);
  REQUIRE_FALSE(pacer.limited());
  Workload w;
  w.total_bytes = 64 * MiB;
  w.horizon = 1h;
  const Outcome o = simulate(pacer, t0, w);
  REQUIRE(o.started == 64 * MiB);
  REQUIRE_FALSE(o.refused_once);
  REQUIRE(o.sleeps == 0);
  // 128 sub-jobs, 4 at a time, 5 ms each: back to back.
  REQUIRE(o.elapsed == 32 * 5ms);
  REQUIRE(pacer.sleep_for(t0 + 1s) == 0ns);
}

TEST_CASE("--throttle 30 keeps devices that would always be busy busy 30% of a second") {
  const Clock::time_point t0{};
  Pacer pacer(30, 0, t0);
  REQUIRE(pacer.limited());
  const Outcome o = simulate(pacer, t0, Workload{});
  const double share = seconds(o.busy) / seconds(o.elapsed);
  CAPTURE(share, seconds(o.elapsed), o.sleeps);
  REQUIRE(o.elapsed >= 1s);
  REQUIRE(share == Approx(0.30).margin(0.02));
  REQUIRE(o.longest_sleep <= Pacer::max_sleep);
}

TEST_CASE("--throttle holds over several seconds, for short and long requests alike") {
  const unsigned percent = GENERATE(10u, 50u, 90u);
  const Duration io_time = GENERATE(Duration{1ms}, Duration{40ms}, Duration{250ms});
  const Clock::time_point t0{};
  Pacer pacer(percent, 0, t0);
  Workload w;
  w.io_time = io_time;
  w.horizon = 10s;
  const Outcome o = simulate(pacer, t0, w);
  const double share = seconds(o.busy) / seconds(o.elapsed);
  CAPTURE(percent, seconds(io_time), share, o.sleeps);
  // The last request may overshoot by its own length: 250 ms in 10 s is 2.5%.
  REQUIRE(share == Approx(percent / 100.0).margin(0.03));
  REQUIRE(o.longest_sleep <= Pacer::max_sleep);
}

TEST_CASE("--throttle: a long idle time before the copy buys a short burst only") {
  const Clock::time_point t0{};
  Pacer pacer(30, 0, t0);
  // Ten idle seconds (setup, a prompt), then sub-jobs that keep the devices busy.
  const Clock::time_point start = t0 + 10s;
  REQUIRE(pacer.may_start(start));
  pacer.io_busy(start);
  Clock::time_point now = start;
  while (pacer.may_start(now)) now += 1ms;
  // The decaying window (about a second) caps the credit near 30% of it.
  CAPTURE(seconds(now - start));
  REQUIRE(now - start <= 350ms);
  REQUIRE(now - start >= 100ms);
}

TEST_CASE("--max-rate 20 MiB/s copies 64 MiB in 3.2 s") {
  const Clock::time_point t0{};
  Pacer pacer(100, 20 * MiB, t0);
  REQUIRE(pacer.limited());
  Workload w;
  w.total_bytes = 64 * MiB;
  w.io_time = 2ms;
  w.horizon = 1h;
  const Outcome o = simulate(pacer, t0, w);
  CAPTURE(seconds(o.elapsed), o.sleeps);
  REQUIRE(o.started == 64 * MiB);
  REQUIRE(seconds(o.elapsed) == Approx(3.2).epsilon(0.05));
  REQUIRE(o.longest_sleep <= Pacer::max_sleep);
}

TEST_CASE("--max-rate allows a burst of one sub-job, however long the copy was idle") {
  const Clock::time_point t0{};
  Pacer pacer(100, 10 * MiB, t0);
  const Clock::time_point later = t0 + 1h;
  REQUIRE(pacer.may_start(later));
  pacer.started_reads(1 * MiB, later);
  REQUIRE_FALSE(pacer.may_start(later));
  // 1 MiB at 10 MiB/s: paid for after 100 ms, asked for in one sleep of at most 100 ms.
  REQUIRE(pacer.sleep_for(later) == 100ms);
  REQUIRE_FALSE(pacer.may_start(later + 99ms));
  REQUIRE(pacer.may_start(later + 100ms));
}

TEST_CASE("--max-rate asks for sleeps of at most 100 ms even for one large sub-job") {
  const Clock::time_point t0{};
  Pacer pacer(100, 1 * MiB, t0);
  pacer.started_reads(8 * MiB, t0);  // 8 s to pay for
  Clock::time_point now = t0;
  unsigned sleeps = 0;
  while (!pacer.may_start(now)) {
    const Duration d = pacer.sleep_for(now);
    REQUIRE(d > 0ns);
    REQUIRE(d <= Pacer::max_sleep);
    now += d;
    ++sleeps;
  }
  REQUIRE(now - t0 == 8s);
  REQUIRE(sleeps == 80);
}

TEST_CASE("--throttle and --max-rate together: the stricter one sets the pace") {
  const Clock::time_point t0{};
  Workload w;
  w.total_bytes = 32 * MiB;
  w.io_time = 10ms;  // 512 KiB in 10 ms: the devices alone would do 50 MiB/s per sub-job
  w.depth = 1;
  w.horizon = 1h;

  SECTION("the rate is stricter") {
    Pacer pacer(50, 8 * MiB, t0);  // 8 MiB/s keeps the devices busy 16% of the time
    const Outcome o = simulate(pacer, t0, w);
    CAPTURE(seconds(o.elapsed));
    REQUIRE(seconds(o.elapsed) == Approx(4.0).epsilon(0.05));
    REQUIRE(seconds(o.busy) / seconds(o.elapsed) < 0.5);
  }
  SECTION("the throttle is stricter") {
    Pacer pacer(10, 100 * MiB, t0);  // 10% of 50 MiB/s is 5 MiB/s
    const Outcome o = simulate(pacer, t0, w);
    CAPTURE(seconds(o.elapsed));
    REQUIRE(seconds(o.elapsed) == Approx(6.4).epsilon(0.05));
    REQUIRE(seconds(o.busy) / seconds(o.elapsed) == Approx(0.10).margin(0.01));
    REQUIRE(o.longest_sleep <= Pacer::max_sleep);
  }
}
