// The main window: the token strip in the middle, the generation panel and the views in docks
// (layout remembered), the Model menu (open a folder, recent models, demos, backend), the
// Labs menu where lab views dock in (addViewDock), the layer chooser, and a status bar with
// tokens/s, the device and the model. All engine work goes through Explorer.
#pragma once
#include <QMainWindow>
#include <QList>
#include <memory>
#include <optional>

#include "core/modellocator.h"
#include "views/viewpanel.h"

class AppSettings;
class ChatPanel;
class DialogService;
class Explorer;
class QDockWidget;
class QLabel;
class QMenu;
class QSpinBox;
class SessionDocument;
class TokenStripView;
struct ModelInfo;
struct GenerationSummary;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  struct Options {
    QString settingsFile;              // empty: the user's settings
    DialogService* dialogs = nullptr;  // null: modal dialogs
    bool loadDefaultModel = true;      // open the last or the default model at start
    bool persistLayout = true;         // save the dock layout on close
  };
  explicit MainWindow(const Options& options, QWidget* parent = nullptr);
  ~MainWindow() override;

  Explorer* explorer() const { return m_explorer; }
  SessionDocument* document() const;
  ChatPanel* chatPanel() const { return m_chat; }
  TokenStripView* tokenStrip() const { return m_strip; }
  QList<ViewPanel*> views() const { return m_views; }
  ViewPanel* view(const QString& viewId) const;
  QMenu* labsMenu() const { return m_labsMenu; }
  QSpinBox* layerBox() const { return m_layer; }
  QLabel* rateLabel() const { return m_rateLabel; }
  QLabel* deviceLabel() const { return m_deviceLabel; }

  // Docks a view beside `tabifyWith` (a view id) or in `area`; its Export menu works.
  QDockWidget* addViewDock(ViewPanel* view, Qt::DockWidgetArea area, const QString& tabifyWith = QString());
  // Docks a lab (tabbed with the other labs, below) and lists it in the Labs menu.
  QDockWidget* addLab(ViewPanel* lab);

  void loadModel(const QString& dir, const QString& backend = QString());
  void openModelFolder();
  void generateFromPanel();  // what Generate / Send does
  bool exportView(ViewPanel* view, ExportFormat format, const QString& path, QString* error = nullptr);
  bool saveSession(const QString& path, QString* error = nullptr);
  bool openSession(const QString& path, QString* error = nullptr);
  void resetLayout();
  // Loads a demo model, puts its prompt in, and generates its answer greedily.
  void openDemo(const DemoModel& demo);

 Q_SIGNALS:
  void modelReady();
  void modelLoadFailed(const QString& message);
  void generationFinished();

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  void buildMenus();
  void buildDocks();
  void rebuildRecentMenu();
  void rebuildDemosMenu();
  void onModelReady(const ModelInfo& info);
  void onModelFailed(const QString& dir, const QString& message, bool offerCpu);
  void onFinished(int branchId, const GenerationSummary& summary);
  void askExport(ViewPanel* view, ExportFormat format);
  void askSaveSession();
  void askOpenSession();
  void showError(const QString& title, const QString& message);

  Options m_options;
  std::unique_ptr<AppSettings> m_settings;
  DialogService* m_dialogs;
  std::unique_ptr<DialogService> m_ownDialogs;  // when Options gave none
  Explorer* m_explorer;
  ChatPanel* m_chat = nullptr;
  TokenStripView* m_strip = nullptr;
  QList<ViewPanel*> m_views;
  QList<QDockWidget*> m_docks;
  QMenu* m_viewMenu = nullptr;
  QMenu* m_recentMenu = nullptr;
  QMenu* m_demosMenu = nullptr;
  QMenu* m_labsMenu = nullptr;
  QSpinBox* m_layer = nullptr;
  QLabel* m_rateLabel = nullptr;
  QLabel* m_deviceLabel = nullptr;
  QLabel* m_modelLabel = nullptr;
  QByteArray m_defaultState;
  QString m_labAnchor;  // the view the labs are tabbed with
  std::optional<DemoModel> m_pendingDemo;  // applied (and run) once its model is ready
};
