// Token strip: layout, colouring, hover, selection, fork menu.
#include "views/tokenstripwidget.h"

#include <QContextMenuEvent>
#include <QHelpEvent>
#include <QKeyEvent>
#include <QMenu>
#include <QPainter>
#include <QToolTip>
#include <algorithm>
#include <cmath>

#include "core/measures.h"
#include "core/sessiondocument.h"
#include "models/matrixmodel.h"
#include "models/tokentooltip.h"

namespace {
constexpr int kPad = 3;      // text padding inside a box
constexpr int kGap = 2;      // between boxes
constexpr int kMargin = 4;   // around the strip
constexpr int kMaxBoxText = 24;  // characters; longer tokens are elided
}  // namespace

TokenStripWidget::TokenStripWidget(SessionDocument* doc, MatrixModel* measures, QWidget* parent)
    : QWidget(parent), m_doc(doc), m_measures(measures) {
  setMouseTracking(true);
  setFocusPolicy(Qt::ClickFocus);
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
  m_refitTimer.setSingleShot(true);
  m_refitTimer.setInterval(80);
  connect(&m_refitTimer, &QTimer::timeout, this, &TokenStripWidget::refit);
  connect(measures, &QAbstractItemModel::modelReset, this, [this] {
    relayout();
    refit();
  });
  connect(measures, &QAbstractItemModel::rowsInserted, this, [this](const QModelIndex&, int first) {
    layoutFrom(first);
    if (!m_refitTimer.isActive()) m_refitTimer.start();
  });
  connect(doc, &SessionDocument::selectionChanged, this, qOverload<>(&QWidget::update));
  connect(doc, &SessionDocument::trackedChanged, this, qOverload<>(&QWidget::update));
  relayout();
  refit();
}

void TokenStripWidget::setMeasure(int column) {
  m_measure = std::clamp(column, 0, kTokenMeasureCount - 1);
  refit();
}

void TokenStripWidget::refit() {
  std::vector<float> v;
  const int rows = m_measures->rowCount();
  v.reserve(size_t(rows));
  for (int r = 0; r < rows; ++r) v.push_back(m_measures->value(r, m_measure));
  const auto m = TokenMeasure(m_measure);
  const bool log = m == TokenMeasure::DeltaLayer || m == TokenMeasure::DeltaAll;
  m_scale = ColorScale::fit(v, measureIsSigned(m) ? ColorScale::Kind::Diverging : ColorScale::Kind::Sequential, log);
  update();
  Q_EMIT scaleChanged();
}

void TokenStripWidget::relayout() {
  m_boxes.clear();
  m_cursor = QPoint(kMargin, kMargin);
  m_layoutWidth = width();
  layoutFrom(0);
}

void TokenStripWidget::layoutFrom(int first) {
  if (first != m_boxes.size()) {  // out of step: lay everything out again
    relayout();
    return;
  }
  const QFontMetrics fm = fontMetrics();
  const int h = fm.height() + 2 * kPad;
  const int right = std::max(width(), 200) - kMargin;
  const auto& tokens = m_doc->tokens();
  for (qsizetype i = m_boxes.size(); i < tokens.size(); ++i) {
    const QString text = visibleTokenText(tokens[i].text).left(kMaxBoxText);
    const int w = fm.horizontalAdvance(text) + 2 * kPad;
    if (m_cursor.x() + w > right && m_cursor.x() > kMargin) m_cursor = QPoint(kMargin, m_cursor.y() + h + kGap);
    m_boxes.push_back(QRect(m_cursor, QSize(w, h)));
    m_cursor.rx() += w + kGap;
    if (tokens[i].text.contains(QLatin1Char('\n'))) m_cursor = QPoint(kMargin, m_cursor.y() + h + kGap);
  }
  // The scroll area around the strip sizes it by its minimum height.
  if (minimumHeight() != heightForWidth(width())) setMinimumHeight(heightForWidth(width()));
  update();
}

int TokenStripWidget::heightForWidth(int) const {
  const int h = fontMetrics().height() + 2 * kPad;
  return m_cursor.y() + h + kMargin;
}

QSize TokenStripWidget::sizeHint() const { return {600, heightForWidth(600)}; }

QRect TokenStripWidget::tokenRect(qint64 position) const {
  return position >= 0 && position < m_boxes.size() ? m_boxes[position] : QRect();
}

qint64 TokenStripWidget::positionAt(const QPoint& p) const {
  // Boxes are in reading order: binary search the line, then scan it.
  auto it = std::lower_bound(m_boxes.begin(), m_boxes.end(), p.y(),
                             [](const QRect& r, int y) { return r.bottom() < y; });
  for (; it != m_boxes.end() && it->top() <= p.y(); ++it)
    if (it->contains(p)) return qint64(it - m_boxes.begin());
  return -1;
}

void TokenStripWidget::paintEvent(QPaintEvent* e) {
  QPainter p(this);
  p.fillRect(e->rect(), palette().color(QPalette::Base));
  const auto& tokens = m_doc->tokens();
  const QFontMetrics fm = fontMetrics();
  if (tokens.isEmpty()) {
    p.setPen(palette().color(QPalette::PlaceholderText));
    p.drawText(rect().adjusted(8, 8, -8, -8), Qt::AlignLeft | Qt::AlignTop | Qt::TextWordWrap,
               tr("The tokens appear here as they are generated, coloured by the chosen measure. "
                  "Hover a token for its statistics and alternatives; right-click to fork."));
    return;
  }
  const qint64 selected = m_doc->selectedPosition(), tracked = m_doc->trackedPosition();
  const Branch* branch = m_doc->branch(m_doc->currentBranchId());
  const qint64 forkAt = branch ? branch->forkPosition : -1;
  const int n = int(std::min<qsizetype>(tokens.size(), m_boxes.size()));
  auto it = std::lower_bound(m_boxes.begin(), m_boxes.begin() + n, e->rect().top(),
                             [](const QRect& r, int y) { return r.bottom() < y; });
  QFont italic = font();
  italic.setItalic(true);
  for (int i = int(it - m_boxes.begin()); i < n; ++i) {
    const QRect& box = m_boxes[i];
    if (box.top() > e->rect().bottom()) break;
    const QColor fill = QColor::fromRgb(m_scale.map(m_measures->value(i, m_measure)));
    p.fillRect(box, fill);
    const bool dark = qGray(fill.rgb()) < 128;
    p.setPen(dark ? Qt::white : Qt::black);
    p.setFont(tokens[i].isPrompt ? italic : font());
    p.drawText(box.adjusted(kPad, 0, -kPad + 2, 0), Qt::AlignVCenter | Qt::AlignLeft,
               fm.elidedText(visibleTokenText(tokens[i].text).left(kMaxBoxText), Qt::ElideRight, box.width()));
    if (tokens[i].isPrompt) {  // a thin grey underline marks what was given, not generated
      p.setPen(QPen(QColor(120, 120, 120), 1));
      p.drawLine(box.bottomLeft(), box.bottomRight());
    }
    if (i == forkAt) {  // the token that differs from the parent branch
      p.setPen(Qt::NoPen);
      p.setBrush(QColor(0, 160, 80));
      p.drawPolygon(QPolygon({box.topLeft(), box.topLeft() + QPoint(7, 0), box.topLeft() + QPoint(0, 7)}));
      p.setBrush(Qt::NoBrush);
    }
    if (i == tracked) {
      p.setPen(QPen(QColor(255, 140, 0), 2, Qt::DashLine));
      p.drawRect(box.adjusted(-1, -1, 0, 0));
    }
    if (i == selected) {
      p.setPen(QPen(QColor(230, 30, 30), 2));
      p.drawRect(box.adjusted(-1, -1, 0, 0));
    }
  }
}

void TokenStripWidget::resizeEvent(QResizeEvent*) {
  if (width() != m_layoutWidth) relayout();
}

bool TokenStripWidget::event(QEvent* e) {
  if (e->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(e);
    const qint64 pos = positionAt(help->pos());
    if (pos >= 0)
      QToolTip::showText(help->globalPos(), tokenTooltip(*m_doc, pos), this, tokenRect(pos));
    else
      QToolTip::hideText();
    return true;
  }
  return QWidget::event(e);
}

void TokenStripWidget::mouseReleaseEvent(QMouseEvent* e) {
  if (e->button() != Qt::LeftButton) return;
  const qint64 pos = positionAt(e->position().toPoint());
  if (pos >= 0) Q_EMIT positionClicked(pos);
}

QList<QAction*> TokenStripWidget::tokenActions(qint64 position, QObject* parent) {
  QList<QAction*> actions;
  const TokenRecord* t = m_doc->token(position);
  if (!t) return actions;
  for (const AlternativeToken& a : t->alternatives) {
    if (a.id == t->id) continue;
    auto* act = new QAction(tr("Fork with “%1” (%2%)").arg(visibleTokenText(a.text)).arg(double(a.prob) * 100.0, 0, 'f', 1), parent);
    act->setData(a.id);
    connect(act, &QAction::triggered, this, [this, position, id = a.id] { Q_EMIT forkRequested(position, id); });
    actions << act;
  }
  if (actions.isEmpty()) {
    auto* none = new QAction(t->isPrompt ? tr("Prompt tokens have no alternatives") : tr("No alternatives recorded"), parent);
    none->setEnabled(false);
    actions << none;
  }
  auto* sep = new QAction(parent);
  sep->setSeparator(true);
  actions << sep;
  auto* track = new QAction(tr("Track what survives of this token"), parent);
  track->setObjectName(QStringLiteral("trackAction"));
  connect(track, &QAction::triggered, this, [this, position] { Q_EMIT trackRequested(position); });
  actions << track;
  return actions;
}

void TokenStripWidget::contextMenuEvent(QContextMenuEvent* e) {
  const qint64 pos = positionAt(e->pos());
  if (pos < 0) return;
  Q_EMIT positionClicked(pos);
  QMenu menu(this);
  menu.addActions(tokenActions(pos, &menu));
  menu.exec(e->globalPos());
}

void TokenStripWidget::keyPressEvent(QKeyEvent* e) {
  const qint64 sel = m_doc->selectedPosition();
  if (e->key() == Qt::Key_Left && sel > 0)
    Q_EMIT positionClicked(sel - 1);
  else if (e->key() == Qt::Key_Right && sel + 1 < m_doc->tokenCount())
    Q_EMIT positionClicked(sel + 1);
  else if (e->key() == Qt::Key_End)
    Q_EMIT positionClicked(-1);
  else
    QWidget::keyPressEvent(e);
}
