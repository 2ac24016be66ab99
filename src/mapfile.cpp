// GNU ddrescue's mapfile: the in-memory map, its text, and its file.

#include "kcopy/mapfile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>

#include "kcopy/error.hpp"
#include "kcopy/file_desc.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/version.hpp"

namespace kcopy {

// ---- the map ----

std::size_t RescueMap::index(RescueStatus status) {
  switch (status) {
    case RescueStatus::non_tried:
      return 0;
    case RescueStatus::non_trimmed:
      return 1;
    case RescueStatus::non_scraped:
      return 2;
    case RescueStatus::bad_sector:
      return 3;
    case RescueStatus::finished:
      return 4;
  }
  assert(false && "not a RescueStatus");
  return 0;
}

// The index of the block holding byte `pos`. Precondition: pos < size().
std::size_t RescueMap::block_at(std::uint64_t pos) const {
  const auto after = std::upper_bound(blocks_.begin(), blocks_.end(), pos,
                                      [](std::uint64_t p, const RescueBlock& b) { return p < b.pos; });
  return static_cast<std::size_t>(after - blocks_.begin()) - 1;
}

// Replaces blocks_[first, last) with `pieces`, keeping the byte counts. Overwrites in
// place and inserts or erases only the difference, so that an unchanged number of
// blocks moves nothing.
void RescueMap::replace(std::size_t first, std::size_t last, std::span<const RescueBlock> pieces) {
  for (std::size_t i = first; i < last; ++i) bytes_[index(blocks_[i].status)] -= blocks_[i].size;
  for (const RescueBlock& b : pieces) bytes_[index(b.status)] += b.size;
  const std::size_t common = std::min(last - first, pieces.size());
  std::copy_n(pieces.begin(), common, blocks_.begin() + static_cast<std::ptrdiff_t>(first));
  const auto at = blocks_.begin() + static_cast<std::ptrdiff_t>(first + common);
  if (common < last - first) {
    blocks_.erase(at, at + static_cast<std::ptrdiff_t>(last - first - common));
  } else {
    blocks_.insert(at, pieces.begin() + static_cast<std::ptrdiff_t>(common), pieces.end());
  }
}

void RescueMap::extend_to(std::uint64_t size) {
  assert(size <= mapfile_max_end);
  const std::uint64_t end = this->size();
  if (size <= end) return;
  if (!blocks_.empty() && blocks_.back().status == RescueStatus::non_tried) {
    const RescueBlock grown{blocks_.back().pos, size - blocks_.back().pos, RescueStatus::non_tried};
    replace(blocks_.size() - 1, blocks_.size(), {&grown, 1});
  } else {
    const RescueBlock tail{end, size - end, RescueStatus::non_tried};
    replace(blocks_.size(), blocks_.size(), {&tail, 1});
  }
}

bool RescueMap::truncate_to(std::uint64_t size) {
  if (size >= this->size()) return true;
  const std::size_t first = block_at(size);
  for (std::size_t i = first; i < blocks_.size(); ++i) {
    if (blocks_[i].status == RescueStatus::finished) return false;
  }
  const RescueBlock& b = blocks_[first];
  const RescueBlock cut{b.pos, size - b.pos, b.status};
  replace(first, blocks_.size(), {&cut, b.pos < size ? 1u : 0u});
  return true;
}

void RescueMap::mark(std::uint64_t pos, std::uint64_t size, RescueStatus status) {
  assert(pos <= mapfile_max_end && size <= mapfile_max_end - pos);
  if (size == 0) return;
  const std::uint64_t end = pos + size;
  extend_to(end);
  // Replace blocks [first, last) by: the part of the first block before `pos` if it keeps
  // another status, the new block (grown over same-status neighbours), the part of the
  // last block after `end` if it keeps another status. The map was minimal, so this is.
  std::size_t first = block_at(pos);
  std::size_t last = block_at(end - 1) + 1;
  std::array<RescueBlock, 3> pieces;
  std::size_t n = 0;
  RescueBlock middle{pos, 0, status};
  const RescueBlock& head = blocks_[first];
  if (head.status == status) {
    middle.pos = head.pos;
  } else if (head.pos < pos) {
    pieces[n++] = {head.pos, pos - head.pos, head.status};
  } else if (first > 0 && blocks_[first - 1].status == status) {
    middle.pos = blocks_[--first].pos;
  }
  std::uint64_t middle_end = end;
  std::optional<RescueBlock> tail;
  const RescueBlock& back = blocks_[last - 1];
  if (back.status == status) {
    middle_end = back.end();
  } else if (back.end() > end) {
    tail = RescueBlock{end, back.end() - end, back.status};
  } else if (last < blocks_.size() && blocks_[last].status == status) {
    middle_end = blocks_[last++].end();
  }
  middle.size = middle_end - middle.pos;
  pieces[n++] = middle;
  if (tail) pieces[n++] = *tail;
  replace(first, last, {pieces.data(), n});
}

std::vector<RescueBlock> RescueMap::areas_with(RescueStatus status, std::uint64_t pos, std::uint64_t size) const {
  std::vector<RescueBlock> areas;
  const std::uint64_t limit = this->size();
  if (pos >= limit) return areas;
  const std::uint64_t end = size >= limit - pos ? limit : pos + size;
  for (std::size_t i = block_at(pos); i < blocks_.size() && blocks_[i].pos < end; ++i) {
    const RescueBlock& b = blocks_[i];
    if (b.status != status) continue;
    const std::uint64_t from = std::max(b.pos, pos);
    areas.push_back({from, std::min(b.end(), end) - from, status});
  }
  return areas;
}

// ---- the text ----

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

bool is_block_status(char c) { return c == '?' || c == '*' || c == '/' || c == '-' || c == '+'; }

bool is_phase(char c) { return is_block_status(c) || c == 'F' || c == 'G'; }

// The comment lines that ddrescue, ddrescuelog and format_mapfile() write anew each time:
// the header, the column titles, and ddrescue's phase message.
constexpr std::array<std::string_view, 15> header_comments{
    "Mapfile. Created by ",
    "Command line: ",
    "Start time: ",
    "Current time: ",
    "End time: ",
    "current_pos  current_status  current_pass",
    "pos        size  status",  // "#      pos ...": its indent is skipped
    "Copying non-tried blocks",
    "Trimming failed blocks",
    "Scraping failed blocks",
    "Retrying bad sectors",
    "Filling blocks",
    "Generating mapfile",
    "Finished",
    "Interrupted by user",
};

bool is_header_comment(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  return std::any_of(header_comments.begin(), header_comments.end(),
                     [&](std::string_view h) { return text.starts_with(h); });
}

// The white-space-separated fields of a line, up to its comment: a '#' that starts the line
// or follows white space.
std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size() || line[i] == '#') break;
    const std::size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

class LineError {
 public:
  LineError(std::string_view name, unsigned line) : name_(name), line_(line) {}
  [[noreturn]] void operator()(const std::string& what) const {
    throw Error("mapfile " + quote(name_) + " line " + std::to_string(line_) + ": " + what);
  }

 private:
  std::string_view name_;
  unsigned line_;
};

std::string hex(std::uint64_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%08llX", static_cast<unsigned long long>(n));
  return buf;
}

// A C integer constant as strtoull(base 0) reads it, but whole, unsigned, and at most
// mapfile_max_end. `what` names the field in messages.
std::uint64_t parse_number(std::string_view text, std::string_view what, const LineError& fail) {
  int base = 10;
  std::string_view digits = text;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  } else if (text.size() > 1 && text[0] == '0') {
    base = 8;
    digits.remove_prefix(1);
  }
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n, base);
  const bool whole = !digits.empty() && end == digits.data() + digits.size();  // from_chars takes no sign
  if (ec == std::errc::result_out_of_range || (whole && ec == std::errc() && n > mapfile_max_end)) {
    fail(std::string(what) + " " + quote(text) + " is too large (at most " + hex(mapfile_max_end) + ")");
  }
  if (ec != std::errc() || !whole) {
    fail(std::string(what) + " " + quote(text) + " is not a number (decimal, 0x hex or 0 octal)");
  }
  return n;
}

void parse_status_line(const std::vector<std::string_view>& f, RescueMap& map, const LineError& fail) {
  if (f.size() < 2 || f.size() > 3) {
    fail("the status line should be 'current_pos current_status current_pass', not " + std::to_string(f.size()) +
         " field(s)");
  }
  map.set_current_pos(parse_number(f[0], "current_pos", fail));
  if (f[1].size() != 1 || !is_phase(f[1][0])) {
    fail("unknown current_status " + quote(f[1]) + " (one of ? * / - F G +)");
  }
  map.set_current_status(static_cast<RescuePhase>(f[1][0]));
  if (f.size() == 3) {
    int pass = 0;
    const auto [end, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), pass);
    if (ec != std::errc() || end != f[2].data() + f[2].size() || pass < 1) {
      fail("current_pass " + quote(f[2]) + " is not a decimal number from 1");
    }
    map.set_current_pass(pass);
  }
}

}  // namespace

ParsedMapfile parse_mapfile(std::string_view text, std::string_view name) {
  ParsedMapfile parsed;
  RescueMap& map = parsed.map;
  bool have_status_line = false;
  std::optional<std::uint64_t> next_pos;  // where the next block must start; any for the first
  unsigned line_number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;
    const LineError fail(name, line_number);

    const std::size_t first = line.find_first_not_of(" \t\r\v\f");
    if (first != std::string_view::npos && line[first] == '#') {
      std::string_view comment = line.substr(first + 1);
      if (comment.starts_with(' ')) comment.remove_prefix(1);
      while (!comment.empty() && is_space(comment.back())) comment.remove_suffix(1);
      if (!is_header_comment(comment)) parsed.comments.emplace_back(comment);
      continue;
    }
    const std::vector<std::string_view> f = fields_of(line);
    if (f.empty()) continue;
    if (!have_status_line) {
      parse_status_line(f, map, fail);
      have_status_line = true;
      continue;
    }
    if (f.size() != 3) {
      fail("a block line should be 'pos size status', not " + std::to_string(f.size()) + " field(s)");
    }
    const std::uint64_t pos = parse_number(f[0], "pos", fail);
    const std::uint64_t size = parse_number(f[1], "size", fail);
    if (f[2].size() != 1 || !is_block_status(f[2][0])) {
      fail("unknown block status " + quote(f[2]) + " (one of ? * / - +)");
    }
    if (next_pos && pos != *next_pos) {
      fail("the block starts at " + hex(pos) + ", not where the previous one ends (" + hex(*next_pos) + ")");
    }
    if (size == 0) {
      if (pos == 0) {  // the "0 0 ?" of an empty source, as ddrescue writes it
        next_pos = 0;
        continue;
      }
      fail("the block at " + hex(pos) + " has size zero");
    }
    if (size > mapfile_max_end - pos) {
      fail("the block at " + hex(pos) + " ends past " + hex(mapfile_max_end));
    }
    map.mark(pos, size, static_cast<RescueStatus>(f[2][0]));
    next_pos = pos + size;
  }
  if (!have_status_line) throw Error("mapfile " + quote(name) + " has no status line");
  return parsed;
}

std::string format_mapfile(const RescueMap& map, std::span<const std::string> comments) {
  std::string text = "# Mapfile. Created by kcopy version ";
  text += version;
  text += '\n';
  for (const std::string& c : comments) {
    text += c.empty() ? "#" : "# " + printable(c);
    text += '\n';
  }
  char line[80];
  std::snprintf(line, sizeof line, "0x%08llX     %c               %d\n",
                static_cast<unsigned long long>(map.current_pos()), static_cast<char>(map.current_status()),
                map.current_pass());
  text += "# current_pos  current_status  current_pass\n";
  text += line;
  text += "#      pos        size  status\n";
  if (map.blocks().empty()) text += "0x00000000  0x00000000  ?\n";
  text.reserve(text.size() + 30 * map.blocks().size());
  for (const RescueBlock& b : map.blocks()) {
    std::snprintf(line, sizeof line, "0x%08llX  0x%08llX  %c\n", static_cast<unsigned long long>(b.pos),
                  static_cast<unsigned long long>(b.size), static_cast<char>(b.status));
    text += line;
  }
  return text;
}

namespace {
constexpr std::string_view identity_prefix = "kcopy ";
std::string endpoint_comment(std::string role, std::string_view path, std::uint64_t sector, std::uint64_t count) {
  return std::string(identity_prefix) + role + ": " + printable(path) + ":" + std::to_string(sector) + ":" +
         std::to_string(count);
}
}  // namespace

bool is_mapfile_identity_comment(std::string_view comment) {
  if (!comment.starts_with(identity_prefix)) return false;
  comment.remove_prefix(identity_prefix.size());
  return comment.starts_with("source: ") || comment.starts_with("destination ");
}

std::string mapfile_source_comment(std::string_view path, std::uint64_t sector, std::uint64_t count) {
  return endpoint_comment("source", path, sector, count);
}

std::string mapfile_destination_comment(unsigned number, std::string_view path, std::uint64_t sector,
                                        std::uint64_t count) {
  return endpoint_comment("destination " + std::to_string(number), path, sector, count);
}

// ---- the file ----

std::optional<std::string> read_mapfile_text(const std::string& path) {
  constexpr std::uint64_t max_bytes = 1ULL << 30;
  const auto fail = [&](const std::string& what) -> Error {
    return Error("cannot read mapfile " + quote(path) + ": " + what);
  };
  const FileDesc fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw fail(std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw fail("not a regular file");
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw fail(std::strerror(errno));
    if (n == 0) return text;
    if (text.size() + static_cast<std::size_t>(n) > max_bytes) throw fail("larger than 1 GiB: not a mapfile");
    text.append(buf, static_cast<std::size_t>(n));
  }
}

namespace {

// The directory that holds `path`, to fsync after a rename in it.
std::string directory_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view content) {
  std::string temp;
  int fd = -1;
  // mkstemp's loop, but with mode 0666 so that the umask applies, as to ddrescue's fopen.
  std::mt19937_64 random(std::random_device{}());
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, ".kcopy-%06llx", static_cast<unsigned long long>(random() & 0xffffff));
    temp = path + suffix;
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    throw Error("cannot write " + quote(path) + ": cannot create " + quote(temp) + ": " + std::strerror(errno));
  }
  const auto fail = [&](const char* step) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(temp.c_str());
    throw Error("cannot write " + quote(path) + ": " + step + " " + quote(temp) + ": " + std::strerror(error));
  };
  struct stat old {};
  if (::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode) && ::fchmod(fd, old.st_mode & 07777) != 0) {
    fail("setting the mode of");
  }
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("writing");
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd) != 0) fail("syncing");
  const int closed = ::close(std::exchange(fd, -1));
  if (closed != 0) fail("closing");
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("renaming");
  // The rename is durable only once the directory is; a file system that cannot sync a
  // directory (EINVAL) has nothing more to do.
  const std::string dir = directory_of(path);
  const FileDesc dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd || (::fsync(dir_fd.get()) != 0 && errno != EINVAL)) {
    throw Error("cannot write " + quote(path) + ": syncing the directory " + quote(dir) + ": " + std::strerror(errno));
  }
}

}  // namespace kcopy
