// PNG and SVG export of widgets.
#include "views/viewexport.h"

#include <QFile>
#include <QPainter>
#include <QPixmap>
#include <QSvgGenerator>
#include <QWidget>

namespace viewexport {

bool savePng(QWidget* widget, const QString& path, QString* error) {
  const QPixmap pixmap = widget->grab();
  if (pixmap.isNull() || !pixmap.save(path, "PNG")) {
    if (error) *error = QObject::tr("Cannot write the image %1.").arg(path);
    return false;
  }
  return true;
}

bool saveSvg(QWidget* widget, const QString& path, const QString& title, QString* error) {
  QSvgGenerator svg;
  svg.setFileName(path);
  svg.setSize(widget->size());
  svg.setViewBox(QRect(QPoint(0, 0), widget->size()));
  svg.setTitle(title);
  svg.setDescription(QObject::tr("Exported from MambaScope"));
  QPainter painter;
  if (!painter.begin(&svg)) {
    if (error) *error = QObject::tr("Cannot write the SVG file %1.").arg(path);
    return false;
  }
  widget->render(&painter, QPoint(), QRegion(), QWidget::DrawChildren);
  painter.end();
  if (!QFile::exists(path) || QFile(path).size() == 0) {
    if (error) *error = QObject::tr("Cannot write the SVG file %1.").arg(path);
    return false;
  }
  return true;
}

}  // namespace viewexport
