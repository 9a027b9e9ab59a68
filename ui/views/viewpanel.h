// The frame every view sits in: a row of the view's own controls with an Export menu at its
// right (PNG, SVG, CSV, .npy), and the view's body below. Export requests go up to the main
// window, which asks for a file name and writes it (see viewexport.h and matrixexport.h).
#pragma once
#include <QList>
#include <QWidget>

class MatrixModel;
class QHBoxLayout;
class QVBoxLayout;

enum class ExportFormat { Png, Svg, Csv, Npy };

class ViewPanel : public QWidget {
  Q_OBJECT

 public:
  ViewPanel(const QString& viewId, const QString& title, QWidget* parent = nullptr);

  QString viewId() const { return m_viewId; }  // stable: dock object names, file names
  QString title() const { return m_title; }
  virtual QWidget* renderTarget() { return m_body; }        // what PNG and SVG show
  virtual QList<MatrixModel*> dataModels() const = 0;     // what CSV and .npy hold

 Q_SIGNALS:
  void exportRequested(ViewPanel* view, ExportFormat format);

 protected:
  QHBoxLayout* controls() const { return m_controls; }
  void setBody(QWidget* body);

 private:
  QString m_viewId, m_title;
  QHBoxLayout* m_controls;
  QVBoxLayout* m_layout;
  QWidget* m_body = nullptr;
};
