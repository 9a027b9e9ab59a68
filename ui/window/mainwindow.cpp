// Main window: docks, menus, status bar, and the wiring between panels and the Explorer.
#include "window/mainwindow.h"

#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QPlainTextEdit>
#include <QSpinBox>
#include <QStatusBar>
#include <QTimer>
#include <QHBoxLayout>

#include "core/appsettings.h"
#include "core/explorer.h"
#include "core/modellocator.h"
#include "core/sessiondocument.h"
#include "lab/modeslab.h"
#include "models/matrixexport.h"
#include "models/matrixmodel.h"
#include "views/tokenstripview.h"
#include "views/viewexport.h"
#include "window/chatpanel.h"
#include "window/dialogservice.h"
#include "window/probememorydialog.h"
#include "window/viewcatalog.h"

namespace {
constexpr int kLayoutVersion = 1;

QString fileSafe(QString s) {
  for (QChar& c : s)
    if (!c.isLetterOrNumber()) c = QLatin1Char('_');
  while (s.contains(QStringLiteral("__"))) s.replace(QStringLiteral("__"), QStringLiteral("_"));
  return s.trimmed().toLower();
}
}  // namespace

MainWindow::MainWindow(const Options& options, QWidget* parent)
    : QMainWindow(parent), m_options(options), m_settings(std::make_unique<AppSettings>(options.settingsFile)) {
  Q_INIT_RESOURCE(mambascope);  // the icons live in this static library
  if (options.dialogs) {
    m_dialogs = options.dialogs;
  } else {
    m_ownDialogs = std::make_unique<DialogService>();
    m_dialogs = m_ownDialogs.get();
  }
  m_explorer = new Explorer(m_settings.get(), this);
  setWindowTitle(tr("MambaScope"));
  setWindowIcon(QIcon(QStringLiteral(":/icons/mambascope.svg")));
  setDockNestingEnabled(true);
  resize(1500, 940);

  m_strip = new TokenStripView(document(), this);
  m_strip->setObjectName(QStringLiteral("tokenStripView"));
  setCentralWidget(m_strip);
  m_views << m_strip;
  connect(m_strip, &ViewPanel::exportRequested, this, &MainWindow::askExport);
  connect(m_strip, &TokenStripView::forkRequested, this, [this](qint64 position, qint32 id) {
    m_explorer->fork(position, id, m_chat->sampling());
  });

  buildDocks();
  buildMenus();
  modeslab::install(this);

  m_rateLabel = new QLabel(tr("– tok/s"), this);
  m_rateLabel->setObjectName(QStringLiteral("rateLabel"));
  m_deviceLabel = new QLabel(tr("no model"), this);
  m_deviceLabel->setObjectName(QStringLiteral("deviceLabel"));
  m_modelLabel = new QLabel(this);
  statusBar()->addPermanentWidget(m_rateLabel);
  statusBar()->addPermanentWidget(m_deviceLabel);
  statusBar()->addPermanentWidget(m_modelLabel);

  connect(m_explorer, &Explorer::modelLoading, this, [this](const QString& dir) {
    statusBar()->showMessage(tr("Loading %1 …").arg(QDir(dir).dirName()));
    m_chat->setModelReady(false);
  });
  connect(m_explorer, &Explorer::modelReady, this, &MainWindow::onModelReady);
  connect(m_explorer, &Explorer::modelFailed, this, &MainWindow::onModelFailed);
  connect(m_explorer, &Explorer::busyChanged, m_chat, &ChatPanel::setBusy);
  connect(m_explorer, &Explorer::generationStarted, this, [this] { statusBar()->showMessage(tr("Generating …")); });
  connect(m_explorer, &Explorer::generationFinished, this, &MainWindow::onFinished);
  connect(m_explorer, &Explorer::generationFailed, this, [this](int, const QString& message) {
    statusBar()->showMessage(tr("Generation failed"), 5000);
    showError(tr("Generation failed"), message + tr("\n\nThe tokens generated so far are kept."));
    Q_EMIT generationFinished();
  });
  connect(m_explorer, &Explorer::rateChanged, this, [this](double rate) {
    m_rateLabel->setText(tr("%1 tok/s").arg(rate, 0, 'f', rate < 10 ? 1 : 0));
  });
  connect(m_explorer, &Explorer::sessionOpened, this, [this](const SessionData& d) {
    m_chat->setChatMode(d.chatMode);
    m_chat->setPrompt(d.prompt);
    m_chat->setSampling(d.sampling);
    statusBar()->showMessage(tr("Session opened"), 5000);
  });
  connect(document(), &SessionDocument::layerChanged, this, [this](int layer) {
    if (m_layer->value() != layer) m_layer->setValue(layer);
  });

  m_chat->setChatMode(m_settings->chatMode());
  m_chat->setSampling(m_settings->sampling());
  m_defaultState = saveState(kLayoutVersion);
  if (!m_settings->windowGeometry().isEmpty()) restoreGeometry(m_settings->windowGeometry());
  if (!m_settings->windowState().isEmpty()) restoreState(m_settings->windowState(), kLayoutVersion);

  if (options.loadDefaultModel) {
    QTimer::singleShot(0, this, [this] {
      QString dir = m_settings->lastModel();
      if (dir.isEmpty() || !modellocator::looksLikeModel(dir)) dir = modellocator::defaultModel();
      if (dir.isEmpty())
        statusBar()->showMessage(tr("No model found: use Model ▸ Open model folder…"));
      else
        loadModel(dir);
    });
  }
}

MainWindow::~MainWindow() = default;

SessionDocument* MainWindow::document() const { return m_explorer->document(); }

ViewPanel* MainWindow::view(const QString& viewId) const {
  for (ViewPanel* v : m_views)
    if (v->viewId() == viewId) return v;
  return nullptr;
}

QDockWidget* MainWindow::addViewDock(ViewPanel* view, Qt::DockWidgetArea area, const QString& tabifyWith) {
  auto* dock = new QDockWidget(view->title(), this);
  dock->setObjectName(view->viewId() + QStringLiteral("Dock"));
  dock->setWidget(view);
  QDockWidget* sibling = nullptr;
  for (QDockWidget* d : m_docks)
    if (!tabifyWith.isEmpty() && d->objectName() == tabifyWith + QStringLiteral("Dock")) sibling = d;
  if (sibling)
    tabifyDockWidget(sibling, dock);
  else
    addDockWidget(area, dock);
  m_docks << dock;
  m_views << view;
  connect(view, &ViewPanel::exportRequested, this, &MainWindow::askExport);
  if (m_viewMenu) m_viewMenu->insertAction(m_viewMenu->actions().value(0), dock->toggleViewAction());
  return dock;
}

QDockWidget* MainWindow::addLab(ViewPanel* lab) {
  // Labs are tabs beside the bottom-right views; those stay in front until a lab is chosen.
  QDockWidget* dock = addViewDock(lab, Qt::BottomDockWidgetArea, m_labAnchor);
  if (ViewPanel* anchor = view(m_labAnchor))
    if (auto* anchorDock = qobject_cast<QDockWidget*>(anchor->parentWidget())) anchorDock->raise();
  for (QAction* a : m_labsMenu->actions())
    if (a->data().toString().isEmpty()) m_labsMenu->removeAction(a);  // the placeholder
  // Choosing a lab brings it to the front (a toggle would hide a lab that sits in a back tab).
  QAction* open = m_labsMenu->addAction(lab->title(), dock, [dock] {
    dock->show();
    dock->raise();
  });
  open->setData(lab->viewId());
  return dock;
}

void MainWindow::buildDocks() {
  m_chat = new ChatPanel(document(), this);
  auto* chatDock = new QDockWidget(tr("Generate"), this);
  chatDock->setObjectName(QStringLiteral("generateDock"));
  chatDock->setWidget(m_chat);
  addDockWidget(Qt::LeftDockWidgetArea, chatDock);
  m_docks << chatDock;
  connect(m_chat, &ChatPanel::generateRequested, this, &MainWindow::generateFromPanel);
  connect(m_chat, &ChatPanel::continueRequested, this, [this] {
    m_explorer->continueBranch(m_chat->prompt(), m_chat->sampling());
    m_chat->setPrompt(QString());
  });
  connect(m_chat, &ChatPanel::stopRequested, m_explorer, &Explorer::stop);

  // The views, grouped: selectivity on the right, hidden state below in two tab groups side by
  // side. The first view of each group is placed (and split) before the others are tabbed onto
  // it, because splitting a dock that is already tabbed only adds another tab.
  const QList<ViewCatalog::Entry> entries = ViewCatalog::create(document(), this);
  QDockWidget* firstDock[3] = {nullptr, nullptr, nullptr};
  for (const ViewCatalog::Entry& e : entries) {
    if (firstDock[e.group]) continue;
    firstDock[e.group] = addViewDock(e.view, e.group == 0 ? Qt::RightDockWidgetArea : Qt::BottomDockWidgetArea);
    if (e.group == 2 && firstDock[1]) splitDockWidget(firstDock[1], firstDock[2], Qt::Horizontal);
  }
  if (firstDock[2]) m_labAnchor = static_cast<ViewPanel*>(firstDock[2]->widget())->viewId();
  for (const ViewCatalog::Entry& e : entries)
    if (!m_views.contains(e.view)) addViewDock(e.view, Qt::BottomDockWidgetArea, 
                  static_cast<ViewPanel*>(firstDock[e.group]->widget())->viewId());
  for (QDockWidget* d : firstDock)
    if (d) d->raise();
  resizeDocks({chatDock}, {380}, Qt::Horizontal);
  if (firstDock[0]) resizeDocks({firstDock[0]}, {640}, Qt::Horizontal);
  if (firstDock[1]) resizeDocks({firstDock[1]}, {400}, Qt::Vertical);
}
void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&New session"), QKeySequence::New, m_explorer, &Explorer::newSession);
  file->addAction(tr("&Open session…"), QKeySequence::Open, this, &MainWindow::askOpenSession);
  file->addAction(tr("&Save session…"), QKeySequence::Save, this, &MainWindow::askSaveSession);
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

  QMenu* model = menuBar()->addMenu(tr("&Model"));
  model->addAction(tr("&Open model folder…"), this, &MainWindow::openModelFolder);
  m_recentMenu = model->addMenu(tr("&Recent models"));
  m_demosMenu = model->addMenu(tr("&Demos"));
  model->addAction(tr("Open the &default model"), this, [this] {
    const QString dir = modellocator::defaultModel();
    if (dir.isEmpty())
      showError(tr("No default model"), tr("No bundled model was found (looked in: %1).")
                                            .arg(modellocator::candidateRoots().join(QStringLiteral(", "))));
    else
      loadModel(dir);
  });
  QMenu* backend = model->addMenu(tr("&Backend"));
  auto* group = new QActionGroup(this);
  const QList<QPair<QString, QString>> backends{{QStringLiteral("auto"), tr("Automatic (GPU if present)")},
                                                {QStringLiteral("cpu"), tr("CPU")},
                                                {QStringLiteral("cuda"), tr("GPU (CUDA)")}};
  for (const auto& [name, text] : backends) {
    QAction* a = backend->addAction(text);
    a->setCheckable(true);
    a->setChecked(m_settings->backend() == name);
    group->addAction(a);
    connect(a, &QAction::triggered, this, [this, name = name] {
      m_settings->setBackend(name);
      if (document()->hasModel()) loadModel(document()->model().dir, name);
    });
  }
  connect(model, &QMenu::aboutToShow, this, [this] {
    rebuildRecentMenu();
    rebuildDemosMenu();
  });
  rebuildRecentMenu();
  rebuildDemosMenu();

  m_viewMenu = menuBar()->addMenu(tr("&View"));
  for (QDockWidget* d : m_docks) m_viewMenu->addAction(d->toggleViewAction());
  m_viewMenu->addSeparator();
  m_viewMenu->addAction(tr("&Reset layout"), this, &MainWindow::resetLayout);
  m_viewMenu->addAction(tr("&Probe memory…"), this, [this] {
    ProbeMemoryDialog dialog(m_settings->probeDetailBudget(), m_settings->probeHBudget(),
                             m_explorer->document()->probeBytes(), this);
    if (dialog.exec() == QDialog::Accepted) {
      m_explorer->setProbeBudgets(dialog.detailBytes(), dialog.hBytes());
      statusBar()->showMessage(tr("Probe memory: %1 MiB of details, %2 MiB of hidden states")
                                   .arg(dialog.detailBytes() >> 20).arg(dialog.hBytes() >> 20), 5000);
    }
  });

  m_labsMenu = menuBar()->addMenu(tr("&Labs"));
  m_labsMenu->setObjectName(QStringLiteral("labsMenu"));
  QAction* none = m_labsMenu->addAction(tr("(labs dock here as they are added)"));
  none->setEnabled(false);

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&About MambaScope"), this, [this] {
    statusBar()->showMessage(tr("MambaScope %1: see what a Mamba model selects, token by token.")
                                 .arg(QApplication::applicationVersion()), 8000);
  });

  // The layer chooser sits in the menu bar's corner: it steers every per-layer view.
  auto* corner = new QWidget(this);
  auto* row = new QHBoxLayout(corner);
  row->setContentsMargins(0, 0, 6, 0);
  row->addWidget(new QLabel(tr("Layer"), corner));
  m_layer = new QSpinBox(corner);
  m_layer->setObjectName(QStringLiteral("layerBox"));
  m_layer->setToolTip(tr("The layer every per-layer view shows (and whose hidden state h is kept while generating)"));
  m_layer->setRange(0, 0);
  row->addWidget(m_layer);
  menuBar()->setCornerWidget(corner, Qt::TopRightCorner);
  connect(m_layer, &QSpinBox::valueChanged, document(), &SessionDocument::setLayer);
}

void MainWindow::rebuildRecentMenu() {
  m_recentMenu->clear();
  for (const QString& dir : m_settings->recentModels())
    m_recentMenu->addAction(dir, this, [this, dir] { loadModel(dir); });
  m_recentMenu->setEnabled(!m_recentMenu->isEmpty());
}

void MainWindow::rebuildDemosMenu() {
  m_demosMenu->clear();
  const QVector<DemoModel> demos = modellocator::demos();
  for (const DemoModel& d : demos) {
    QAction* a = m_demosMenu->addAction(d.title, this, [this, d] { openDemo(d); });
    a->setToolTip(d.prompt);
  }
  if (demos.isEmpty()) m_demosMenu->addAction(tr("(no demo models under models/demos/)"))->setEnabled(false);
}

void MainWindow::loadModel(const QString& dir, const QString& backend) { m_explorer->loadModel(dir, backend); }

void MainWindow::openDemo(const DemoModel& demo) {
  m_pendingDemo = demo;
  loadModel(demo.dir);
}

void MainWindow::openModelFolder() {
  const QString start = document()->hasModel() ? document()->model().dir : modellocator::modelsDir();
  const QString dir = m_dialogs->chooseDirectory(this, tr("Open a model folder (config.json + safetensors)"), start);
  if (!dir.isEmpty()) loadModel(dir);
}

void MainWindow::onModelReady(const ModelInfo& info) {
  setWindowTitle(tr("MambaScope — %1").arg(info.name));
  m_deviceLabel->setText(info.device);
  m_deviceLabel->setToolTip(info.note);
  m_modelLabel->setText(tr("%1 · %2 layers · d_model %3 · d_state %4%5")
                            .arg(info.name)
                            .arg(info.nLayer)
                            .arg(info.dModel)
                            .arg(info.dState)
                            .arg(info.lti ? tr(" · LTI") : QString()));
  m_modelLabel->setToolTip(tr("%1\n%2 parameters · vocabulary %3 (%4)%5")
                               .arg(info.dir)
                               .arg(info.parameters)
                               .arg(info.vocab)
                               .arg(info.tokenizer, info.chatTemplate ? tr(" · chat template") : QString()));
  m_layer->setRange(0, std::max(0, info.nLayer - 1));
  m_layer->setValue(document()->layer());
  m_chat->setModelReady(true);
  statusBar()->showMessage(info.note.isEmpty() ? tr("Model ready") : info.note, 8000);
  Q_EMIT modelReady();
  if (m_pendingDemo && QDir(m_pendingDemo->dir) == QDir(info.dir)) {
    // The demo tasks are answered greedily, with exactly as many tokens as the answer has.
    m_chat->setChatMode(false);
    m_chat->setPrompt(m_pendingDemo->prompt);
    SamplingSettings s = m_chat->sampling();
    s.temperature = 0;
    s.stopAtEos = false;
    if (m_pendingDemo->answerTokens > 0) s.maxTokens = m_pendingDemo->answerTokens;
    m_chat->setSampling(s);
    // The demo models have two layers and select in the last one (layer 0 mixes the
    // neighbourhood first), so the views open there.
    m_layer->setValue(std::max(0, info.nLayer - 1));
    m_pendingDemo.reset();
    if (!m_chat->prompt().isEmpty()) generateFromPanel();
  }
}

void MainWindow::onModelFailed(const QString& dir, const QString& message, bool offerCpu) {
  if (!offerCpu) m_pendingDemo.reset();
  m_chat->setModelReady(document()->hasModel());  // the previous model, if any, is still there
  statusBar()->showMessage(tr("Could not open the model"), 5000);
  if (offerCpu && m_dialogs->askYesNo(this, tr("The model does not fit on the GPU"),
                                      tr("%1\n\nLoad it on the CPU instead? (Slower, but it runs.)").arg(message))) {
    loadModel(dir, QStringLiteral("cpu"));
    return;
  }
  showError(tr("Could not open the model"), message);
  Q_EMIT modelLoadFailed(message);
}

void MainWindow::onFinished(int, const GenerationSummary& s) {
  QString text = tr("Done: %1 new tokens, %2").arg(s.newTokens).arg(s.stopReason);
  if (s.decodeSeconds > 0) text += tr(" · decode %1 tok/s").arg(s.decodeTokensPerSecond(), 0, 'f', 1);
  if (s.prefillSeconds > 0) text += tr(" · prefill %1 tok/s").arg(s.prefillTokensPerSecond(), 0, 'f', 0);
  statusBar()->showMessage(text);
  Q_EMIT generationFinished();
}

void MainWindow::generateFromPanel() {
  const QString prompt = m_chat->prompt();
  if (prompt.isEmpty()) {
    statusBar()->showMessage(tr("Type a prompt first."), 4000);
    return;
  }
  m_settings->setSampling(m_chat->sampling());
  m_settings->setChatMode(m_chat->isChatMode());
  if (m_chat->isChatMode()) {
    m_explorer->chat(prompt, m_chat->sampling());
    m_chat->setPrompt(QString());
  } else {
    m_explorer->generate(prompt, m_chat->sampling());
  }
}

bool MainWindow::exportView(ViewPanel* view, ExportFormat format, const QString& path, QString* error) {
  // A view in a background tab is brought to the front first: it draws what it shows then.
  if (auto* dock = qobject_cast<QDockWidget*>(view->parentWidget()); dock && !view->isVisible()) {
    dock->raise();
    QCoreApplication::processEvents();
  }
  switch (format) {
    case ExportFormat::Png: return viewexport::savePng(view->renderTarget(), path, error);
    case ExportFormat::Svg: return viewexport::saveSvg(view->renderTarget(), path, view->title(), error);
    case ExportFormat::Csv:
    case ExportFormat::Npy: {
      const QList<MatrixModel*> models = view->dataModels();
      const QFileInfo fi(path);
      for (int i = 0; i < models.size(); ++i) {
        // The first table takes the chosen name; any others get their quantity appended.
        const QString p = i == 0 ? path
                                 : fi.dir().filePath(fi.completeBaseName() + QLatin1Char('_') +
                                                     fileSafe(models[i]->valueName()) + QLatin1Char('.') + fi.suffix());
        const bool ok = format == ExportFormat::Csv ? matrixexport::saveCsv(*models[i], p, error)
                                                    : matrixexport::saveNpy(*models[i], p, error);
        if (!ok) return false;
      }
      return true;
    }
  }
  return false;
}

void MainWindow::askExport(ViewPanel* view, ExportFormat format) {
  static const char* ext[] = {"png", "svg", "csv", "npy"};
  static const char* filters[] = {"PNG image (*.png)", "SVG image (*.svg)", "CSV table (*.csv)", "NumPy array (*.npy)"};
  const QString suffix = QLatin1String(ext[int(format)]);
  QString dir = m_settings->lastDirectory(QStringLiteral("export"));
  if (dir.isEmpty()) dir = QDir::homePath();
  const QString path = m_dialogs->chooseSaveFile(this, tr("Export %1").arg(view->title()),
                                                 QDir(dir).filePath(view->viewId() + QLatin1Char('.') + suffix),
                                                 tr(filters[int(format)]));
  if (path.isEmpty()) return;
  m_settings->setLastDirectory(QStringLiteral("export"), QFileInfo(path).absolutePath());
  QString error;
  if (exportView(view, format, path, &error))
    statusBar()->showMessage(tr("Exported %1").arg(path), 5000);
  else
    showError(tr("Export failed"), error);
}

bool MainWindow::saveSession(const QString& path, QString* error) {
  SessionData extras;
  extras.prompt = m_chat->prompt();
  extras.chatMode = m_chat->isChatMode();
  extras.sampling = m_chat->sampling();
  return m_explorer->saveSession(path, extras, error);
}

bool MainWindow::openSession(const QString& path, QString* error) { return m_explorer->openSession(path, error); }

void MainWindow::askSaveSession() {
  if (document()->branchIds().isEmpty()) {
    statusBar()->showMessage(tr("Nothing to save yet: generate something first."), 4000);
    return;
  }
  const QString dir = m_settings->lastDirectory(QStringLiteral("session"));
  const QString path = m_dialogs->chooseSaveFile(this, tr("Save session"),
                                                 QDir(dir.isEmpty() ? QDir::homePath() : dir).filePath(QStringLiteral("session.json")),
                                                 tr("MambaScope session (*.json)"));
  if (path.isEmpty()) return;
  m_settings->setLastDirectory(QStringLiteral("session"), QFileInfo(path).absolutePath());
  QString error;
  if (saveSession(path, &error))
    statusBar()->showMessage(tr("Saved %1").arg(path), 5000);
  else
    showError(tr("Could not save the session"), error);
}

void MainWindow::askOpenSession() {
  const QString path = m_dialogs->chooseOpenFile(this, tr("Open session"), m_settings->lastDirectory(QStringLiteral("session")),
                                                 tr("MambaScope session (*.json)"));
  if (path.isEmpty()) return;
  m_settings->setLastDirectory(QStringLiteral("session"), QFileInfo(path).absolutePath());
  QString error;
  if (!openSession(path, &error)) showError(tr("Could not open the session"), error);
}

void MainWindow::resetLayout() { restoreState(m_defaultState, kLayoutVersion); }

void MainWindow::showError(const QString& title, const QString& message) { m_dialogs->showError(this, title, message); }

void MainWindow::closeEvent(QCloseEvent* event) {
  m_explorer->stop();
  if (m_options.persistLayout) {
    m_settings->setWindowLayout(saveGeometry(), saveState(kLayoutVersion));
    m_settings->setSampling(m_chat->sampling());
    m_settings->setChatMode(m_chat->isChatMode());
  }
  event->accept();
}
