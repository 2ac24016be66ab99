#include "kcopy/progress_line.hpp"

#include <array>
#include <cmath>
#include <vector>

namespace kcopy {
namespace {

__extension__ typedef unsigned __int128 uint128;

// floor(a * m / b), exact for any 64-bit a and b > 0.
std::uint64_t scaled(std::uint64_t a, std::uint64_t m, std::uint64_t b) {
  return static_cast<std::uint64_t>(static_cast<uint128>(a) * m / b);
}

}  // namespace

std::string format_bytes(std::uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  unsigned unit = 0;
  std::uint64_t scale = 1;
  while (unit + 1 < std::size(units) && bytes / scale >= 1024) {
    scale <<= 10;
    ++unit;
  }
  // Tenths, floored, in integers (a double would round 1023.96 KiB up to "1024.0 KiB").
  const std::uint64_t whole = bytes / scale;
  const std::uint64_t tenths = scaled(bytes % scale, 10, scale);
  return std::to_string(whole) + "." + std::to_string(tenths) + " " + units[unit];
}

std::string format_duration(double seconds) {
  const auto s = static_cast<std::uint64_t>(std::isfinite(seconds) && seconds > 0 ? seconds : 0);
  const auto two = [](std::uint64_t n) {
    std::string digits = std::to_string(n);
    if (n < 10) digits.insert(digits.begin(), '0');
    return digits;
  };
  if (s < 3600) return std::to_string(s / 60) + ":" + two(s % 60);
  return std::to_string(s / 3600) + ":" + two(s / 60 % 60) + ":" + two(s % 60);
}

namespace {

// A part of the line with its variants, longest first; "" leaves it out.
struct Part {
  std::vector<std::string> variants;
  std::size_t chosen = 0;
  const std::string& text() const { return variants[chosen]; }
};

std::string percent(std::uint64_t done, std::uint64_t total) {
  const std::uint64_t tenths = total ? scaled(std::min(done, total), 1000, total) : 0;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "%";
}

std::string rate_text(std::optional<double> rate) {
  if (!rate) return "--.- MiB/s";
  const auto tenths = static_cast<std::uint64_t>(std::max(0.0, *rate) / (1 << 20) * 10);
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " MiB/s";
}

std::string eta_text(const ProgressFrame& f) {
  const std::uint64_t left = f.total_bytes > f.done_bytes ? f.total_bytes - f.done_bytes : 0;
  if (left == 0) return "ETA 0:00";
  if (!f.rate || *f.rate <= 0) return "ETA --:--";
  return "ETA " + format_duration(static_cast<double>(left) / *f.rate);
}

std::string destinations_text(const ProgressFrame& f, bool failed_only) {
  std::string out;
  for (unsigned d = 0; d < f.destinations; ++d) {
    const bool failed = f.failed & (1u << d);
    if (failed_only && !failed) continue;
    out += (out.empty() ? "dest " : " ") + std::to_string(d + 1) + (failed ? ":FAILED" : ":ok");
  }
  return out;
}

std::string join(const std::array<Part, 6>& parts) {
  std::string out = parts[0].text();  // the prefix, "kcopy: " or ""
  bool first = true;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].text().empty()) continue;
    if (!first) out += ", ";
    out += parts[i].text();
    first = false;
  }
  return out;
}

}  // namespace

std::string format_progress_line(const ProgressFrame& f, std::size_t width) {
  enum { prefix, amount, rate, elapsed, eta, dests };
  const std::string pct = percent(f.done_bytes, f.total_bytes);
  std::array<Part, 6> parts{{
      {{"kcopy: ", ""}},
      {{format_bytes(f.done_bytes) + " of " + format_bytes(f.total_bytes) + " (" + pct + ")",
        format_bytes(f.done_bytes) + " (" + pct + ")", pct}},
      {{rate_text(f.rate), ""}},
      {{format_duration(f.elapsed_seconds) + " elapsed", ""}},
      {{f.final ? "" : eta_text(f), ""}},
      {{destinations_text(f, false), destinations_text(f, true), ""}},
  }};
  // Shorten or leave out parts, least useful first, until the line fits.
  static constexpr int steps[] = {dests, elapsed, prefix, amount, amount, eta, rate, dests};
  std::string line = join(parts);
  for (const int p : steps) {
    if (width == 0 || line.size() <= width) break;
    if (parts[p].chosen + 1 < parts[p].variants.size()) ++parts[p].chosen;
    line = join(parts);
  }
  if (width > 0 && line.size() > width) line.resize(width);
  return line;
}

void RateWindow::add(double seconds, std::uint64_t bytes) {
  samples_.emplace_back(seconds, bytes);
  // Keep one sample at least window_ old (the start of the window), drop older ones.
  while (samples_.size() > 2 && samples_[1].first <= seconds - window_) samples_.pop_front();
}

std::optional<double> RateWindow::rate() const {
  if (samples_.size() < 2) return std::nullopt;
  const auto& [t0, b0] = samples_.front();
  const auto& [t1, b1] = samples_.back();
  if (t1 <= t0) return std::nullopt;
  return static_cast<double>(b1 - b0) / (t1 - t0);
}

}  // namespace kcopy
