// The probe-memory dialog: two bounds in MiB and what is held now.
#include "window/probememorydialog.h"

#include <QDialogButtonBox>
#include <algorithm>
#include <QFormLayout>
#include <QLabel>
#include <QSpinBox>
#include <QVBoxLayout>

namespace {

QSpinBox* mibBox(qint64 bytes, const QString& name, QWidget* parent) {
  auto* box = new QSpinBox(parent);
  box->setObjectName(name);
  box->setRange(ProbeMemoryDialog::kMinMiB, ProbeMemoryDialog::kMaxMiB);
  box->setSuffix(QStringLiteral(" MiB"));
  box->setSingleStep(64);
  box->setValue(int(std::clamp<qint64>(bytes >> 20, ProbeMemoryDialog::kMinMiB, ProbeMemoryDialog::kMaxMiB)));
  return box;
}

}  // namespace

ProbeMemoryDialog::ProbeMemoryDialog(qint64 detailBytes, qint64 hBytes, qint64 heldBytes, QWidget* parent)
    : QDialog(parent) {
  setWindowTitle(tr("Probe memory"));
  setObjectName(QStringLiteral("probeMemoryDialog"));
  auto* intro = new QLabel(
      tr("Every generated token records what each layer selected. The newest tokens keep the full "
         "detail (Δ per channel, B, C, gate) and the hidden state h for the heatmaps; when a bound "
         "is reached the oldest tokens drop back to their scalar summaries, which are always kept."),
      this);
  intro->setWordWrap(true);
  m_detail = mibBox(detailBytes, QStringLiteral("probeDetailMiB"), this);
  m_h = mibBox(hBytes, QStringLiteral("probeHMiB"), this);
  auto* held = new QLabel(tr("%1 MiB held now").arg(double(heldBytes) / double(1 << 20), 0, 'f', 1), this);
  held->setObjectName(QStringLiteral("probeHeld"));
  auto* form = new QFormLayout;
  form->addRow(tr("Δ, B, C details:"), m_detail);
  form->addRow(tr("hidden states h:"), m_h);
  form->addRow(tr("In use:"), held);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(intro);
  layout->addLayout(form);
  layout->addWidget(buttons);
}

qint64 ProbeMemoryDialog::detailBytes() const { return qint64(m_detail->value()) << 20; }
qint64 ProbeMemoryDialog::hBytes() const { return qint64(m_h->value()) << 20; }

void ProbeMemoryDialog::setMiB(int detailMiB, int hMiB) {
  m_detail->setValue(detailMiB);
  m_h->setValue(hMiB);
}
