// The token strip with its controls: the measure that colours it (with a legend) and the branch
// being shown. Right-clicking a token offers its alternatives: choosing one forks the generation.
#pragma once
#include "views/viewpanel.h"

class BranchListModel;
class ColorLegend;
class QComboBox;
class QScrollArea;
class SessionDocument;
class TokenMeasuresModel;
class TokenStripWidget;

class TokenStripView : public ViewPanel {
  Q_OBJECT

 public:
  explicit TokenStripView(SessionDocument* doc, QWidget* parent = nullptr);
  QList<MatrixModel*> dataModels() const override;
  QWidget* renderTarget() override;
  TokenStripWidget* strip() const { return m_strip; }
  QComboBox* measureBox() const { return m_measure; }
  QComboBox* branchBox() const { return m_branch; }

 Q_SIGNALS:
  void forkRequested(qint64 position, qint32 tokenId);

 private:
  void syncBranch();
  void keepInView();

  SessionDocument* m_doc;
  TokenMeasuresModel* m_model;
  BranchListModel* m_branches;
  TokenStripWidget* m_strip;
  QScrollArea* m_scroll;
  QComboBox* m_measure;
  QComboBox* m_branch;
  ColorLegend* m_legend;
};
