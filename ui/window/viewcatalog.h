// The views the explorer opens with, and where they dock by default: group 0 (right) the
// selectivity views, group 1 (bottom left) and group 2 (bottom right) the hidden-state views.
// Labs add theirs with MainWindow::addViewDock.
#pragma once
#include <QList>

class QWidget;
class SessionDocument;
class ViewPanel;

namespace ViewCatalog {
struct Entry {
  ViewPanel* view;
  int group;
};
QList<Entry> create(SessionDocument* doc, QWidget* parent);
}  // namespace ViewCatalog
