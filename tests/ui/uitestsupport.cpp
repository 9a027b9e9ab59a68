// The offscreen QApplication and the tiny test model.
#include "uitestsupport.h"

#include <QApplication>
#include <QDir>
#include <QFile>
#include <QImage>
#include <QSet>
#include <QTest>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <cmath>
#include <random>

#include "mambascope/tokenizer.hpp"
#include "window/mainwindow.h"

namespace {
struct Tensor {
  QString name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

void writeSafetensors(const QString& path, const std::vector<Tensor>& tensors) {
  QJsonObject header;
  qint64 offset = 0;
  for (const Tensor& t : tensors) {
    QJsonArray shape;
    for (int64_t s : t.shape) shape.append(qint64(s));
    const qint64 bytes = qint64(t.data.size() * sizeof(float));
    header[t.name] = QJsonObject{{"dtype", "F32"}, {"shape", shape}, {"data_offsets", QJsonArray{offset, offset + bytes}}};
    offset += bytes;
  }
  QByteArray json = QJsonDocument(header).toJson(QJsonDocument::Compact);
  while (json.size() % 8) json.append(' ');
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly)) qFatal("cannot write %s", qPrintable(path));
  const quint64 n = quint64(json.size());
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);  // little-endian
  f.write(len, 8);
  f.write(json);
  for (const Tensor& t : tensors) f.write(reinterpret_cast<const char*>(t.data.data()), qint64(t.data.size() * sizeof(float)));
}
}  // namespace

QApplication* ensureApp() {
  static QApplication* app = [] {
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    static int argc = 1;
    static char name[] = "ui_tests";
    static char* argv[] = {name, nullptr};
    auto* a = new QApplication(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("MambaScopeTests"));
    QApplication::setApplicationName(QStringLiteral("ui_tests"));
    return a;
  }();
  return app;
}

void writeTinyModel(const QString& dir, const TinyModelShape& s, unsigned seed) {
  QDir().mkpath(dir);
  const QString sp = QStringLiteral(MAMBASCOPE_FIXTURES_DIR "/tokenizer/tiny_sp.model");
  QFile::remove(QDir(dir).filePath(QStringLiteral("tokenizer.model")));
  if (!QFile::copy(sp, QDir(dir).filePath(QStringLiteral("tokenizer.model")))) qFatal("cannot copy %s", qPrintable(sp));
  const auto tok = mambascope::Tokenizer::load(sp.toStdString());
  const int vocab = int(tok->vocab_size());
  const int d = s.dModel, di = 2 * d, n = s.dState, k = 4, r = (d + 15) / 16;

  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  const auto randn = [&](std::vector<int64_t> shape, float scale) {
    size_t count = 1;
    for (int64_t x : shape) count *= size_t(x);
    Tensor t{QString(), shape, std::vector<float>(count)};
    for (float& v : t.data) v = normal(rng) * scale;
    return t;
  };
  const auto filled = [](std::vector<int64_t> shape, float value) {
    size_t count = 1;
    for (int64_t x : shape) count *= size_t(x);
    return Tensor{QString(), shape, std::vector<float>(count, value)};
  };
  std::vector<Tensor> ts;
  const auto add = [&](const QString& name, Tensor t) {
    t.name = name;
    ts.push_back(std::move(t));
  };
  add(QStringLiteral("backbone.embeddings.weight"), randn({vocab, d}, 0.5f));
  for (int l = 0; l < s.nLayer; ++l) {
    const QString p = QStringLiteral("backbone.layers.%1.").arg(l);
    add(p + "norm.weight", filled({d}, 1.f));
    add(p + "mixer.in_proj.weight", randn({2 * di, d}, 1.f / std::sqrt(float(d))));
    add(p + "mixer.conv1d.weight", randn({di, 1, k}, 0.5f));
    add(p + "mixer.conv1d.bias", randn({di}, 0.1f));
    add(p + "mixer.x_proj.weight", randn({r + 2 * n, di}, 1.f / std::sqrt(float(di))));
    add(p + "mixer.dt_proj.weight", randn({di, r}, 1.f / std::sqrt(float(r))));
    Tensor bias = filled({di}, 0.f);
    for (float& b : bias.data) {  // softplus⁻¹ of a Δ drawn log-uniformly in [0.001, 0.1]
      const float dt = std::exp(std::log(0.001f) + uniform(rng) * (std::log(0.1f) - std::log(0.001f)));
      b = dt + std::log(-std::expm1(-dt));
    }
    add(p + "mixer.dt_proj.bias", bias);
    Tensor alog = filled({di, n}, 0.f);
    for (int c = 0; c < di; ++c)
      for (int j = 0; j < n; ++j) alog.data[size_t(c * n + j)] = std::log(float(j + 1));
    add(p + "mixer.A_log", alog);
    add(p + "mixer.D", filled({di}, 1.f));
    add(p + "mixer.out_proj.weight", randn({d, di}, 1.f / std::sqrt(float(di))));
  }
  add(QStringLiteral("backbone.norm_f.weight"), filled({d}, 1.f));
  writeSafetensors(QDir(dir).filePath(QStringLiteral("model.safetensors")), ts);

  const QJsonObject config{{"architectures", QJsonArray{"MambaForCausalLM"}}, {"model_type", "mamba"},
                           {"hidden_size", d}, {"num_hidden_layers", s.nLayer}, {"vocab_size", vocab},
                           {"state_size", n}, {"conv_kernel", k}, {"expand", 2}, {"intermediate_size", di},
                           {"time_step_rank", "auto"}, {"use_bias", false}, {"use_conv_bias", true},
                           {"tie_word_embeddings", true}, {"layer_norm_epsilon", 1e-5},
                           {"bos_token_id", tok->bos_id().value_or(0)}, {"eos_token_id", tok->eos_id().value_or(0)}};
  QFile cf(QDir(dir).filePath(QStringLiteral("config.json")));
  if (!cf.open(QIODevice::WriteOnly)) qFatal("cannot write config.json");
  cf.write(QJsonDocument(config).toJson());
}

QString tinyModelDir() {
  static QTemporaryDir dir;
  static const QString path = [] {
    const QString p = dir.filePath(QStringLiteral("tiny-mamba"));
    writeTinyModel(p, TinyModelShape{}, 1234);
    return p;
  }();
  return path;
}

int distinctColours(const QImage& image) {
  QSet<QRgb> colours;
  const QImage img = image.convertToFormat(QImage::Format_RGB32);
  for (int y = 0; y < img.height(); y += 2)
    for (int x = 0; x < img.width(); x += 2) colours.insert(img.pixel(x, y));
  return int(colours.size());
}

std::unique_ptr<MainWindow> openTestWindow(const QTemporaryDir& scratch, DialogService* dialogs,
                                           QSize size) {
  MainWindow::Options o;
  o.settingsFile = scratch.filePath(QStringLiteral("settings.ini"));
  o.dialogs = dialogs;
  o.loadDefaultModel = false;
  o.persistLayout = false;
  auto window = std::make_unique<MainWindow>(o);
  window->resize(size);
  window->show();
  if (!QTest::qWaitForWindowExposed(window.get())) return nullptr;
  return window;
}
