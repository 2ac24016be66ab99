#pragma once
// GNU ddrescue's mapfile (ddrescue 1.27, "Mapfile structure" in its manual): which bytes of
// the source are copied ('+'), not tried yet ('?') or failed ('*', '/', '-'). kcopy writes it
// for --mapfile, so that a stopped copy resumes, and so that kcopy and ddrescue can continue
// each other's rescues. Every position and size here is in BYTES on the source.
//
// The text, as ddrescue writes it and format_mapfile() writes it too:
//
//   # Mapfile. Created by kcopy version 0.1.0       comment lines: '#' up to the end of line
//   # kcopy source: /dev/sda:0:2304                  kcopy's identity comments (see below)
//   # current_pos  current_status  current_pass
//   0x00117200     ?               1                 the status line
//   #      pos        size  status
//   0x00000000  0x00117000  +                        blocks: contiguous, ascending, from 0
//   0x00117000  0x00000200  -
//   0x00117200  0x00008E00  ?
//
// Numbers are read as C integer constants (0x hex, 0 octal, else decimal; current_pass decimal)
// and written as ddrescue writes them (0x%08llX). ddrescue keeps positions in a signed 64-bit
// integer, so no block may end past mapfile_max_end.

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kcopy {

/// The status of a block of the source (ddrescue's Sblock::Status).
enum class RescueStatus : char {
  non_tried = '?',    ///< not read yet
  non_trimmed = '*',  ///< ddrescue: failed, edges not trimmed yet
  non_scraped = '/',  ///< ddrescue: failed, trimmed, not scraped sector by sector yet
  bad_sector = '-',   ///< failed sector by sector: bad sector(s)
  finished = '+',     ///< copied (for kcopy: held by every destination still written)
};

/// What the rescue was doing when the mapfile was written: the status line's
/// current_status (ddrescue's Mapfile::Status).
enum class RescuePhase : char {
  copying = '?',
  trimming = '*',
  scraping = '/',
  retrying = '-',
  filling = 'F',
  generating = 'G',
  finished = '+',
};

/// The largest end of a block: ddrescue's positions are signed 64-bit (LLONG_MAX).
inline constexpr std::uint64_t mapfile_max_end = std::numeric_limits<std::int64_t>::max();

/// One line of the block list: `size` bytes from `pos` that have `status`.
struct RescueBlock {
  std::uint64_t pos = 0;   ///< bytes from the start of the source
  std::uint64_t size = 0;  ///< bytes, > 0 in a RescueMap
  RescueStatus status = RescueStatus::non_tried;
  std::uint64_t end() const { return pos + size; }
  bool operator==(const RescueBlock&) const = default;
};

/// The map of a rescue: contiguous blocks covering exactly the bytes [0, size()), always
/// minimal (two neighbours never have the same status), plus the status line.
///
/// A map may cover less or more than the source: ddrescue's map of an earlier, shorter
/// run, or of another device. On resume ddrescue grows a short map with a '?' block
/// (extend_to()) and cuts a long one only where nothing past the source's end is '+'
/// (truncate_to()); kcopy should do the same, and refuse a map that truncate_to() rejects.
///
/// Complexity, n = number of blocks: finding a position is O(log n); a mark() that
/// changes the number of blocks also moves the blocks after it (O(n) at worst). A copy
/// that goes forward marks just before the map's last block, which moves nothing or one
/// block, so thousands of such marks cost O(log n) each. It allocates only when the block
/// list outgrows its capacity. Not thread-safe: one owner marks and formats.
class RescueMap {
 public:
  /// An empty map (size() == 0): nothing is known yet.
  RescueMap() = default;
  /// A map of `size` bytes, all non-tried, as ddrescue starts a new rescue.
  /// Precondition: size <= mapfile_max_end.
  explicit RescueMap(std::uint64_t size) { extend_to(size); }

  /// Gives the `size` bytes from `pos` `status`, splitting the blocks it cuts and merging
  /// it with neighbours of the same status. Any status may replace any other; marking
  /// past size() first extends the map (extend_to). size == 0 changes nothing.
  /// Precondition: pos + size <= mapfile_max_end (checked by assert).
  void mark(std::uint64_t pos, std::uint64_t size, RescueStatus status);

  /// Grows the map to cover [0, size) by a non-tried area at its end; a map already
  /// that large is left alone. Precondition: size <= mapfile_max_end.
  void extend_to(std::uint64_t size);

  /// Cuts the map to [0, size) unless a finished byte lies at or past `size` (then the
  /// map is for a larger source, and stays unchanged): returns whether the map now
  /// ends at or before `size`. ddrescue's own rule on resume.
  bool truncate_to(std::uint64_t size);

  /// Bytes covered: the end of the last block.
  std::uint64_t size() const { return blocks_.empty() ? 0 : blocks_.back().end(); }

  /// Every block, ascending by pos, contiguous from 0, neighbours of different status.
  /// Valid until the next change of the map.
  const std::vector<RescueBlock>& blocks() const { return blocks_; }

  /// The bytes that have `status`, in the whole map. O(1).
  std::uint64_t bytes_with(RescueStatus status) const { return bytes_[index(status)]; }

  /// The areas inside [pos, pos + size) that have `status`, ascending and cut to that
  /// range: what a resumed copy has to do (the non-tried areas first, then the failed
  /// ones). O(log n + the blocks in the range).
  std::vector<RescueBlock> areas_with(RescueStatus status, std::uint64_t pos, std::uint64_t size) const;

  /// Reserves room for `blocks` blocks, so that mark() does not allocate until there
  /// are more.
  void reserve(std::size_t blocks) { blocks_.reserve(blocks); }

  /// The status line. kcopy writes copying ('?') and pass 1 while it copies, with
  /// current_pos where it copies; finished ('+') once nothing is left to do. ddrescue
  /// resumes from current_pos but copies every non-finished block in any case.
  std::uint64_t current_pos() const { return current_pos_; }
  RescuePhase current_status() const { return current_status_; }
  int current_pass() const { return current_pass_; }
  void set_current_pos(std::uint64_t pos) { current_pos_ = pos; }
  void set_current_status(RescuePhase status) { current_status_ = status; }
  /// Precondition: pass >= 1.
  void set_current_pass(int pass) { current_pass_ = pass; }

  bool operator==(const RescueMap&) const = default;

 private:
  static std::size_t index(RescueStatus status);
  std::size_t block_at(std::uint64_t pos) const;
  void replace(std::size_t first, std::size_t last, std::span<const RescueBlock> pieces);

  std::vector<RescueBlock> blocks_;
  std::uint64_t bytes_[5] = {};  // per status, in index() order
  std::uint64_t current_pos_ = 0;
  RescuePhase current_status_ = RescuePhase::copying;
  int current_pass_ = 1;
};

/// A mapfile as read: the map, and its comment lines other than ddrescue's and kcopy's
/// own header (see parse_mapfile).
struct ParsedMapfile {
  RescueMap map;
  /// Whole-line comments in file order, each without its '#', one space after it and
  /// trailing white space: "# kcopy source: /dev/sda:0:8" gives "kcopy source: /dev/sda:0:8".
  std::vector<std::string> comments;
};

/// Reads a mapfile's whole text. `name` names the file in messages.
///
/// Reads everything ddrescue 1.27 writes: comments (a '#' at the start of a line or after
/// white space, up to the end of the line), blank lines, an older status line without
/// current_pass (pass 1), an empty source's "0 0 ?" block, and blocks that start past 0
/// (the gap becomes non-tried, as ddrescue does). Adjacent blocks of the same status are
/// merged. It is stricter than ddrescue's sscanf on hand-edited lines: fields are separated
/// by white space, and nothing but a comment may follow them.
///
/// The header lines dropped from `comments` are those that ddrescue, ddrescuelog and
/// format_mapfile rewrite every time: "Mapfile. Created by ...", "Command line: ...",
/// "Start time: ...", "Current time: ...", "End time: ...", ddrescue's phase messages
/// ("Copying non-tried blocks... Pass 1 (forwards)", "Finished", ...), and the two column
/// titles.
///
/// Throws kcopy::Error "mapfile 'NAME' line N: WHAT" for a bad number (not a C integer
/// constant, a sign, or larger than mapfile_max_end), an unknown status character, a
/// status line or block line with the wrong fields, a current_pass below 1, a block of size
/// zero (other than "0 0"), a block that does not start where the previous one ended, or
/// one that ends past mapfile_max_end; and "mapfile 'NAME' has no status line" for a text
/// with no line other than comments and blanks (an empty file, too).
ParsedMapfile parse_mapfile(std::string_view text, std::string_view name);

/// The text of `map` as ddrescue writes it, byte for byte from the line
/// "# current_pos  current_status  current_pass" on; before it, the header line
/// "# Mapfile. Created by kcopy version V", then one "# COMMENT" line per `comments`
/// entry (each through printable(), so that it stays one line). An empty map is written as
/// ddrescue writes an empty source's: one block "0x00000000  0x00000000  ?". O(n).
///
/// kcopy's identity comments (mapfile_source_comment, mapfile_destination_comment) go in
/// `comments`; so may "Command line: ..." or "Start time: ...", as ddrescue writes them.
std::string format_mapfile(const RescueMap& map, std::span<const std::string> comments = {});

/// kcopy's identity comments, written before the status line of every mapfile it writes,
/// so that a resumed copy can check that the map is of the same source and destinations.
/// Each names an endpoint as the command line does, with every field (sectors, decimal):
///   "kcopy source: PATH:SECTOR:COUNT"
///   "kcopy destination N: PATH:SECTOR:COUNT"      (N = 1, 2, ... in command-line order)
/// PATH goes through printable(), as in messages. Compare them with ParsedMapfile::comments
/// as whole strings. A map started by ddrescue has none.
std::string mapfile_source_comment(std::string_view path, std::uint64_t sector, std::uint64_t count);
std::string mapfile_destination_comment(unsigned number, std::string_view path, std::uint64_t sector,
                                        std::uint64_t count);
/// Whether a ParsedMapfile comment is one of kcopy's identity comments (above).
bool is_mapfile_identity_comment(std::string_view comment);

/// The content of the file at `path`, or nullopt when there is no such file (ENOENT: no
/// mapfile yet, a new rescue). Throws kcopy::Error for any other failure: unreadable, not
/// a regular file, or larger than 1 GiB (a disk image given by mistake: a real mapfile of
/// ten million blocks is about 260 MB).
std::optional<std::string> read_mapfile_text(const std::string& path);

/// Replaces the file at `path` with `content` so that a crash leaves either the old file or
/// the new one, never a mix: writes a temporary file "PATH.kcopy-XXXXXX" in the same
/// directory (mode 0666 less the umask, as ddrescue creates its mapfile; an existing file's
/// mode is kept), fsyncs it, renames it over `path`, fsyncs the directory. A symbolic link at
/// `path` is replaced, not followed. Throws kcopy::Error naming `path`, the step and the
/// errno text on failure, after removing the temporary file (`path` is then unchanged).
void write_file_atomically(const std::string& path, std::string_view content);

}  // namespace kcopy
