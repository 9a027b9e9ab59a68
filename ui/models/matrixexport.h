// Writes a MatrixModel's data: CSV (a header of column labels, one line per row with its
// position and label) and .npy (float32 {rows, columns}, through the engine's npy writer).
#pragma once
#include <QString>

class MatrixModel;

namespace matrixexport {
bool saveCsv(const MatrixModel& model, const QString& path, QString* error = nullptr);
bool saveNpy(const MatrixModel& model, const QString& path, QString* error = nullptr);
}  // namespace matrixexport
