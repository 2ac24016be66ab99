// A mapfile is one run's, and its identity comments name files, not spellings.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "kcopy/error.hpp"
#include "kcopy/mapfile_identity.hpp"
#include "kcopy/mapfile_lock.hpp"

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "kcopy-identity-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace

TEST_CASE("two spellings of one NBD export have one canonical form") {
  using kcopy::canonical_nbd_uri;
  CHECK(canonical_nbd_uri("NBD://Server.Example:10809/disk") == "nbd://server.example/disk");
  CHECK(canonical_nbd_uri("nbd://host") == canonical_nbd_uri("nbd://host:/"));
  CHECK(canonical_nbd_uri("nbds://[::1]:10809/x?tls-certificates=/etc/pki") ==
        "nbds://[::1]/x?tls-certificates=/etc/pki");
  CHECK(canonical_nbd_uri("nbd://host:10810/x") == "nbd://host:10810/x");  // another port, another server
  CHECK(canonical_nbd_uri("nbd://user:\u2026@Host/x") == "nbd://user:\u2026@host/x");
  CHECK(canonical_nbd_uri("nbd+unix:///disk?socket=/tmp/S.sock") == "nbd+unix:///disk?socket=/tmp/S.sock");
}

TEST_CASE("the identity comments of a mapfile are those its parser gives, wherever they stand") {
  const TempDir dir;
  std::ofstream(dir / "map") << "# Mapfile. Created by kcopy version 0.1.0\n"
                                "# kcopy source: s.img:0:8\n"
                                "\t# kcopy destination 1: d.img:0:8  \n"
                                "# a comment of the user's\n"
                                "0x0 ? 1\n"
                                "# kcopy destination 2: late.img:0:8\n"
                                "0x0 0x1000 ?\n";
  // As parse_mapfile takes them (and MapfileCopy compares them): indented, trailing blanks
  // dropped, the user's own comment left out; one after the status line counts too.
  CHECK(kcopy::read_mapfile_identity(dir / "map") == std::vector<std::string>{"kcopy source: s.img:0:8",
                                                                              "kcopy destination 1: d.img:0:8",
                                                                              "kcopy destination 2: late.img:0:8"});
  CHECK(kcopy::read_mapfile_identity(dir / "none").empty());
  CHECK_THROWS_WITH(kcopy::read_mapfile_identity(dir.path.string()), Catch::Contains("not a regular file"));
}

TEST_CASE("a second lock on one mapfile is refused under any spelling and the lock file goes with the lock") {
  const TempDir dir;
  const std::string map = dir / "m.map";
  {
    const kcopy::MapfileLock held = kcopy::MapfileLock::acquire(map, false);
    REQUIRE(held.held());
    CHECK(std::filesystem::exists(map + ".lock"));
    CHECK_THROWS_WITH(kcopy::MapfileLock::acquire(dir / "./m.map", false),
                      Catch::Contains("is in use by another kcopy run"));
    CHECK_THROWS_WITH(kcopy::MapfileLock::acquire(map, true), Catch::Contains("is in use by another kcopy run"));
  }
  CHECK_FALSE(std::filesystem::exists(map + ".lock"));
  const kcopy::MapfileLock dry = kcopy::MapfileLock::acquire(map, true);  // creates nothing
  CHECK_FALSE(dry.held());
  CHECK_FALSE(std::filesystem::exists(map + ".lock"));
  CHECK_THROWS_WITH(kcopy::MapfileLock::acquire(dir / "no/m.map", false),
                    Catch::Contains("cannot lock mapfile '" + (dir / "no/m.map") + "'"));
}
