// What the sweep's numbers say: the S4 paper's comparison table (Gu, Goel & Ré 2022, Table 1:
// convolution vs recurrence vs attention vs S4) filled with measured times and estimated memory,
// and the attention reference curve read from docs/benchmarks.md.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <sstream>

#include "lab/lab_internal.hpp"
#include "mambascope/lab.hpp"

namespace mambascope::lab {
namespace {

const SweepSeries* find_series(const SweepResult& r, ScanMode m) {
  for (const SweepSeries& s : r.series)
    if (s.method == m && !s.points.empty()) return &s;
  return nullptr;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = char(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// "| a | b |" -> {"a", "b"}
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string t = trim(line);
  if (!t.empty() && t.front() == '|') t.erase(0, 1);
  if (!t.empty() && t.back() == '|') t.pop_back();
  std::string cur;
  std::istringstream in(t);
  while (std::getline(in, cur, '|')) out.push_back(trim(cur));
  return out;
}

// "131,072", "128K", "2048" -> tokens; "0.1084", "14.22 ms" -> number. false if not a number.
bool parse_number(std::string s, double& v) {
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  s.erase(std::remove(s.begin(), s.end(), '*'), s.end());
  if (s.empty()) return false;
  size_t used = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    return false;
  }
  const std::string rest = lower(trim(s.substr(used)));
  if (rest == "k") v *= 1024;  // sequence lengths: 128K = 131072
  else if (!rest.empty() && rest != "ms") return false;
  return true;
}

bool is_length_header(const std::string& h) {
  const std::string l = lower(h);
  return l == "l" || l == "seq" || l == "seqlen" || l == "seq_len" || l.find("length") != std::string::npos ||
         l == "tokens";
}
bool is_attention_header(const std::string& h) {
  const std::string l = lower(h);
  return l.find("attention") != std::string::npos || l.find("fa-2") != std::string::npos ||
         l.find("fa2") != std::string::npos || l.find("flash") != std::string::npos;
}
bool is_ms_header(const std::string& h) {
  const std::string l = lower(h);
  return l == "ms" || l.find("(ms)") != std::string::npos || l.find(" ms") != std::string::npos;
}

// A table's rows (as cells), separator lines removed.
std::optional<std::vector<std::pair<int64_t, double>>> read_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::pair<int64_t, double>> pts;
  if (rows.size() < 2) return std::nullopt;
  // Column layout: a header row naming a length column and a milliseconds column.
  const auto& head = rows[0];
  int lc = -1, mc = -1;
  for (size_t i = 0; i < head.size(); ++i) {
    if (lc < 0 && is_length_header(head[i])) lc = int(i);
    else if (mc < 0 && is_ms_header(head[i])) mc = int(i);
  }
  if (lc >= 0 && mc >= 0) {
    for (size_t r = 1; r < rows.size(); ++r) {
      double L, ms;
      if (int(rows[r].size()) > std::max(lc, mc) && parse_number(rows[r][size_t(lc)], L) &&
          parse_number(rows[r][size_t(mc)], ms))
        pts.emplace_back(int64_t(L), ms / 1e3);
    }
  } else {
    // Row layout (as in ../shared/guide/ANCHORS.md): "| L | 512 | ... |" then "| ms | 0.029 | ... |".
    const std::vector<std::string>* lrow = nullptr;
    const std::vector<std::string>* mrow = nullptr;
    for (const auto& r : rows) {
      if (r.empty()) continue;
      if (!lrow && is_length_header(r[0])) lrow = &r;
      else if (!mrow && is_ms_header(r[0])) mrow = &r;
    }
    if (!lrow || !mrow) return std::nullopt;
    for (size_t i = 1; i < std::min(lrow->size(), mrow->size()); ++i) {
      double L, ms;
      if (parse_number((*lrow)[i], L) && parse_number((*mrow)[i], ms)) pts.emplace_back(int64_t(L), ms / 1e3);
    }
  }
  if (pts.empty()) return std::nullopt;
  return pts;
}

// A table with a length column and an attention column in milliseconds ("FA-2 (ms)"), under any
// heading. Repeated lengths keep their first value; cells that are not numbers are skipped.
std::optional<ReferenceCurve> attention_column(const std::vector<std::vector<std::string>>& rows,
                                               const std::string& heading) {
  if (rows.size() < 2) return std::nullopt;
  const auto& head = rows[0];
  int lc = -1, ac = -1;
  for (size_t i = 0; i < head.size(); ++i) {
    if (lc < 0 && is_length_header(head[i])) lc = int(i);
    else if (ac < 0 && is_attention_header(head[i]) && is_ms_header(head[i])) ac = int(i);
  }
  if (lc < 0 || ac < 0) return std::nullopt;
  std::map<int64_t, double> seen;
  for (size_t r = 1; r < rows.size(); ++r) {
    double L, ms;
    if (int(rows[r].size()) > std::max(lc, ac) && parse_number(rows[r][size_t(lc)], L) &&
        parse_number(rows[r][size_t(ac)], ms))
      seen.emplace(int64_t(L), ms / 1e3);
  }
  if (seen.empty()) return std::nullopt;
  ReferenceCurve c;
  c.label = head[size_t(ac)];
  c.source = "docs/benchmarks.md, section \"" + heading + "\", column \"" + head[size_t(ac)] + "\"";
  c.points.assign(seen.begin(), seen.end());
  return c;
}

}  // namespace

std::optional<ReferenceCurve> parse_attention_reference(std::string_view markdown) {
  std::istringstream in{std::string(markdown)};
  std::string line, heading;
  std::vector<std::vector<std::string>> table;
  auto finish = [&]() -> std::optional<ReferenceCurve> {
    std::optional<ReferenceCurve> out = attention_column(table, heading);
    if (!out && !table.empty() && lower(heading).find("attention") != std::string::npos) {
      if (auto pts = read_table(table)) {
        out = ReferenceCurve{heading, "docs/benchmarks.md: " + heading, std::move(*pts)};
        std::sort(out->points.begin(), out->points.end());
      }
    }
    table.clear();
    return out;
  };
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (!t.empty() && t[0] == '|') {
      const auto c = cells(t);
      const bool separator = std::all_of(c.begin(), c.end(), [](const std::string& x) {
        return !x.empty() && x.find_first_not_of("-: ") == std::string::npos;
      });
      if (!separator) table.push_back(c);
      continue;
    }
    if (auto r = finish()) return r;
    if (!t.empty() && t[0] == '#') heading = trim(t.substr(t.find_first_not_of('#')));
  }
  return finish();
}

// The paper's columns for each method, and how its per-step time is obtained.
struct S4Theory {
  ScanMode method;
  const char *name, *parallel, *train, *step, *memory, *note;
  bool step_is_recurrent;  // decodes as the recurrence: the recurrent row's step time
};
const S4Theory kS4Theory[] = {
    {ScanMode::Recurrent, "Recurrence (RNN mode)", "no: token after token", "O(L·N), sequential", "O(N)",
     "O(N) state", "step = total / L, measured token by token", true},
    {ScanMode::Scan, "Selective scan (Mamba)", "yes: chunked parallel scan", "O(L·N)",
     "O(N) (decodes as the recurrence)", "O(L·N) activations, O(N) state",
     "step: the recurrent row's, since decoding switches to the recurrence", true},
    {ScanMode::Convolution, "Selective kernel convolution", "yes: one L×L matrix per channel", "O(L²·N)",
     "O(L·N): row t of K needs every earlier token", "O(L²)",
     "step = 2·T(L)/L, the last of L rows whose cost grows linearly", false},
    {ScanMode::LtiFft, "LTI convolution by FFT (S4 CNN mode)", "yes: FFT", "O(L log L)",
     "O(N) in RNN mode (same kernel)", "O(L)", "step: an LTI layer decodes as a recurrence; the recurrent row's time",
     true},
};

std::vector<S4Row> s4_table(const SweepResult& r) {
  std::vector<S4Row> rows;
  const SweepSeries* rec = find_series(r, ScanMode::Recurrent);
  const double rec_step = rec ? rec->points.back().seconds / double(rec->points.back().L) : 0;
  for (const SweepSeries& s : r.series) {
    if (s.points.empty()) continue;
    const S4Theory* th = nullptr;
    for (const S4Theory& t : kS4Theory)
      if (t.method == s.method) th = &t;
    if (!th) continue;
    S4Row row;
    row.at_L = s.points.back().L;
    row.train_seconds = s.points.back().seconds;
    row.memory_bytes = s.points.back().peak_bytes_estimate;
    row.slope = s.slope;
    row.method = th->name;
    row.parallel = th->parallel;
    row.train_theory = th->train;
    row.step_theory = th->step;
    row.memory_theory = th->memory;
    row.note = th->note;
    row.step_seconds = th->step_is_recurrent ? rec_step : 2 * row.train_seconds / double(row.at_L);
    if (th->step_is_recurrent && !rec) row.note += " (run the recurrent series to measure it)";
    if (!s.stopped.empty()) row.note += "; " + s.stopped;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace mambascope::lab
