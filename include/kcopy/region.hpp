#pragma once
// The command-line region: PATH[:SECTOR[:COUNT]] (the io_region of dm-kcopyd).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace kcopy {

/// A region as the user typed it, before any device is opened.
/// `sector` and `count` are in 512-byte sectors; unset means "use the default"
/// (source: sector 0, count up to the end; destination: sector 0, the source's count).
struct RegionArg {
  std::string path;
  std::optional<std::uint64_t> sector;
  std::optional<std::uint64_t> count;
  bool nbd = false;  ///< `path` is an NBD URI (is_nbd_uri), not a file
};

/// Tells whether a path names an existing file (of any type). Injected so that
/// parse_region stays a pure function; the CLI passes a stat()-based check.
using PathExists = std::function<bool(const std::string&)>;

/// Parses one REGION argument: PATH [ ":" SECTOR [ ":" COUNT ] ].
///
/// An NBD URI (is_nbd_uri) is recognised first: its fields are split off only
/// after its path or query (split_nbd_region), `exists` is not asked, `nbd` is
/// set, and messages name the URI with its secrets redacted (redacted_uri).
///
/// Which ':' separate fields (a path may contain ':', as every by-path name does):
/// - The readings are: the whole argument as PATH; PATH:SECTOR split at the last ':';
///   PATH:SECTOR:COUNT split at the last two. The first of these, in that order, whose
///   PATH `exists` is taken, so the longest existing path wins, and its fields must then
///   be valid ("disk.img:12x" with disk.img existing is an error about SECTOR '12x';
///   "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0:2048" keeps the whole by-path name).
/// - If no reading's PATH exists (a destination image yet to be created, or a typo),
///   fields are split off from the right, at most two, while they look like numbers:
///   empty, or starting with a digit, '+', '-' or a blank. The first field that does not
///   stops the split and stays in the path ("new:img" is a path). A field that looks
///   like a number but is not one is an error, so that a typo never silently names a
///   new file: "img:00:1f.2" with nothing existing is an error about COUNT '1f.2'.
///   So is a third number before the two fields ("new.img:1:2:8" with nothing
///   existing): too many fields, not a new file named "new.img:1".
/// - Hence a file that does not exist yet and whose name ends in ":<number>" cannot be
///   named as a bare PATH; create it first.
/// - A number is decimal (leading zeros allowed, never octal) or 0x hex, optionally
///   followed by a suffix: `s` (sectors, the default), `K`/`KiB`, `M`/`MiB`, `G`/`GiB`,
///   `T`/`TiB` (bytes, powers of 1024). No sign, no blanks, no fractions. A byte size that
///   is not a whole number of sectors is an error, never rounded.
/// - Every value, and the end of the region (SECTOR + COUNT), fits in 64 bits as bytes,
///   so sectors_to_bytes never overflows on a parsed region.
/// - `role` ("source", "destination 2", ...) names the argument in error messages.
///
/// Throws kcopy::Error with a one-line message "ROLE 'ARG': ..." naming what is wrong
/// (empty path, empty field, trailing garbage, negative number, fraction, a value or a
/// region end of 2^64 bytes or more, COUNT 0).
RegionArg parse_region(std::string_view arg, std::string_view role, const PathExists& exists);

/// Parses one SIZE (the same number grammar as a region field) and returns it in
/// sectors; its byte value fits in 64 bits. Throws kcopy::Error "WHAT 'TEXT' ...".
std::uint64_t parse_sectors(std::string_view text, std::string_view what);

/// Parses a byte size for options such as --io-size: a plain number is bytes,
/// suffixes `K`/`KiB`... as above, `s` means sectors. Any byte count is accepted here
/// (alignment is the caller's rule). Throws kcopy::Error "WHAT 'TEXT' ...".
std::uint64_t parse_bytes(std::string_view text, std::string_view what);

}  // namespace kcopy
