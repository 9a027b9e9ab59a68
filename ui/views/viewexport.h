// Writes what a view shows: PNG (the widget grabbed at its size and device pixel ratio) and SVG
// (the widget painted through QSvgGenerator: text and lines stay vector, heatmaps embed their
// image).
#pragma once
#include <QString>

class QWidget;

namespace viewexport {
bool savePng(QWidget* widget, const QString& path, QString* error = nullptr);
bool saveSvg(QWidget* widget, const QString& path, const QString& title, QString* error = nullptr);
}  // namespace viewexport
