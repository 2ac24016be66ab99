#pragma once
// Whether an existing mapfile is this copy's: its kcopy identity comments ("kcopy source:
// PATH:SECTOR:COUNT", "kcopy destination N: ...", see mapfile.hpp) compared with this copy's
// regions by what they name, not by how they are spelled: a path by the file it names (device
// and inode, st_rdev for a block device), an NBD URI by its canonical form. "ms.img",
// "./ms.img", "$PWD/ms.img" and a symbolic link to it are one source.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kcopy/copy_plan.hpp"
#include "kcopy/own_files.hpp"

namespace kcopy {

/// The identity comments of the mapfile at `path` (those is_mapfile_identity_comment() takes,
/// as ParsedMapfile::comments has them); empty when there is no such file or it has none (a
/// map of ddrescue's). Throws kcopy::Error as read_mapfile_text() and parse_mapfile() do (a
/// corrupt map is refused here, with its line number).
std::vector<std::string> read_mapfile_identity(const std::string& path);

/// An NBD URI (already redacted, as the comments hold it) in a form in which two spellings of
/// one export are equal: scheme and host in lower case, the default port (10809, or an empty
/// ":PORT") left out, "nbd://host" as "nbd://host/".
std::string canonical_nbd_uri(std::string_view uri);

/// Compares `theirs` (read_mapfile_identity of `mapfile`) with this copy: the source
/// endpoints[0] over plan.from, destination d endpoints[d + 1] over plan.dests[d], each on
/// regions[i] (same order as endpoints: the source first). Returns the name each endpoint
/// should have in the mapfile's comments: the map's own spelling where it names the same file
/// or export (so that the map keeps its comments and MapfileCopy finds them equal), the
/// endpoint's path otherwise. An empty `theirs` (no map, or ddrescue's) changes nothing.
///
/// Where something really differs (another file, sector or count, a missing or extra
/// destination), throws kcopy::Error "mapfile 'M' was written for another copy (THEIR LINE;
/// this copy: OUR LINE); use another FILE, or --force to use it for this one", quoting the
/// first line that differs; with `force`, returns instead (MapfileCopy warns).
std::vector<std::string> mapfile_identity_names(const std::string& mapfile, std::span<const std::string> theirs,
                                                std::span<const EndpointInfo> endpoints, const CopyPlan& plan,
                                                std::span<const RegionFile> regions, bool force);

}  // namespace kcopy
