// A mapfile's identity comments, compared by what they name.

#include "kcopy/mapfile_identity.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "kcopy/error.hpp"
#include "kcopy/mapfile.hpp"
#include "kcopy/nbd_uri.hpp"
#include "kcopy/quote.hpp"

namespace kcopy {
namespace {

// One identity comment taken apart: "kcopy ROLE: PATH:SECTOR:COUNT".
struct IdentityLine {
  std::string role;  // "source", "destination 2"
  std::string path;
  std::uint64_t sector = 0, count = 0;
};

std::optional<std::uint64_t> decimal(std::string_view s) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

std::optional<IdentityLine> parse_identity(std::string_view comment) {
  constexpr std::string_view prefix = "kcopy ";
  if (!comment.starts_with(prefix)) return std::nullopt;
  comment.remove_prefix(prefix.size());
  const std::size_t colon = comment.find(": ");
  const std::size_t count_at = comment.rfind(':');
  if (colon == std::string_view::npos || count_at <= colon + 1) return std::nullopt;
  const std::size_t sector_at = comment.rfind(':', count_at - 1);
  if (sector_at <= colon + 1) return std::nullopt;
  const auto sector = decimal(comment.substr(sector_at + 1, count_at - sector_at - 1));
  const auto count = decimal(comment.substr(count_at + 1));
  if (!sector || !count) return std::nullopt;
  return IdentityLine{std::string(comment.substr(0, colon)),
                      std::string(comment.substr(colon + 2, sector_at - colon - 2)), *sector, *count};
}

// Whether the path a comment holds names the file of `region`.
bool names_file(const std::string& path, const RegionFile& region) {
  struct stat st {};
  if (region.id && ::stat(path.c_str(), &st) == 0) {
    const bool block = S_ISBLK(st.st_mode);
    return *region.id == DeviceIdentity{block, block ? st.st_rdev : st.st_dev, block ? 0 : st.st_ino};
  }
  // A dry run's file to be created, or a comment naming no file there is now: by resolved path.
  const std::string local = region.create.empty() ? std::string() : resolved_path(region.create);
  return !local.empty() && resolved_path(path) == local;
}

std::string comment_of(std::size_t i, std::string_view name, const CopyPlan& plan) {
  if (i == 0) return mapfile_source_comment(name, plan.from.sector, plan.from.count);
  const IoRegion& d = plan.dests[i - 1];
  return mapfile_destination_comment(static_cast<unsigned>(i), name, d.sector, d.count);
}

}  // namespace

std::vector<std::string> read_mapfile_identity(const std::string& path) {
  std::vector<std::string> comments;
  if (const std::optional<std::string> text = read_mapfile_text(path))
    for (std::string& c : parse_mapfile(*text, path).comments)
      if (is_mapfile_identity_comment(c)) comments.push_back(std::move(c));
  return comments;
}

std::string canonical_nbd_uri(std::string_view uri) {
  const std::size_t sep = uri.find("://");
  if (sep == std::string_view::npos) return std::string(uri);
  std::string scheme(uri.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string_view rest = uri.substr(sep + 3);
  const std::size_t end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = rest.substr(end);
  const std::size_t at = authority.rfind('@');
  const std::string_view user = at == std::string_view::npos ? std::string_view() : authority.substr(0, at + 1);
  std::string host(at == std::string_view::npos ? authority : authority.substr(at + 1));
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool tcp = scheme == "nbd" || scheme == "nbds";
  // A trailing ":PORT" (not one inside an IPv6 "[...]") that is the default one, or empty.
  const std::size_t colon = host.rfind(':');
  if (tcp && colon != std::string::npos && (host.front() != '[' || colon > host.rfind(']'))) {
    const std::string_view port = std::string_view(host).substr(colon + 1);
    if (port.empty() || port == "10809") host.resize(colon);
  }
  return scheme + "://" + std::string(user) + host + (tcp && tail.empty() ? "/" : std::string(tail));
}

std::vector<std::string> mapfile_identity_names(const std::string& mapfile, std::span<const std::string> theirs,
                                                std::span<const EndpointInfo> endpoints, const CopyPlan& plan,
                                                std::span<const RegionFile> regions, bool force) {
  std::vector<std::string> names;
  for (const EndpointInfo& e : endpoints) names.push_back(e.path);
  if (theirs.empty()) return names;
  for (std::size_t i = 0; i < std::max(theirs.size(), names.size()); ++i) {
    const std::string ours = i < names.size() ? comment_of(i, names[i], plan) : std::string();
    if (i < theirs.size() && theirs[i] == ours) continue;
    const std::optional<IdentityLine> line = i < theirs.size() ? parse_identity(theirs[i]) : std::nullopt;
    const std::optional<IdentityLine> mine = i < names.size() ? parse_identity(ours) : std::nullopt;
    bool same = line && mine && line->role == mine->role && line->sector == mine->sector &&
                line->count == mine->count && printable(line->path) == line->path;
    if (same) {
      same = i < regions.size() && (is_nbd_uri(line->path) || is_nbd_uri(names[i])
                                        ? canonical_nbd_uri(line->path) == canonical_nbd_uri(names[i])
                                        : names_file(line->path, regions[i]));
    }
    if (same) {
      names[i] = line->path;  // the map's own spelling: its comments stay as they are
      continue;
    }
    if (force) return names;  // MapfileCopy says that it is used anyway
    const std::string role = line ? line->role : mine ? mine->role : "";
    const std::string their_text = i < theirs.size() ? printable(theirs[i]) : "no " + role;
    const std::string our_text = i < names.size() ? printable(ours) : "no " + role;
    throw Error("mapfile " + quote(mapfile) + " was written for another copy (" + their_text +
                "; this copy: " + our_text + "); use another FILE, or --force to use it for this one");
  }
  return names;
}

}  // namespace kcopy
