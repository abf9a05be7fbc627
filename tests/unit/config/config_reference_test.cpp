// The README's configuration reference is generated from the key declarations: this test fails
// when the two differ. To regenerate the README's region after changing a declaration:
//   MDEC_UPDATE_README=1 build/test/tests/mdec_unit_tests --gtest_filter='ConfigReference.*'
// then review the diff of README.md.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "mdecollect/config/config.h"
#include "support/files.h"

namespace mdec::config {
namespace {

constexpr std::string_view kBegin = "<!-- BEGIN GENERATED CONFIG REFERENCE";
constexpr std::string_view kEnd = "<!-- END GENERATED CONFIG REFERENCE -->";

using mdec::testing::readFile;

TEST(ConfigReference, ReadmeMatchesTheDeclarations) {
  const std::string readme_path = MDEC_README;
  std::string readme = readFile(readme_path);
  ASSERT_FALSE(readme.empty()) << "cannot read " << readme_path;
  const std::size_t begin = readme.find(kBegin);
  ASSERT_NE(begin, std::string::npos) << "no '" << kBegin << "' marker in " << readme_path;
  const std::size_t start = readme.find('\n', begin);
  ASSERT_NE(start, std::string::npos);
  const std::size_t end = readme.find(kEnd, start);
  ASSERT_NE(end, std::string::npos) << "no '" << kEnd << "' marker in " << readme_path;

  const std::string expected = "\n" + referenceMarkdown();
  const std::string actual = readme.substr(start, end - start);
  if (actual != expected && std::getenv("MDEC_UPDATE_README") != nullptr) {
    readme.replace(start, end - start, expected);
    mdec::testing::writeFile(readme_path, readme);
    GTEST_SKIP() << "rewrote the reference in " << readme_path << ": review the diff";
  }
  EXPECT_EQ(actual, expected)
      << "README.md's configuration reference differs from the declarations in "
         "src/lib/config/config.cpp; regenerate it with\n"
         "  MDEC_UPDATE_README=1 build/test/tests/mdec_unit_tests "
         "--gtest_filter='ConfigReference.*'";
}

// Every key check-config prints is in the reference, nested sections under their path.
TEST(ConfigReference, NamesEveryKey) {
  const std::string reference = referenceMarkdown();
  for (const char* key : {"`state_dir`",
                          "`max_spool_bytes`",
                          "`logging`",
                          "`http`",
                          "`tracing`",
                          "`sources`",
                          "`outputs`",
                          "`level`",
                          "`format`",
                          "`listen`",
                          "`max_body_bytes`",
                          "`keep_files`",
                          "`name`",
                          "`type`",
                          "`tenant_id`",
                          "`client_secret` / `client_secret_file`",
                          "`service_sources`",
                          "`page_size`",
                          "`ssl.certificate_authorities`",
                          "`ssl.verification_mode`",
                          "`paths`",
                          "`tags`",
                          "`namespace`",
                          "`file`",
                          "`stdout`",
                          "`elasticsearch`",
                          "`hosts`",
                          "`api_key` / `api_key_file`",
                          "`password` / `password_file`",
                          "`ilm_policy`"}) {
    EXPECT_NE(reference.find("| " + std::string(key) + " |"), std::string::npos)
        << key << " not in:\n"
        << reference;
  }
  for (const char* section : {"`logging`", "`http`", "`tracing`", "`sources`", "`outputs`",
                              "`outputs.file`", "`outputs.stdout`", "`outputs.elasticsearch`"}) {
    EXPECT_NE(reference.find("### " + std::string(section) + "\n"), std::string::npos)
        << section << " has no section in:\n"
        << reference;
  }
  // Bounds and type-specific defaults come from the declarations too.
  EXPECT_NE(reference.find("integer 1–10000 (graph: at most 1000)"), std::string::npos)
      << reference;
  EXPECT_NE(reference.find("`100` (graph: `150`)"), std::string::npos) << reference;
  EXPECT_NE(reference.find("size, at least `4KiB`"), std::string::npos) << reference;
  EXPECT_NE(reference.find("`debug`, `info`, `warn` or `error`"), std::string::npos) << reference;
}

}  // namespace
}  // namespace mdec::config
