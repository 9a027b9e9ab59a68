// The Modes Lab's views (ui/lab) in the real main window on a tiny random model: each runs its
// computation on the engine thread, draws something that is not blank, and exports its image and
// its data. Waits are generous and nothing is timed.
#include <gtest/gtest.h>

#include <QApplication>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QPlainTextEdit>
#include <QChartView>
#include <QDockWidget>
#include <QFile>
#include <QImage>
#include <QLineEdit>
#include <QMenu>
#include <QPushButton>
#include <QSet>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>
#include <memory>

#include "core/explorer.h"
#include "core/sessiondocument.h"
#include "lab/equivalencelab.h"
#include "lab/flagheatmap.h"
#include "lab/interventionlab.h"
#include "lab/kernellab.h"
#include "lab/labrunner.h"
#include "lab/lenslab.h"
#include "lab/selectivitylab.h"
#include "lab/sweeplab.h"
#include "uitestsupport.h"
#include "views/heatmapwidget.h"
#include "window/chatpanel.h"
#include "window/mainwindow.h"

namespace {
constexpr int kWaitMs = 180000;  // generous: the machine may be busy; never a timing assertion
const QString kText = QStringLiteral("Once upon a time there was a little dog who liked to run");


class LabViewsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ensureApp();
    m_window = openTestWindow(m_scratch, &m_dialogs, QSize(1500, 1000));
    ASSERT_TRUE(m_window);
    QSignalSpy ready(m_window.get(), &MainWindow::modelReady);
    m_window->loadModel(tinyModelDir(), QStringLiteral("cpu"));
    ASSERT_TRUE(ready.wait(kWaitMs)) << m_dialogs.errors.join(QLatin1Char('\n')).toStdString();
  }

  template <class View>
  View* lab(const QString& id) {
    auto* v = qobject_cast<View*>(m_window->view(id));
    EXPECT_NE(v, nullptr) << id.toStdString();
    if (v)
      if (auto* dock = qobject_cast<QDockWidget*>(v->parentWidget())) dock->raise();
    return v;
  }

  // Runs the view as the Run button does and waits for its result.
  void runAndWait(LabView* view) {
    QSignalSpy shown(view, &LabView::resultShown);
    QSignalSpy failed(view->runner(), &LabRunner::failed);
    ASSERT_TRUE(view->run()) << view->statusText().toStdString();
    ASSERT_TRUE(QTest::qWaitFor([&] { return shown.count() > 0 || failed.count() > 0; }, kWaitMs));
    ASSERT_EQ(failed.count(), 0) << view->statusText().toStdString();
    QTest::qWait(200);  // coalesced heatmap rebuilds
  }

  // The view draws something, and Export writes its image and its data.
  void expectRendersAndExports(LabView* view) {
    const QImage shot = view->renderTarget()->grab().toImage();
    EXPECT_GT(distinctColours(shot), 20) << view->viewId().toStdString();
    for (auto [format, ext] : {std::pair{ExportFormat::Png, "png"}, std::pair{ExportFormat::Csv, "csv"}}) {
      const QString path = m_scratch.filePath(view->viewId() + QLatin1Char('.') + QLatin1String(ext));
      QString error;
      ASSERT_TRUE(m_window->exportView(view, format, path, &error)) << error.toStdString();
      QFile f(path);
      ASSERT_TRUE(f.open(QIODevice::ReadOnly)) << path.toStdString();
      EXPECT_GT(f.size(), 100) << path.toStdString();
      if (format == ExportFormat::Csv) EXPECT_GE(f.readAll().count('\n'), 2);
    }
  }

  QTemporaryDir m_scratch;
  RecordingDialogs m_dialogs;
  std::unique_ptr<MainWindow> m_window;
};

TEST_F(LabViewsTest, EveryLabIsDockedAndListedInTheLabsMenu) {
  QStringList names;
  for (QAction* a : m_window->labsMenu()->actions()) names << a->text();
  for (const char* id : {"modes_equivalence", "modes_sweep", "modes_kernel", "modes_selectivity",
                         "modes_interventions", "modes_lens"}) {
    ViewPanel* v = m_window->view(QLatin1String(id));
    ASSERT_NE(v, nullptr) << id;
    EXPECT_TRUE(names.contains(v->title())) << id;
  }
}

TEST_F(LabViewsTest, EquivalenceHeatmapAndTableShowEveryModeWithinTolerance) {
  auto* v = lab<EquivalenceLab>(QStringLiteral("modes_equivalence"));
  ASSERT_TRUE(v);
  v->setCustomText(kText);
  runAndWait(v);
  EXPECT_GE(v->table()->rowCount(), 4);  // the CPU's four modes (and the GPU's, where present)
  for (int r = 0; r < v->table()->rowCount(); ++r)
    EXPECT_TRUE(v->table()->item(r, 9)->text().startsWith(QStringLiteral("within"))) << r;
  EXPECT_EQ(v->heatmap()->flaggedCells(), 0);
  expectRendersAndExports(v);
}

TEST_F(LabViewsTest, SweepDrawsEveryMethodAndFillsTheS4Table) {
  auto* v = lab<SweepLab>(QStringLiteral("modes_sweep"));
  ASSERT_TRUE(v);
  v->lengthsEdit()->setText(QStringLiteral("8, 16, 32"));
  v->budgetBox()->setValue(3600);
  runAndWait(v);
  EXPECT_EQ(v->pointCount(), 12);  // 4 methods x 3 lengths
  EXPECT_EQ(v->s4Table()->rowCount(), 4);
  expectRendersAndExports(v);
}

TEST_F(LabViewsTest, SweepCancelStopsAndKeepsTheAppUsable) {
  auto* v = lab<SweepLab>(QStringLiteral("modes_sweep"));
  ASSERT_TRUE(v);
  v->lengthsEdit()->setText(QStringLiteral("64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384"));
  QSignalSpy cancelled(v->runner(), &LabRunner::cancelled);
  QSignalSpy finished(v->runner(), &LabRunner::finished);
  ASSERT_TRUE(v->run()) << v->statusText().toStdString();
  ASSERT_TRUE(v->runner()->isRunning());
  v->runner()->cancel();
  ASSERT_TRUE(QTest::qWaitFor([&] { return !v->runner()->isRunning(); }, kWaitMs));
  // The sweep returns what it has; either way the runner is free again.
  EXPECT_EQ(cancelled.count() + finished.count(), 1);
  v->lengthsEdit()->setText(QStringLiteral("8, 16"));
  runAndWait(v);
  EXPECT_EQ(v->pointCount(), 8);
}

TEST_F(LabViewsTest, KernelShowsBothKernelsWithScores) {
  auto* v = lab<KernelLab>(QStringLiteral("modes_kernel"));
  ASSERT_TRUE(v);
  v->setCustomText(kText);
  for (int view = 0; view < 3; ++view) {
    v->viewBox()->setCurrentIndex(view);
    runAndWait(v);
    EXPECT_FALSE(v->selectiveHeatmap()->image().isNull());
    EXPECT_FALSE(v->ltiHeatmap()->image().isNull());
    EXPECT_TRUE(v->scoresText().contains(QStringLiteral("selective"))) << v->scoresText().toStdString();
  }
  expectRendersAndExports(v);
}

TEST_F(LabViewsTest, SelectivityComparesSelectiveAndFrozen) {
  auto* v = lab<SelectivityLab>(QStringLiteral("modes_selectivity"));
  ASSERT_TRUE(v);
  v->setCustomText(kText);
  v->answerEdit()->setText(QStringLiteral("little"));
  runAndWait(v);
  ASSERT_GE(v->summary()->rowCount(), 3);  // selective, frozen, expected
  EXPECT_EQ(v->summary()->item(0, 0)->text(), QStringLiteral("selective"));
  EXPECT_EQ(v->strip()->rowCount(), 3);  // the text, then each variant
  EXPECT_GT(v->strip()->columnCount(), 0);
  expectRendersAndExports(v);
}

TEST_F(LabViewsTest, InterventionWithoutOverridesIsIdenticalAndWithOneIsNot) {
  auto* v = lab<InterventionLab>(QStringLiteral("modes_interventions"));
  ASSERT_TRUE(v);
  v->setCustomText(kText);
  runAndWait(v);
  EXPECT_TRUE(v->continuationsText().contains(QStringLiteral("identical"))) << v->continuationsText().toStdString();
  v->addOverride(-1, 2, 0.0f);
  runAndWait(v);
  EXPECT_FALSE(v->continuationsText().contains(QStringLiteral("identical")));
  EXPECT_FALSE(v->heatmap()->image().isNull());
  expectRendersAndExports(v);
}

TEST_F(LabViewsTest, LensRunsOnTheCurrentBranch) {
  ChatPanel* chat = m_window->chatPanel();
  SamplingSettings s = chat->sampling();
  s.maxTokens = 6;
  s.stopAtEos = false;
  chat->setSampling(s);
  QTest::keyClicks(chat->promptEdit(), QStringLiteral("Once upon"));
  QTest::mouseClick(chat->generateButton(), Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return !m_window->explorer()->isBusy(); }, kWaitMs));
  auto* v = lab<LensLab>(QStringLiteral("modes_lens"));
  ASSERT_TRUE(v);
  runAndWait(v);
  EXPECT_EQ(v->table()->rowCount(), m_window->document()->model().nLayer);
  EXPECT_EQ(v->table()->columnCount(), m_window->document()->tokenCount());
  expectRendersAndExports(v);
}

}  // namespace
