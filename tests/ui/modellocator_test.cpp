// Finding the default model and the demos under a models/ folder.
#include <gtest/gtest.h>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>

#include "core/modellocator.h"
#include "uitestsupport.h"

namespace {
void touch(const QString& path, const QByteArray& text = "{}") {
  QDir().mkpath(QFileInfo(path).absolutePath());
  QFile f(path);
  ASSERT_TRUE(f.open(QIODevice::WriteOnly));
  f.write(text);
}

class ModelsDir : public ::testing::Test {
 protected:
  void SetUp() override {
    ensureApp();
    qputenv("MAMBASCOPE_MODELS_DIR", m_dir.path().toUtf8());
  }
  void TearDown() override { qunsetenv("MAMBASCOPE_MODELS_DIR"); }
  QString path(const QString& rel) const { return QDir(m_dir.path()).filePath(rel); }
  QTemporaryDir m_dir;
};
}  // namespace

TEST_F(ModelsDir, TheDefaultFileNamesTheDefaultModel) {
  touch(path("a-model/config.json"));
  touch(path("story-model/config.json"));
  touch(path("DEFAULT"), "story-model\n");
  EXPECT_EQ(modellocator::defaultModel(), QDir(path("story-model")).absolutePath());
}

TEST_F(ModelsDir, WithoutADefaultFileTheFirstModelFolderIsUsed) {
  touch(path("b-model/config.json"));
  touch(path("a-model/config.json"));
  touch(path("not-a-model/readme.txt"));
  EXPECT_EQ(modellocator::defaultModel(), QDir(path("a-model")).absolutePath());
}

TEST_F(ModelsDir, DemosAreListedWithTheirPrompts) {
  touch(path("story/config.json"));
  touch(path("demos/copying/selective/config.json"));
  touch(path("demos/copying/lti/config.json"));
  touch(path("demos/copying/demo_prompt.txt"), "a b c\n");
  touch(path("demos/induction/config.json"));
  touch(path("demos/induction/demo_prompt.txt"), "x y");
  const QVector<DemoModel> demos = modellocator::demos();
  ASSERT_EQ(demos.size(), 3);
  EXPECT_EQ(demos[0].title, QStringLiteral("copying / lti"));
  EXPECT_EQ(demos[0].prompt, QStringLiteral("a b c"));
  EXPECT_EQ(demos[2].title, QStringLiteral("induction"));
  EXPECT_EQ(demos[2].prompt, QStringLiteral("x y"));
}
