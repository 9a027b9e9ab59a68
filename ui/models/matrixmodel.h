// The table between probe data and views. Every view draws a MatrixModel: a rows × columns grid
// of floats with labels (a heatmap colours it, a line chart draws its columns as series, the
// exporter writes it as CSV and .npy). value() is the fast path the views use; data() serves
// item views and tests. TokenRowsModel is the base of the models whose rows are the tokens of
// the current branch: it follows the document and reports appended tokens as inserted rows.
#pragma once
#include <QAbstractTableModel>
#include <vector>

class SessionDocument;

class MatrixModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  using QAbstractTableModel::QAbstractTableModel;

  virtual float value(int row, int column) const = 0;  // NaN: no data
  virtual void rowValues(int row, float* out) const;    // columnCount() values

  virtual QString title() const = 0;      // what the grid shows, e.g. "Δ · layer 3"
  virtual QString valueName() const = 0;  // the quantity, e.g. "Δ"
  virtual QString rowAxis() const { return tr("token"); }
  virtual QString columnAxis() const = 0;
  virtual QString rowLabel(int row) const { return QString::number(row); }
  virtual QString columnLabel(int column) const { return QString::number(column); }
  // The token position of a row, or -1 when rows are not tokens (then no selection marker).
  virtual qint64 rowPosition(int row) const { Q_UNUSED(row); return -1; }
  virtual int rowForPosition(qint64 position) const { Q_UNUSED(position); return -1; }
  virtual bool logScale() const { return false; }
  virtual bool signedValues() const { return false; }  // diverging colours around 0

  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
};

class TokenRowsModel : public MatrixModel {
  Q_OBJECT

 public:
  explicit TokenRowsModel(SessionDocument* doc, QObject* parent = nullptr);

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  QString rowLabel(int row) const override;
  qint64 rowPosition(int row) const override { return row; }
  int rowForPosition(qint64 position) const override;
  SessionDocument* document() const { return m_doc; }

 protected:
  // Rebuilds everything (model, branch, layer changed). Subclasses override to drop caches.
  virtual void reset();
  // Rows whose values are derived and costly keep them here: computeRow fills one row.
  virtual void computeRow(int row, std::vector<float>& out) const { Q_UNUSED(row); Q_UNUSED(out); }
  float cachedValue(int row, int column) const;
  void cachedRow(int row, float* out) const;

 private:
  void onAppended(int branchId, int first, int count);
  const std::vector<float>& rowCache(int row) const;

  SessionDocument* m_doc;
  int m_rows = 0;
  mutable std::vector<std::vector<float>> m_cache;  // {rows}{columns}; empty row = not computed
};
