// The mapfile a user hands back and forth between kcopy and GNU ddrescue.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "kcopy/error.hpp"
#include "kcopy/mapfile.hpp"
#include "kcopy/version.hpp"

using kcopy::parse_mapfile;
using kcopy::RescueBlock;
using kcopy::RescueMap;
using kcopy::RescuePhase;
using Blocks = std::vector<RescueBlock>;

namespace {

constexpr auto tried = kcopy::RescueStatus::non_tried;
constexpr auto untrimmed = kcopy::RescueStatus::non_trimmed;
constexpr auto unscraped = kcopy::RescueStatus::non_scraped;
constexpr auto bad = kcopy::RescueStatus::bad_sector;
constexpr auto done = kcopy::RescueStatus::finished;

// `ddrescue -q -Z 8Mi --test-mode=test2.map big.img out7.img map7` (GNU ddrescue 1.27,
// Debian 12) on a 64 MiB file with a 64 KiB bad area at 32 MiB, stopped by SIGINT: copied,
// non-trimmed and non-tried areas, and the status line of pass 1.
constexpr std::string_view ddrescue_interrupted =
    "# Mapfile. Created by GNU ddrescue version 1.27\n"
    "# Command line: ddrescue -q -Z 8Mi --test-mode=test2.map big.img out7.img map7\n"
    "# Start time:   2026-11-23 14:47:03\n"
    "# Current time: 2026-11-23 14:47:09\n"
    "# Copying non-tried blocks... Pass 1 (forwards)\n"
    "# current_pos  current_status  current_pass\n"
    "0x03080000     ?               1\n"
    "#      pos        size  status\n"
    "0x00000000  0x02000000  +\n"
    "0x02000000  0x00010000  *\n"
    "0x02010000  0x00010000  ?\n"
    "0x02020000  0x01060000  +\n"
    "0x03080000  0x00F80000  ?\n";

// `ddrescuelog -A map3` (1.27) of the finished `ddrescue -n` run of a 1 MiB file with two
// bad areas: bad sectors, a non-scraped area, and ddrescuelog's comments after the fields.
constexpr std::string_view ddrescuelog_annotated =
    "# Mapfile. Created by GNU ddrescuelog version 1.27\n"
    "# Command line: ddrescuelog -A map3\n"
    "# Start time:   2026-11-23 14:50:38\n"
    "# current_pos  current_status  current_pass\n"
    "0x00070000     +               1\t#  458752 B\n"
    "#      pos        size  status\n"
    "0x00000000  0x00020000  +\t#         0 B    131072  \n"
    "0x00020000  0x00000400  -\t#    131072 B      1024  \n"
    "0x00020400  0x0003FC00  +\t#    132096 B    261120  \n"
    "0x00060000  0x00000200  -\t#    393216 B       512  \n"
    "0x00060200  0x0000FC00  /\t#    393728 B     64512  \n"
    "0x0006FE00  0x00000200  -\t#    458240 B       512  \n"
    "0x00070000  0x00090000  +\t#    458752 B    589824  \n";

// The text from the "# current_pos" line on: what kcopy writes exactly as ddrescue does.
std::string_view from_status_title(std::string_view text) { return text.substr(text.find("# current_pos")); }

// The message of the kcopy::Error that parsing `text` throws ("" if none).
std::string parse_error(std::string_view text) {
  try {
    parse_mapfile(text, "m.map");
  } catch (const kcopy::Error& e) {
    return e.what();
  }
  return "";
}

// A scratch directory, removed with its content.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char name[] = "/tmp/kcopy-mapfile-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const char* name) const { return (path / name).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// ---- the map ----

TEST_CASE("a new rescue's map is one non-tried block of the source's size") {
  const RescueMap map(1 << 20);
  REQUIRE(map.blocks() == Blocks{{0, 1 << 20, tried}});
  REQUIRE(map.size() == 1 << 20);
  REQUIRE(map.bytes_with(tried) == 1 << 20);
  REQUIRE(map.current_pos() == 0);
  REQUIRE(map.current_status() == RescuePhase::copying);
  REQUIRE(map.current_pass() == 1);
}

TEST_CASE("a copy marked forward piece by piece is one finished block in front of the rest") {
  RescueMap map(1 << 30);
  for (std::uint64_t pos = 0; pos < (1 << 29); pos += 65536) map.mark(pos, 65536, done);
  REQUIRE(map.blocks() == Blocks{{0, 1 << 29, done}, {1 << 29, 1 << 29, tried}});
  REQUIRE(map.bytes_with(done) == 1 << 29);
  REQUIRE(map.bytes_with(tried) == 1 << 29);
}

TEST_CASE("sub-jobs finishing out of order leave islands that merge as the gaps fill") {
  RescueMap map(100);
  map.reserve(8);
  const RescueBlock* const storage = map.blocks().data();
  map.mark(20, 10, done);
  map.mark(0, 10, done);
  REQUIRE(map.blocks() == Blocks{{0, 10, done}, {10, 10, tried}, {20, 10, done}, {30, 70, tried}});
  map.mark(10, 10, done);
  REQUIRE(map.blocks() == Blocks{{0, 30, done}, {30, 70, tried}});
  REQUIRE(map.blocks().data() == storage);  // reserved: no allocation while copying
}

TEST_CASE("a bad area inside a finished one splits it, and finishing it joins it again") {
  RescueMap map(100);
  map.mark(0, 100, done);
  map.mark(40, 2, bad);
  REQUIRE(map.blocks() == Blocks{{0, 40, done}, {40, 2, bad}, {42, 58, done}});
  REQUIRE(map.bytes_with(bad) == 2);
  map.mark(40, 2, done);
  REQUIRE(map.blocks() == Blocks{{0, 100, done}});
  REQUIRE(map.bytes_with(bad) == 0);
}

TEST_CASE("a mark over many blocks replaces them all and merges with both neighbours") {
  RescueMap map(100);
  map.mark(10, 10, bad);
  map.mark(30, 10, untrimmed);
  map.mark(50, 10, unscraped);
  map.mark(90, 10, bad);
  map.mark(20, 70, bad);
  REQUIRE(map.blocks() == Blocks{{0, 10, tried}, {10, 90, bad}});
  map.mark(5, 90, tried);
  REQUIRE(map.blocks() == Blocks{{0, 95, tried}, {95, 5, bad}});
}

TEST_CASE("marking an area with the status it already has changes nothing") {
  RescueMap map(100);
  map.mark(10, 80, done);
  const RescueMap before = map;
  map.mark(20, 5, done);
  map.mark(0, 5, tried);
  map.mark(10, 80, done);
  map.mark(50, 0, bad);
  REQUIRE(map == before);
}

TEST_CASE("marks in any order give the minimal block list and exact byte counts") {
  constexpr std::size_t size = 300;
  const std::array<kcopy::RescueStatus, 5> statuses{tried, done, bad, untrimmed, unscraped};  // a copy: 2 first
  std::mt19937 random(13);
  for (int round = 0; round < 200; ++round) {
    RescueMap map(size);
    std::vector<kcopy::RescueStatus> bytes(size, tried);  // the reference: one status per byte
    for (int i = 0; i < 40; ++i) {
      const std::size_t pos = random() % size;
      const std::size_t len = 1 + random() % std::min<std::size_t>(size - pos, round % 2 ? 8 : 100);
      const auto status = statuses[random() % (round % 3 ? 2 : 5)];
      map.mark(pos, len, status);
      std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(pos), len, status);
    }
    Blocks expected;
    for (std::size_t i = 0; i < size; ++i) {
      if (expected.empty() || expected.back().status != bytes[i]) {
        expected.push_back({i, 1, bytes[i]});
      } else {
        ++expected.back().size;
      }
    }
    REQUIRE(map.blocks() == expected);
    for (const auto s : statuses) {
      REQUIRE(map.bytes_with(s) == static_cast<std::uint64_t>(std::count(bytes.begin(), bytes.end(), s)));
    }
  }
}

TEST_CASE("marking past the end of the map grows it with a non-tried gap") {
  RescueMap map(10);
  map.mark(0, 10, done);
  map.mark(20, 5, bad);
  REQUIRE(map.blocks() == Blocks{{0, 10, done}, {10, 10, tried}, {20, 5, bad}});
  RescueMap empty;
  empty.mark(0, 4, done);
  REQUIRE(empty.blocks() == Blocks{{0, 4, done}});
}

TEST_CASE("a map shorter than the source grows by a non-tried block, as ddrescue's does") {
  RescueMap map(100);
  map.mark(0, 100, done);
  map.extend_to(150);
  REQUIRE(map.blocks() == Blocks{{0, 100, done}, {100, 50, tried}});
  map.extend_to(200);
  REQUIRE(map.blocks() == Blocks{{0, 100, done}, {100, 100, tried}});
  map.extend_to(50);
  REQUIRE(map.size() == 200);
}

TEST_CASE("a map longer than the source is cut only where nothing past the source's end is finished") {
  RescueMap map(kcopy::mapfile_max_end);  // ddrescuelog's maps may reach the largest position
  map.mark(0, 100, done);
  map.mark(100, 10, bad);
  REQUIRE(map.truncate_to(150));
  REQUIRE(map.blocks() == Blocks{{0, 100, done}, {100, 10, bad}, {110, 40, tried}});
  REQUIRE(map.truncate_to(110));
  REQUIRE(map.blocks() == Blocks{{0, 100, done}, {100, 10, bad}});
  REQUIRE(map.truncate_to(105));
  REQUIRE(map.blocks() == Blocks{{0, 100, done}, {100, 5, bad}});
  const RescueMap before = map;
  REQUIRE_FALSE(map.truncate_to(99));  // the map is of a larger source
  REQUIRE(map == before);
  REQUIRE(map.truncate_to(500));
  REQUIRE(map == before);
}

TEST_CASE("a resumed copy finds the areas left to do inside its range, cut to the range") {
  const RescueMap map = parse_mapfile(ddrescue_interrupted, "m").map;
  REQUIRE(map.areas_with(tried, 0, map.size()) == Blocks{{0x2010000, 0x10000, tried}, {0x3080000, 0xF80000, tried}});
  REQUIRE(map.areas_with(untrimmed, 0, map.size()) == Blocks{{0x2000000, 0x10000, untrimmed}});
  REQUIRE(map.areas_with(tried, 0x2018000, 0x1068200) == Blocks{{0x2018000, 0x8000, tried}, {0x3080000, 0x200, tried}});
  REQUIRE(map.areas_with(done, 0x1000000, 0x200) == Blocks{{0x1000000, 0x200, done}});
  REQUIRE(map.areas_with(bad, 0, map.size()).empty());
  REQUIRE(map.areas_with(tried, map.size(), 10).empty());
  REQUIRE(map.areas_with(tried, 0x3F00000, UINT64_MAX) == Blocks{{0x3F00000, 0x100000, tried}});
}

// ---- the text ----

TEST_CASE("a mapfile that ddrescue stopped reads as its blocks and status line") {
  const auto parsed = parse_mapfile(ddrescue_interrupted, "map7");
  REQUIRE(parsed.map.blocks() == Blocks{{0x0000000, 0x2000000, done},
                                        {0x2000000, 0x0010000, untrimmed},
                                        {0x2010000, 0x0010000, tried},
                                        {0x2020000, 0x1060000, done},
                                        {0x3080000, 0x0F80000, tried}});
  REQUIRE(parsed.map.current_pos() == 0x3080000);
  REQUIRE(parsed.map.current_status() == RescuePhase::copying);
  REQUIRE(parsed.map.current_pass() == 1);
  REQUIRE(parsed.comments.empty());  // ddrescue's header only
}

TEST_CASE("a mapfile annotated by ddrescuelog reads without its comments after the fields") {
  const auto parsed = parse_mapfile(ddrescuelog_annotated, "map3");
  REQUIRE(parsed.map.blocks() == Blocks{{0x00000, 0x20000, done},
                                        {0x20000, 0x00400, bad},
                                        {0x20400, 0x3FC00, done},
                                        {0x60000, 0x00200, bad},
                                        {0x60200, 0x0FC00, unscraped},
                                        {0x6FE00, 0x00200, bad},
                                        {0x70000, 0x90000, done}});
  REQUIRE(parsed.map.current_status() == RescuePhase::finished);
  REQUIRE(parsed.map.bytes_with(bad) == 0x800);
  REQUIRE(parsed.comments.empty());
}

TEST_CASE("kcopy writes a ddrescue map byte for byte as ddrescue does, from the status line on") {
  const auto parsed = parse_mapfile(ddrescue_interrupted, "map7");
  const std::string text = kcopy::format_mapfile(parsed.map);
  REQUIRE(from_status_title(text) == from_status_title(ddrescue_interrupted));
  REQUIRE(text.starts_with(std::string("# Mapfile. Created by kcopy version ") + kcopy::version + "\n# current_pos"));
}

TEST_CASE("a map with two bad areas is written exactly as the text ddrescuelog lists those sectors of") {
  // `ddrescuelog -l- -b512` of this text prints 100 101 102 103 2000 (checked by hand
  // with ddrescuelog 1.27, as are -t and -D).
  RescueMap map(1 << 20);
  map.mark(0, 1 << 20, done);
  map.mark(100 * 512, 4 * 512, bad);
  map.mark(2000 * 512, 512, bad);
  map.set_current_status(RescuePhase::finished);
  const std::vector<std::string> comments{kcopy::mapfile_source_comment("/dev/sda", 0, 2048),
                                          kcopy::mapfile_destination_comment(1, "/tmp/with space:and#hash", 0, 2048)};
  const std::string blocks =
      "# current_pos  current_status  current_pass\n"
      "0x00000000     +               1\n"
      "#      pos        size  status\n"
      "0x00000000  0x0000C800  +\n"
      "0x0000C800  0x00000800  -\n"
      "0x0000D000  0x000ED000  +\n"
      "0x000FA000  0x00000200  -\n"
      "0x000FA200  0x00005E00  +\n";
  REQUIRE(kcopy::format_mapfile(map, comments) ==
          std::string("# Mapfile. Created by kcopy version ") + kcopy::version + "\n# kcopy source: /dev/sda:0:2048\n" +
              "# kcopy destination 1: /tmp/with space:and#hash:0:2048\n" + blocks);
}

TEST_CASE("a written map with comments reads back as the same map and the same comments") {
  RescueMap map(8ULL << 40);
  map.mark(0, 3ULL << 40, done);
  map.mark(1ULL << 40, 4096, bad);
  map.mark(5ULL << 40, 512, untrimmed);
  map.set_current_pos(3ULL << 40);
  map.set_current_status(RescuePhase::retrying);
  map.set_current_pass(3);
  const std::vector<std::string> comments{kcopy::mapfile_source_comment("/dev/sda", 0, 17179869184),
                                          kcopy::mapfile_destination_comment(1, "/dev/sdb", 2048, 17179869184),
                                          "a note with # and  two spaces"};
  const std::string text = kcopy::format_mapfile(map, comments);
  const auto parsed = parse_mapfile(text, "m");
  REQUIRE(parsed.map == map);
  REQUIRE(parsed.comments == comments);
  REQUIRE(kcopy::format_mapfile(parsed.map, parsed.comments) == text);
  REQUIRE(text.find("0x10000000000  0x00001000  -\n") != std::string::npos);  // wider than %08X: as ddrescue
}

TEST_CASE("a comment with a newline stays one comment line") {
  const std::vector<std::string> comments{"kcopy source: /tmp/a\nb:0:8"};
  const std::string text = kcopy::format_mapfile(RescueMap(4096), comments);
  REQUIRE(parse_mapfile(text, "m").comments == std::vector<std::string>{"kcopy source: /tmp/a\\nb:0:8"});
}

TEST_CASE("the identity comments name each endpoint as a command-line region with every field") {
  REQUIRE(kcopy::mapfile_source_comment("/dev/sda", 2048, 1048576) == "kcopy source: /dev/sda:2048:1048576");
  REQUIRE(kcopy::mapfile_destination_comment(2, "/dev/disk/by-path/pci-0000:00:1f.2", 0, 8) ==
          "kcopy destination 2: /dev/disk/by-path/pci-0000:00:1f.2:0:8");
}

TEST_CASE("an empty source's map is written as ddrescue writes it, and reads back empty") {
  const std::string text = kcopy::format_mapfile(RescueMap());
  REQUIRE(from_status_title(text) ==
          "# current_pos  current_status  current_pass\n"
          "0x00000000     ?               1\n"
          "#      pos        size  status\n"
          "0x00000000  0x00000000  ?\n");
  REQUIRE(parse_mapfile(text, "m").map.blocks().empty());
  REQUIRE(parse_mapfile("0 + 1\n0 0 ?\n0 0x200 +\n", "m").map.blocks() == Blocks{{0, 512, done}});
}

TEST_CASE("hand-edited mapfiles read as ddrescue reads them") {
  SECTION("an older status line without current_pass is pass 1") {
    const auto map = parse_mapfile("0x200 -\n0 0x200 +\n0x200 0x200 -\n", "m").map;
    REQUIRE(map.current_status() == RescuePhase::retrying);
    REQUIRE(map.current_pass() == 1);
  }
  SECTION("decimal, octal and lower-case hex numbers, blank lines, indents and CRLF") {
    const auto map = parse_mapfile("\r\n  1024 G 7\r\n\n\t0 01000 +\r\n512  0x0200\t? # a note\r\n", "m").map;
    REQUIRE(map.current_pos() == 1024);
    REQUIRE(map.current_status() == RescuePhase::generating);
    REQUIRE(map.current_pass() == 7);
    REQUIRE(map.blocks() == Blocks{{0, 512, done}, {512, 512, tried}});
  }
  SECTION("adjacent blocks of the same status are merged") {
    REQUIRE(parse_mapfile("0 ? 1\n0 0x200 +\n0x200 0x200 +\n", "m").map.blocks() == Blocks{{0, 1024, done}});
  }
  SECTION("a list that starts past 0 begins with a non-tried block") {
    REQUIRE(parse_mapfile("0 ? 1\n0x1000 0x1000 +\n", "m").map.blocks() ==
            Blocks{{0, 4096, tried}, {4096, 4096, done}});
  }
  SECTION("a status line alone is an empty map") {
    REQUIRE(parse_mapfile("# nothing yet\n0 ? 1\n", "m").map.blocks().empty());
  }
  SECTION("the largest position ddrescue knows is accepted") {
    REQUIRE(parse_mapfile("0 ? 1\n0 0x7FFFFFFFFFFFFFFF ?\n", "m").map.size() == kcopy::mapfile_max_end);
  }
  SECTION("comments other than the header are kept in order, wherever they are") {
    const auto parsed = parse_mapfile(
        "# Mapfile. Created by GNU ddrescue version 1.27\n# Command line: ddrescue a b m\n"
        "#kcopy source: /dev/sda:0:8\n# Finished\n0 + 1\n  # second\n# End time:     2026-01-01\n0 0x1000 +\n",
        "m");
    REQUIRE(parsed.comments == std::vector<std::string>{"kcopy source: /dev/sda:0:8", "second"});
  }
}

TEST_CASE("a corrupt mapfile is refused with its name and the line at fault") {
  struct Case {
    std::string_view text;
    std::string_view message;
  };
  const Case cases[] = {
      {"# c\n\n0x10 ?\n0 0x1x0 +\n", "mapfile 'm.map' line 4: size '0x1x0' is not a number"},
      {"0 ? 1\n0 0x100 +\n-0x100 0x100 +\n", "line 3: pos '-0x100' is not a number"},
      {"0 ? 1\n0 0x100 +\n+0x100 0x100 +\n", "line 3: pos '+0x100' is not a number"},
      {"0 ? 1\n0 08 +\n", "line 2: size '08' is not a number"},
      {"0 ? 1\n0 0x +\n", "line 2: size '0x' is not a number"},
      {"0 ? 1\n0 0x200 X\n", "line 2: unknown block status 'X' (one of ? * / - +)"},
      {"0 ? 1\n0 0x200 F\n", "line 2: unknown block status 'F'"},
      {"0 ? 1\n0 0x200 +junk\n", "line 2: unknown block status '+junk'"},
      {"0 ? 1\n0 0x200 + junk\n", "line 2: a block line should be 'pos size status', not 4 field(s)"},
      {"0 ? 1\n0 0x200\n", "line 2: a block line should be 'pos size status', not 2 field(s)"},
      {"0 ? 1\n0 0x200 +\n0x400 0x200 -\n",
       "line 3: the block starts at 0x00000400, not where the previous one ends (0x00000200)"},
      {"0 ? 1\n0 0x200 +\n0x100 0x200 -\n", "line 3: the block starts at 0x00000100, not where"},
      {"0 ? 1\n0 0x200 +\n0x200 0 -\n", "line 3: the block at 0x00000200 has size zero"},
      {"0 ? 1\n0 0x7FFFFFFFFFFFFFFF +\n0x7FFFFFFFFFFFFFFF 1 -\n", "line 3: the block at 0x7FFFFFFFFFFFFFFF ends past"},
      {"0 ? 1\n0 0x8000000000000000 +\n",
       "line 2: size '0x8000000000000000' is too large (at most 0x7FFFFFFFFFFFFFFF)"},
      {"0 ? 1\n0 99999999999999999999999 +\n", "line 2: size '99999999999999999999999' is too large"},
      {"0 X 1\n", "line 1: unknown current_status 'X' (one of ? * / - F G +)"},
      {"0 ? 0\n", "line 1: current_pass '0' is not a decimal number from 1"},
      {"0 ? 0x1\n", "line 1: current_pass '0x1' is not a decimal number from 1"},
      {"0\n", "line 1: the status line should be 'current_pos current_status current_pass', not 1 field(s)"},
      {"# a\n0 ? 1 2\n", "line 2: the status line should be"},
      {"\177ELF\001\n", "line 1: the status line should be"},
      {"# only comments\n\n", "mapfile 'm.map' has no status line"},
      {"", "mapfile 'm.map' has no status line"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    REQUIRE_THAT(parse_error(c.text), Catch::Contains(std::string(c.message)));
  }
}

TEST_CASE("a bad name or field in a message cannot break the message's line") {
  REQUIRE_THAT(parse_error("0 ? 1\n0 0x200 \x1b[2J\n"), Catch::Contains("unknown block status '\\x1b[2J'"));
  try {
    parse_mapfile("", "a\nb");
    FAIL("no error");
  } catch (const kcopy::Error& e) {
    REQUIRE(std::string(e.what()) == "mapfile 'a\\nb' has no status line");
  }
}

// ---- the file ----

TEST_CASE("a missing mapfile means a new rescue; an unreadable one is an error") {
  const TempDir dir;
  REQUIRE_FALSE(kcopy::read_mapfile_text(dir / "none").has_value());
  REQUIRE_THROWS_WITH(kcopy::read_mapfile_text(dir.path.string()),
                      Catch::Contains("cannot read mapfile '" + dir.path.string() + "': not a regular file"));
  std::ofstream(dir / "file") << "0 ? 1\n";
  REQUIRE(kcopy::read_mapfile_text(dir / "file") == "0 ? 1\n");
  REQUIRE_THROWS_WITH(kcopy::read_mapfile_text(dir / "file/map"), Catch::Contains("Not a directory"));
}

TEST_CASE("a mapfile is replaced whole, keeps its mode, and leaves no temporary file") {
  const TempDir dir;
  const std::string path = dir / "map";
  kcopy::write_file_atomically(path, "first\n");
  REQUIRE(slurp(path) == "first\n");
  REQUIRE(::chmod(path.c_str(), 0604) == 0);
  const std::string big(3 << 20, 'x');  // more than one write() may take
  kcopy::write_file_atomically(path, big);
  REQUIRE(slurp(path) == big);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0604);
  REQUIRE(std::distance(std::filesystem::directory_iterator(dir.path), {}) == 1);
}

TEST_CASE("a mapfile that cannot be written is an error that changes nothing") {
  const TempDir dir;
  REQUIRE_THROWS_WITH(kcopy::write_file_atomically(dir / "no/map", "x"),
                      Catch::StartsWith("cannot write '" + (dir / "no/map") + "': cannot create '") &&
                          Catch::EndsWith("No such file or directory"));
  std::filesystem::create_directory(dir / "a directory");
  REQUIRE_THROWS_WITH(kcopy::write_file_atomically(dir / "a directory", "x"),
                      Catch::Contains(": renaming '" + (dir / "a directory") + ".kcopy-"));
  REQUIRE(std::filesystem::is_directory(dir / "a directory"));
  REQUIRE(std::distance(std::filesystem::directory_iterator(dir.path), {}) == 1);  // no temporary file left
}
