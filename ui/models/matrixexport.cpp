// CSV and .npy export of MatrixModels.
#include "models/matrixexport.h"

#include <QFile>
#include <QSaveFile>
#include <QTextStream>
#include <cmath>
#include <vector>

#include "mambascope/npy.hpp"
#include "models/matrixmodel.h"

namespace {
QString csvField(const QString& s) {
  if (!s.contains(QLatin1Char(',')) && !s.contains(QLatin1Char('"')) && !s.contains(QLatin1Char('\n')) &&
      !s.contains(QLatin1Char('\r')) && s.trimmed() == s)
    return s;
  QString q = s;
  q.replace(QLatin1Char('"'), QStringLiteral("\"\""));
  return QLatin1Char('"') + q + QLatin1Char('"');
}
}  // namespace

namespace matrixexport {

bool saveCsv(const MatrixModel& model, const QString& path, QString* error) {
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly | QIODevice::Text)) {
    if (error) *error = QObject::tr("Cannot write %1: %2").arg(path, file.errorString());
    return false;
  }
  QTextStream out(&file);
  const int rows = model.rowCount(), columns = model.columnCount();
  const bool tokens = rows > 0 && model.rowPosition(0) >= 0;
  out << (tokens ? QStringLiteral("position,token") : csvField(model.rowAxis()));
  for (int c = 0; c < columns; ++c) out << ',' << csvField(model.columnLabel(c));
  out << '\n';
  std::vector<float> values(static_cast<size_t>(columns));
  for (int r = 0; r < rows; ++r) {
    model.rowValues(r, values.data());
    if (tokens)
      out << model.rowPosition(r) << ',' << csvField(model.rowLabel(r));
    else
      out << csvField(model.rowLabel(r));
    for (float v : values) {
      out << ',';
      if (std::isfinite(v)) out << QString::number(double(v), 'g', 8);
    }
    out << '\n';
  }
  out.flush();
  if (!file.commit()) {
    if (error) *error = QObject::tr("Cannot write %1: %2").arg(path, file.errorString());
    return false;
  }
  return true;
}

bool saveNpy(const MatrixModel& model, const QString& path, QString* error) {
  const int rows = model.rowCount(), columns = model.columnCount();
  std::vector<float> data(size_t(rows) * size_t(columns));  // {rows, columns}, NaN where missing
  for (int r = 0; r < rows; ++r) model.rowValues(r, data.data() + size_t(r) * size_t(columns));
  try {
    mambascope::write_npy(path.toStdString(), data, {rows, columns});
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return false;
  }
  return true;
}

}  // namespace matrixexport
