// The hover read-out of one token, shared by the token strip and the heatmaps: its position,
// id and text, its Δ/B/C statistics in the chosen layer, and the alternatives the sampler saw.
#pragma once
#include <QString>

class SessionDocument;

QString tokenTooltip(const SessionDocument& doc, qint64 position);
// Text as shown in a token box or a label: newlines, tabs and leading spaces made visible.
QString visibleTokenText(const QString& text);
