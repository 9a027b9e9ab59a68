// Modes Lab ▸ Equivalence (equivalencelab.h).
#include "lab/equivalencelab.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/engineworker.h"
#include "lab/flagheatmap.h"
#include "lab/labmatrix.h"
#include "lab/labrunner.h"
#include "mambascope/backend.hpp"
#include "mambascope/lab.hpp"
#include "mambascope/model.hpp"

namespace ms = mambascope;
namespace lab = mambascope::lab;

struct EquivalenceLab::Shown {
  std::vector<lab::EquivalenceReport> reports;
  QStringList pieces;
  QStringList notes;
};

// The second backend (the CPU beside the GPU, or the GPU beside the CPU), made once per model.
struct EquivalenceLab::OtherBackend {
  std::weak_ptr<const ms::Model> model;
  std::shared_ptr<ms::Backend> backend;
  std::string why_not;
};

namespace {
QString fmtBytes(double b) {
  if (b < 0) return QStringLiteral("–");
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) {
    b /= 1024;
    ++u;
  }
  return QStringLiteral("%1 %2").arg(b, 0, 'f', u ? 1 : 0).arg(QLatin1String(units[u]));
}
}  // namespace

EquivalenceLab::EquivalenceLab(const LabContext& context, QWidget* parent)
    : LabView(QStringLiteral("modes_equivalence"), tr("Modes: equivalence"), context, parent),
      m_otherBackend(std::make_shared<OtherBackend>()) {
  m_other = new QCheckBox(tr("both backends"), this);
  m_other->setToolTip(tr("Also run on the other backend (the CPU beside the GPU, or the GPU when one is present)"));
  m_other->setChecked(true);
  options()->addWidget(m_other);
  options()->addWidget(new QLabel(tr("Heatmap:"), this));
  m_which = new QComboBox(this);
  m_which->setObjectName(QStringLiteral("equivalenceWhich"));
  m_which->setMinimumContentsLength(18);
  options()->addWidget(m_which);

  auto* results = new QSplitter(Qt::Vertical, this);
  m_heatmap = new FlagHeatmap(results);
  m_table = new QTableWidget(0, 10, results);
  m_table->setObjectName(QStringLiteral("equivalenceTable"));
  m_table->setHorizontalHeaderLabels({tr("backend"), tr("mode"), tr("compared with"), tr("y rel"), tr("logits rel"),
                                      tr("argmax agree"), tr("time"), tr("peak (est.)"), tr("peak (measured)"),
                                      tr("verdict")});
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_table->verticalHeader()->hide();
  results->addWidget(m_heatmap);
  results->addWidget(m_table);
  setResults(results);

  m_summary = new LabMatrix({tr("Mode equivalence"), tr("value"), tr("backend · mode"), tr("measure")}, this);
  m_cells = new LabMatrix({tr("max |Δy| / max |y| per layer and token"), tr("relative Δy"), tr("token"), tr("layer"),
                           true},
                          this);
  connect(m_which, &QComboBox::currentIndexChanged, this, &EquivalenceLab::showHeatmap);
}

EquivalenceLab::~EquivalenceLab() = default;

QList<MatrixModel*> EquivalenceLab::dataModels() const { return {m_summary, m_cells}; }

void EquivalenceLab::start(const LabText& text) {
  const bool both = m_other->isChecked();
  auto other = m_otherBackend;
  runner()->start(tr("Equivalence"), [text, both, other](const EngineAccess& engine, const lab::Progress& progress) {
    const std::vector<int32_t> ids = text.resolve(engine);
    auto shown = std::make_shared<Shown>();
    shown->pieces = tokenPieces(*engine.model, ids);
    std::vector<ms::Backend*> backends{engine.backend.get()};
    if (both) {
      if (other->model.lock() != engine.model) {
        other->backend.reset();
        other->why_not.clear();
        other->model = engine.model;
        const ms::Checkpoint& ckpt = engine.model->checkpoint();
        if (engine.backend->name() != "cpu") {
          other->backend = ms::make_cpu_backend(ckpt);
        } else if (ms::cuda_backend_available(&other->why_not)) {
          try {
            other->backend = ms::make_cuda_backend(ckpt);
          } catch (const std::exception& e) {
            other->why_not = e.what();
          }
        }
      }
      if (other->backend) backends.push_back(other->backend.get());
      else shown->notes << QObject::tr("Only the %1 backend ran: %2")
                                .arg(QString::fromStdString(engine.backend->name()),
                                     other->why_not.empty() ? QObject::tr("no other backend")
                                                            : QString::fromStdString(other->why_not));
    }
    for (size_t i = 0; i < backends.size(); ++i) {
      lab::Progress part = progress;
      part.report = [&progress, i, n = backends.size()](double f, const std::string& what) {
        progress((double(i) + f) / double(n), what);
      };
      shown->reports.push_back(lab::equivalence(*backends[i], engine.model->config(), ids, {}, part));
    }
    return LabRunner::Deliver([]{});  // replaced below
  });
}
