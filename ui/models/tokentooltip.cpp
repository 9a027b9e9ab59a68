// Rich-text token read-outs.
#include "models/tokentooltip.h"

#include <QCoreApplication>
#include <cmath>

#include "core/measures.h"
#include "core/sessiondocument.h"

namespace {
QString tr(const char* s) { return QCoreApplication::translate("tokentooltip", s); }
QString num(float v) { return std::isnan(v) ? QStringLiteral("–") : QString::number(double(v), 'g', 4); }
}  // namespace

QString visibleTokenText(const QString& text) {
  if (text.isEmpty()) return QStringLiteral("∅");
  QString t = text;
  t.replace(QLatin1Char('\n'), QStringLiteral("↵"));
  t.replace(QLatin1Char('\t'), QStringLiteral("→"));
  t.replace(QLatin1Char('\r'), QStringLiteral("␍"));
  return t;
}

QString tokenTooltip(const SessionDocument& doc, qint64 position) {
  const TokenRecord* t = doc.token(position);
  if (!t) return {};
  const int layer = doc.layer();
  const auto& tokens = doc.tokens();
  QString html = QStringLiteral("<b>#%1</b> “%2” · id %3%4")
                     .arg(position)
                     .arg(visibleTokenText(t->text).toHtmlEscaped())
                     .arg(t->id)
                     .arg(t->isPrompt ? tr(" · prompt") : QString());
  const LayerFrame* f = t->probe ? t->probe->layer(layer) : nullptr;
  if (f) {
    html += QStringLiteral("<table cellspacing=0 cellpadding=1>");
    html += QStringLiteral("<tr><td colspan=2><i>%1</i></td></tr>").arg(tr("layer %1").arg(layer));
    const auto row = [&](const QString& name, float v) {
      html += QStringLiteral("<tr><td>%1</td><td align=right>%2</td></tr>").arg(name.toHtmlEscaped(), num(v));
    };
    row(tr("mean Δ"), f->meanDelta);
    row(tr("mean Δ, all layers"), tokenMeasure(tokens, position, TokenMeasure::DeltaAll, layer));
    row(tr("‖B‖"), f->normB);
    row(tr("‖C‖ (read)"), f->readNorm);
    row(tr("‖Δ·B·x‖ (write)"), f->writeStrength);
    row(tr("gate SiLU(z)"), f->meanGate);
    row(tr("‖h‖"), f->normH);
    html += QStringLiteral("</table>");
  } else {
    html += QStringLiteral("<br><i>%1</i>").arg(tr("no probe recorded"));
  }
  if (!t->alternatives.isEmpty()) {
    html += QStringLiteral("<br><b>%1</b><table cellspacing=0 cellpadding=1>").arg(tr("alternatives"));
    for (const AlternativeToken& a : t->alternatives) {
      const int bar = int(a.prob * 60 + 0.5f);
      html += QStringLiteral("<tr><td>%1“%2”</td><td align=right>%3%</td><td><span style='background:#4a7fd6'>%4</span></td></tr>")
                  .arg(a.id == t->id ? QStringLiteral("▶ ") : QString())
                  .arg(visibleTokenText(a.text).toHtmlEscaped())
                  .arg(QString::number(double(a.prob) * 100.0, 'f', 1))
                  .arg(QString(bar, QChar(0x2007)));
    }
    html += QStringLiteral("</table>");
  }
  return html;
}
