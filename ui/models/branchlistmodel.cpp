// Branch list for the chooser.
#include "models/branchlistmodel.h"

#include "core/sessiondocument.h"

BranchListModel::BranchListModel(SessionDocument* doc, QObject* parent) : QAbstractListModel(parent), m_doc(doc) {
  connect(doc, &SessionDocument::branchesChanged, this, &BranchListModel::refresh);
  connect(doc, &SessionDocument::tokensAppended, this, [this](int id) {
    const int row = rowOf(id);
    if (row >= 0) Q_EMIT dataChanged(index(row), index(row));
  });
  refresh();
}

void BranchListModel::refresh() {
  beginResetModel();
  m_ids = m_doc->branchIds();
  endResetModel();
}

int BranchListModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_ids.size()); }

QVariant BranchListModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= m_ids.size()) return {};
  const Branch* b = m_doc->branch(m_ids[index.row()]);
  if (!b) return {};
  switch (role) {
    case Qt::DisplayRole: return tr("%1 (%2 tokens)").arg(b->label).arg(b->tokens.size());
    case Qt::ToolTipRole:
      return b->parent < 0 ? tr("A generation from the prompt")
                           : tr("Forked from “%1” at token #%2").arg(m_doc->branch(b->parent) ? m_doc->branch(b->parent)->label : QString()).arg(b->forkPosition);
    case BranchIdRole: return b->id;
    default: return {};
  }
}

int BranchListModel::rowOf(int branchId) const { return int(m_ids.indexOf(branchId)); }
int BranchListModel::branchAt(int row) const { return row >= 0 && row < m_ids.size() ? m_ids[row] : -1; }
