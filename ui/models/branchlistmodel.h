// The branches of the session as a list (for the branch chooser): root runs and forks, each
// labelled with where it forked and which token it chose.
#pragma once
#include <QAbstractListModel>
#include <QVector>

class SessionDocument;

class BranchListModel : public QAbstractListModel {
  Q_OBJECT

 public:
  enum Role { BranchIdRole = Qt::UserRole + 1 };
  explicit BranchListModel(SessionDocument* doc, QObject* parent = nullptr);
  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  int rowOf(int branchId) const;
  int branchAt(int row) const;

 private:
  void refresh();
  SessionDocument* m_doc;
  QVector<int> m_ids;
};
