// Settings ▸ Probe memory: how much of the recorded Δ/B/C details and hidden states h the window
// keeps for the newest tokens (older tokens keep only their scalar summaries). The values are MiB;
// Explorer::setProbeBudgets applies and remembers them.
#pragma once
#include <QDialog>

class QLabel;
class QSpinBox;

class ProbeMemoryDialog : public QDialog {
  Q_OBJECT

 public:
  // heldBytes: what the probe copies hold now (shown, so the user sees what a smaller bound drops).
  ProbeMemoryDialog(qint64 detailBytes, qint64 hBytes, qint64 heldBytes, QWidget* parent = nullptr);

  qint64 detailBytes() const;
  qint64 hBytes() const;
  void setMiB(int detailMiB, int hMiB);

  static constexpr int kMinMiB = 16, kMaxMiB = 1 << 20;  // 16 MiB .. 1 TiB

 private:
  QSpinBox* m_detail;
  QSpinBox* m_h;
};
