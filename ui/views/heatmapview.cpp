// Heatmap views bound to the document's selection.
#include "views/heatmapview.h"

#include <QCheckBox>
#include <QHBoxLayout>

#include "core/sessiondocument.h"
#include "models/matrixmodel.h"
#include "models/tokentooltip.h"
#include "views/colorscale.h"
#include "views/heatmapwidget.h"

HeatmapView::HeatmapView(const QString& viewId, const QString& title, SessionDocument* doc, MatrixModel* model,
                         QWidget* parent)
    : ViewPanel(viewId, title, parent), m_doc(doc), m_heatmap(new HeatmapWidget(this)) {
  m_heatmap->setObjectName(viewId + QStringLiteral("Heatmap"));
  m_heatmap->setModel(model);
  follow(m_heatmap, doc);
  if (!model->parent()) model->setParent(this);
  setBody(m_heatmap);
}

QList<MatrixModel*> HeatmapView::dataModels() const { return {m_heatmap->model()}; }

void HeatmapView::addRelativeToggle(const QString& text, bool on) {
  auto* box = new QCheckBox(text, this);
  box->setObjectName(viewId() + QStringLiteral("Relative"));
  box->setChecked(on);
  m_heatmap->setRelativeToColumnMean(on);
  connect(box, &QCheckBox::toggled, m_heatmap, &HeatmapWidget::setRelativeToColumnMean);
  controls()->addWidget(box);
}

void HeatmapView::follow(HeatmapWidget* heatmap, SessionDocument* doc) {
  QObject::connect(doc, &SessionDocument::selectionChanged, heatmap, &HeatmapWidget::setSelectedPosition);
  QObject::connect(doc, &SessionDocument::trackedChanged, heatmap, &HeatmapWidget::setMarkedPosition);
  QObject::connect(heatmap, &HeatmapWidget::positionClicked, doc, &SessionDocument::selectPosition);
  heatmap->setSelectedPosition(doc->selectedPosition());
  heatmap->setTooltipProvider([heatmap, doc](int row, int column) {
    const MatrixModel* m = heatmap->model();
    if (!m) return QString();
    const QString cell = QStringLiteral("%1 %2: <b>%3 = %4</b>")
                             .arg(m->columnAxis().toHtmlEscaped(), m->columnLabel(column).toHtmlEscaped(),
                                  m->valueName().toHtmlEscaped(), formatValue(m->value(row, column)));
    const qint64 pos = m->rowPosition(row);
    if (pos < 0) return QStringLiteral("%1 %2<br>%3").arg(m->rowAxis().toHtmlEscaped(), m->rowLabel(row).toHtmlEscaped(), cell);
    return cell + QStringLiteral("<hr>") + tokenTooltip(*doc, pos);
  });
}
