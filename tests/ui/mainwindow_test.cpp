// The real main window on the offscreen platform, driven as a user would: load a model, type a
// prompt, generate, stop, fork from an alternative, export, open a bad folder, save and reopen.
#include <gtest/gtest.h>

#include <QApplication>
#include <QComboBox>
#include <QDockWidget>
#include <QMenu>
#include <QMenuBar>
#include <QTimer>
#include <QThread>
#include <QFile>
#include <QImage>
#include <QLabel>
#include <QTextEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSet>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTest>
#include <memory>

#include "core/appsettings.h"
#include "core/enginecontroller.h"
#include "core/engineworker.h"
#include "core/explorer.h"
#include "core/modellocator.h"
#include "mambascope/backend.hpp"
#include "mambascope/session.hpp"
#include "models/selectivitymodels.h"
#include "views/heatmapview.h"
#include "core/sessiondocument.h"
#include "uitestsupport.h"
#include "views/heatmapwidget.h"
#include "views/hiddenstateview.h"
#include "views/linechartwidget.h"
#include "views/tokenstripview.h"
#include "views/tokenstripwidget.h"
#include "window/chatpanel.h"
#include "window/headlessrunner.h"
#include "window/mainwindow.h"
#include "window/probememorydialog.h"

namespace {
constexpr int kWaitMs = 120000;  // generous: the machine may be busy; never a timing assertion
// (Waits use QTest::qWaitFor inside ASSERT_TRUE: QtTest's own QVERIFY macros would not fail a
// GoogleTest test.)

class MainWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ensureApp();
    m_window = openTestWindow(m_scratch, &m_dialogs, QSize(1400, 900));
    ASSERT_TRUE(m_window);
  }

  void loadTinyModel() {
    QSignalSpy ready(m_window.get(), &MainWindow::modelReady);
    m_window->loadModel(tinyModelDir(), QStringLiteral("cpu"));
    ASSERT_TRUE(ready.wait(kWaitMs)) << m_dialogs.errors.join(QLatin1Char('\n')).toStdString();
    ASSERT_TRUE(doc()->hasModel());
  }

  // Types the prompt into the prompt box and clicks Generate, as a user does.
  void typeAndGenerate(const QString& prompt, int maxTokens) {
    ChatPanel* chat = m_window->chatPanel();
    SamplingSettings s = chat->sampling();
    s.maxTokens = maxTokens;
    s.stopAtEos = false;
    chat->setSampling(s);
    chat->promptEdit()->clear();
    QTest::keyClicks(chat->promptEdit(), prompt);
    ASSERT_TRUE(chat->generateButton()->isEnabled());
    QTest::mouseClick(chat->generateButton(), Qt::LeftButton);
  }

  void waitUntilIdle() {
    ASSERT_TRUE(QTest::qWaitFor([&] { return !m_window->explorer()->isBusy(); }, kWaitMs));
    QTest::qWait(300);  // let the views' coalesced rebuilds run
  }

  int generatedCount() const {
    int n = 0;
    for (const TokenRecord& t : doc()->tokens()) n += t.isPrompt ? 0 : 1;
    return n;
  }

  SessionDocument* doc() const { return m_window->document(); }

  QTemporaryDir m_scratch;
  RecordingDialogs m_dialogs;
  std::unique_ptr<MainWindow> m_window;
};
}  // namespace

TEST_F(MainWindowTest, GeneratesFromATypedPromptAndEveryViewShowsData) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("Once upon a time"), 24);
  waitUntilIdle();
  EXPECT_EQ(generatedCount(), 24);
  EXPECT_FALSE(m_window->chatPanel()->transcript()->toPlainText().isEmpty());
  EXPECT_TRUE(m_dialogs.errors.isEmpty()) << m_dialogs.errors.join(QLatin1Char('\n')).toStdString();
  EXPECT_NE(m_window->rateLabel()->text(), QStringLiteral("– tok/s"));

  doc()->selectPosition(doc()->tokenCount() / 2);
  // Each view, brought to the front of its dock, draws data rather than an empty frame.
  int heatmaps = 0, charts = 0;
  for (ViewPanel* view : m_window->views()) {
    if (view->viewId().startsWith(QStringLiteral("modes_"))) continue;  // labs draw when run (lab_*_test)
    if (auto* dock = qobject_cast<QDockWidget*>(view->parentWidget())) dock->raise();
    QTest::qWait(300);
    for (auto* heatmap : view->findChildren<HeatmapWidget*>()) {
      ++heatmaps;
      const QImage shot = heatmap->grab().toImage();
      EXPECT_GT(distinctColours(shot), 20) << heatmap->objectName().toStdString();
      EXPECT_FALSE(heatmap->image().isNull()) << heatmap->objectName().toStdString();
    }
    for (auto* chart : view->findChildren<LineChartWidget*>()) {
      ++charts;
      ASSERT_TRUE(QTest::qWaitFor([&] { return chart->pointCount() > 0; }, kWaitMs));
    }
  }
  EXPECT_EQ(heatmaps, 6);  // channels, layers, B, C, h, retention
  EXPECT_EQ(charts, 4);    // write/read, half-life, ‖h‖ per layer, survival
  const QImage strip = m_window->tokenStrip()->strip()->grab().toImage();
  EXPECT_GT(distinctColours(strip), 10);
}

TEST_F(MainWindowTest, ViewProbeMemorySetsTheBoundsTheDocumentKeeps) {
  QAction* action = nullptr;
  for (QAction* menu : m_window->menuBar()->actions())
    if (menu->menu())
      for (QAction* a : menu->menu()->actions())
        if (a->text().contains(QStringLiteral("Probe memory"))) action = a;
  ASSERT_NE(action, nullptr);
  bool seen = false;
  QTimer::singleShot(0, [&] {  // the dialog is modal: answer it from inside its event loop
    auto* dialog = qobject_cast<ProbeMemoryDialog*>(QApplication::activeModalWidget());
    if (!dialog) return;
    seen = true;
    dialog->setMiB(48, 24);
    dialog->accept();
  });
  action->trigger();
  ASSERT_TRUE(seen);
  AppSettings saved(m_scratch.filePath(QStringLiteral("settings.ini")));
  EXPECT_EQ(saved.probeDetailBudget(), qint64(48) << 20);
  EXPECT_EQ(saved.probeHBudget(), qint64(24) << 20);
}

TEST_F(MainWindowTest, StopEndsALongGenerationEarly) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("The cat"), 100000);
  ASSERT_TRUE(QTest::qWaitFor([&] { return generatedCount() >= 5; }, kWaitMs));
  QSignalSpy finished(m_window->explorer(), &Explorer::generationFinished);
  QTest::mouseClick(m_window->chatPanel()->stopButton(), Qt::LeftButton);
  ASSERT_TRUE(finished.wait(kWaitMs));
  const auto summary = finished.first().at(1).value<GenerationSummary>();
  EXPECT_TRUE(summary.cancelled);
  EXPECT_EQ(summary.stopReason, QStringLiteral("cancelled"));
  EXPECT_LT(generatedCount(), 100000);
  waitUntilIdle();
  EXPECT_TRUE(m_window->chatPanel()->generateButton()->isEnabled());
}

TEST_F(MainWindowTest, ChoosingAnAlternativeForksAndBothBranchesStayBrowsable) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("A dog"), 12);
  waitUntilIdle();
  const int mainBranch = doc()->currentBranchId();
  const QVector<TokenRecord> original = doc()->tokens();
  qint64 at = -1;
  for (qint64 i = 0; i < original.size(); ++i)
    if (!original[i].isPrompt && original[i].alternatives.size() > 1) {
      at = i;
      break;
    }
  ASSERT_GE(at, 0);
  TokenStripWidget* strip = m_window->tokenStrip()->strip();
  QAction* forkAction = nullptr;
  const QList<QAction*> actions = strip->tokenActions(at, strip);
  for (QAction* a : actions)
    if (a->data().isValid()) {
      forkAction = a;
      break;
    }
  ASSERT_NE(forkAction, nullptr);
  const qint32 chosen = forkAction->data().toInt();
  forkAction->trigger();
  waitUntilIdle();

  const int forkBranch = doc()->currentBranchId();
  ASSERT_NE(forkBranch, mainBranch);
  const Branch* fork = doc()->branch(forkBranch);
  ASSERT_GT(fork->tokens.size(), at);
  EXPECT_EQ(fork->tokens[at].id, chosen);
  EXPECT_EQ(doc()->selectedPosition(), at);  // every view shows the chosen token
  EXPECT_FALSE(fork->tokens[at].isPrompt);
  for (qint64 i = 0; i < at; ++i) {
    EXPECT_EQ(fork->tokens[i].id, original[i].id);
    EXPECT_EQ(fork->tokens[i].probe.get(), original[i].probe.get()) << "the prefix's probes are shared";
  }
  EXPECT_EQ(fork->tokens.size(), at + 1 + 12);  // the chosen token, then a fresh run of 12
  // Both branches are in the chooser; switching back shows the original tokens again.
  QComboBox* branches = m_window->tokenStrip()->branchBox();
  EXPECT_EQ(branches->count(), 2);
  doc()->setCurrentBranch(mainBranch);
  ASSERT_EQ(doc()->tokens().size(), original.size());
  EXPECT_EQ(doc()->tokens()[at].id, original[at].id);
}

TEST_F(MainWindowTest, ExportsAViewAsPngSvgCsvAndNpy) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("Hello"), 10);
  waitUntilIdle();
  ViewPanel* channels = m_window->view(QStringLiteral("channels"));
  ASSERT_NE(channels, nullptr);
  channels->resize(600, 360);
  QTest::qWait(200);
  const QString png = m_scratch.filePath(QStringLiteral("channels.png"));
  const QString svg = m_scratch.filePath(QStringLiteral("channels.svg"));
  const QString csv = m_scratch.filePath(QStringLiteral("channels.csv"));
  const QString npy = m_scratch.filePath(QStringLiteral("channels.npy"));
  QString error;
  ASSERT_TRUE(m_window->exportView(channels, ExportFormat::Png, png, &error)) << error.toStdString();
  ASSERT_TRUE(m_window->exportView(channels, ExportFormat::Svg, svg, &error)) << error.toStdString();
  ASSERT_TRUE(m_window->exportView(channels, ExportFormat::Csv, csv, &error)) << error.toStdString();
  ASSERT_TRUE(m_window->exportView(channels, ExportFormat::Npy, npy, &error)) << error.toStdString();

  const QImage image(png);
  ASSERT_FALSE(image.isNull());
  EXPECT_GT(distinctColours(image), 20);
  QFile svgFile(svg);
  ASSERT_TRUE(svgFile.open(QIODevice::ReadOnly));
  EXPECT_TRUE(svgFile.readAll().contains("<svg"));
  QFile csvFile(csv);
  ASSERT_TRUE(csvFile.open(QIODevice::ReadOnly | QIODevice::Text));
  const QStringList lines = QString::fromUtf8(csvFile.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
  ASSERT_EQ(lines.size(), doc()->tokenCount() + 1);  // header + one line per token
  EXPECT_TRUE(lines[0].startsWith(QStringLiteral("position,token,")));
  EXPECT_EQ(lines[0].count(QLatin1Char(',')), 1 + doc()->model().dInner);
  EXPECT_GT(QFileInfo(npy).size(), qint64(doc()->tokenCount()) * doc()->model().dInner * 4);
}

TEST_F(MainWindowTest, ABadFolderShowsAnErrorAndKeepsTheLoadedModel) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("Hi"), 4);
  waitUntilIdle();
  const int tokensBefore = doc()->tokenCount();
  QSignalSpy failed(m_window.get(), &MainWindow::modelLoadFailed);
  m_dialogs.chosenPath = m_scratch.path();  // a folder, but not a model
  m_window->openModelFolder();
  ASSERT_TRUE(failed.wait(kWaitMs));
  ASSERT_EQ(m_dialogs.errors.size(), 1);
  EXPECT_TRUE(m_dialogs.errors[0].contains(QStringLiteral("config.json"))) << m_dialogs.errors[0].toStdString();
  EXPECT_TRUE(doc()->hasModel());
  EXPECT_EQ(doc()->tokenCount(), tokensBefore);
  EXPECT_TRUE(m_window->chatPanel()->generateButton()->isEnabled());

  // A corrupt weights file is reported the same way.
  const QString corrupt = m_scratch.filePath(QStringLiteral("corrupt"));
  QDir().mkpath(corrupt);
  QFile::copy(tinyModelDir() + QStringLiteral("/config.json"), corrupt + QStringLiteral("/config.json"));
  QFile weights(corrupt + QStringLiteral("/model.safetensors"));
  ASSERT_TRUE(weights.open(QIODevice::WriteOnly));
  weights.write("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", 13);
  weights.close();
  m_window->loadModel(corrupt);
  ASSERT_TRUE(failed.wait(kWaitMs));
  EXPECT_EQ(m_dialogs.errors.size(), 2);
  EXPECT_TRUE(doc()->hasModel());

  // And so is a path that is not a folder at all.
  m_window->loadModel(m_scratch.filePath(QStringLiteral("no-such-folder")));
  EXPECT_EQ(m_dialogs.errors.size(), 3);
}

TEST_F(MainWindowTest, ASavedSessionReopensWithItsBranchesAndProbes) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("Sun"), 8);
  waitUntilIdle();
  const QVector<TokenRecord> before = doc()->tokens();
  const QString path = m_scratch.filePath(QStringLiteral("s.json"));
  QString error;
  ASSERT_TRUE(m_window->saveSession(path, &error)) << error.toStdString();

  typeAndGenerate(QStringLiteral("Moon"), 3);  // change what is shown
  waitUntilIdle();
  ASSERT_TRUE(m_window->openSession(path, &error)) << error.toStdString();
  waitUntilIdle();
  ASSERT_EQ(doc()->branchIds().size(), 1);
  const QVector<TokenRecord>& after = doc()->tokens();
  ASSERT_EQ(after.size(), before.size());
  for (qsizetype i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].text, before[i].text);
    ASSERT_TRUE(after[i].probe);
    const LayerFrame* a = after[i].probe->layer(0);
    const LayerFrame* b = before[i].probe->layer(0);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->delta, b->delta);
    EXPECT_FLOAT_EQ(a->writeStrength, b->writeStrength);
  }
  // The reopened branch can be continued: its engine state was rebuilt.
  QTest::mouseClick(m_window->chatPanel()->continueButton(), Qt::LeftButton);
  waitUntilIdle();
  EXPECT_GT(doc()->tokenCount(), before.size());
  EXPECT_TRUE(m_dialogs.errors.isEmpty()) << m_dialogs.errors.join(QLatin1Char('\n')).toStdString();
}

TEST_F(MainWindowTest, PlayStepsTheSelectionThroughTheTokens) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("Tree"), 6);
  waitUntilIdle();
  doc()->selectPosition(0);
  auto* hidden = static_cast<HiddenStateView*>(m_window->view(QStringLiteral("hidden_state")));
  ASSERT_NE(hidden, nullptr);
  hidden->setPlaying(true);
  ASSERT_TRUE(QTest::qWaitFor([&] { return doc()->selectedPosition() >= 2; }, kWaitMs));
  hidden->setPlaying(false);
  EXPECT_FALSE(hidden->isPlaying());
}

TEST_F(MainWindowTest, AModelTheGpuCannotTakeIsOfferedToTheCpu) {
  std::string why;
  if (mambascope::cuda_backend_available(&why)) GTEST_SKIP() << "a GPU is present: the CUDA backend loads the model";
  m_dialogs.answer = true;  // "Load it on the CPU instead?" — yes
  QSignalSpy ready(m_window.get(), &MainWindow::modelReady);
  m_window->loadModel(tinyModelDir(), QStringLiteral("cuda"));
  ASSERT_TRUE(ready.wait(kWaitMs)) << m_dialogs.errors.join(QLatin1Char('\n')).toStdString();
  EXPECT_EQ(m_dialogs.questions.size(), 1);
  EXPECT_TRUE(m_dialogs.errors.isEmpty());
  EXPECT_EQ(doc()->model().backend, QStringLiteral("cpu"));
  EXPECT_TRUE(m_window->deviceLabel()->text().startsWith(QStringLiteral("CPU")));
}

TEST_F(MainWindowTest, AFailedGenerationShowsAnErrorAndKeepsTheTokens) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("Rain"), 5);
  waitUntilIdle();
  const int before = doc()->tokenCount();
  // An id outside the vocabulary makes the engine refuse the fork.
  m_window->explorer()->fork(2, qint32(doc()->model().vocab + 10), m_window->chatPanel()->sampling());
  waitUntilIdle();
  ASSERT_EQ(m_dialogs.errors.size(), 1);
  EXPECT_TRUE(m_dialogs.errors[0].contains(QStringLiteral("vocabulary"))) << m_dialogs.errors[0].toStdString();
  doc()->setCurrentBranch(doc()->branchIds().first());
  EXPECT_EQ(doc()->tokenCount(), before);
  EXPECT_TRUE(m_window->chatPanel()->generateButton()->isEnabled());
}

TEST_F(MainWindowTest, ChatTurnsContinueTheSameConversation) {
  loadTinyModel();
  m_window->chatPanel()->setChatMode(true);
  typeAndGenerate(QStringLiteral("Hello there"), 6);
  waitUntilIdle();
  EXPECT_TRUE(m_window->chatPanel()->promptEdit()->toPlainText().isEmpty());  // sent
  const int branch = doc()->currentBranchId();
  const QVector<TokenRecord> first = doc()->tokens();
  typeAndGenerate(QStringLiteral("Tell me more"), 6);
  waitUntilIdle();
  EXPECT_EQ(doc()->currentBranchId(), branch);
  ASSERT_GT(doc()->tokenCount(), first.size());
  const Branch* b = doc()->branch(branch);
  ASSERT_EQ(b->chat.size(), 2);
  EXPECT_EQ(b->chat[0].user, QStringLiteral("Hello there"));
  EXPECT_EQ(b->chat[1].user, QStringLiteral("Tell me more"));
  const QString transcript = m_window->chatPanel()->transcript()->toPlainText();
  EXPECT_TRUE(transcript.contains(QStringLiteral("Hello there")));
  EXPECT_TRUE(transcript.contains(QStringLiteral("Tell me more")));
}

TEST_F(MainWindowTest, TheDockLayoutIsRememberedAcrossRestarts) {
  ASSERT_NE(m_window->findChild<QDockWidget*>(QStringLiteral("survivalDock")), nullptr);
  MainWindow::Options o;
  o.settingsFile = m_scratch.filePath(QStringLiteral("layout.ini"));
  o.dialogs = &m_dialogs;
  o.loadDefaultModel = false;
  {
    MainWindow first(o);
    first.show();
    first.findChild<QDockWidget*>(QStringLiteral("survivalDock"))->hide();
    first.close();  // saves the layout
  }
  MainWindow second(o);
  second.show();
  EXPECT_TRUE(second.findChild<QDockWidget*>(QStringLiteral("survivalDock"))->isHidden());
  EXPECT_FALSE(second.findChild<QDockWidget*>(QStringLiteral("channelsDock"))->isHidden());
}

TEST_F(MainWindowTest, HeadlessModeWritesAScreenshotOfTheWindow) {
  HeadlessOptions o;
  o.model = tinyModelDir();
  o.prompt = QStringLiteral("Once upon a time");
  o.maxTokens = 12;
  o.backend = QStringLiteral("cpu");
  o.size = QSize(1600, 1000);
  o.screenshot = m_scratch.filePath(QStringLiteral("shot.png"));
  ASSERT_EQ(runHeadless(o), 0);
  const QImage shot(o.screenshot);
  ASSERT_EQ(shot.size(), QSize(1600, 1000));
  EXPECT_GT(distinctColours(shot), 100);
}

TEST_F(MainWindowTest, ADemoOpensWithItsPromptAndAnswersGreedily) {
  const QString root = m_scratch.filePath(QStringLiteral("models"));
  const QString demo = root + QStringLiteral("/demos/copying-selective");
  writeTinyModel(demo, TinyModelShape{}, 7);
  QFile prompt(demo + QStringLiteral("/demo_prompt.txt"));
  ASSERT_TRUE(prompt.open(QIODevice::WriteOnly));
  prompt.write("a b c |\n");
  prompt.close();
  QFile eval(demo + QStringLiteral("/eval.jsonl"));
  ASSERT_TRUE(eval.open(QIODevice::WriteOnly));
  eval.write("{\"prompt_ids\": [4, 5, 6, 2], \"target_ids\": [4, 5, 6]}\n");
  eval.close();
  qputenv("MAMBASCOPE_MODELS_DIR", root.toUtf8());
  const QVector<DemoModel> demos = modellocator::demos();
  qunsetenv("MAMBASCOPE_MODELS_DIR");
  ASSERT_EQ(demos.size(), 1);
  EXPECT_EQ(demos[0].answerTokens, 3);

  QSignalSpy finished(m_window->explorer(), &Explorer::generationFinished);
  m_window->openDemo(demos[0]);
  ASSERT_TRUE(finished.wait(kWaitMs)) << m_dialogs.errors.join(QLatin1Char('\n')).toStdString();
  waitUntilIdle();
  EXPECT_EQ(m_window->chatPanel()->prompt(), QStringLiteral("a b c |"));
  EXPECT_EQ(m_window->chatPanel()->sampling().temperature, 0.0);
  EXPECT_EQ(generatedCount(), 3);
}

TEST_F(MainWindowTest, ALabDocksInTheLabsMenuAndRunsItsWorkOnTheEngineThread) {
  loadTinyModel();
  typeAndGenerate(QStringLiteral("Lab"), 4);
  waitUntilIdle();
  auto* lab = new HeatmapView(QStringLiteral("test_lab"), QStringLiteral("Test lab"), doc(),
                              new LayerModel(doc(), LayerModel::Field::MeanDelta));
  QDockWidget* dock = m_window->addLab(lab);
  ASSERT_NE(dock, nullptr);
  const QList<QAction*> labs = m_window->labsMenu()->actions();
  ASSERT_FALSE(labs.isEmpty());  // after the Modes Lab's views
  EXPECT_EQ(labs.back()->text(), QStringLiteral("Test lab"));
  EXPECT_EQ(m_window->view(QStringLiteral("test_lab")), lab);

  // A lab's computation runs where the engine lives and hands its result back.
  const int branch = doc()->currentBranchId();
  QThread* engineThread = nullptr;
  std::vector<int32_t> ids;
  bool done = false;
  m_window->explorer()->engine()->runTask([&, window = m_window.get()](const EngineAccess& engine) {
    const QThread* here = QThread::currentThread();
    std::vector<int32_t> seen = engine.session(branch) ? engine.session(branch)->tokens() : std::vector<int32_t>{};
    QMetaObject::invokeMethod(window, [&, here, seen] {
      engineThread = const_cast<QThread*>(here);
      ids = seen;
      done = true;
    }, Qt::QueuedConnection);
  });
  ASSERT_TRUE(QTest::qWaitFor([&] { return done; }, kWaitMs));
  EXPECT_NE(engineThread, QThread::currentThread());
  ASSERT_EQ(int(ids.size()), doc()->tokenCount());
  for (int i = 0; i < doc()->tokenCount(); ++i) EXPECT_EQ(ids[size_t(i)], doc()->tokens()[i].id);
}
