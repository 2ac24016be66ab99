// libFuzzer target for the region parser: parse_region, parse_sectors and parse_bytes.
//
// Input: byte 0 chooses which paths "exist" (see path_exists); the rest is the argument
// text. kcopy::Error is the expected way to refuse an input; any other exception, a
// sanitizer report or a violated invariant (__builtin_trap) is a finding.
// Build and run with scripts/fuzz.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "kcopy/error.hpp"
#include "kcopy/region.hpp"
#include "kcopy/units.hpp"

namespace {

constexpr std::string_view role = "destination 1";
constexpr std::string_view size_what = "SIZE";
constexpr std::string_view io_size_what = "--io-size";
constexpr std::uint64_t max_sectors = kcopy::bytes_to_sectors(~0ULL);  // last whose bytes fit

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::size_t colons_in(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += c == ':';
  return n;
}

// A deterministic file system chosen by `mode` (the first input byte), so that every
// reading gets explored: bits 0-1 pick the rule, the other bits parameterise it.
//   0: nothing exists (the split-by-looks path, as for a destination image to be created)
//   1: everything exists (the whole argument is always the path)
//   2: a path exists iff its length is a multiple of 2..9
//   3: a path exists iff it has exactly 0..63 ':' in it (picks reading 0, 1 or 2)
bool path_exists(std::uint8_t mode, const std::string& path) {
  const unsigned arg = mode >> 2;
  switch (mode & 3) {
    case 0:
      return false;
    case 1:
      return true;
    case 2:
      return path.size() % (arg % 8 + 2) == 0;
    default:
      return colons_in(path) == arg;
  }
}

// The error-message contract: one line, naming what was being parsed.
void check_message(const kcopy::Error& e, std::string_view what) {
  const std::string_view msg = e.what();
  check(msg.find('\n') == std::string_view::npos);
  check(msg.find(what) != std::string_view::npos);
}

// The readings of `arg` in the parser's order of preference: the whole argument, then
// split at the last ':', then at the last two. Empty or impossible paths are nullopt.
std::optional<std::string> reading(std::string_view arg, int k) {
  std::size_t end = arg.size();
  for (int i = 0; i < k; ++i) {
    if (end == 0) return std::nullopt;
    end = arg.rfind(':', end - 1);
    if (end == std::string_view::npos) return std::nullopt;
  }
  if (end == 0) return std::nullopt;
  return std::string(arg.substr(0, end));
}

void check_region(std::string_view arg, std::uint8_t mode, const kcopy::RegionArg& r) {
  auto exists = [mode](const std::string& p) { return path_exists(mode, p); };

  // PATH is non-empty and the fields are what follows it, one ':' each.
  check(!r.path.empty());
  check(arg.substr(0, r.path.size()) == r.path);
  const std::string_view rest = arg.substr(r.path.size());
  check(rest.empty() || rest.front() == ':');
  check(colons_in(rest) == std::size_t{r.sector.has_value()} + std::size_t{r.count.has_value()});
  check(!r.count || r.sector);

  // The values and the end of the region fit in 64 bits as bytes.
  if (r.count) check(*r.count > 0);
  if (r.sector) check(*r.sector <= max_sectors);
  if (r.count) check(*r.count <= max_sectors && *r.sector <= max_sectors - *r.count);
  if (r.sector) {
    const std::uint64_t start = kcopy::sectors_to_bytes(*r.sector);
    check(kcopy::bytes_to_sectors(start) == *r.sector);
    const std::uint64_t end = *r.sector + r.count.value_or(0);
    check(end >= *r.sector && kcopy::bytes_to_sectors(kcopy::sectors_to_bytes(end)) == end);
  }

  // The longest existing path wins: if some reading's PATH exists, the first such is it.
  for (int k = 0; k <= 2; ++k) {
    const std::optional<std::string> p = reading(arg, k);
    if (p && exists(*p)) {
      check(r.path == *p);
      break;
    }
  }

  // The canonical form parses back to the same region when its PATH exists.
  if (r.sector && r.count) {
    const std::string canonical = r.path + ":" + std::to_string(*r.sector) + ":" + std::to_string(*r.count);
    try {
      const kcopy::RegionArg again =
          kcopy::parse_region(canonical, role, [&](const std::string& p) { return p == r.path; });
      check(again.path == r.path && again.sector == r.sector && again.count == r.count);
    } catch (const kcopy::Error&) {
      check(false);  // not the expected refusal: the canonical form must parse
    }
  }
}

void fuzz_region(std::string_view arg, std::uint8_t mode) {
  try {
    const kcopy::RegionArg r =
        kcopy::parse_region(arg, role, [mode](const std::string& p) { return path_exists(mode, p); });
    check_region(arg, mode, r);
  } catch (const kcopy::Error& e) {
    check_message(e, role);
  }
}

// parse_sectors and parse_bytes share the number grammar; they must agree.
void fuzz_sizes(std::string_view text) {
  std::optional<std::uint64_t> sectors;
  try {
    sectors = kcopy::parse_sectors(text, size_what);
    check(*sectors <= max_sectors);
  } catch (const kcopy::Error& e) {
    check_message(e, size_what);
  }
  std::optional<std::uint64_t> bytes;
  try {
    bytes = kcopy::parse_bytes(text, io_size_what);
  } catch (const kcopy::Error& e) {
    check_message(e, io_size_what);
  }
  // A size valid in sectors is valid in bytes: the same number, either plain (then
  // bytes == sectors) or with a suffix (then bytes == sectors * 512).
  if (sectors) check(bytes && (*bytes == *sectors || *bytes == kcopy::sectors_to_bytes(*sectors)));
  // A size in bytes that is refused as sectors is a plain number too large as sectors.
  if (bytes && !sectors) check(*bytes > max_sectors);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  // Anything escaping here other than kcopy::Error is a finding: libFuzzer reports an
  // uncaught exception as a crash (deadly signal from std::terminate).
  fuzz_region(text, mode);
  fuzz_sizes(text);
  return 0;
}
