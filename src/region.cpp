// The command-line region PATH[:SECTOR[:COUNT]] and the size grammar of its fields.
// Pure: the only view of the file system is the injected PathExists predicate.

#include "kcopy/region.hpp"

#include <array>
#include <charconv>
#include <functional>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "kcopy/error.hpp"
#include "kcopy/nbd_uri.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

constexpr std::string_view number_grammar = "decimal or 0x hex, optional suffix s, K, KiB, M, MiB, G, GiB, T, TiB";

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

// What a number without a suffix counts: sectors in a region, bytes for --io-size.
enum class Plain { sectors, bytes };

struct Suffix {
  std::string_view name;
  std::uint64_t bytes;
};
constexpr std::array<Suffix, 9> suffixes{{{"s", sector_size},
                                          {"K", 1ULL << 10},
                                          {"KiB", 1ULL << 10},
                                          {"M", 1ULL << 20},
                                          {"MiB", 1ULL << 20},
                                          {"G", 1ULL << 30},
                                          {"GiB", 1ULL << 30},
                                          {"T", 1ULL << 40},
                                          {"TiB", 1ULL << 40}}};

bool is_digit(char c, int base) {
  if (c >= '0' && c <= '9') return true;
  return base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
}

// Why a size with a fraction (`whole`.`fraction` times `unit` bytes, typed as
// `text`) is refused, and what to write instead: the same size as a whole
// number in a smaller unit, computed from the value typed.
std::string fraction_hint(std::string_view text, std::string_view whole, std::string_view fraction, std::uint64_t unit,
                          Plain plain) {
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  std::uint64_t int_part = 0, frac_part = 0;
  const bool parsed = std::from_chars(whole.data(), whole.data() + whole.size(), int_part).ec == std::errc() &&
                      fraction.size() <= 18 &&
                      std::from_chars(fraction.data(), fraction.data() + fraction.size(), frac_part).ec == std::errc();
  std::uint64_t scale = 1;  // 10^digits
  for (std::size_t i = 0; i < fraction.size(); ++i) scale *= 10;
  // fraction/scale * unit is whole only if scale/g divides the fraction (g = gcd, unit a power of 2).
  const std::uint64_t g = std::gcd(unit, scale);
  if (parsed && frac_part % (scale / g) != 0) return "has a fraction and is not a whole number of bytes";
  const std::uint64_t frac_bytes = parsed ? frac_part / (scale / g) * (unit / g) : 0;
  if (!parsed || int_part > (max_u64 - frac_bytes) / unit) return "is too large (2^64 bytes or more)";
  const std::uint64_t bytes = int_part * unit + frac_bytes;
  std::string instead;  // "1536K", "3s or 1536"
  for (auto s = suffixes.rbegin(); s != suffixes.rend() && instead.empty(); ++s)
    if (s->bytes < unit && s->bytes > sector_size && s->name.size() == 1 && bytes % s->bytes == 0)
      instead = std::to_string(bytes / s->bytes) + std::string(s->name);
  if (instead.empty() && unit > sector_size && bytes % sector_size == 0)
    instead = std::to_string(bytes_to_sectors(bytes)) + "s";
  if (plain == Plain::bytes && (instead.empty() || instead.back() == 's'))
    instead += (instead.empty() ? "" : " or ") + std::to_string(bytes);
  if (instead.empty())
    return "has a fraction: it is " + std::to_string(bytes) + " bytes, not a whole number of 512-byte sectors";
  return "has a fraction; write a whole number in a smaller unit: " + instead + ", not " + printable(text);
}

// Parses `text` as a size in bytes. Returns "" on success, otherwise why `text` is
// wrong, worded to follow "WHAT 'TEXT' ". Every accepted size fits in 64 bits as bytes,
// so a sector count from here can always go through sectors_to_bytes.
std::string parse_size(std::string_view text, Plain plain, std::uint64_t& bytes) {
  const std::string not_a_number = "is not a number (" + std::string(number_grammar) + ")";
  if (text.empty()) return "is empty";
  if (text.size() > 1 && text[0] == '-' && is_digit(text[1], 10)) return "is negative";
  int base = 10;
  std::size_t digits = 0;
  if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    digits = 2;
  }
  std::size_t end = digits;
  while (end < text.size() && is_digit(text[end], base)) ++end;
  // No sign, no space: from_chars would reject them anyway, and so do we, before it.
  if (end == digits) return base == 16 ? "has no hex digits after 0x" : not_a_number;

  std::string_view suffix = text.substr(end);
  std::string_view fraction;  // the digits after a decimal point
  if (base == 10 && suffix.size() >= 2 && suffix[0] == '.' && is_digit(suffix[1], 10)) {
    std::size_t n = 1;
    while (n < suffix.size() && is_digit(suffix[n], 10)) ++n;
    fraction = suffix.substr(1, n - 1);
    suffix = suffix.substr(n);
  }
  std::uint64_t unit = 0;
  if (suffix.empty()) unit = plain == Plain::sectors ? sector_size : 1;
  for (const Suffix& s : suffixes)
    if (s.name == suffix) unit = s.bytes;
  if (unit == 0) return not_a_number;
  if (!fraction.empty()) return fraction_hint(text, text.substr(0, end), fraction, unit, plain);

  std::uint64_t value = 0;
  const auto parsed = std::from_chars(text.data() + digits, text.data() + end, value, base);
  if (parsed.ec == std::errc::result_out_of_range || value > max_u64 / unit) return "is too large (2^64 bytes or more)";
  bytes = value * unit;
  return "";
}

// parse_size for a count of sectors: the byte size must be whole sectors.
std::string parse_sector_count(std::string_view text, std::uint64_t& sectors) {
  std::uint64_t bytes = 0;
  std::string why = parse_size(text, Plain::sectors, bytes);
  if (!why.empty()) return why;
  // Every suffix today is a multiple of 1 KiB, so this holds; it keeps "never rounded"
  // true should a finer unit ever be added.
  if (bytes % sector_size != 0) return "is " + std::to_string(bytes) + " bytes, not a whole number of 512-byte sectors";
  sectors = bytes_to_sectors(bytes);
  return "";
}

std::string quoted(std::string_view what, std::string_view text) { return std::string(what) + " " + quote(text) + " "; }

// A field the user evidently meant as a number: an error if it does not parse, rather
// than silently becoming part of the path (a typo would otherwise name a new file).
bool looks_numeric(std::string_view field) {
  if (field.empty()) return true;
  const char c = field.front();
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == ' ' || c == '\t';
}

// Parses the typed SECTOR (fields[0]) and COUNT (fields[1]) into `region`.
void parse_fields(std::span<const std::string_view> fields, RegionArg& region,
                  const std::function<Error(const std::string&)>& fail, bool none_exists) {
  for (std::size_t k = 0; k < fields.size(); ++k) {
    const std::string_view name = k == 0 ? "SECTOR" : "COUNT";
    const std::string_view field = fields[k];
    if (field.empty()) throw fail("empty " + std::string(name) + " field");
    std::uint64_t sectors = 0;
    std::string why = parse_sector_count(field, sectors);
    if (!why.empty()) {
      // The one case where a missing by-path name, not a typo, may be what went wrong.
      if (none_exists && why.rfind("is not a number", 0) == 0) why += "; and no file has the whole name";
      throw fail(quoted(name, field) + why);
    }
    (k == 0 ? region.sector : region.count) = sectors;
  }
  if (region.count == 0u) throw fail("COUNT must be at least 1 sector");
  // Each value fits in bytes on its own; the end of the range must too.
  if (region.count && !ends_within_bytes(region.sector.value_or(0), *region.count))
    throw fail("SECTOR + COUNT is too large (the region would end at 2^64 bytes or beyond)");
}

// An NBD URI with its fields: never looked up as a file.
RegionArg parse_nbd_region(std::string_view arg, std::string_view role) {
  const std::string prefix = std::string(role) + " " + quote(redacted_region(arg)) + ": ";
  const auto fail = [&](const std::string& what) { return Error(prefix + what); };
  NbdRegionArg split;
  try {
    split = split_nbd_region(arg);
  } catch (const Error& e) {
    throw Error(std::string(role) + ": " + e.what());
  }
  RegionArg region{split.uri, std::nullopt, std::nullopt, /*nbd=*/true};
  const std::vector<std::string_view> fields(split.fields.begin(), split.fields.end());
  parse_fields(fields, region, fail, false);
  return region;
}

}  // namespace

RegionArg parse_region(std::string_view arg, std::string_view role, const PathExists& exists) {
  if (is_nbd_uri(arg)) return parse_nbd_region(arg, role);
  const std::string prefix = std::string(role) + " " + quote(arg) + ": ";
  auto fail = [&](const std::string& what) { return Error(prefix + what); };

  // Reading k splits k trailing fields off: the path is arg[0, path_end[k]).
  constexpr std::size_t none = std::string_view::npos;
  std::array<std::size_t, 3> path_end{arg.size(), arg.rfind(':'), none};
  if (path_end[1] != none && path_end[1] > 0) path_end[2] = arg.rfind(':', path_end[1] - 1);
  auto path_of = [&](std::size_t k) { return arg.substr(0, path_end[k]); };
  auto field_of = [&](std::size_t k) {  // the k-th field from the right, 1-based
    return arg.substr(path_end[k] + 1, path_end[k - 1] - path_end[k] - 1);
  };

  // The reading with the longest path that exists wins, so a by-path name keeps its
  // ':' even when it ends in numbers ("...-scsi-0:0:0:0"); its fields must then parse.
  std::size_t fields = 0;
  bool none_exists = true;
  for (std::size_t k = 0; k <= 2 && none_exists; ++k) {
    if (path_end[k] != none && path_end[k] > 0 && exists(std::string(path_of(k)))) {
      fields = k;
      none_exists = false;
    }
  }
  // No reading names an existing file (a destination image to be created, or a typo):
  // split fields off from the right while they look like numbers (every valid one does).
  if (none_exists) {
    while (fields < 2 && path_end[fields + 1] != none && looks_numeric(field_of(fields + 1))) ++fields;
    // A third number is a typo, not the end of a new file's name ("new.img:1:2:8").
    std::uint64_t ignored = 0;
    if (const std::size_t colon = fields == 2 ? arg.rfind(':', path_end[2] - 1) : none;
        fields == 2 && path_end[2] > 0 && colon != none &&
        parse_sector_count(arg.substr(colon + 1, path_end[2] - colon - 1), ignored).empty())
      throw fail("too many ':' fields: a region is PATH[:SECTOR[:COUNT]], and no file " +
                 quote(arg.substr(0, path_end[2])) + " exists");
  }

  RegionArg region{std::string(path_of(fields)), std::nullopt, std::nullopt};
  if (region.path.empty()) throw fail("empty PATH");
  std::vector<std::string_view> typed;  // SECTOR, COUNT
  for (std::size_t k = fields; k >= 1; --k) typed.push_back(field_of(k));
  parse_fields(typed, region, fail, none_exists);
  return region;
}

std::uint64_t parse_sectors(std::string_view text, std::string_view what) {
  std::uint64_t sectors = 0;
  const std::string why = parse_sector_count(text, sectors);
  if (!why.empty()) throw Error(quoted(what, text) + why);
  return sectors;
}

std::uint64_t parse_bytes(std::string_view text, std::string_view what) {
  std::uint64_t bytes = 0;
  const std::string why = parse_size(text, Plain::bytes, bytes);
  if (!why.empty()) throw Error(quoted(what, text) + why);
  return bytes;
}

}  // namespace kcopy
