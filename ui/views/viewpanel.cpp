// View frame with an Export menu.
#include "views/viewpanel.h"

#include <QHBoxLayout>
#include <QMenu>
#include <QToolButton>
#include <QVBoxLayout>

ViewPanel::ViewPanel(const QString& viewId, const QString& title, QWidget* parent)
    : QWidget(parent), m_viewId(viewId), m_title(title) {
  m_layout = new QVBoxLayout(this);
  m_layout->setContentsMargins(2, 2, 2, 2);
  m_layout->setSpacing(2);
  auto* row = new QHBoxLayout;
  row->setContentsMargins(0, 0, 0, 0);
  m_controls = new QHBoxLayout;
  m_controls->setContentsMargins(0, 0, 0, 0);
  row->addLayout(m_controls);
  row->addStretch(1);
  auto* exportButton = new QToolButton(this);
  exportButton->setObjectName(QStringLiteral("exportButton"));
  exportButton->setText(tr("Export"));
  exportButton->setPopupMode(QToolButton::InstantPopup);
  auto* menu = new QMenu(exportButton);
  const auto add = [this, menu](const QString& text, ExportFormat f) {
    menu->addAction(text, this, [this, f] { Q_EMIT exportRequested(this, f); });
  };
  add(tr("Image (PNG)…"), ExportFormat::Png);
  add(tr("Vector image (SVG)…"), ExportFormat::Svg);
  add(tr("Data (CSV)…"), ExportFormat::Csv);
  add(tr("Data (NumPy .npy)…"), ExportFormat::Npy);
  exportButton->setMenu(menu);
  row->addWidget(exportButton);
  m_layout->addLayout(row);
}

void ViewPanel::setBody(QWidget* body) {
  m_body = body;
  m_layout->addWidget(body, 1);
}
