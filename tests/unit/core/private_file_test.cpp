// openPrivateFile: new files are 0600 whatever the umask, existing ones are tightened, and
// what is not a regular file is left as it is.
#include "mdecollect/core/private_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "support/scoped_umask.h"
#include "support/temp_dir.h"

namespace mdec::core {
namespace {

using mdec::testing::permissionsOf;
using mdec::testing::ScopedUmask;
using mdec::testing::TempDir;

TEST(PrivateFileTest, ANewFileIsPrivateWhateverTheUmask) {
  TempDir tmp;
  for (const mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0277}}) {
    ScopedUmask umask(mask);
    const std::string path = tmp.sub("new-" + std::to_string(mask));
    auto file = openPrivateFile(path, O_WRONLY | O_CREAT | O_APPEND);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_TRUE(file->created);
    EXPECT_EQ(permissionsOf(path.c_str()), 0600) << "umask " << mask;
    EXPECT_EQ(::write(file->fd.get(), "x", 1), 1);
  }
}

TEST(PrivateFileTest, AnotherModeCanBeAsked) {
  TempDir tmp;
  ScopedUmask umask(077);  // would make 0640 into 0600
  const std::string path = tmp.sub("group");
  auto file = openPrivateFile(path, O_RDWR | O_CREAT, 0640);
  ASSERT_TRUE(file) << file.error().message();
  EXPECT_EQ(permissionsOf(path.c_str()), 0640);
}

// Regression: files were created with the process umask (0644 from a shell) and an older
// install's files stayed readable by everyone.
TEST(PrivateFileTest, AnExistingLooserFileIsTightenedAndKeepsItsContent) {
  TempDir tmp;
  ScopedUmask umask(0);
  const std::string path = tmp.sub("old");
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0666);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "old", 3), 3);
    ::close(fd);
  }
  ASSERT_EQ(permissionsOf(path.c_str()), 0666);
  auto file = openPrivateFile(path, O_WRONLY | O_CREAT | O_APPEND);
  ASSERT_TRUE(file) << file.error().message();
  EXPECT_FALSE(file->created);
  EXPECT_EQ(permissionsOf(path.c_str()), 0600);
  struct stat st {};
  ASSERT_EQ(::fstat(file->fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, 3);

  // Bits the mode lacks are never added: a read-only file stays read-only.
  ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  auto again = openPrivateFile(path, O_RDONLY);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(permissionsOf(path.c_str()), 0400);
}

TEST(PrivateFileTest, WithoutOCreatAMissingFileIsNotFound) {
  TempDir tmp;
  auto file = openPrivateFile(tmp.sub("missing"), O_RDWR);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(file.error().message().find(tmp.sub("missing")), std::string::npos)
      << file.error().message();
}

TEST(PrivateFileTest, OExclStillRefusesAnExistingFile) {
  TempDir tmp;
  const std::string path = tmp.sub("f");
  ASSERT_TRUE(openPrivateFile(path, O_WRONLY | O_CREAT));
  auto second = openPrivateFile(path, O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), ErrorCode::kIo);
}

TEST(PrivateFileTest, ADeviceIsOpenedAsItIs) {
  struct stat before {};
  ASSERT_EQ(::stat("/dev/null", &before), 0);
  auto file = openPrivateFile("/dev/null", O_WRONLY | O_CREAT | O_APPEND);
  ASSERT_TRUE(file) << file.error().message();
  EXPECT_FALSE(file->created);
  struct stat after {};
  ASSERT_EQ(::stat("/dev/null", &after), 0);
  EXPECT_EQ(after.st_mode, before.st_mode);
}

TEST(PrivateFileTest, TheDescriptorIsCloseOnExec) {
  TempDir tmp;
  auto file = openPrivateFile(tmp.sub("f"), O_WRONLY | O_CREAT);
  ASSERT_TRUE(file);
  EXPECT_NE(::fcntl(file->fd.get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(PrivateFileTest, RestrictPermissionsTightensByPathAndLeavesAMissingFileAlone) {
  TempDir tmp;
  ScopedUmask umask(0);
  const std::string path = tmp.sub("db");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0664);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_TRUE(restrictPermissions(path));
  EXPECT_EQ(permissionsOf(path.c_str()), 0600);
  ASSERT_TRUE(restrictPermissions(path));  // already private: nothing to do
  EXPECT_EQ(permissionsOf(path.c_str()), 0600);
  EXPECT_TRUE(restrictPermissions(tmp.sub("missing")));
  EXPECT_TRUE(restrictPermissions("/dev/null"));
}

}  // namespace
}  // namespace mdec::core
