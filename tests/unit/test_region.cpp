// What users type as SOURCE/DEST regions and sizes, and what they get back.

#include <catch2/catch.hpp>
#include <initializer_list>
#include <set>
#include <string>

#include "kcopy/error.hpp"
#include "kcopy/region.hpp"

using Catch::Contains;
using kcopy::parse_bytes;
using kcopy::parse_region;
using kcopy::parse_sectors;
using kcopy::RegionArg;

namespace {

// A file system holding exactly `paths`.
kcopy::PathExists files(std::initializer_list<std::string> paths) {
  return [set = std::set<std::string>(paths)](const std::string& p) { return set.count(p) > 0; };
}

RegionArg src(std::string_view arg, std::initializer_list<std::string> existing = {}) {
  return parse_region(arg, "source", files(existing));
}

RegionArg dst(std::string_view arg, std::initializer_list<std::string> existing = {}) {
  return parse_region(arg, "destination 1", files(existing));
}

std::uint64_t sectors(std::string_view text) { return parse_sectors(text, "SIZE"); }

constexpr std::uint64_t max_sectors = (~0ULL) >> 9;  // the last whose bytes fit in 64 bits

}  // namespace

// ---- PATH, SECTOR, COUNT ----------------------------------------------------------------

TEST_CASE("a bare path has no sector and no count, so the defaults apply") {
  const RegionArg r = src("disk.img", {"disk.img"});
  CHECK(r.path == "disk.img");
  CHECK_FALSE(r.sector);
  CHECK_FALSE(r.count);
}

TEST_CASE("a bare path that does not exist yet is still a path (a new destination image)") {
  const RegionArg r = dst("new.img");
  CHECK(r.path == "new.img");
  CHECK_FALSE(r.sector);
  CHECK_FALSE(r.count);
}

TEST_CASE("one field is the start sector; the count stays default") {
  const RegionArg r = src("/dev/sdb:2048", {"/dev/sdb"});
  CHECK(r.path == "/dev/sdb");
  CHECK(r.sector == 2048u);
  CHECK_FALSE(r.count);
}

TEST_CASE("two fields are the start sector and the count") {
  const RegionArg r = src("/dev/sdb:2048:8", {"/dev/sdb"});
  CHECK(r.path == "/dev/sdb");
  CHECK(r.sector == 2048u);
  CHECK(r.count == 8u);
}

TEST_CASE("fields split off a destination image that does not exist yet") {
  const RegionArg r = dst("backup.img:100:50");
  CHECK(r.path == "backup.img");
  CHECK(r.sector == 100u);
  CHECK(r.count == 50u);
}

TEST_CASE("sector 0 is allowed") {
  CHECK(src("d:0", {"d"}).sector == 0u);
  CHECK(src("d:0:1", {"d"}).sector == 0u);
}

TEST_CASE("a relative path and a path with dots are kept whole") {
  CHECK(src("./img.v2.raw:7", {"./img.v2.raw"}).path == "./img.v2.raw");
  CHECK(src("../x/y.img:7:1").path == "../x/y.img");
}

// ---- paths containing ':' ---------------------------------------------------------------

TEST_CASE("an existing path with colons is a bare path, even when it ends in numbers") {
  const std::string p = "/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0";
  const RegionArg r = src(p, {p});
  CHECK(r.path == p);
  CHECK_FALSE(r.sector);
  CHECK_FALSE(r.count);
}

TEST_CASE("a by-path name with colons keeps its colons and yields sector and count") {
  const std::string p = "/dev/disk/by-path/pci-0000:00:1f.2-ata-1";
  const RegionArg r = src(p + ":2048:8", {p});
  CHECK(r.path == p);
  CHECK(r.sector == 2048u);
  CHECK(r.count == 8u);
}

TEST_CASE("a by-path name ending in numbers keeps them when one field follows") {
  const std::string p = "/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0";
  const RegionArg r = src(p + ":2048", {p});
  CHECK(r.path == p);
  CHECK(r.sector == 2048u);
  CHECK_FALSE(r.count);
}

TEST_CASE("a by-path name ending in numbers keeps them when two fields follow") {
  const std::string p = "/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0";
  const RegionArg r = src(p + ":2048:8", {p});
  CHECK(r.path == p);
  CHECK(r.sector == 2048u);
  CHECK(r.count == 8u);
}

TEST_CASE("when two readings name existing files, the longest path wins") {
  const RegionArg r = src("a:5:7", {"a", "a:5"});
  CHECK(r.path == "a:5");
  CHECK(r.sector == 7u);
  CHECK_FALSE(r.count);
}

TEST_CASE("a missing by-path-like name whose last part is a word is one path") {
  const RegionArg r = dst("nbd-host:export");
  CHECK(r.path == "nbd-host:export");
  CHECK_FALSE(r.sector);
}

TEST_CASE("a missing name with a word after its numeric fields keeps all of them as path") {
  const RegionArg r = dst("img:5:abc");
  CHECK(r.path == "img:5:abc");
  CHECK_FALSE(r.sector);
}

TEST_CASE("a word before the numeric fields stays in the path") {
  const RegionArg r = dst("host:export:10:2");
  CHECK(r.path == "host:export");
  CHECK(r.sector == 10u);
  CHECK(r.count == 2u);
}

TEST_CASE("a missing path followed by three numbers is an error, not a new file named 'new.img:1'") {
  REQUIRE_THROWS_WITH(dst("new.img:1:2:8"), Contains("too many ':' fields") && Contains("'new.img:1'"));
  REQUIRE_THROWS_WITH(dst("a:0x10:2:3"), Contains("too many ':' fields"));
}

TEST_CASE("an existing path ending in a number still takes two fields") {
  const RegionArg r = dst("a:1:2:3", {"a:1"});
  CHECK(r.path == "a:1");
  CHECK(r.sector == 2u);
  CHECK(r.count == 3u);
}

TEST_CASE("a missing by-path name is reported, not split into a bogus path") {
  REQUIRE_THROWS_WITH(src("/dev/disk/by-path/pci-0000:00:1f.2-ata-1"),
                      Contains("COUNT '1f.2-ata-1' is not a number") && Contains("; and no file has the whole name"));
}

TEST_CASE("the note about the whole name is left out when the path exists or the field is a number") {
  REQUIRE_THROWS_WITH(src("disk.img:12x", {"disk.img"}), !Contains("whole name"));
  REQUIRE_THROWS_WITH(dst("new.img:1.5K"), !Contains("whole name"));
  REQUIRE_THROWS_WITH(dst("new.img:-5"), !Contains("whole name"));
}

TEST_CASE("img:00:1f.2 with nothing existing is an error about the malformed last field") {
  REQUIRE_THROWS_WITH(dst("img:00:1f.2"), Contains("destination 1 'img:00:1f.2': COUNT '1f.2'"));
}

TEST_CASE("img:00:1f.2 with img:00 existing is an error about its SECTOR") {
  REQUIRE_THROWS_WITH(dst("img:00:1f.2", {"img:00"}), Contains("SECTOR '1f.2' is not a number"));
}

TEST_CASE("img:00:1f.2 existing as a whole is a bare path") {
  CHECK(dst("img:00:1f.2", {"img:00:1f.2"}).path == "img:00:1f.2");
}

TEST_CASE("a word after an existing path is an error, not a new file name") {
  REQUIRE_THROWS_WITH(dst("disk.img:abc", {"disk.img"}),
                      Contains("destination 1 'disk.img:abc': SECTOR 'abc' is not a number"));
}

TEST_CASE("a word as COUNT after an existing path is an error") {
  REQUIRE_THROWS_WITH(src("disk.img:8:all", {"disk.img"}), Contains("COUNT 'all' is not a number"));
}

// ---- empty parts ------------------------------------------------------------------------

TEST_CASE("an empty argument is an error") { REQUIRE_THROWS_WITH(src(""), Contains("source '': empty PATH")); }

TEST_CASE("an empty path before the fields is an error") {
  REQUIRE_THROWS_WITH(src(":2048"), Contains("source ':2048': empty PATH"));
  REQUIRE_THROWS_WITH(src(":2048:8"), Contains("empty PATH"));
}

TEST_CASE("a trailing colon is an empty SECTOR field") {
  REQUIRE_THROWS_WITH(dst("disk:"), Contains("destination 1 'disk:': empty SECTOR field"));
  REQUIRE_THROWS_WITH(dst("disk:", {"disk"}), Contains("empty SECTOR field"));
}

TEST_CASE("two colons with a count is an empty SECTOR field") {
  REQUIRE_THROWS_WITH(dst("disk::8"), Contains("'disk::8': empty SECTOR field"));
  REQUIRE_THROWS_WITH(dst("disk::8", {"disk"}), Contains("empty SECTOR field"));
}

TEST_CASE("a trailing colon after a sector is an empty COUNT field") {
  REQUIRE_THROWS_WITH(src("disk:2048:"), Contains("source 'disk:2048:': empty COUNT field"));
  REQUIRE_THROWS_WITH(src("disk:2048:", {"disk"}), Contains("empty COUNT field"));
}

TEST_CASE("only colons is an error") {
  REQUIRE_THROWS_AS(src("::"), kcopy::Error);
  REQUIRE_THROWS_AS(src(":"), kcopy::Error);
}

// ---- malformed fields -------------------------------------------------------------------

TEST_CASE("trailing garbage after a sector names the role, the argument and the field") {
  REQUIRE_THROWS_WITH(src("disk.img:12x", {"disk.img"}),
                      "source 'disk.img:12x': SECTOR '12x' is not a number (decimal or 0x hex, "
                      "optional suffix s, K, KiB, M, MiB, G, GiB, T, TiB)");
}

TEST_CASE("trailing garbage is an error even when the path does not exist yet") {
  REQUIRE_THROWS_WITH(dst("new.img:12x"), Contains("SECTOR '12x' is not a number"));
  REQUIRE_THROWS_WITH(dst("new.img:8:12x"), Contains("COUNT '12x' is not a number"));
}

TEST_CASE("trailing garbage after a count is an error") {
  REQUIRE_THROWS_WITH(src("d:0:8q", {"d"}), Contains("COUNT '8q' is not a number"));
}

TEST_CASE("a negative sector is an error") {
  REQUIRE_THROWS_WITH(src("d:-5", {"d"}), Contains("source 'd:-5': SECTOR '-5' is negative"));
  REQUIRE_THROWS_WITH(dst("new:-5"), Contains("SECTOR '-5' is negative"));
}

TEST_CASE("a negative count is an error") {
  REQUIRE_THROWS_WITH(src("d:0:-1", {"d"}), Contains("COUNT '-1' is negative"));
}

TEST_CASE("a leading plus is an error") {
  REQUIRE_THROWS_WITH(src("d:+5", {"d"}), Contains("SECTOR '+5' is not a number"));
  REQUIRE_THROWS_WITH(dst("new:+5"), Contains("SECTOR '+5' is not a number"));
}

TEST_CASE("blanks around a field are an error") {
  REQUIRE_THROWS_WITH(src("d: 5", {"d"}), Contains("SECTOR ' 5' is not a number"));
  REQUIRE_THROWS_WITH(src("d:5 ", {"d"}), Contains("SECTOR '5 ' is not a number"));
  REQUIRE_THROWS_WITH(dst("new:5:\t8"), Contains("COUNT '\t8' is not a number"));
}

TEST_CASE("a fraction is an error, never rounded") {
  REQUIRE_THROWS_WITH(src("d:1.5K", {"d"}), Contains("SECTOR '1.5K' has a fraction"));
  REQUIRE_THROWS_WITH(src("d:0:2.5", {"d"}), Contains("COUNT '2.5' has a fraction"));
}

TEST_CASE("a fraction's hint is the size typed, written whole in a smaller unit") {
  const std::string smaller = " has a fraction; write a whole number in a smaller unit: ";
  REQUIRE_THROWS_WITH(parse_bytes("1.5K", "--io-size"), "--io-size '1.5K'" + smaller + "3s or 1536, not 1.5K");
  REQUIRE_THROWS_WITH(parse_bytes("0.5K", "--io-size"), "--io-size '0.5K'" + smaller + "1s or 512, not 0.5K");
  REQUIRE_THROWS_WITH(parse_bytes("1.5M", "--io-size"), "--io-size '1.5M'" + smaller + "1536K, not 1.5M");
  REQUIRE_THROWS_WITH(parse_bytes("1.250G", "--io-size"), "--io-size '1.250G'" + smaller + "1280M, not 1.250G");
  REQUIRE_THROWS_WITH(parse_bytes("1.3K", "--io-size"),
                      "--io-size '1.3K' has a fraction and is not a whole number of bytes");
  REQUIRE_THROWS_WITH(src("d:1.5K", {"d"}), Contains("SECTOR '1.5K'" + smaller + "3s, not 1.5K"));
  REQUIRE_THROWS_WITH(sectors("1.5"),
                      "SIZE '1.5' has a fraction: it is 768 bytes, not a whole number of 512-byte sectors");
}

TEST_CASE("0x with no digits is an error") {
  REQUIRE_THROWS_WITH(src("d:0x", {"d"}), Contains("SECTOR '0x' has no hex digits after 0x"));
  REQUIRE_THROWS_WITH(src("d:0xK", {"d"}), Contains("SECTOR '0xK' has no hex digits"));
}

TEST_CASE("count 0 is an error") {
  REQUIRE_THROWS_WITH(src("d:0:0", {"d"}), "source 'd:0:0': COUNT must be at least 1 sector");
  REQUIRE_THROWS_WITH(dst("new:5:0x0"), Contains("COUNT must be at least 1 sector"));
  REQUIRE_THROWS_WITH(dst("new:5:0K"), Contains("COUNT must be at least 1 sector"));
}

TEST_CASE("error messages are one line") {
  try {
    src("/dev/disk/by-path/pci-0000:00:1f.2-ata-1");
    FAIL("no error");
  } catch (const kcopy::Error& e) {
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
}

TEST_CASE("a newline or other control character in an argument is escaped: still one line") {
  // Found by tests/fuzz: the text was quoted verbatim, and main prints what() as it is.
  REQUIRE_THROWS_WITH(dst("new.img\n:12x"), Contains("destination 1 'new.img\\n:12x': SECTOR '12x' is not a number"));
  REQUIRE_THROWS_WITH(src("d:1\n", {"d"}), Contains("source 'd:1\\n': SECTOR '1\\n' is not"));
  REQUIRE_THROWS_WITH(src("d:\r\x1b[2K5", {"d"}), Contains("SECTOR '\\r\\x1b[2K5' is not"));
  REQUIRE_THROWS_WITH(parse_sectors("\n", "--count"),
                      "--count '\\n' is not a number (decimal "
                      "or 0x hex, optional suffix s, K, KiB, M, "
                      "MiB, G, GiB, T, TiB)");
  REQUIRE_THROWS_WITH(parse_bytes("1\n", "--io-size"), Contains("--io-size '1\\n' is not"));
}

// ---- overflow ---------------------------------------------------------------------------

TEST_CASE("a sector past 64 bits is too large") {
  REQUIRE_THROWS_WITH(src("d:99999999999999999999", {"d"}), Contains("SECTOR '99999999999999999999' is too large"));
}

TEST_CASE("a sector whose byte offset does not fit in 64 bits is too large") {
  REQUIRE_THROWS_WITH(src("d:0x80000000000000", {"d"}), Contains("is too large"));
  REQUIRE_THROWS_WITH(src("d:0xffffffffffffffff", {"d"}), Contains("is too large"));
}

TEST_CASE("the largest sector whose bytes fit in 64 bits is accepted") {
  CHECK(src("d:0x7fffffffffffff", {"d"}).sector == max_sectors);
}

TEST_CASE("a count past 64 bits is too large") {
  REQUIRE_THROWS_WITH(src("d:0:18446744073709551616", {"d"}), Contains("COUNT '"));
  REQUIRE_THROWS_WITH(src("d:0:18446744073709551616", {"d"}), Contains("is too large"));
}

TEST_CASE("a byte size past 64 bits is too large") {
  REQUIRE_THROWS_WITH(src("d:20000000T", {"d"}), Contains("SECTOR '20000000T' is too large"));
  REQUIRE_THROWS_WITH(src("d:0:0xffffffffffffffffK", {"d"}), Contains("COUNT '0xffffffffffffffffK' is too large"));
  REQUIRE_THROWS_WITH(src("d:16777216T", {"d"}), Contains("is too large"));
}

TEST_CASE("a region ending at 2^64 bytes or beyond is an error") {
  REQUIRE_THROWS_WITH(src("d:0x7fffffffffffff:1", {"d"}),
                      Contains("source 'd:0x7fffffffffffff:1': SECTOR + COUNT is too large"));
  REQUIRE_THROWS_WITH(src("d:0x40000000000000:0x40000000000000", {"d"}), Contains("SECTOR + COUNT is too large"));
}

TEST_CASE("a region ending just below 2^64 bytes is accepted") {
  const RegionArg r = src("d:0x7ffffffffffffe:1", {"d"});
  CHECK(r.sector == max_sectors - 1);
  CHECK(r.count == 1u);
  CHECK(src("d:0:0x7fffffffffffff", {"d"}).count == max_sectors);
}

// ---- the number grammar -----------------------------------------------------------------

TEST_CASE("a plain number is sectors") {
  CHECK(sectors("0") == 0);
  CHECK(sectors("1") == 1);
  CHECK(sectors("2048") == 2048);
}

TEST_CASE("leading zeros are decimal, not octal") {
  CHECK(sectors("010") == 10);
  CHECK(sectors("00") == 0);
}

TEST_CASE("hex with 0x or 0X, either case of digits") {
  CHECK(sectors("0x10") == 16);
  CHECK(sectors("0X10") == 16);
  CHECK(sectors("0xfF") == 255);
  CHECK(src("d:0x800:0x8", {"d"}).sector == 2048u);
}

TEST_CASE("the s suffix means sectors") {
  CHECK(sectors("8s") == 8);
  CHECK(sectors("0x10s") == 16);
}

TEST_CASE("1K is two sectors") {
  CHECK(sectors("1K") == 2);
  CHECK(sectors("1KiB") == 2);
}

TEST_CASE("every byte suffix is a power of 1024") {
  CHECK(sectors("3K") == 3 * 2);
  CHECK(sectors("1M") == 2048);
  CHECK(sectors("1MiB") == 2048);
  CHECK(sectors("1G") == 2048ULL * 1024);
  CHECK(sectors("1GiB") == 2048ULL * 1024);
  CHECK(sectors("1T") == 2048ULL * 1024 * 1024);
  CHECK(sectors("1TiB") == 2048ULL * 1024 * 1024);
  CHECK(sectors("0x10M") == 16 * 2048);
}

TEST_CASE("suffixes work in region fields") {
  const RegionArg r = src("d:1M:4K", {"d"});
  CHECK(r.sector == 2048u);
  CHECK(r.count == 8u);
}

TEST_CASE("the largest byte size that fits in 64 bits is accepted") {
  CHECK(sectors("16777215T") == 16777215ULL << 31);
}

TEST_CASE("a byte size that is not whole sectors is an error") {
  // Every suffix is a multiple of 1 KiB, so only a fraction could make part of a sector,
  // and fractions are refused outright rather than rounded.
  REQUIRE_THROWS_WITH(sectors("0.25K"), Contains("has a fraction"));
  REQUIRE_THROWS_WITH(sectors("1.5M"), Contains("has a fraction"));
}

TEST_CASE("unknown or miscased suffixes are errors that list the valid ones") {
  for (const char* bad : {"1k", "1KB", "1kib", "1m", "1S", "1B", "1Ki", "1 K", "1Ks", "1ss"}) {
    INFO(bad);
    REQUIRE_THROWS_WITH(sectors(bad), Contains("is not a number (decimal or 0x hex, optional "
                                               "suffix s, K, KiB, M, MiB, G, GiB, T, TiB)"));
  }
}

TEST_CASE("a size names what it is for and the text") {
  REQUIRE_THROWS_WITH(parse_sectors("x", "--count"), Contains("--count 'x' is not a number"));
  REQUIRE_THROWS_WITH(parse_sectors("", "--count"), "--count '' is empty");
}

TEST_CASE("other number forms are errors") {
  for (const char* bad :
       {"", "-", "+", "-0", "+0", "0b101", "1e3", "0o7", "x10", "0x1g", "00x5", "1_000", "1,000", " ", "K"}) {
    INFO(bad);
    REQUIRE_THROWS_AS(sectors(bad), kcopy::Error);
  }
}

// ---- parse_bytes (--io-size) ------------------------------------------------------------

TEST_CASE("io-size: a plain number is bytes") {
  CHECK(parse_bytes("4096", "--io-size") == 4096);
  CHECK(parse_bytes("1000", "--io-size") == 1000);  // alignment is the caller's rule
  CHECK(parse_bytes("0", "--io-size") == 0);
}

TEST_CASE("io-size: the s suffix is sectors of 512 bytes") {
  CHECK(parse_bytes("1s", "--io-size") == 512);
  CHECK(parse_bytes("1024s", "--io-size") == 512 * 1024);
}

TEST_CASE("io-size: K, M, G, T are powers of 1024 bytes") {
  CHECK(parse_bytes("512K", "--io-size") == 512 * 1024);
  CHECK(parse_bytes("512KiB", "--io-size") == 512 * 1024);
  CHECK(parse_bytes("1M", "--io-size") == 1 << 20);
  CHECK(parse_bytes("1MiB", "--io-size") == 1 << 20);
  CHECK(parse_bytes("2G", "--io-size") == 2ULL << 30);
  CHECK(parse_bytes("2GiB", "--io-size") == 2ULL << 30);
  CHECK(parse_bytes("1T", "--io-size") == 1ULL << 40);
  CHECK(parse_bytes("1TiB", "--io-size") == 1ULL << 40);
}

TEST_CASE("io-size: hex") {
  CHECK(parse_bytes("0x1000", "--io-size") == 4096);
  CHECK(parse_bytes("0x80K", "--io-size") == 128 * 1024);
}

TEST_CASE("io-size: the whole 64-bit byte range is accepted and no more") {
  CHECK(parse_bytes("18446744073709551615", "--io-size") == ~0ULL);
  CHECK(parse_bytes("0xffffffffffffffff", "--io-size") == ~0ULL);
  CHECK(parse_bytes("0x7fffffffffffffs", "--io-size") == ~0ULL - 511);
  REQUIRE_THROWS_WITH(parse_bytes("18446744073709551616", "--io-size"),
                      "--io-size '18446744073709551616' is too large (2^64 bytes or more)");
  REQUIRE_THROWS_WITH(parse_bytes("0x80000000000000s", "--io-size"), Contains("is too large"));
  REQUIRE_THROWS_WITH(parse_bytes("16777216T", "--io-size"), Contains("is too large"));
}

TEST_CASE("io-size: bad forms name the option and the text") {
  REQUIRE_THROWS_WITH(parse_bytes("512x", "--io-size"), Contains("--io-size '512x' is not a number"));
  REQUIRE_THROWS_WITH(parse_bytes("-1", "--io-size"), "--io-size '-1' is negative");
  REQUIRE_THROWS_WITH(parse_bytes("+1", "--io-size"), Contains("--io-size '+1' is not a number"));
  REQUIRE_THROWS_WITH(parse_bytes(" 1", "--io-size"), Contains("is not a number"));
  REQUIRE_THROWS_WITH(parse_bytes("0.5M", "--io-size"), Contains("--io-size '0.5M' has a fraction"));
  REQUIRE_THROWS_WITH(parse_bytes("0x", "--io-size"), Contains("has no hex digits after 0x"));
  REQUIRE_THROWS_WITH(parse_bytes("", "--io-size"), "--io-size '' is empty");
}

TEST_CASE("region: an NBD URI is recognised before any file lookup, its fields split after its path or query") {
  const kcopy::PathExists never_asked = [](const std::string& p) -> bool {
    FAIL("exists() asked about " << p);
    return false;
  };
  RegionArg r = parse_region("nbd://host:10809/disk:2048:1G", "source", never_asked);
  CHECK(r.nbd);
  CHECK(r.path == "nbd://host:10809/disk");
  CHECK(r.sector == 2048u);
  CHECK(r.count == 2097152u);
  r = parse_region("nbd+unix:///?socket=/tmp/s.sock:8", "destination 1", never_asked);
  CHECK(r.path == "nbd+unix:///?socket=/tmp/s.sock");
  CHECK(r.sector == 8u);
  CHECK_FALSE(r.count);
  r = parse_region("nbd://host:10809", "source", never_asked);  // HOST:PORT is never a field
  CHECK(r.path == "nbd://host:10809");
  CHECK_FALSE(r.sector);
  CHECK_FALSE(parse_region("nbd:2048", "source", [](const std::string&) { return false; }).nbd);  // a file "nbd"
}

TEST_CASE("region: errors in an NBD region name the URI without its secrets") {
  const kcopy::PathExists none = [](const std::string&) { return false; };
  REQUIRE_THROWS_WITH(parse_region("nbd+unix:///?socket=/s&password=hunter2:0:0", "source", none),
                      Contains("COUNT must be at least 1") && !Contains("hunter2"));
  REQUIRE_THROWS_WITH(parse_region("nbd://user:hunter2@host/disk:1x", "destination 2", none),
                      Contains("destination 2") && Contains("SECTOR '1x'") && !Contains("hunter2"));
}
