// mambascope: the desktop explorer. With --screenshot it runs headless (generate, render the
// window to a PNG, exit); otherwise it opens the window on the given or the default model.
#include <QApplication>
#include <QCommandLineParser>
#include <QTimer>
#include <cstdio>

#include "window/chatpanel.h"
#include "window/headlessrunner.h"
#include "window/mainwindow.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("MambaScope"));
  QApplication::setApplicationName(QStringLiteral("MambaScope"));
  QApplication::setApplicationVersion(QStringLiteral("0.1.0"));

  QCommandLineParser cli;
  cli.setApplicationDescription(QStringLiteral("See what a Mamba model selects, token by token."));
  cli.addHelpOption();
  cli.addVersionOption();
  const QCommandLineOption model({QStringLiteral("m"), QStringLiteral("model")}, QStringLiteral("Model folder (config.json + safetensors)."), QStringLiteral("dir"));
  const QCommandLineOption prompt({QStringLiteral("p"), QStringLiteral("prompt")}, QStringLiteral("Prompt to generate from."), QStringLiteral("text"));
  const QCommandLineOption maxTokens(QStringLiteral("max-tokens"), QStringLiteral("New tokens to generate (headless: default 64)."), QStringLiteral("n"), QStringLiteral("64"));
  const QCommandLineOption screenshot(QStringLiteral("screenshot"), QStringLiteral("Headless: generate, write the window as a PNG and exit."), QStringLiteral("png"));
  const QCommandLineOption backend(QStringLiteral("backend"), QStringLiteral("auto, cpu or cuda."), QStringLiteral("name"));
  const QCommandLineOption seed(QStringLiteral("seed"), QStringLiteral("Sampling seed."), QStringLiteral("n"), QStringLiteral("0"));
  const QCommandLineOption temperature(QStringLiteral("temperature"), QStringLiteral("Sampling temperature (0 = greedy)."), QStringLiteral("t"));
  const QCommandLineOption layer(QStringLiteral("layer"), QStringLiteral("Layer the views show."), QStringLiteral("n"));
  const QCommandLineOption select(QStringLiteral("select"), QStringLiteral("Headless: token position to select."), QStringLiteral("n"));
  const QCommandLineOption size(QStringLiteral("size"), QStringLiteral("Headless: window size WxH (default 1600x1000)."), QStringLiteral("WxH"));
  const QCommandLineOption raise(QStringLiteral("raise"), QStringLiteral("Headless: views to bring to the front, comma-separated ids (e.g. layers,retention)."), QStringLiteral("ids"));
  const QCommandLineOption viewsDir(QStringLiteral("export-views"), QStringLiteral("Headless: also write every view as <id>.png into this folder."), QStringLiteral("dir"));
  const QCommandLineOption chat(QStringLiteral("chat"), QStringLiteral("Chat mode instead of plain completion."));
  cli.addOptions({model, prompt, maxTokens, screenshot, backend, seed, temperature, layer, select, size, chat, raise, viewsDir});
  cli.process(app);

  if (cli.isSet(screenshot)) {
    HeadlessOptions o;
    o.model = cli.value(model);
    o.prompt = cli.value(prompt);
    o.maxTokens = cli.value(maxTokens).toInt();
    o.screenshot = cli.value(screenshot);
    o.backend = cli.value(backend);
    o.seed = cli.value(seed).toLongLong();
    if (cli.isSet(temperature)) o.temperature = cli.value(temperature).toDouble();
    if (cli.isSet(layer)) o.layer = cli.value(layer).toInt();
    if (cli.isSet(select)) o.select = cli.value(select).toLongLong();
    if (cli.isSet(size)) {
      const QStringList wh = cli.value(size).split(QLatin1Char('x'));
      if (wh.size() == 2) o.size = QSize(wh[0].toInt(), wh[1].toInt());
    }
    o.chat = cli.isSet(chat);
    if (cli.isSet(raise)) o.raise = cli.value(raise).split(QLatin1Char(','), Qt::SkipEmptyParts);
    o.viewsDir = cli.value(viewsDir);
    return runHeadless(o);
  }

  MainWindow::Options options;
  options.loadDefaultModel = !cli.isSet(model);
  MainWindow window(options);
  window.show();
  if (cli.isSet(model)) window.loadModel(cli.value(model), cli.value(backend));
  if (cli.isSet(prompt)) {
    window.chatPanel()->setChatMode(cli.isSet(chat));
    window.chatPanel()->setPrompt(cli.value(prompt));
    if (cli.isSet(maxTokens)) {
      SamplingSettings s = window.chatPanel()->sampling();
      s.maxTokens = cli.value(maxTokens).toInt();
      window.chatPanel()->setSampling(s);
    }
    // Generate as soon as the model is ready, once.
    auto* once = new QObject(&window);
    QObject::connect(&window, &MainWindow::modelReady, once, [&window, once] {
      window.generateFromPanel();
      once->deleteLater();
    });
  }
  return app.exec();
}
