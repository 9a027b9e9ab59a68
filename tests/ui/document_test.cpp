// SessionDocument: branches share their prefix, the probe memory stays under its budget (also
// when the user changes it: View ▸ Probe memory), chat turns are rebuilt from what was generated;
// Qt models over it; CSV and .npy export.
#include <gtest/gtest.h>

#include <QFile>
#include <QLabel>
#include <QSpinBox>
#include <QTemporaryDir>

#include "core/appsettings.h"
#include "core/explorer.h"
#include "core/sessiondocument.h"
#include "mambascope/npy.hpp"
#include "models/matrixexport.h"
#include "models/selectivitymodels.h"
#include "models/tokentooltip.h"
#include "uitestsupport.h"
#include "window/probememorydialog.h"

namespace {
ModelInfo shape(int nLayer, int dInner, int dState) {
  ModelInfo m;
  m.nLayer = nLayer;
  m.dInner = dInner;
  m.dState = dState;
  m.dir = QStringLiteral("/tmp/model");
  return m;
}

TokenRecord token(qint64 position, qint32 id, const QString& text, float delta, int dInner = 4, bool prompt = false) {
  TokenRecord t;
  t.position = position;
  t.id = id;
  t.text = text;
  t.isPrompt = prompt;
  t.alternatives = {{id, 0.6f, text}, {id + 1, 0.3f, text + QStringLiteral("!")}};
  t.probe = std::make_shared<ProbeFrame>();
  LayerFrame f;
  f.layer = 0;
  for (int c = 0; c < dInner; ++c) f.delta.push_back(delta * float(c + 1));
  f.b = {1.f, 2.f};
  f.c = {3.f, 4.f};
  f.meanDelta = delta;
  t.probe->layers.push_back(f);
  return t;
}
}  // namespace

TEST(SessionDocument, AForkSharesTheParentsPrefixAndCarriesTheAlternatives) {
  ensureApp();
  SessionDocument doc;
  doc.setModelInfo(shape(1, 4, 2));
  const int root = doc.createRoot();
  doc.appendTokens(root, {token(0, 10, "a", 0.1f, 4, true), token(1, 11, "b", 0.2f), token(2, 12, "c", 0.3f)});
  const int fork = doc.createFork(root, 1, 12);
  EXPECT_EQ(doc.currentBranchId(), fork);
  TokenRecord chosen = token(1, 12, "b!", 0.5f, 4, /*prompt, as Session::append reports it*/ true);
  chosen.alternatives.clear();
  doc.appendTokens(fork, {chosen});
  const Branch* b = doc.branch(fork);
  ASSERT_EQ(b->tokens.size(), 2);
  EXPECT_EQ(b->tokens[0].probe.get(), doc.branch(root)->tokens[0].probe.get());
  EXPECT_FALSE(b->tokens[1].isPrompt);                 // it stands where a sampled token stood
  EXPECT_EQ(b->tokens[1].alternatives.size(), 2);      // with the parent's alternatives
  EXPECT_EQ(doc.branch(root)->tokens.size(), 3);       // the parent is untouched
}

TEST(SessionDocument, TheOldestTokensLoseTheirDetailsPastTheBudget) {
  ensureApp();
  SessionDocument doc;
  doc.setModelInfo(shape(1, 1000, 2));
  const size_t perToken = (1000 + 4) * sizeof(float);  // Δ + B + C
  doc.setProbeBudget(qint64(perToken * 3), 1 << 20);
  const int root = doc.createRoot();
  for (int i = 0; i < 5; ++i) doc.appendTokens(root, {token(i, i, "x", 0.1f, 1000)});
  const auto& t = doc.tokens();
  EXPECT_TRUE(t[0].probe->layers[0].delta.empty());
  EXPECT_TRUE(t[1].probe->layers[0].delta.empty());
  EXPECT_FALSE(t[4].probe->layers[0].delta.empty());
  EXPECT_FLOAT_EQ(t[0].probe->layers[0].meanDelta, 0.1f);  // summaries stay
  EXPECT_LE(doc.probeBytes(), qint64(perToken * 3));
}

TEST(SessionDocument, NewProbeBudgetsApplyAtOnceAndAreRemembered) {
  ensureApp();
  QTemporaryDir scratch;
  const QString ini = scratch.filePath(QStringLiteral("settings.ini"));
  const int dInner = 100000;  // 400 KB of Δ per token
  {
    AppSettings settings(ini);
    Explorer explorer(&settings);
    SessionDocument* doc = explorer.document();
    doc->setModelInfo(shape(1, dInner, 2));
    const int root = doc->createRoot();
    for (int i = 0; i < 5; ++i) doc->appendTokens(root, {token(i, i, "x", 0.1f, dInner)});
    const auto& t = doc->branch(root)->tokens;
    EXPECT_FALSE(t[0].probe->layers[0].delta.empty());  // the default bound (512 MiB) holds all
    explorer.setProbeBudgets(1 << 20, 2 << 20);          // 1 MiB: room for two tokens' details
    EXPECT_TRUE(t[0].probe->layers[0].delta.empty());
    EXPECT_TRUE(t[2].probe->layers[0].delta.empty());
    EXPECT_FALSE(t[4].probe->layers[0].delta.empty());
    EXPECT_LE(doc->probeBytes(), qint64(1 << 20));
  }
  AppSettings again(ini);
  EXPECT_EQ(again.probeDetailBudget(), qint64(1) << 20);
  EXPECT_EQ(again.probeHBudget(), qint64(2) << 20);
}

TEST(ProbeMemoryDialog, ShowsTheBoundsInMiBAndWhatIsHeld) {
  ensureApp();
  ProbeMemoryDialog dialog(qint64(512) << 20, qint64(256) << 20, qint64(3) << 20);
  auto* detail = dialog.findChild<QSpinBox*>(QStringLiteral("probeDetailMiB"));
  auto* h = dialog.findChild<QSpinBox*>(QStringLiteral("probeHMiB"));
  auto* held = dialog.findChild<QLabel*>(QStringLiteral("probeHeld"));
  ASSERT_TRUE(detail && h && held);
  EXPECT_EQ(detail->value(), 512);
  EXPECT_EQ(h->value(), 256);
  EXPECT_TRUE(held->text().contains(QStringLiteral("3.0 MiB"))) << held->text().toStdString();
  dialog.setMiB(64, 1);  // below the smallest bound: clamped to it
  EXPECT_EQ(dialog.detailBytes(), qint64(64) << 20);
  EXPECT_EQ(dialog.hBytes(), qint64(ProbeMemoryDialog::kMinMiB) << 20);
}

TEST(SessionDocument, ARestartedHistoryReplacesTheTokensFromThatPosition) {
  ensureApp();
  SessionDocument doc;
  doc.setModelInfo(shape(1, 4, 2));
  const int root = doc.createRoot();
  doc.appendTokens(root, {token(0, 1, "a", 0.1f), token(1, 2, "b", 0.1f)});
  doc.appendTokens(root, {token(0, 7, "z", 0.1f)});
  ASSERT_EQ(doc.tokens().size(), 1);
  EXPECT_EQ(doc.tokens()[0].id, 7);
}

TEST(SessionDocument, ChatTurnsHoldTheRepliesWithoutTheStopString) {
  ensureApp();
  SessionDocument doc;
  ModelInfo m = shape(1, 4, 2);
  m.stopStrings = {QStringLiteral("\nUser:")};
  doc.setModelInfo(m);
  const int root = doc.createRoot();
  doc.beginChatTurn(root, QStringLiteral("hi"));
  EXPECT_EQ(doc.chatTurns(root).size(), 1);  // the pending reply is not a turn yet
  doc.appendTokens(root, {token(0, 1, "User: hi\nAssistant:", 0.1f, 4, true), token(1, 2, " hello", 0.1f),
                          token(2, 3, "\nUser:", 0.1f)});
  doc.finishChatTurn(root);
  const QVector<ChatMessage> turns = doc.chatTurns(root);
  ASSERT_EQ(turns.size(), 2);
  EXPECT_EQ(turns[1].role, QStringLiteral("assistant"));
  EXPECT_EQ(turns[1].content, QStringLiteral("hello"));
}

TEST(MatrixModels, ChannelsSortedByMeanPutTheLargestFirst) {
  ensureApp();
  SessionDocument doc;
  doc.setModelInfo(shape(1, 4, 2));
  const int root = doc.createRoot();
  doc.appendTokens(root, {token(0, 1, "a", 0.1f), token(1, 2, "b", 0.2f)});
  ChannelModel model(&doc, ChannelModel::Field::Delta);
  ASSERT_EQ(model.rowCount(), 2);
  ASSERT_EQ(model.columnCount(), 4);
  model.setOrder(ChannelModel::Order::MeanDescending);
  EXPECT_EQ(model.channelAt(0), 3);  // Δ grows with the channel index in token()
  EXPECT_FLOAT_EQ(model.value(1, 0), 0.2f * 4);
  doc.appendTokens(root, {token(2, 3, "c", 0.3f)});
  EXPECT_EQ(model.rowCount(), 3);  // appended tokens arrive as rows
}

TEST(MatrixExport, CsvAndNpyHoldTheSameNumbers) {
  ensureApp();
  SessionDocument doc;
  doc.setModelInfo(shape(1, 4, 2));
  const int root = doc.createRoot();
  doc.appendTokens(root, {token(0, 1, "a,b", 0.1f), token(1, 2, "c", 0.2f)});
  StateModel b(&doc, StateModel::Field::B);
  QTemporaryDir dir;
  const QString csv = dir.filePath(QStringLiteral("b.csv")), npy = dir.filePath(QStringLiteral("b.npy"));
  ASSERT_TRUE(matrixexport::saveCsv(b, csv));
  ASSERT_TRUE(matrixexport::saveNpy(b, npy));
  QFile f(csv);
  ASSERT_TRUE(f.open(QIODevice::ReadOnly | QIODevice::Text));
  EXPECT_EQ(QString::fromUtf8(f.readAll()), QStringLiteral("position,token,0,1\n0,\"a,b\",1,2\n1,c,1,2\n"));
  const mambascope::NpyArray a = mambascope::read_npy(npy.toStdString());
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.f32, (std::vector<float>{1, 2, 1, 2}));
}

TEST(TokenTooltip, NamesTheTokenItsStatisticsAndItsAlternatives) {
  ensureApp();
  SessionDocument doc;
  doc.setModelInfo(shape(1, 4, 2));
  const int root = doc.createRoot();
  TokenRecord t = token(0, 42, "hamburger", 0.25f);
  t.probe->layers[0].normB = 1.5f;
  t.probe->layers[0].readNorm = 2.5f;
  doc.appendTokens(root, {t});
  const QString html = tokenTooltip(doc, 0);
  EXPECT_TRUE(html.contains(QStringLiteral("id 42")));
  EXPECT_TRUE(html.contains(QStringLiteral("hamburger")));
  EXPECT_TRUE(html.contains(QStringLiteral("0.25")));  // mean Δ
  EXPECT_TRUE(html.contains(QStringLiteral("1.5")));   // ‖B‖
  EXPECT_TRUE(html.contains(QStringLiteral("2.5")));   // ‖C‖
  EXPECT_TRUE(html.contains(QStringLiteral("60.0%"))); // the sampled token's probability
  EXPECT_TRUE(html.contains(QStringLiteral("hamburger!")));  // an alternative
  EXPECT_TRUE(html.contains(QStringLiteral("30.0%")));
  EXPECT_TRUE(tokenTooltip(doc, 5).isEmpty());
}
