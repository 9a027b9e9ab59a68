// The text as tokens, each a box coloured by a measure (a column of TokenMeasuresModel). Boxes
// wrap like text; a newline token ends its line. Layout is incremental (appended tokens are
// placed after the last box) and painting touches only the visible boxes, so thousands of
// tokens stay smooth. Hover: the token read-out; click: select; right-click: fork with an
// alternative, or track the token's survival.
#pragma once
#include <QTimer>
#include <QVector>
#include <QWidget>

#include "views/colorscale.h"

class SessionDocument;
class MatrixModel;

class TokenStripWidget : public QWidget {
  Q_OBJECT

 public:
  TokenStripWidget(SessionDocument* doc, MatrixModel* measures, QWidget* parent = nullptr);

  void setMeasure(int column);
  int measure() const { return m_measure; }
  const ColorScale& scale() const { return m_scale; }
  QRect tokenRect(qint64 position) const;  // in widget coordinates; null if absent
  qint64 positionAt(const QPoint& p) const;
  // The context menu's actions for a token, built on demand (tests trigger them directly).
  QList<QAction*> tokenActions(qint64 position, QObject* parent);

  bool hasHeightForWidth() const override { return true; }
  int heightForWidth(int width) const override;
  QSize sizeHint() const override;

 Q_SIGNALS:
  void positionClicked(qint64 position);
  void forkRequested(qint64 position, qint32 tokenId);
  void trackRequested(qint64 position);
  void scaleChanged();

 protected:
  void paintEvent(QPaintEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void contextMenuEvent(QContextMenuEvent* event) override;
  bool event(QEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;

 private:
  void relayout();
  void layoutFrom(int first);
  void refit();

  SessionDocument* m_doc;
  MatrixModel* m_measures;
  int m_measure = 0;
  ColorScale m_scale;
  QTimer m_refitTimer;
  QVector<QRect> m_boxes;  // one per token, in widget coordinates
  QPoint m_cursor;         // where the next box goes
  int m_layoutWidth = 0;
};
